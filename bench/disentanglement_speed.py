"""The five disentanglement metrics on 10,000 dSprites codes: ours (vae_core.disentanglement, one set of codes) against
disentanglement_lib's procedure at its default settings (fresh images for every β-VAE and FactorVAE point, gradient
boosting for DCI), timed per metric in one run, with both values side by side.

The codes come from a fixed encoder that needs no training: image moments (the sprite's centroid, the square root of
its area, its second moments) plus five dimensions of a random projection of the pixels, so the figures are those
of a middling representation, neither perfect nor random.

    OMP_NUM_THREADS=1 python bench/disentanglement_speed.py            # ~30 min on a busy 2-core machine
    OMP_NUM_THREADS=1 python bench/disentanglement_speed.py --no-gbt   # without the reference's DCI: ~3 min
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vae_core import disentanglement as dis  # noqa: E402
from vae_core import dsprites as ds  # noqa: E402

_PROJECTION = np.random.default_rng(0).normal(size=(64 * 64, 5)) / 64


def encode(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 1, 64, 64) -> (N, 10): centroid x and y, √area, the two second-moment contrasts, 5 projections."""
    x = images[:, 0].astype(np.float64) / 255.0
    ys, xs = np.mgrid[0:64, 0:64]
    area = x.sum((1, 2))
    cx, cy = (x * xs).sum((1, 2)) / area, (x * ys).sum((1, 2)) / area
    dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
    mxx, myy, mxy = ((x * dx * dx).sum((1, 2)) / area, (x * dy * dy).sum((1, 2)) / area,
                     (x * dx * dy).sum((1, 2)) / area)
    moments = np.c_[cx / 8, cy / 8, np.sqrt(area) / 4, (mxx - myy) / 4, 2 * mxy / 4]
    return np.c_[moments, x.reshape(len(x), -1) @ _PROJECTION]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def reference(n_codes: int, n_points: int, seed: int, gbt: bool) -> tuple[dict[str, float], dict[str, float]]:
    """disentanglement_lib's procedure: fresh codes for MIG, DCI and SAP (10,000 to fit, 5,000 to score), fresh images
    for each of the 10,000 + 5,000 points of the β-VAE and FactorVAE scores."""
    rng = np.random.default_rng(seed + 1)
    source = dis.Rendered(ds.FACTOR_SIZES, ds.render, encode)

    def codes(n: int) -> tuple[np.ndarray, np.ndarray]:
        f = rng.integers(0, ds.FACTOR_SIZES, size=(n, 5))
        return encode(ds.render(f)), f

    values, seconds = {}, {}
    (z, f), t_codes = timed(lambda: codes(n_codes))
    values["mig"], t = timed(lambda: dis.mig(z, f))
    seconds["mig"] = t_codes + t
    (z_test, f_test), t_test = timed(lambda: codes(n_codes // 2))
    values["beta_vae_score"], seconds["beta_vae_score"] = timed(
        lambda: dis.beta_vae_score(source, source, seed, n_points, n_points // 2))
    values["factor_vae_score"], seconds["factor_vae_score"] = timed(
        lambda: dis.factor_vae_score(source, source, seed, n_points, n_points // 2))
    if gbt:
        scores, t = timed(lambda: dis.dci(z, f, z_test, f_test, seed, model=lambda s: GradientBoostingClassifier(random_state=s)))
        values.update(scores)
        seconds["dci"] = t_codes + t_test + t
    values["sap"], t = timed(lambda: dis.sap(z, f, z_test, f_test))
    seconds["sap"] = t_codes + t_test + t
    return values, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=1000,
                        help="the reference's β-VAE and FactorVAE training points (half as many scored); its default "
                             "10,000 takes ~15 min per metric here, so its time is estimated from these (linear)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gbt", action="store_true", help="leave out the reference's gradient-boosted DCI")
    args = parser.parse_args()

    idx = ds.from_flat(np.random.default_rng(args.seed).choice(ds.N_IMAGES, args.codes, replace=False))
    (codes, t_encode) = timed(lambda: encode(ds.render(idx)))
    ours = dis.disentanglement_metrics(codes, idx, ds.FACTOR_NAMES, seed=args.seed)
    ref_values, ref_seconds = reference(args.codes, args.points, args.seed, not args.no_gbt)

    scale = dis.TRAIN_POINTS / args.points  # the reference's time grows linearly with its points
    for key in ("beta_vae_score", "factor_vae_score"):
        ref_seconds[key] *= scale
    print(f"{args.codes:,} codes rendered and encoded in {t_encode:.1f} s (not counted below)")
    print(f"reference β-VAE and FactorVAE: {args.points:,} + {args.points // 2:,} points measured, their seconds ×{scale:g}"
          f" (*) for its default {dis.TRAIN_POINTS:,} + {dis.EVAL_POINTS:,}")
    print(f"{'metric':<22}{'ours':>8}{'s':>8}{'reference':>11}{'s':>9}{'ratio':>8}")
    groups = {"dci": ("dci_disentanglement", "dci_completeness", "dci_informativeness")}
    for key in ("mig", "beta_vae_score", "factor_vae_score", "dci", "sap"):
        for i, name in enumerate(groups.get(key, (key,))):
            ref = f"{ref_values[name]:11.3f}" if name in ref_values else f"{'–':>11}"
            timed_here = i == 0 and key in ref_seconds
            mark = "*" if key in ("beta_vae_score", "factor_vae_score") else " "
            t_ours = f"{ours['seconds'][key]:8.2f}" if i == 0 else f"{'':>8}"
            t_ref = f"{ref_seconds[key]:8.1f}{mark}" if timed_here else f"{'':>9}"
            ratio = f"{ref_seconds[key] / ours['seconds'][key]:8.0f}" if timed_here else f"{'':>8}"
            print(f"{name:<22}{ours[name]:8.3f}{t_ours}{ref}{t_ref}{ratio}")
    total_ours = sum(ours["seconds"].values())
    total_ref = sum(ref_seconds.values())
    print(f"{'all five':<22}{'':>8}{total_ours:8.2f}{'':>11}{total_ref:8.1f}{'':1}{total_ref / total_ours:8.0f}")
    if args.no_gbt:
        print("(reference total without its DCI: --no-gbt)")


if __name__ == "__main__":
    main()
