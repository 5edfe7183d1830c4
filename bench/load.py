"""Load: N people on one warm server while one job trains, in one headless Chromium (a context each, so each its
own session, cookies and caches, like N browsers).

For each N (default 1, 4, 8, 16): a trainer's context starts a job on the Train page (the shipped mnist_z2's network,
784-512-256-2, batch 128, on the bundled sample) and watches it; then N contexts open the Latent Map at once, each
pins 10 empty spots (all N pin at once, 10 rounds), then all open Compare (the shipped β sweep: 4 models side by
side) through the sidebar. Measured:

- first paint: in each page, when the live plane was first ready (weights loaded, points drawn), from navigation
  start (window.__latentPlane.firstReady); every context starts with an empty cache, as a new visitor;
- pin → panel: in each page, from just before the click to the server's "Pinned" panel showing that spot;
- Compare: in each page, from the click on its link until all its live planes are ready;
- server RSS per added session: the server process's VmRSS once the N sessions are done, less before they opened,
  over N (the job's own growth included, so a little high);
- training: the job's images/s while the N sessions browse, against the same job with no one browsing (the trainer's
  page alone) run just before it, each stopped after its window; the figure each checkpoint stores (images seen over
  time trained).

The server is warmed first (a context opens the Latent Map and Compare once: caches filled, model files published).
The machine is shared: read each figure with the load average printed beside it; the job windows alternate (idle,
loaded) for each N.

Goals on a 2-core machine: first paint ≤ 2 s at N = 1; server memory ≤ 30 MB per added session; pin → panel p95 at
N = 8 at most 3× its N = 1 figure; training slowed at most 2×.

Usage: python bench/load.py [--sessions 1 4 8 16] [--pins 10] [--idle-s 40]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_plane import PLANE, empty_spots, geometry, to_plane  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402
from test_browser_train import click, fill, page_stop_button, progress  # noqa: E402

from vae_core.checkpoint import read_info  # noqa: E402

COMPARE_PLANES = 4  # the shipped β sweep that Compare opens with
FIRST_PAINTS = 4  # at least this many first paints per N (N = 1 opens a session 4 times, one after another)
READY_JS = "() => document.querySelector('.lp-root')?.dataset.ready === '1' && window.__latentPlane?.firstReady"
# In each page: when the "Pinned" panel first shows (x, y); read from the DOM, not its layout, so watching costs little.
WATCH_PIN_JS = """([x, y]) => {
  const w = window.__pinWatch = {t0: performance.now(), t1: null};
  const found = () => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')].some((e) => {
    const m = e.textContent.match(/\\(x, y\\) = \\((-?[\\d.]+), (-?[\\d.]+)\\)/);
    return m && Math.abs(+m[1] - x) < 0.002 && Math.abs(+m[2] - y) < 0.002; });
  const check = () => { if (w.t1 === null && found()) { w.t1 = performance.now(); observer.disconnect(); } };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
WATCH_COMPARE_JS = """(n) => {
  const w = window.__compareWatch = {t0: performance.now(), t1: null};
  const timer = setInterval(() => {
    const roots = [...document.querySelectorAll('.lp-root')];
    if (document.querySelector('h1')?.textContent.includes('Compare models') && roots.length >= n &&
        roots.every((r) => r.dataset.ready === '1')) { w.t1 = performance.now(); clearInterval(timer); }
  }, 25);
}"""
JOB = {"Hidden sizes": "512, 256", "Epochs": "500", "Batch size": "128"}  # d = 2 is the page's default


