"""A selection on a latent plane and what it holds.

A selection is the union of shapes drawn on the plane: polygons in plane coordinates (a lasso's path, a box's four
corners). The browser reports the shapes, not the points, so the points inside are counted here, exactly, on the
same coordinates the browser drew (matplotlib's even-odd rule, which the browser's own test follows). Then the
selected images are summed up: class mix, mean image, the spread of their codes, the KL each latent dimension
carries; and their most and least typical members are found.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SHAPES = 32  # a selection built with Shift is at most this many shapes
MAX_VERTICES = 400  # lasso.js thins a longer lasso to this many vertices
KINDS = ("lasso", "box")


def parse_shapes(value: Any) -> list[np.ndarray]:
    """The polygons of a reported selection ([{"kind", "points": [[x, y], ...]}, ...]) as float64 (k, 2) arrays.
    ValueError says what is wrong with anything else (it came from a browser)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SHAPES:
        raise ValueError(f"a selection is a list of 1 to {MAX_SHAPES} shapes")
    polygons = []
    for shape in value:
        if not isinstance(shape, dict) or shape.get("kind") not in KINDS:
            raise ValueError(f"a shape is a {' or a '.join(KINDS)}")
        points = shape.get("points")
        if not isinstance(points, list) or not 3 <= len(points) <= MAX_VERTICES:
            raise ValueError(f"a shape has 3 to {MAX_VERTICES} vertices")
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 and math.isfinite(v) for v in p) for p in points):
            raise ValueError("a vertex is two finite numbers")
        polygons.append(np.asarray(points, np.float64))
    return polygons


def inside(xy: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """bool (N,): the points (N, 2) inside any of the polygons."""
    from matplotlib.path import Path  # imported here: only a selection needs it

    xy = np.asarray(xy, np.float64)
    mask = np.zeros(len(xy), bool)
    for poly in polygons:
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        near = np.flatnonzero(~mask & (xy >= lo).all(axis=1) & (xy <= hi).all(axis=1))
        mask[near[Path(poly).contains_points(xy[near])]] = True
    return mask


def kl_per_dim(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """KL(N(μ_k, σ_k²) ‖ N(0, 1)) of each latent dimension of each code, (N, d): their sum is the code's KL."""
    mu, var = np.asarray(mu, np.float64), np.asarray(sigma, np.float64) ** 2
    return 0.5 * (mu ** 2 + var - 1.0 - np.log(var))


@dataclass(frozen=True)
class Summary:
    """What a selection of images holds."""

    count: int
    class_counts: np.ndarray  # (classes,) images of each class
    mean_image: np.ndarray  # float64 mean of the images, in [0, 1], as they are laid out
    mean_mu: np.ndarray  # (d,) the mean code, which a decoder can draw
    mu_spread: np.ndarray  # (3, d) 5th percentile, median, 95th percentile of μ per dimension
    sigma_spread: np.ndarray | None  # (3, d) the same of σ; None for point codes
    kl: np.ndarray | None  # (d,) mean KL per latent dimension; None for point codes


def summarize(images: np.ndarray, labels: np.ndarray, mu: np.ndarray, sigma: np.ndarray | None,
              n_classes: int) -> Summary:
    """The summary of a non-empty selection: its images (uint8, or floats in [0, 1]), labels and codes (μ, and σ or
    None), in one order."""
    if not len(labels):
        raise ValueError("the selection is empty")
    images = np.asarray(images)
    mean = images.mean(axis=0, dtype=np.float64) / (255.0 if images.dtype == np.uint8 else 1.0)
    quantiles = (5, 50, 95)
    probabilistic = sigma is not None and np.all(np.asarray(sigma) > 0)
    return Summary(
        count=len(labels),
        class_counts=np.bincount(np.asarray(labels, np.int64), minlength=n_classes),
        mean_image=mean,
        mean_mu=np.asarray(mu, np.float64).mean(axis=0),
        mu_spread=np.percentile(mu, quantiles, axis=0),
        sigma_spread=np.percentile(sigma, quantiles, axis=0) if probabilistic else None,
        kl=kl_per_dim(mu, sigma).mean(axis=0) if probabilistic else None,
    )


def typical_ends(nelbo: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Rows with the k lowest −ELBOs (the most typical, lowest first) and the k highest (highest first)."""
    order = np.argsort(nelbo, kind="stable")
    return order[:k], order[::-1][:k]
