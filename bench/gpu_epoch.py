"""Seconds per full-MNIST training epoch of the 784-512-256-20 MLP VAE on whatever device is there (CUDA, else MPS,
else the CPU): our trainer against a plain DataLoader loop, in one invocation.

(a) baseline, the loop of PyTorch's VAE example: torchvision MNIST with ToTensor(), DataLoader batch 128 shuffled
    (pinned, one worker on CUDA, as the example sets), every batch copied to the device, non-fused Adam, and
    `loss.item()` after every step (the example sums it for its log line), which waits for the device each step;
(b) ours, `vae_core.train.fit`: uint8 images resident on the device, batched by index, fused Adam, metrics read every
    LOG_EVERY steps (no per-step host sync; tests/test_sweep.py checks that).

Both train the same model class (its own `objective`), batch size and learning rate; neither runs a test pass. Rounds
alternate a b a b (--rounds); each trains a fresh model for --epochs epochs, every epoch timed to its end on the
device. Per side: every epoch's seconds, the median, images/s at the median; load average before and after each
round. Last line: `ratio <baseline median / ours median>`. Goal on an H100 (b): ≤ 0.3 s per epoch, aiming at 0.1 s.

Usage: VAE_DATA_DIR=../shared/data python bench/gpu_epoch.py [--epochs 3] [--rounds 2] [--batch-size 128]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # steady CPU figures on a busy machine, as in bench/sweep_speed.py
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_core.config import ModelConfig, TrainConfig  # noqa: E402
from vae_core.data import DatasetUnavailable, ImageDataset, load_dataset, resolve_data_dir  # noqa: E402
from vae_core.train import device_label, fit, pick_device, prepare_model  # noqa: E402

MODEL = ModelConfig(latent_dim=20, hidden=(512, 256))


def wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def baseline_epochs(cfg: TrainConfig, device: torch.device) -> list[float]:
    from torchvision import datasets, transforms

    extra = {"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}
    loader = torch.utils.data.DataLoader(
        datasets.MNIST(str(resolve_data_dir()), train=True, download=False, transform=transforms.ToTensor()),
        batch_size=cfg.batch_size, shuffle=True, **extra)
    model = prepare_model(MODEL, cfg)[0].to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    seconds = []
    for _ in range(cfg.epochs):
        start, train_loss = time.perf_counter(), 0.0
        for x, _ in loader:
            x = x.to(device)
            optimizer.zero_grad()
            loss = model.objective(x).loss
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
        wait(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def our_epochs(data: ImageDataset, cfg: TrainConfig, device: torch.device) -> list[float]:
    ends: list[float] = []
    model = prepare_model(MODEL, cfg)[0]
    # the epoch's last metric read has waited for the device, so the clock read in on_epoch is the epoch's end
    result = fit(model, data, cfg, evaluate_each_epoch=False, on_epoch=lambda m, _: ends.append(m.elapsed))
    if result.status != "finished":
        raise SystemExit(f"our run did not finish: {result.message}")
    return [b - a for a, b in zip([0.0, *ends], ends)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()
    try:
        data = load_dataset("mnist", download=False)
    except DatasetUnavailable as exc:
        raise SystemExit(f"error: this benchmark needs the full MNIST: {exc}")
    device = pick_device("auto")
    cfg = TrainConfig(dataset="mnist", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=0,
                      device=device.type)
    n = len(data.train_images)
    print(f"device: {device_label(device)}; torch {torch.__version__}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"{n:,} training images, batch {cfg.batch_size}, "
          f"MLP 784-{'-'.join(map(str, MODEL.hidden))}-{MODEL.latent_dim}", flush=True)
    sides = {"(a) baseline DataLoader loop": lambda: baseline_epochs(cfg, device),
             "(b) ours, fit": lambda: our_epochs(data, cfg, device)}
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(1, args.rounds + 1):
        for name, run in sides.items():
            load_before = os.getloadavg()[0]
            epochs = run()
            seconds[name] += epochs
            print(f"round {round_} {name}: epochs {', '.join(f'{s:.3f}' for s in epochs)} s, "
                  f"load {load_before:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    for name, median in medians.items():
        print(f"{name}: median {median:.3f} s per epoch ({n / median:,.0f} images/s), "
              f"fastest {min(seconds[name]):.3f} s", flush=True)
    print(f"ratio {medians['(a) baseline DataLoader loop'] / medians['(b) ours, fit']:.2f}")


if __name__ == "__main__":
    main()
