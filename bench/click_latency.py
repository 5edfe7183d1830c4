"""Click → new decoded image latency on the Latent Map in a real browser (target: p95 ≤ 1.0 s).

Starts `streamlit run app.py` and Debian's Chromium, opens the Latent Map, and clicks 20 empty spots of the
plane (hovering 100 ms before each, as a user would); each latency runs from the click to the moment the
decoded image and the shown coordinates have both changed. The clicks and timing are the same helpers the
browser test uses.

Usage: python bench/click_latency.py [--checkpoints DIR] [--model NAME] [--clicks 20]
(default: checkpoints/ with mnist_z2 when present; set VAE_DATA_DIR for the full test set)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402
from test_browser_latent_map import (  # noqa: E402
    click_and_wait, empty_spots, open_latent_map, plot_geometry, to_pixels,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--model", default="mnist_z2", help="checkpoint name to select (default mnist_z2)")
    parser.add_argument("--clicks", type=int, default=20)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing")
    if not (Path(args.checkpoints) / f"{args.model}.pt").exists():
        raise SystemExit(f"{args.model}.pt not found in {args.checkpoints}; train one or pass --checkpoints/--model")
    from playwright.sync_api import sync_playwright

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; model {args.model} from {args.checkpoints}")
    # a folder holding only that model, so a fresh browser session picks it without touching the picker
    folder = Path(tempfile.mkdtemp(prefix="click-latency-"))
    (folder / f"{args.model}.pt").symlink_to(Path(args.checkpoints).resolve() / f"{args.model}.pt")
    server = StreamlitServer({"VAE_CHECKPOINT_DIR": str(folder)})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_latent_map(page, server.url)
            geom = plot_geometry(page)
            spots = empty_spots(geom, args.clicks, clearance=0.2, spacing=0.3)
            if len(spots) < 2:
                raise SystemExit("fewer than two empty spots on the plane")
            print(f"{len(spots)} empty spots found; clicking them in turn, {args.clicks} clicks")
            src, latencies = None, []
            for k in range(args.clicks):
                spot = spots[k % len(spots)]
                src, seconds = click_and_wait(page, *to_pixels(geom, *spot), src)
                latencies.append(seconds)
                geom = plot_geometry(page)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(folder)
    ms = np.array(latencies) * 1e3
    p95 = float(np.percentile(ms, 95))
    print("latencies ms: " + " ".join(f"{v:.0f}" for v in ms))
    print(f"clicks {len(ms)}  median {statistics.median(ms):.0f} ms  p95 {p95:.0f} ms  max {ms.max():.0f} ms  "
          f"(target p95 ≤ 1000 ms: {'ok' if p95 <= 1000 else 'MISSED'})")


if __name__ == "__main__":
    main()
