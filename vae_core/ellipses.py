"""Posterior ellipses on a 2-D view of the latent space.

A view (vae_core.projection.LatentPlane) maps z ↦ A(z − origin) with orthonormal rows A, so a diagonal
Gaussian posterior N(μ, diag σ²) lands exactly on N(A(μ − origin), A diag(σ²) Aᵀ): for d > 2 the ellipse
is projected, not dropped.
"""
from __future__ import annotations

import numpy as np


def projected_covariances(axes: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Covariances (N, 2, 2) in the view with rows `axes` (2, d) of posteriors with std devs `sigma` (N, d)."""
    axes = np.asarray(axes, np.float64)
    var = np.atleast_2d(np.asarray(sigma, np.float64)) ** 2
    if var.shape[1] != axes.shape[1]:
        raise ValueError(f"sigma has {var.shape[1]} dims, the view {axes.shape[1]}")
    return np.einsum("id,nd,jd->nij", axes, var, axes)


def ellipse(center: np.ndarray, cov: np.ndarray, k: float = 1.0, n: int = 64) -> np.ndarray:
    """Closed outline (n + 1, 2) of the k-σ contour of N(center, cov): {center + k·L·u : |u| = 1}, L Lᵀ = cov."""
    if k <= 0:
        raise ValueError("k must be positive")
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    radii = k * np.sqrt(np.clip(vals, 0.0, None))
    t = np.linspace(0.0, 2 * np.pi, n + 1)
    unit = np.stack([np.cos(t), np.sin(t)], axis=1)
    return np.asarray(center, np.float64) + (unit * radii) @ vecs.T
