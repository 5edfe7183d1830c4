#!/usr/bin/env bash
# Retrains every shipped checkpoint on the full data (the commands checkpoints/README.md records).
# Usage: VAE_DATA_DIR=../shared/data bash checkpoints/train_shipped.sh
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "+ python -m vae_core $*"; python -m vae_core "$@"; }
run train --dataset mnist --latent-dim 20 --hidden 512 256 --epochs 50 --seed 0 --iw-samples 100 --out checkpoints/mnist_z20.pt
run train --dataset mnist --latent-dim 2 --hidden 512 256 --epochs 40 --seed 0 --iw-samples 100 --out checkpoints/mnist_z2.pt
run train --dataset fashion-mnist --latent-dim 2 --hidden 256 128 --epochs 20 --seed 0 --iw-samples 100 --out checkpoints/fashion_z2.pt
for kind in cvae ae dae; do  # the contrasts: same nets as mnist_z2, other objectives (the dae's noise: mask:0.5)
  run train --dataset mnist --kind "$kind" --latent-dim 2 --hidden 512 256 --epochs 40 --seed 0 --iw-samples 100 \
    --out "checkpoints/mnist_${kind}_z2.pt"
done
for kind in ae dae; do  # the same contrast at d = 20, where the autoencoders' holes show (nets of mnist_z20)
  run train --dataset mnist --kind "$kind" --latent-dim 20 --hidden 512 256 --epochs 50 --seed 0 --iw-samples 100 \
    --out "checkpoints/mnist_${kind}_z20.pt"
done
run train --dataset mnist --kind dae --noise patch:0.75:7 --latent-dim 20 --hidden 512 256 --epochs 50 --seed 0 \
  --iw-samples 100 --out checkpoints/mnist_mae_z20.pt  # the masked AE: 75 % of the 7×7 patches hidden
run train --dataset mnist --kind linear_ae --latent-dim 20 --epochs 80 --lr 0.01 --lr-schedule cosine --seed 0 \
  --out checkpoints/mnist_linear_z20.pt  # PCA by gradient descent: its angle to PCA is in the file
run classifier --dataset mnist --epochs 3 --seed 0 --out checkpoints/classifier/mnist.pt
for beta in 0.5 1 4 8; do
  run train --dataset mnist --latent-dim 10 --hidden 256 128 --beta "$beta" --epochs 20 --seed 0 --iw-samples 100 \
    --out "checkpoints/mnist_z10_beta${beta}.pt"
done
# the dSprites β sweep: three VAEs trained together on 150,000 images of dsprites-32, with the factor metrics
python checkpoints/train_dsprites.py --train-size 150000 --epochs 6 --out-dir checkpoints
