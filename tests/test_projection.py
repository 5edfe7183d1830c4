"""Planes and PCA of vae_core.projection."""
from __future__ import annotations

import numpy as np
import pytest

from vae_core import inference
from vae_core.projection import default_plane, dims_by_variance, fit_pca, pca_plane, plane_grid, slice_plane


def _cloud(n: int = 500, d: int = 6, seed: int = 0) -> np.ndarray:
    """Correlated Gaussian data with a non-zero mean and clearly ordered variances."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 0.2, d)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return (rng.normal(size=(n, d)) * scales) @ rotation + rng.normal(size=d)


def test_pca_matches_covariance_eigenvectors_and_round_trips():
    x = _cloud()
    pca = fit_pca(x, n_components=x.shape[1])
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    top = vecs[:, ::-1][:, :2].T
    assert np.allclose(np.abs(pca.components_[:2] @ top.T), np.eye(2), atol=1e-6)
    assert np.allclose(pca.explained_variance_ratio_[:2], vals[::-1][:2] / vals.sum(), atol=1e-6)
    # all components: the inverse is exact
    assert np.allclose(pca.inverse_transform(pca.transform(x)), x, atol=1e-4)


def test_pca_inverse_on_two_components_is_the_orthogonal_projection_onto_the_plane():
    x = _cloud()
    pca = fit_pca(x, 2)
    back = pca.inverse_transform(pca.transform(x))
    residual = x - back
    assert np.allclose(residual @ pca.components_.T, 0, atol=1e-4)  # nothing left along the two PCs
    assert np.allclose(pca.transform(back), pca.transform(x), atol=1e-4)
    # a point given by PC coordinates: mean + coords @ components, other PC coefficients 0
    expected = pca.mean_ + 1.5 * pca.components_[0] - 0.5 * pca.components_[1]
    assert np.allclose(pca.inverse_transform(np.array([[1.5, -0.5]])), expected, atol=1e-5)


def test_pca_sign_is_stable_and_rejects_bad_sizes():
    x = _cloud()
    a, b = fit_pca(x), fit_pca(x[::-1].copy())
    assert np.allclose(a.components_, b.components_, atol=1e-6)
    assert np.allclose(a.components_ @ a.components_.T, np.eye(2), atol=1e-9)
    largest = a.components_[[0, 1], np.abs(a.components_).argmax(axis=1)]
    assert (largest > 0).all()
    with pytest.raises(ValueError):
        fit_pca(x, 7)
    with pytest.raises(ValueError):
        fit_pca(x[:1], 1)
    # identical points: nothing to explain, but still a plane to draw
    assert np.array_equal(fit_pca(np.ones((5, 3))).explained_variance_ratio_, [0.0, 0.0])


def test_pca_plane_maps_plane_coordinates_through_the_inverse_projection():
    x = _cloud()
    pca = fit_pca(x, 2)
    plane = pca_plane(pca)
    xy = np.array([[0.3, -2.0], [2.5, 1.0]])
    assert np.allclose(plane.to_latent(xy), pca.inverse_transform(xy), atol=1e-5)
    assert np.allclose(plane.project(x), pca.transform(x), atol=1e-4)
    assert plane.labels[0].startswith("PC1")


def test_slice_latent_keeps_the_other_dims_at_base():
    base = np.arange(6, dtype=np.float32) + 10
    plane = slice_plane(6, dims=(4, 1), base=base)
    z = plane.to_latent(np.array([0.5, -1.25]))
    assert z[4] == pytest.approx(0.5) and z[1] == pytest.approx(-1.25)
    others = [0, 2, 3, 5]
    assert np.array_equal(z[others], base[others])
    # projecting any latent gives its raw values on the two dims
    assert np.allclose(plane.project(np.stack([z, base])), [[0.5, -1.25], [14.0, 11.0]])
    assert np.allclose(slice_plane(6, (4, 1)).to_latent(np.array([1.0, 2.0]))[others], 0)
    with pytest.raises(ValueError):
        slice_plane(6, (2, 2))
    with pytest.raises(ValueError):
        slice_plane(3, (0, 1), base=np.zeros(4))


def test_dims_by_variance_puts_active_dims_first():
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(400, 5)) * np.array([0.01, 1.0, 0.02, 2.0, 0.5])
    assert dims_by_variance(mu).tolist() == [3, 1, 4, 2, 0]


def test_plane_grid_agrees_with_the_decode_grid_of_inference():
    base = np.linspace(-1, 1, 5).astype(np.float32)
    plane = slice_plane(5, (3, 0), base)
    assert np.allclose(plane_grid(plane, 7), inference.grid_latents(7, 5, (3, 0), base))
    pca = pca_plane(fit_pca(_cloud(d=5), 2))
    grid = plane_grid(pca, 4)
    assert np.allclose(pca.project(grid)[0], [-3, 3], atol=1e-5)  # row 0 is the top-left corner
    assert np.allclose(pca.project(grid)[-1], [3, -3], atol=1e-5)


def test_default_plane_is_the_latent_axes_for_d2_and_pca_beyond():
    mu2 = _cloud(d=2)
    assert np.allclose(default_plane(2, mu2).project(mu2), mu2)
    mu6 = _cloud(d=6)
    assert np.allclose(default_plane(6, mu6).project(mu6), fit_pca(mu6).transform(mu6), atol=1e-4)
    assert np.allclose(default_plane(6).axes, slice_plane(6).axes)  # no μ to fit a PCA on
    mu = np.random.default_rng(0).normal(size=(500, 5)) * np.array([3.0, 1.0, 0.3, 0.1, 0.1])
    plane = default_plane(5, mu)
    assert np.allclose(plane.axes @ plane.axes.T, np.eye(2), atol=1e-6)
    assert abs(plane.axes[0, 0]) > 0.99  # the first PC follows the widest dim
    line = default_plane(1, mu[:, :1])
    assert np.allclose(line.project(mu[:, :1])[:, 0], mu[:, 0], atol=1e-5)
