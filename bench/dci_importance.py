"""DCI's importance model: the reference's gradient boosting against the extremely randomised trees used here (and a
random forest), on four synthetic dSprites codes of middling quality: D, C, informativeness and seconds of each.

Each code: the 5 standardised factor indices of 10,000 grid images plus Gaussian noise, 5 near-constant dimensions,
and a share of the 10 turned by a random rotation (noise, share) = A (0.3, 0.3), B (0.1, 0.6), C (1.0, 0), D (0.5,
0.15); 2/3 of the codes fit, 1/3 score, as in vae_core.disentanglement. Gradient boosting takes 13–22 min a code on a
shared 2-core machine: `--codes A` runs one.

    OMP_NUM_THREADS=1 python bench/dci_importance.py [--codes A,B,C,D]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_core import disentanglement as dis  # noqa: E402
from vae_core import dsprites as ds  # noqa: E402

CODES = {"A": (0.3, 0.3, 0), "B": (0.1, 0.6, 1), "C": (1.0, 0.0, 2), "D": (0.5, 0.15, 3)}
MODELS = {
    "gradient boosting (reference)": lambda seed: GradientBoostingClassifier(random_state=seed),
    "extra trees (ours)": dis.forest,
    "random forest": lambda seed: RandomForestClassifier(10, min_samples_leaf=20, max_features=None, random_state=seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", default="A,B,C,D")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    factors = ds.from_flat(rng.choice(ds.N_IMAGES, 10_000, replace=False))
    standard = (factors - factors.mean(0)) / factors.std(0)
    perm = rng.permutation(10_000)
    fit, score = perm[:6667], perm[6667:]
    print(f"{'code':<6}{'model':<32}{'D':>7}{'C':>7}{'I':>7}{'s':>9}")
    for name in args.codes.split(","):
        noise, share, seed = CODES[name]
        r = np.random.default_rng(seed)
        z = np.c_[standard + noise * r.normal(size=standard.shape), 0.01 * r.normal(size=(10_000, 5))]
        z = share * z @ np.linalg.qr(r.normal(size=(10, 10)))[0] + (1 - share) * z
        for label, model in MODELS.items():
            start = time.perf_counter()
            s = dis.dci(z[fit], factors[fit], z[score], factors[score], seed=0, model=model)
            print(f"{name:<6}{label:<32}{s['dci_disentanglement']:7.3f}{s['dci_completeness']:7.3f}"
                  f"{s['dci_informativeness']:7.3f}{time.perf_counter() - start:9.1f}", flush=True)


if __name__ == "__main__":
    main()
