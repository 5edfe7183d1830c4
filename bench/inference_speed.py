"""Speed of what the Latent Map does, each against a naive baseline measured in the same run.

  decode one point          target ≤ 5 ms
  decode a 30×30 grid       target ≤ 60 ms    baseline: the 900 images decoded one at a time
  encode 10,000 test images target ≤ 0.5 s    baseline: one image at a time (timed on 1,000, scaled ×10)
  Latent Map warm rerun     target ≤ 0.3 s    baseline: the page's first (cold) run; AppTest, so the figure
                                              includes building and serialising the chart but not the browser

Uses checkpoints/mnist_z2.pt when present, else a fresh (untrained) model of the same config, saved to a temp
folder so the page can load it. Full MNIST when $VAE_DATA_DIR has it, else the embedded sample's 1,000 test
images tiled to 10,000.

Usage: VAE_DATA_DIR=../shared/data python bench/inference_speed.py
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_core import inference  # noqa: E402
from vae_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vae_core.config import ModelConfig, TrainConfig  # noqa: E402
from vae_core.data import load_test_set  # noqa: E402
from vae_core.models import build_model  # noqa: E402
from vae_core.projection import decode_plane, slice_plane  # noqa: E402

SHIPPED = ROOT / "checkpoints" / "mnist_z2.pt"
N_TEST = 10_000


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first calls pay for allocations and lazy initialisation
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def row(name: str, seconds: float, target: float, baseline: float | None = None, note: str = "") -> None:
    verdict = "ok" if seconds <= target else "MISSED"
    ratio = f"  baseline {baseline * 1e3:9.1f} ms  ×{baseline / seconds:6.1f} faster" if baseline else ""
    print(f"{name:30s} {seconds * 1e3:9.2f} ms  (target ≤ {target * 1e3:.0f} ms: {verdict}){ratio}{note}")


def model_and_folder(tmp: Path):
    if SHIPPED.exists():
        model, info = load_checkpoint(SHIPPED)
        print(f"model: {SHIPPED} ({info.dataset}, d={info.model_config.latent_dim}, hidden {info.model_config.hidden})")
        return model, SHIPPED.parent
    model = build_model(ModelConfig(latent_dim=2, hidden=(512, 256))).eval()
    save_checkpoint(tmp / "mnist_z2.pt", model, TrainConfig(dataset="mnist"), "mnist")
    print("model: checkpoints/mnist_z2.pt is missing; a fresh model of the same config (mlp 512-256, d=2)")
    return model, tmp


def page_reruns(folder: Path) -> tuple[float, list[float], list[float]]:
    """(cold first run, warm reruns, reruns after a simulated click) of the Latent Map page in AppTest."""
    os.environ["VAE_CHECKPOINT_DIR"] = str(folder)
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app_pages" / "1_Latent_Map.py"), default_timeout=300)
    at.session_state["selected_model"] = "mnist_z2"
    start = time.perf_counter()
    at.run()
    cold = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"the page failed: {at.exception[0].message}")
    warm = []
    for _ in range(7):
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    clicks = []
    plane = slice_plane(2)
    for x, y in np.random.default_rng(0).uniform(-3, 3, size=(7, 2)):
        z = plane.to_latent(np.array([x, y])).tolist()
        at.session_state["latent_map_click"] = {"x": float(x), "y": float(y), "z": z, "plane": plane.labels}
        start = time.perf_counter()
        at.run()
        clicks.append(time.perf_counter() - start)
    return cold, warm, clicks


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        model, folder = model_and_folder(Path(tmp))
        data = load_test_set("mnist")
        images = data.test_images[:N_TEST]
        print(f"data: {data.source}")

        z = np.array([0.5, -1.0], np.float32)
        one = timed(lambda: inference.decode(model, z), 200)
        row("decode one point (median)", statistics.median(one), 0.005, note=f"  p95 {p95(one) * 1e3:.2f} ms")

        batched = timed(lambda: decode_plane(model, slice_plane(2), 30), 20)
        latents = inference.grid_latents(30, 2)
        looped = timed(lambda: [inference.decode(model, zi) for zi in latents], 3)
        row("decode 30×30 grid (median)", statistics.median(batched), 0.060, statistics.median(looped))

        enc = timed(lambda: inference.encode(model, images), 5)
        single = timed(lambda: [inference.encode(model, images[i : i + 1]) for i in range(1000)], 1)
        row("encode 10,000 (median)", statistics.median(enc), 0.5, statistics.median(single) * 10,
            note="  (baseline timed on 1,000 and ×10)")

        cold, warm, clicks = page_reruns(folder)
        row("Latent Map warm rerun (median)", statistics.median(warm), 0.3, cold,
            note=f"  max {max(warm) * 1e3:.0f} ms; baseline = cold first run")
        row("Latent Map rerun after a click", statistics.median(clicks), 0.3, cold,
            note=f"  max {max(clicks) * 1e3:.0f} ms (a new decoded image, marker and nearest image)")


if __name__ == "__main__":
    main()