def load() -> float:
    return os.getloadavg()[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Round:
    n: int
    first_paint_ms: list[float] = field(default_factory=list)
    pin_ms: list[float] = field(default_factory=list)
    compare_ms: list[float] = field(default_factory=list)
    rss_per_session_mb: float = 0.0
    images_per_s: float = 0.0
    idle_images_per_s: float = 0.0
    loads: list[float] = field(default_factory=list)


class Trainer:
    """The person whose job trains: their own context on the Train page."""

    def __init__(self, browser, url: str, trained: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.url, self.trained, self.runs = url, trained, 0

    def start(self) -> str:
        self.runs += 1
        name = f"load_{self.runs}"
        page = self.page
        page.goto(f"{self.url}/Train")
        page.get_by_role("button", name="Start training").wait_for(timeout=120_000)
        for label, value in {**JOB, "Model name": name}.items():
            fill(page, label, value)
        click(page, page.get_by_role("button", name="Start training"))
        page.get_by_role("heading", name=name).wait_for(timeout=120_000)
        progress(page, timeout_s=120)
        return name

    def stop(self, name: str) -> float:
        """Stop the job; its images/s as its checkpoint records them."""
        click(self.page, page_stop_button(self.page))
        self.page.get_by_text(f"Stopped; saved {name}.pt").wait_for(timeout=180_000)
        return float(read_info(self.trained / f"{name}.pt").extra["images_per_s"])


def open_sessions(browser, url: str, n: int) -> list:
    """N new contexts navigating to the Latent Map at once."""
    pages = []
    for _ in range(n):
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(f"{url}/Latent_Map", wait_until="commit", timeout=300_000)
        pages.append(page)
    return pages


def first_paints(pages) -> list[float]:
    out = []
    for page in pages:
        page.wait_for_selector(PLANE, timeout=300_000)
        out.append(float(page.wait_for_function(READY_JS, timeout=300_000).json_value()))
    return out


def pin_rounds(pages, rounds: int) -> list[float]:
    """`rounds` times: every page clicks its next empty spot at once; each page's click → panel, measured in it."""
    spots = [empty_spots(geometry(page), rounds) for page in pages]
    out = []
    for r in range(rounds):
        clicked = []
        for page, spot in zip(pages, spots):
            if r >= len(spot):
                continue
            px, py = spot[r]
            page.evaluate(WATCH_PIN_JS, list(to_plane(page, px, py)))
            page.mouse.click(px, py)
            clicked.append(page)
        for page in clicked:
            page.wait_for_function("() => window.__pinWatch.t1 !== null", timeout=300_000, polling=50)
            out.append(page.evaluate("() => window.__pinWatch.t1 - window.__pinWatch.t0"))
    return out


def open_compare(pages) -> list[float]:
    for page in pages:
        page.evaluate(WATCH_COMPARE_JS, COMPARE_PLANES)
        page.get_by_test_id("stSidebar").get_by_role("link", name="Compare").click()
    out = []
    for page in pages:
        page.wait_for_function("() => window.__compareWatch.t1 !== null", timeout=600_000, polling=100)
        out.append(page.evaluate("() => window.__compareWatch.t1 - window.__compareWatch.t0"))
    return out


def warm(browser, url: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/Latent_Map")
    first_paints([page])
    open_compare([page])
    context.close()


def run_round(browser, server: StreamlitServer, trainer: Trainer, n: int, pins: int, idle_s: float) -> Round:
    result = Round(n)
    name = trainer.start()  # no one browsing: the trainer's page alone
    result.loads.append(load())
    time.sleep(idle_s)
    result.idle_images_per_s = trainer.stop(name)

    name = trainer.start()
    result.loads.append(load())
    for _ in range(FIRST_PAINTS // n - 1):  # a few more first paints where one round gives few: one at a time
        pages = open_sessions(browser, server.url, n)
        result.first_paint_ms += first_paints(pages)
        for page in pages:
            page.context.close()
    before = rss_mb(server.proc.pid)
    pages = open_sessions(browser, server.url, n)
    result.first_paint_ms += first_paints(pages)
    result.loads.append(load())
    result.pin_ms = pin_rounds(pages, pins)
    result.loads.append(load())
    result.compare_ms = open_compare(pages)
    result.rss_per_session_mb = (rss_mb(server.proc.pid) - before) / n
    result.loads.append(load())
    result.images_per_s = trainer.stop(name)
    for page in pages:
        page.context.close()
    print(f"N = {n}: first paint p50 {statistics.median(result.first_paint_ms) / 1e3:.2f} s, pin → panel p50 "
          f"{pct(result.pin_ms, 50):.0f} ms p95 {pct(result.pin_ms, 95):.0f} ms, Compare p50 "
          f"{statistics.median(result.compare_ms) / 1e3:.1f} s, RSS +{result.rss_per_session_mb:.1f} MB/session, "
          f"training {result.images_per_s:,.0f} vs {result.idle_images_per_s:,.0f} images/s idle "
          f"(load {min(result.loads):.1f}–{max(result.loads):.1f})", flush=True)
    return result


def table(rounds: list[Round]) -> str:
    base = next((r for r in rounds if r.n == 1), None)
    lines = ["| N | first paint p50 / max | pin → panel p50 / p95 | Compare ready p50 / max | server RSS per session "
             "| training images/s, browsing / idle (slowdown) | load average |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rounds:
        ratio = f" ({pct(r.pin_ms, 95) / pct(base.pin_ms, 95):.1f}× N = 1)" if base and r is not base else ""
        lines.append(
            f"| {r.n} | {statistics.median(r.first_paint_ms) / 1e3:.2f} / {max(r.first_paint_ms) / 1e3:.2f} s "
            f"| {pct(r.pin_ms, 50):.0f} / {pct(r.pin_ms, 95):.0f} ms{ratio} "
            f"| {statistics.median(r.compare_ms) / 1e3:.1f} / {max(r.compare_ms) / 1e3:.1f} s "
            f"| {r.rss_per_session_mb:.1f} MB "
            f"| {r.images_per_s:,.0f} / {r.idle_images_per_s:,.0f} ({r.idle_images_per_s / r.images_per_s:.2f}×) "
            f"| {min(r.loads):.1f}–{max(r.loads):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--pins", type=int, default=10)
    parser.add_argument("--idle-s", type=float, default=40.0, help="how long the job trains with no one browsing")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    trained = Path(tempfile.mkdtemp(prefix="load-trained-"))
    print(f"load average {load():.1f} on {os.cpu_count()} CPUs", flush=True)
    server = StreamlitServer({"VAE_OFFLINE": "1", "VAE_TRAINED_DIR": str(trained)})
    rounds = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            warm(browser, server.url)
            print(f"warm: server RSS {rss_mb(server.proc.pid):.0f} MB", flush=True)
            trainer = Trainer(browser, server.url, trained)
            for n in args.sessions:
                rounds.append(run_round(browser, server, trainer, n, args.pins, args.idle_s))
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(trained, ignore_errors=True)
    print()
    print(table(rounds))


if __name__ == "__main__":
    main()
