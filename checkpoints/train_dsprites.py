"""Trains the shipped dSprites β sweep (checkpoints/dsprites_beta<B>.pt): three VAEs that differ only in β, trained
together as one batched network (vae_core.sweep), each saved with its training history and its test metrics, the
disentanglement metrics included.

Usage: python checkpoints/train_dsprites.py [--dataset dsprites-32] [--epochs 10] [--train-size N] [--out-dir checkpoints]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_core import evaluate  # noqa: E402
from vae_core.checkpoint import save_checkpoint  # noqa: E402
from vae_core.config import ModelConfig, TrainConfig  # noqa: E402
from vae_core.data import load_dataset  # noqa: E402
from vae_core.disentanglement import METRIC_KEYS  # noqa: E402
from vae_core.sweep import fit_together  # noqa: E402
from vae_core.train import prepare_model  # noqa: E402
from vae_core.trajectory import TrajectoryRecorder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="dsprites-32")
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 256])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-size", type=int, default=0,
                        help="train on this many images drawn (seeded) from the 727,280 (default all): an epoch of the "
                             "whole grid for three members takes ~17 min on 2 busy cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--out-dir", default=str(ROOT / "checkpoints"))
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    if 0 < args.train_size < len(data.train_images):
        keep = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(args.seed))[:args.train_size]
        data = dataclasses.replace(data, train_images=data.train_images[keep], train_labels=data.train_labels[keep])
    print(f"{data.source}", file=sys.stderr)
    model_config = ModelConfig(arch="mlp", latent_dim=args.latent_dim, hidden=tuple(args.hidden),
                               image_shape=tuple(data.image_shape))
    configs = [TrainConfig(dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=b,
                           seed=args.seed) for b in args.betas]
    models = [prepare_model(model_config, c)[0] for c in configs]
    recorders = [TrajectoryRecorder(data, args.epochs, args.latent_dim) for _ in models]
    start = time.perf_counter()

    def on_epoch(k: int, m, _model) -> None:
        print(f"β = {args.betas[k]:g}  epoch {m.epoch}  test -ELBO {m.test_elbo:.2f} (recon {m.test_recon:.2f}, "
              f"KL {m.test_kl:.2f})  {m.images_per_s:,.0f} img/s  {time.perf_counter() - start:.0f} s", flush=True)

    results = fit_together(models, data, configs, on_epoch=on_epoch, recorders=recorders)
    seconds = time.perf_counter() - start
    for beta, config, result, recorder in zip(args.betas, configs, results, recorders):
        metrics = evaluate.evaluate(result.model, data.test_images, data.test_labels, iw_samples=args.iw_samples)
        factor = evaluate.factor_metrics(result.model, data, seed=args.seed)
        metrics.update({key: factor[key] for key in METRIC_KEYS})
        path = Path(args.out_dir) / f"dsprites_beta{beta:g}.pt"
        save_checkpoint(path, result.model, config, data.name, result.history, metrics,
                        extra={"images_per_s": result.images_per_s, "device": result.device, "status": result.status,
                               "seconds": seconds, "trained_together": [f"β = {b:g}" for b in args.betas],
                               "train_images": len(data.train_images)},
                        trajectory=recorder.to_payload(), dataset_sha=data.sha)
        print(json.dumps({"file": str(path), **metrics}), flush=True)


if __name__ == "__main__":
    main()
