"""Import speed: 10,000 JPEGs of mixed sizes imported as a dataset, against a naive loop, in one invocation.

Generates (seeded) the JPEGs in a temp folder, one subfolder per class: coloured shapes on gradients, each side drawn
log-uniformly from 48 to 1,200 px, so small thumbnails and photo-sized files are mixed. Then, interleaved A B A B:
(a) the baseline, the obvious loop: one `Image.open` per file with a full decode, convert to RGB, centre crop,
resize, stack, `np.savez_compressed`; (b) ours, `vae_core.importer.import_images` into a fresh store (header pass
for the default side, JPEGs decoded at reduced scale, threads, the dataset written and renamed into place). Both make
the same 64×64 RGB arrays. Prints per side the seconds (wall and CPU) of each round, the medians, the time per 1,000
images, and for (b) the longest gap between two progress calls; last line: `ratio <baseline median / ours median>`.
Goal: (b) ≤ 30 s for 10,000 images on the 2-core development machine, progress visible throughout.

Usage: python bench/import_speed.py [--images 10000] [--rounds 2] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_core.importer import import_images  # noqa: E402

CLASSES = 10
SIDE = 64
TARGET_S = 30.0


def generate(folder: Path, n: int, seed: int) -> int:
    """n JPEGs in `folder/class_k/`; returns their total size in bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for k in range(CLASSES):
        (folder / f"class_{k}").mkdir(parents=True)
    for i in range(n):
        w, h = np.exp(rng.uniform(np.log(48), np.log(1200), 2)).astype(int)
        # A smooth gradient (upsampled from a few random pixels) and a filled shape: JPEG work like a photo's,
        # not like flat colour or noise.
        img = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        box = sorted(rng.uniform(0, w, 2)), sorted(rng.uniform(0, h, 2))
        ImageDraw.Draw(img).ellipse((box[0][0], box[1][0], box[0][1], box[1][1]),
                                    fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        path = folder / f"class_{i % CLASSES}" / f"{i:05d}.jpg"
        img.save(path, quality=int(rng.integers(70, 96)))
        total += path.stat().st_size
    return total


def baseline(folder: Path, out: Path) -> None:
    images, labels = [], []
    for k, class_dir in enumerate(sorted(folder.iterdir())):
        for path in sorted(class_dir.iterdir()):
            with Image.open(path) as img:
                img = img.convert("RGB")
                w, h = img.size
                s = min(w, h)
                left, top = (w - s) // 2, (h - s) // 2
                img = img.crop((left, top, left + s, top + s)).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
            images.append(np.asarray(img))
            labels.append(k)
    np.savez_compressed(out, images=np.stack(images).transpose(0, 3, 1, 2), labels=np.array(labels))


def ours(folder: Path, root: Path) -> float:
    """Imports; returns the longest gap between two progress calls (seconds)."""
    last = [time.perf_counter()]
    gaps = [0.0]

    def progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    report = import_images(folder, "bench", root=root, progress=progress)
    assert report.manifest.side == SIDE and report.manifest.channels == 3, report.lines()[0]
    gaps.append(time.perf_counter() - last[0])
    return max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="import-speed-"))
    try:
        started = time.perf_counter()
        size = generate(work / "images", args.images, args.seed)
        print(f"generated {args.images:,} JPEGs ({size / 1e6:,.0f} MB) in {time.perf_counter() - started:.1f} s; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        seconds: dict[str, list[float]] = {"(a) baseline, full decode per file": [], "(b) ours, import_images": []}
        cpu: dict[str, list[float]] = {name: [] for name in seconds}
        gaps = []
        for r in range(args.rounds):
            for name in seconds:
                started, started_cpu = time.perf_counter(), time.process_time()
                if name.startswith("(a)"):
                    baseline(work / "images", work / "baseline.npz")
                else:
                    gaps.append(ours(work / "images", work / f"store{r}"))
                seconds[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
                print(f"  round {r + 1} {name}: {seconds[name][-1]:.2f} s, CPU {cpu[name][-1]:.2f} s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        medians = {name: statistics.median(s) for name, s in seconds.items()}
        for name, median in medians.items():
            # CPU seconds (all threads) say what the work costs when the shared machine's load makes wall time noisy.
            print(f"{name}: median {median:.2f} s, {median / args.images * 1000:.2f} s per 1,000 images; "
                  f"CPU {statistics.median(cpu[name]):.2f} s")
        print(f"longest gap between progress calls (b): {max(gaps):.2f} s; goal (b) ≤ {TARGET_S:g} s for 10,000: "
              f"{'met' if medians['(b) ours, import_images'] * 10_000 / args.images <= TARGET_S else 'missed'}")
        print(f"ratio {medians['(a) baseline, full decode per file'] / medians['(b) ours, import_images']:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
