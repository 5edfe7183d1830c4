"""2-D views of the latent space and the way back from a spot on a view to a latent vector.

A view is a `LatentPlane`: an affine plane z = origin + x·u + y·v with orthonormal u, v. A slice through two
chosen dims and the plane of the top two principal components are both planes, so one mapping serves
the scatter (project μ onto the plane), the decoded grid and clicks (plane coordinates → latents).
UMAP has no cheap inverse, so it is only a view; it is fitted and stored by `umap_view`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .inference import GRID_EXTENT, decode, grid_latents

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

    from .models import LatentModel


def fit_pca(x: np.ndarray, n_components: int = 2) -> PCA:
    """scikit-learn's PCA of `x` (rows of `components_` orthonormal, largest variance first) with each component's
    sign fixed (largest loading positive), so the view does not flip between fits of the same data; fixed here
    because scikit-learn before 1.5 fixes signs by the scores instead."""
    from sklearn.decomposition import PCA  # here, not at the top: it adds ~1.5 s to every import of vae_core

    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise ValueError("PCA needs at least 2 points")
    with np.errstate(invalid="ignore"):  # identical points have no variance to share out: a ratio of 0, not NaN
        pca = PCA(n_components, svd_solver="full").fit(x)
    np.nan_to_num(pca.explained_variance_ratio_, copy=False)
    loadings = pca.components_
    loadings *= np.sign(loadings[np.arange(len(loadings)), np.abs(loadings).argmax(axis=1)])[:, None]
    return pca


@dataclass(frozen=True)
class LatentPlane:
    """z = origin + x·axes[0] + y·axes[1]; the axes are orthonormal, so `project` inverts `to_latent` on the plane."""

    origin: np.ndarray  # (d,)
    axes: np.ndarray  # (2, d)
    labels: tuple[str, str]  # axis titles for the plot

    @property
    def latent_dim(self) -> int:
        return int(self.origin.shape[0])

    def to_latent(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) plane coordinates -> (N, d) latents, or (2,) -> (d,)."""
        xy = np.asarray(xy, np.float64)
        z = self.origin + xy @ self.axes if xy.ndim == 2 else self.origin + xy[0] * self.axes[0] + xy[1] * self.axes[1]
        return z.astype(np.float32)

    def project(self, z: np.ndarray) -> np.ndarray:
        """(N, d) latents -> (N, 2) coordinates of their orthogonal projection onto the plane."""
        return ((np.asarray(z, np.float64) - self.origin) @ self.axes.T).astype(np.float32)


def slice_plane(latent_dim: int, dims: tuple[int, int] = (0, 1), base: np.ndarray | None = None) -> LatentPlane:
    """The plane through dims (i, j) with every other dim held at `base` (zero by default).

    The origin has zeros in i and j, so plane coordinates are the raw values z_i, z_j.
    """
    i, j = dims
    if i == j or not (0 <= i < latent_dim and 0 <= j < latent_dim):
        raise ValueError(f"slice dims must be two different dims in 0..{latent_dim - 1}, got {dims}")
    origin = np.zeros(latent_dim) if base is None else np.asarray(base, np.float64).copy()
    if origin.shape != (latent_dim,):
        raise ValueError(f"base must have {latent_dim} values, got shape {origin.shape}")
    origin[[i, j]] = 0.0
    axes = np.zeros((2, latent_dim))
    axes[0, i] = axes[1, j] = 1.0
    return LatentPlane(origin=origin, axes=axes, labels=(f"z{i}", f"z{j}"))


def dims_by_variance(mu: np.ndarray) -> np.ndarray:
    """Latent dims ordered by the variance of μ across the data, most used first: a collapsed (inactive) dim
    has a variance near 0 and makes a flat, uninformative slice."""
    return np.argsort(-np.asarray(mu, np.float64).var(axis=0), kind="stable")


def pca_plane(pca: PCA) -> LatentPlane:
    """The plane of the first two principal components, through the data mean (other PC coefficients 0)."""
    if len(pca.components_) < 2:
        raise ValueError("the PCA plane needs two components")
    r = pca.explained_variance_ratio_
    return LatentPlane(origin=pca.mean_.astype(np.float64), axes=pca.components_[:2].astype(np.float64),
                       labels=(f"PC1 ({r[0]:.0%} of variance)", f"PC2 ({r[1]:.0%} of variance)"))


def default_plane(latent_dim: int, mu: np.ndarray | None = None) -> LatentPlane:
    """The view every map starts from: the latent axes themselves for d = 2, else the PCA plane of the posterior
    means `mu` (the first two axes when there are none to fit it on); for d = 1 the line z0, drawn along x."""
    if latent_dim == 1:
        return LatentPlane(origin=np.zeros(1), axes=np.array([[1.0], [0.0]]), labels=("z0", "(d = 1)"))
    if latent_dim == 2 or mu is None:
        return slice_plane(latent_dim)
    return pca_plane(fit_pca(mu, 2))


def plane_grid(plane: LatentPlane, n: int, extent: float = GRID_EXTENT) -> np.ndarray:
    """(n·n, d) latents on an n×n grid over [-extent, extent]² of the plane, in `inference.grid_latents` order
    (row 0 = top = largest y), so the decoded images reshape to (n, n) like the plot."""
    return plane.to_latent(grid_latents(n, 2, extent=extent))

def decode_plane(model: "LatentModel", plane: LatentPlane, n: int, extent: float = GRID_EXTENT,
                 label: int | None = None) -> np.ndarray:
    """(n, n, H, W[, 3]) images (display layout) decoded on the plane over [-extent, extent]² in one pass (of class `label` for a
    conditional model); row 0 is the top (largest y), as the plot reads."""
    if model.latent_dim < 2:
        raise ValueError("a 2-D grid needs a latent size of at least 2")
    images = decode(model, plane_grid(plane, n, extent), label)
    return images.reshape(n, n, *images.shape[1:])
