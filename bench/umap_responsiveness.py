"""Latent Map clicks while a UMAP is being fitted: the old way (UMAP's own fit, neighbour search included, in a
thread of the server process) against `UmapJob` (exact neighbours, niced child process), in one invocation.

For each way: start the UMAP of mnist_z20's 10,000 test μ, then rerun the Latent Map page (AppTest, PCA view of
mnist_z20) after a simulated click, back to back, until the UMAP is done; print the median, p95 and worst rerun
and the UMAP's wall time. Also: the same clicks with nothing running, and reading the shipped embedding (key +
file). The thread way runs first in the process, so it pays numba's compilation as a server's first UMAP did.
AppTest times the server's side of a click (script, figure, serialisation), not the browser's drawing.

Usage: VAE_DATA_DIR=../shared/data python bench/umap_responsiveness.py
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_core import inference, umap_view  # noqa: E402
from vae_core.checkpoint import load_checkpoint  # noqa: E402
from vae_core.data import load_test_set  # noqa: E402
from vae_core.projection import fit_pca, pca_plane  # noqa: E402

MODEL = ROOT / "checkpoints" / "mnist_z20.pt"


def thread_umap(mu: np.ndarray) -> threading.Thread:
    """What the app did before: umap.UMAP(...).fit_transform in a daemon thread of the server."""
    def fit() -> None:
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, n_epochs=200, random_state=0).fit_transform(mu)

    import pandas  # noqa: F401  (as the app did: UMAP's import of it in the thread races plotly's use of it)

    worker = threading.Thread(target=fit, daemon=True)
    worker.start()
    return worker


def clicks_until(done, at, plane, rng, at_least: int = 5) -> tuple[list[float], list[float]]:
    """Rerun the page after a simulated click on the PCA plane until `done()` (and at least `at_least` times):
    (rerun durations, when each started, in seconds from the call)."""
    times, starts = [], []
    began = time.perf_counter()
    while not done() or len(times) < at_least:
        x, y = rng.uniform(-3, 3, size=2)
        at.session_state["latent_map_click"] = {"x": float(x), "y": float(y),
                                                "z": plane.to_latent(np.array([x, y])).tolist(), "plane": plane.labels}
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        starts.append(start - began)
        if at.exception:
            raise SystemExit(f"the page failed: {at.exception[0].message}")
    return times, starts


def report(name: str, clicks: tuple[list[float], list[float]], umap_s: float | None = None) -> None:
    times, starts = clicks
    worst = int(np.argmax(times))
    p95 = sorted(times)[max(0, int(round(0.95 * len(times))) - 1)]
    fitted = f"; UMAP wall time {umap_s:.1f} s" if umap_s is not None else ""
    print(f"{name:<44} {len(times):3d} clicks: median {statistics.median(times) * 1e3:6.0f} ms, "
          f"p95 {p95 * 1e3:6.0f} ms, worst {times[worst] * 1e3:6.0f} ms (at {starts[worst]:.1f} s){fitted}")


def main() -> None:
    from streamlit.testing.v1 import AppTest

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    model, info = load_checkpoint(MODEL)
    data = load_test_set(info.dataset)
    mu = inference.encode(model, data.test_images)[0]
    plane = pca_plane(fit_pca(mu, 2))

    start = time.perf_counter()
    key = umap_view.embedding_key(umap_view.file_digest(MODEL), data.test_images.numpy())
    shipped = umap_view.load_embedding(umap_view.shipped_path(MODEL), key)
    print(f"shipped embedding of {MODEL.name}: key and load {(time.perf_counter() - start) * 1e3:.0f} ms "
          f"({'found' if shipped is not None else 'MISSING'})")

    os.environ["VAE_CHECKPOINT_DIR"] = str(MODEL.parent)
    at = AppTest.from_file(str(ROOT / "app_pages" / "1_Latent_Map.py"), default_timeout=300)
    at.session_state["selected_model"] = MODEL.stem
    at.run()
    rng = np.random.default_rng(0)
    report("idle", clicks_until(lambda: True, at, plane, rng, at_least=15))

    start = time.perf_counter()
    worker = thread_umap(mu)
    clicks = clicks_until(lambda: not worker.is_alive(), at, plane, rng)
    report("during UMAP in a server thread (before)", clicks, time.perf_counter() - start)

    start = time.perf_counter()
    job = umap_view.UmapJob(mu).start()
    clicks = clicks_until(lambda: job.status().state != "running", at, plane, rng)
    report("during UmapJob, niced child process (after)", clicks, time.perf_counter() - start)
    print(f"UmapJob: {job.status().message}")


if __name__ == "__main__":
    main()
