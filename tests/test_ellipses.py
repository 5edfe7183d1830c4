"""Posterior ellipses projected onto the views of vae_core.projection."""
from __future__ import annotations

import numpy as np
import pytest

from vae_core.ellipses import ellipse, projected_covariances
from vae_core.projection import fit_pca, pca_plane, slice_plane


def test_two_dim_view_keeps_the_diagonal_posterior():
    plane = slice_plane(2)
    cov = projected_covariances(plane.axes, np.array([[0.5, 2.0], [1.0, 0.1]]))
    np.testing.assert_allclose(cov, [np.diag([0.25, 4.0]), np.diag([1.0, 0.01])])


def test_slice_picks_the_chosen_dims():
    cov = projected_covariances(slice_plane(4, (3, 1)).axes, np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_allclose(cov[0], np.diag([16.0, 4.0]))


def test_projected_covariance_matches_projected_samples():
    rng = np.random.default_rng(0)
    plane = pca_plane(fit_pca(rng.normal(size=(500, 5)) * [3.0, 2.0, 1.0, 0.5, 0.2], 2))
    mu, sigma = np.array([0.5, -1.0, 2.0, 0.0, 1.0]), np.array([0.2, 1.5, 0.7, 0.1, 1.0])
    samples = mu + sigma * rng.normal(size=(200_000, 5))
    empirical = np.cov(plane.project(samples).T)
    np.testing.assert_allclose(projected_covariances(plane.axes, sigma)[0], empirical, rtol=0.02, atol=0.01)
    with pytest.raises(ValueError):
        projected_covariances(plane.axes, sigma[None, :4])


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


def test_degenerate_direction_gives_a_flat_ellipse():
    outline = ellipse(np.zeros(2), np.diag([1.0, 0.0]), 2.0)
    np.testing.assert_allclose(outline[:, 1], 0.0, atol=1e-12)
    assert np.abs(outline[:, 0]).max() == pytest.approx(2.0)
