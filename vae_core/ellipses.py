"""The 2-D plane overlays are drawn in: the latent axes themselves for d ≤ 2, else the first two principal
components of the test set's posterior means.

The plane is an affine map z ↦ A(z − m), so a diagonal Gaussian posterior N(μ, diag σ²) maps exactly to
N(A(μ − m), A diag(σ²) Aᵀ): its ellipse can be projected, not just its centre.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatentPlane:
    mean: np.ndarray  # (d,) subtracted before projecting
    axes: np.ndarray  # (2, d) orthonormal rows (a zero second row for d = 1)
    labels: tuple[str, str]
    explained: tuple[float, float] | None = None  # share of the test μ's variance along each axis, for PCA

    @property
    def is_pca(self) -> bool:
        return self.explained is not None

    @property
    def latent_dim(self) -> int:
        return self.axes.shape[1]

    def project(self, z: np.ndarray) -> np.ndarray:
        """(N, d) or (d,) latents -> (N, 2) or (2,) plane coordinates."""
        z = np.asarray(z, np.float64)
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"expected latents with {self.latent_dim} dims, got shape {z.shape}")
        return (z - self.mean) @ self.axes.T

    def project_cov(self, sigma: np.ndarray) -> np.ndarray:
        """Posterior std devs (N, d) -> the projected covariances (N, 2, 2)."""
        var = np.atleast_2d(np.asarray(sigma, np.float64)) ** 2
        return np.einsum("id,nd,jd->nij", self.axes, var, self.axes)


def fit_plane(mu: np.ndarray) -> LatentPlane:
    """The plane for a model whose test-set posterior means are `mu` (N, d)."""
    mu = np.asarray(mu, np.float64)
    d = mu.shape[1]
    if d <= 2:
        axes = np.eye(2, d)
        return LatentPlane(np.zeros(d), axes, ("z₁", "z₂" if d == 2 else "(none)"))
    from sklearn.decomposition import PCA  # imported here: sklearn is slow to import and d ≤ 2 does not need it

    pca = PCA(n_components=2, svd_solver="full").fit(mu)
    ratio = tuple(float(r) for r in pca.explained_variance_ratio_)
    labels = tuple(f"PC {i + 1} ({100 * r:.0f} % of variance)" for i, r in enumerate(ratio))
    return LatentPlane(pca.mean_.copy(), pca.components_.copy(), labels, ratio)


def ellipse(center: np.ndarray, cov: np.ndarray, k: float = 1.0, n: int = 64) -> np.ndarray:
    """Closed outline (n + 1, 2) of the k-σ contour of N(center, cov): {center + k·L·u : |u| = 1}, L Lᵀ = cov."""
    if k <= 0:
        raise ValueError("k must be positive")
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    radii = k * np.sqrt(np.clip(vals, 0.0, None))
    t = np.linspace(0.0, 2 * np.pi, n + 1)
    unit = np.stack([np.cos(t), np.sin(t)], axis=1)
    return np.asarray(center, np.float64) + (unit * radii) @ vecs.T
