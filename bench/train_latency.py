"""Train page latency in a real browser: Start → first progress shown, and Stop → "Stopped; saved" shown.

Starts `streamlit run app.py` and Debian's Chromium and, for each try, starts a training of a small MLP (hidden 64,
d = 2) on the page's default dataset (the embedded mnist-sample), waits for the progress bar's first "epoch 1",
lets it train 3 s, presses the page's Stop and waits for the saved model to be announced. The steps are the
browser test's own helpers. Targets: both ≤ 3 s (medians).

Usage: python bench/train_latency.py [--tries 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402
from test_browser_train import click, page_stop_button, progress, start_training  # noqa: E402

TARGET_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    server = StreamlitServer({"VAE_CHECKPOINT_DIR": tempfile.mkdtemp(prefix="train-latency-"), "VAE_OFFLINE": "1"})
    starts, stops = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for attempt in range(args.tries):
                name = f"latency_{attempt}"
                start_training(page, server.url, name)  # ends with the click on Start
                clicked = time.monotonic()
                page.get_by_role("heading", name=name).wait_for(timeout=60_000)  # not the last try's progress bar
                shown = time.monotonic() - clicked
                progress(page)
                starts.append(time.monotonic() - clicked)
                page.wait_for_timeout(3000)
                click(page, page_stop_button(page))
                clicked = time.monotonic()
                page.get_by_text(f"Stopped; saved {name}.pt").wait_for(timeout=120_000)
                stops.append(time.monotonic() - clicked)
                print(f"  try {attempt + 1}: Start → live view {shown:.2f} s → first progress {starts[-1]:.2f} s, "
                      f"Stop → saved {stops[-1]:.2f} s",
                      flush=True)
            browser.close()
        log = Path(server.log.name).read_text()
    finally:
        server.stop()
    noisy = sum("missing ScriptRunContext" in line or "streamlit run" in line for line in log.splitlines())
    for label, values in (("Start → first progress", starts), ("Stop → saved", stops)):
        median = statistics.median(values)
        print(f"{label}: median {median:.2f} s of {len(values)} (target ≤ {TARGET_S:.0f} s: "
              f"{'ok' if median <= TARGET_S else 'MISSED'})")
    print(f"server log: {noisy} 'missing ScriptRunContext' / 'streamlit run' lines")


if __name__ == "__main__":
    main()
