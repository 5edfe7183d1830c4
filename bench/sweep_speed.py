"""A β sweep trained one after another (`fit` per model, as the app did) vs together (`sweep.fit_together`).

The shipped sweep's models: 784-256-128-10 MLP VAEs with β = 0.5, 1, 4, 8, batch 128, Adam 1e-3, seed 0 (see
checkpoints/train_shipped.sh). Each side trains all four fresh models for --epochs epochs without the per-epoch test
pass (the same for both), timed from building the models to the last weights. Sides alternate A B A B (--pairs),
after one untimed warm-up of each, on the CPU and then on the GPU when there is one; the 1-minute load average is
read before and after every pair. Data: full MNIST when $VAE_DATA_DIR has it and --dataset mnist, else the embedded
mnist-sample (4,000 training images).

Last line per device: `ratio <median over pairs of sequential seconds / together seconds>` (> 1: together is faster).

Usage: [VAE_DATA_DIR=../shared/data] python bench/sweep_speed.py [--dataset mnist-sample] [--epochs 1] [--pairs 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# OpenMP workers that spin between kernels make a lone process several times slower whenever other processes share
# the cores (README, "A job trains in a daemon thread"); sleeping workers keep both sides' figures steady on a busy
# machine. Set before torch loads libgomp; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_core.config import ModelConfig, TrainConfig  # noqa: E402
from vae_core.data import load_dataset  # noqa: E402
from vae_core.sweep import fit_together  # noqa: E402
from vae_core.train import device_label, fit, prepare_model  # noqa: E402

MODEL = ModelConfig(latent_dim=10, hidden=(256, 128))
BETAS = (0.5, 1.0, 4.0, 8.0)


def configs(dataset: str, epochs: int, device: str) -> list[TrainConfig]:
    return [TrainConfig(dataset=dataset, epochs=epochs, beta=b, seed=0, device=device) for b in BETAS]


def one_after_another(data, cfgs: list[TrainConfig]) -> float:
    start = time.perf_counter()
    for cfg in cfgs:
        fit(prepare_model(MODEL, cfg)[0], data, cfg, evaluate_each_epoch=False)
    return time.perf_counter() - start


def together(data, cfgs: list[TrainConfig]) -> float:
    start = time.perf_counter()
    fit_together([prepare_model(MODEL, cfg)[0] for cfg in cfgs], data, cfgs, evaluate_each_epoch=False)
    return time.perf_counter() - start


def compare(data, device: str, epochs: int, pairs: int) -> float:
    cfgs = configs(data.name, epochs, device)
    print(f"\n{device_label(torch.device(device))}: {len(BETAS)} models, {epochs} epoch(s) of {len(data.train_images):,} "
          f"images each", flush=True)
    warm = configs(data.name, 1, device)
    one_after_another(data, warm), together(data, warm)  # first-use costs (thread pools, CUDA context) hit neither side
    ratios = []
    for pair in range(1, pairs + 1):
        load_before = os.getloadavg()[0]
        a, b = one_after_another(data, cfgs), together(data, cfgs)
        ratios.append(a / b)
        print(f"pair {pair}: one after another {a:6.2f} s, together {b:6.2f} s, ratio {a / b:.2f}, "
              f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    ratio = statistics.median(ratios)
    print(f"ratio {ratio:.2f}", flush=True)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-sample", choices=("mnist-sample", "mnist"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    data = load_dataset(args.dataset, download=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; data {data.source}")
    for device in ("cpu", *(["cuda"] if torch.cuda.is_available() else [])):
        compare(data, device, args.epochs, args.pairs)


if __name__ == "__main__":
    main()
