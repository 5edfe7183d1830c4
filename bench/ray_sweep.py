"""A grid sweep on a Ray cluster against the same sweep here (`python -m vae_core sweep`, each run a fresh process, run
a b a b): wall time from the command's start to its exit, and how much of it the models spent training (the sum over
groups of their engine time, as sweep.csv's `seconds` has it per model; members of a group share theirs).

One machine cannot show a cluster's speed-up: its cluster is the same cores. What it shows is Ray's cost for the
same work: joining the cluster, shipping the package and the dataset, starting worker processes (each imports torch),
the weights and progress coming back; a tiny grid (hidden 16, one epoch, no IW bound) in each round shows that fixed
cost nearly alone. Both commands are the same but for --ray, so each uses its default groups: here one group per
latent size (2 groups of 6, one after the other, torch's 2 threads), on the cluster one per (latent size, seed)
(4 groups of 3, two at a time, one thread each). OMP_WAIT_POLICY=passive for both, as for the other benchmarks: on
this shared machine libgomp's spinning threads otherwise slow the 2-thread run several-fold. Without --ray, a local
cluster is started for the run: a head of one CPU and one worker node of one CPU (tests/local_ray.py), stopped at
the end.

    python bench/ray_sweep.py                  # β 0.5 1 4 × d 2 10 × 2 seeds, mnist-sample, 2 epochs, 3 pairs
    python bench/ray_sweep.py --ray HOST:PORT  # a cluster of your own
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from local_ray import RayCluster  # noqa: E402

GRID = ["--dataset", "mnist-sample", "--beta", "0.5", "1", "4", "--latent-dim", "2", "10", "--seeds", "2"]
TINY = ["--hidden", "16", "--epochs", "1", "--iw-samples", "0"]


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def sweep(out: Path, options: list[str], ray: str | None) -> tuple[float, float, int]:
    """(wall seconds, training seconds summed over groups, groups) of one sweep in a fresh process."""
    args = [sys.executable, "-m", "vae_core", "sweep", *GRID, *options, "--out-dir", str(out),
            *(["--ray", ray] if ray else [])]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "VAE_OFFLINE": "1", "RAY_ADDRESS": ""})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed ({'ray' if ray else 'here'}): {done.stderr[-2000:]}")
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    per_group = {r["group"]: float(r["seconds"]) for r in rows}
    return wall, sum(per_group.values()), len(per_group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ray", help="HOST:PORT of a running cluster (default: start a local one for the run)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # for the sweeps here and the local cluster's workers alike
    cluster = None if args.ray else RayCluster(head_cpus=1, worker_node=True)
    address = args.ray or cluster.address
    print(f"grid: {' '.join(GRID)} --epochs {args.epochs}; tiny: the same with {' '.join(TINY)}; Ray: {address}"
          + (" (local: head 1 CPU + worker node 1 CPU)" if cluster else ""))
    grids = {"grid": ["--epochs", str(args.epochs)], "tiny": TINY}
    runs: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for pair in range(args.pairs):
                for name, options in grids.items():
                    for where in ("here", "ray"):
                        load = load_average()
                        wall, trained, groups = sweep(Path(tmp) / f"{name}-{where}{pair}", options,
                                                      address if where == "ray" else None)
                        runs.setdefault((name, where), []).append((wall, trained, groups))
                        print(f"round {pair + 1} {name} {where:4s}: {wall:6.1f} s wall, {trained:6.1f} s training "
                              f"summed over {groups} group(s) (load {load})", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    print(f"\n| sweep | where | groups | wall, median of {args.pairs} | training summed over groups | ray / here, "
          "median of the rounds' ratios |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in grids:
        ratios = [r[0] / h[0] for r, h in zip(runs[(name, "ray")], runs[(name, "here")])]
        for where in ("here", "ray"):
            done = runs[(name, where)]
            ratio = (f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})"
                     if where == "ray" else "")
            print(f"| {name} | {where} | {done[0][2]} | {statistics.median(w for w, _, _ in done):.1f} s "
                  f"| {statistics.median(t for _, t, _ in done):.1f} s | {ratio} |")


if __name__ == "__main__":
    main()
