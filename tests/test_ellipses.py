"""The plane overlays are drawn in, and posterior ellipses projected onto it."""
from __future__ import annotations

import numpy as np
import pytest

from vae_core.latent_plane import ellipse, fit_plane


def _cloud(d: int, n: int = 2000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.linspace(3.0, 0.5, d) + rng.normal(size=d)


def test_two_dims_are_drawn_as_they_are():
    plane = fit_plane(_cloud(2))
    z = np.array([[1.5, -2.0], [0.0, 0.3]])
    np.testing.assert_allclose(plane.project(z), z)
    np.testing.assert_allclose(plane.project_cov(np.array([[0.5, 2.0]]))[0], np.diag([0.25, 4.0]))
    assert not plane.is_pca


def test_one_dim_goes_on_the_x_axis():
    plane = fit_plane(_cloud(1))
    np.testing.assert_allclose(plane.project(np.array([[2.0]])), [[2.0, 0.0]])


def test_pca_plane_keeps_the_two_widest_directions():
    mu = _cloud(6)
    plane = fit_plane(mu)
    assert plane.is_pca and plane.explained[0] >= plane.explained[1] > 0
    np.testing.assert_allclose(plane.axes @ plane.axes.T, np.eye(2), atol=1e-10)
    projected = plane.project(mu)
    np.testing.assert_allclose(projected.mean(axis=0), 0.0, atol=1e-10)
    # no other unit direction carries more variance than PC 1
    total = ((mu - mu.mean(0)) ** 2).sum(1).mean()
    assert projected[:, 0].var() == pytest.approx(plane.explained[0] * total, rel=1e-6)
    random_dir = np.random.default_rng(3).normal(size=6)
    assert projected[:, 0].var() >= ((mu - mu.mean(0)) @ (random_dir / np.linalg.norm(random_dir))).var()
    with pytest.raises(ValueError):
        plane.project(np.zeros((1, 5)))


def test_projected_covariance_matches_projected_samples():
    plane = fit_plane(_cloud(5))
    mu, sigma = np.array([0.5, -1.0, 2.0, 0.0, 1.0]), np.array([0.2, 1.5, 0.7, 0.1, 1.0])
    samples = mu + sigma * np.random.default_rng(1).normal(size=(200_000, 5))
    empirical = np.cov(plane.project(samples).T)
    np.testing.assert_allclose(plane.project_cov(sigma[None])[0], empirical, rtol=0.02, atol=0.01)


@pytest.mark.parametrize("k", [1.0, 2.0])
def test_ellipse_lies_on_the_k_sigma_contour(k):
    cov = np.array([[2.0, 0.8], [0.8, 0.5]])
    centre = np.array([1.0, -1.0])
    outline = ellipse(centre, cov, k, n=50)
    assert outline.shape == (51, 2)
    np.testing.assert_allclose(outline[0], outline[-1])
    offsets = outline - centre
    mahalanobis = np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(cov), offsets)
    np.testing.assert_allclose(mahalanobis, k * k, rtol=1e-9)
    with pytest.raises(ValueError):
        ellipse(centre, cov, 0.0)
