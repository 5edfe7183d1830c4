"""Does training from the page cost speed? `fit` called directly (as the CLI does) against the same training run
as a `vae_core.jobs` job with everything the Train page adds: the worker thread, per-step metrics under a lock,
a snapshot (test-set map, reconstructions, prior samples) at most every 2 s, and a poller standing in for the
page's fragments: it reads `view()` and builds and serialises the live figures, in the same process.

Target: the job's images/s at least 90% of the direct run's. Runs alternate direct, job, job, direct so that
drift in the machine's load hits both sides alike; each side's figure is the mean of its runs.

Same settings both ways: the shipped mnist_z2 model (MLP 512-256, d = 2, batch 128), full MNIST when
$VAE_DATA_DIR has it, else the embedded sample.

Read the ratio with the load average it prints: the direct run is alone in its process, so libgomp's workers
spin between kernels, which is faster on an idle machine and several times slower when other processes share
the cores; the job's thread makes a second OpenMP pool, whose workers sleep instead (see the README).

Usage: VAE_DATA_DIR=../shared/data python bench/page_overhead.py [--epochs 2] [--rounds 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ui.images import tile, to_png_bytes  # noqa: E402
from ui.training import PIXEL_SCALE, POLL_S, SNAPSHOT_POLL_S, curves_figure, map_figure  # noqa: E402
from vae_core import jobs  # noqa: E402
from vae_core.checkpoint import read_info  # noqa: E402
from vae_core.config import ModelConfig, TrainConfig  # noqa: E402
from vae_core.data import SAMPLE, available_datasets, load_dataset  # noqa: E402
from vae_core.train import device_label, fit, pick_device, prepare_model  # noqa: E402

MODEL = ModelConfig(arch="mlp", latent_dim=2, hidden=(512, 256))
TARGET = 0.90


def direct(data, config: TrainConfig) -> float:
    model, _ = prepare_model(MODEL, config)
    return fit(model, data, config).images_per_s


def as_job(data, config: TrainConfig, folder: Path, index: int) -> tuple[float, int, float]:
    """(images/s, page polls, CPU seconds the simulated page used) of one job run."""
    spec = jobs.training_spec(f"bench{index}", folder, MODEL, config, iw_samples=0)
    job = jobs.TrainingJob(spec, loader=lambda name: data)
    polls, cpu = 0, 0.0

    def page() -> None:
        """What the two fragments of the Train page do: progress and curves every POLL_S, the snapshot every
        SNAPSHOT_POLL_S, each serialised as Streamlit does before sending it."""
        nonlocal polls, cpu
        last_snapshot = -SNAPSHOT_POLL_S
        while job.running:
            start = time.thread_time()
            view = job.view()
            curves_figure(view).to_json()
            if view.snapshot is not None and time.monotonic() - last_snapshot >= SNAPSHOT_POLL_S:
                last_snapshot = time.monotonic()
                map_figure(view).to_json()
                to_png_bytes(tile(view.snapshot.samples.reshape(2, -1, 28, 28), padding=2), PIXEL_SCALE)
            polls += 1
            cpu += time.thread_time() - start
            time.sleep(POLL_S)

    jobs.JobRegistry().submit(job)
    poller = threading.Thread(target=page, daemon=True)
    poller.start()
    job.join()
    poller.join()
    view = job.view()
    if view.error:
        raise SystemExit(f"the job failed: {view.error}")
    return float(read_info(view.saved[0].path).extra["images_per_s"]), polls, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="direct-job-job-direct rounds")
    parser.add_argument("--dataset", default=None, help="default: mnist when on disk, else the sample")
    args = parser.parse_args()
    name = args.dataset or ("mnist" if "mnist" in available_datasets() else SAMPLE)
    data = load_dataset(name)
    config = TrainConfig(dataset=data.name, epochs=args.epochs, batch_size=128, seed=0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"data: {data.source}; {len(data.train_images):,} training images × {args.epochs} epochs per run")
    print(f"model: MLP {MODEL.hidden}, d = {MODEL.latent_dim}, batch {config.batch_size}; "
          f"device: {device_label(pick_device('auto'))}")

    direct(data, TrainConfig(dataset=data.name, epochs=1, batch_size=128, seed=1))  # warm-up, not counted
    results: dict[str, list[float]] = {"direct": [], "job": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k, side in enumerate(("direct", "job", "job", "direct")):
                if side == "direct":
                    speed, note = direct(data, config), ""
                else:
                    speed, polls, cpu = as_job(data, config, Path(tmp), 4 * r + k)
                    note = f"  ({polls} page polls, {cpu / polls * 1e3:.0f} ms CPU each)"
                results[side].append(speed)
                print(f"  {side:6s} {speed:10,.0f} images/s{note}", flush=True)
    fit_speed, job_speed = statistics.mean(results["direct"]), statistics.mean(results["job"])
    ratio = job_speed / fit_speed
    print(f"fit directly : {fit_speed:10,.0f} images/s (mean of {len(results['direct'])})")
    print(f"through a job: {job_speed:10,.0f} images/s (mean of {len(results['job'])})")
    print(f"ratio job/direct = {ratio:.3f}  (target ≥ {TARGET:.2f}: {'ok' if ratio >= TARGET else 'MISSED'})")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
