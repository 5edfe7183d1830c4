"""Planes, PCA and click mapping of vae_core.projection."""
from __future__ import annotations

import numpy as np
import pytest

from vae_core import inference
from vae_core.projection import (
    OVERLAY_NODES, Click, click_from_selection, default_plane, fit_pca, grid_image_bounds, latents_csv,
    dims_by_variance, node_index, overlay_nodes, pca_plane, plane_grid, slice_plane, snap,
)

STEP = 2 * inference.GRID_EXTENT / (OVERLAY_NODES - 1)


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
    assert np.allclose(np.abs(pca.components[:2] @ top.T), np.eye(2), atol=1e-6)
    assert np.allclose(pca.explained_variance_ratio[:2], vals[::-1][:2] / vals.sum(), atol=1e-6)
    # all components: the inverse is exact
    assert np.allclose(pca.inverse(pca.transform(x)), x, atol=1e-4)


def test_pca_inverse_on_two_components_is_the_orthogonal_projection_onto_the_plane():
    x = _cloud()
    pca = fit_pca(x, 2)
    back = pca.inverse(pca.transform(x))
    residual = x - back
    assert np.allclose(residual @ pca.components.T, 0, atol=1e-4)  # nothing left along the two PCs
    assert np.allclose(pca.transform(back), pca.transform(x), atol=1e-4)
    # a point given by PC coordinates: mean + coords @ components, other PC coefficients 0
    expected = pca.mean + 1.5 * pca.components[0] - 0.5 * pca.components[1]
    assert np.allclose(pca.inverse(np.array([[1.5, -0.5]])), expected, atol=1e-5)


def test_pca_sign_is_stable_and_rejects_bad_sizes():
    x = _cloud()
    a, b = fit_pca(x), fit_pca(x[::-1].copy())
    assert np.allclose(a.components, b.components, atol=1e-6)
    with pytest.raises(ValueError):
        fit_pca(x, 7)
    with pytest.raises(ValueError):
        fit_pca(x[:1], 1)


def test_pca_plane_maps_plane_coordinates_through_the_inverse_projection():
    x = _cloud()
    pca = fit_pca(x, 2)
    plane = pca_plane(pca)
    xy = np.array([[0.3, -2.0], [2.5, 1.0]])
    assert np.allclose(plane.to_latent(xy), pca.inverse(xy), atol=1e-5)
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
    assert np.allclose(default_plane(mu2).project(mu2), mu2)
    mu6 = _cloud(d=6)
    assert np.allclose(default_plane(mu6).project(mu6), fit_pca(mu6).transform(mu6), atol=1e-4)


def test_grid_image_bounds_put_cell_centres_on_grid_nodes():
    n = 5
    left, top, size = grid_image_bounds(n)
    step = size / n
    centres = left + step / 2 + step * np.arange(n)
    assert np.allclose(centres, inference.grid_axis(n))
    assert top - step / 2 == pytest.approx(inference.GRID_EXTENT)


def test_overlay_covers_the_square_and_snap_is_within_one_step():
    xs, ys = overlay_nodes()
    assert len(xs) == OVERLAY_NODES**2
    assert xs.min() == pytest.approx(-3) and ys.max() == pytest.approx(3)
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(-3, 3, size=(200, 2)):
        sx, sy = snap(x, y)
        assert abs(sx - x) <= STEP / 2 + 1e-9 and abs(sy - y) <= STEP / 2 + 1e-9
        # the snapped spot is a lattice node
        assert np.min(np.hypot(xs - sx, ys - sy)) < 1e-5
    assert snap(7.0, -9.0) == (3.0, -3.0)


def test_node_index_finds_the_nearest_overlay_node():
    xs, ys = overlay_nodes()
    for x, y in np.random.default_rng(2).uniform(-3, 3, size=(100, 2)):
        k = node_index(x, y)
        assert k == int(np.argmin(np.hypot(xs - x, ys - y)))
        assert (xs[k], ys[k]) == pytest.approx(snap(x, y), abs=1e-5)
    assert node_index(-3.0, -3.0) == 0 and node_index(3.0, 3.0) == OVERLAY_NODES**2 - 1
    assert node_index(3.2, 0.0) is None and node_index(0.0, -3.5) is None


def test_click_from_selection_tells_plane_clicks_from_data_points():
    node_x = float(overlay_nodes()[0][17]) + 1e-7  # a node coordinate after a float32 round trip
    plane = click_from_selection([{"curve_number": 0, "point_index": 17, "x": node_x, "y": -2.95}], overlay_curve=0)
    assert plane == Click("plane", *snap(node_x, -2.95))
    assert plane.kind == "plane" and abs(plane.x - node_x) < STEP
    point = click_from_selection([{"curve_number": 3, "point_index": 2, "x": 0.1, "y": 0.2, "customdata": 4321}], 0)
    assert point == Click("point", 0.1, 0.2, 4321)
    listed = click_from_selection([{"curve_number": 3, "x": 0.1, "y": 0.2, "customdata": [7]}], 0)
    assert listed.index == 7
    # a marker drawn by a page (no customdata, not the overlay) is no click target; nor is an empty selection
    assert click_from_selection([{"curve_number": 12, "x": 1.0, "y": 1.0}], 0) is None
    assert click_from_selection([], 0) is None
    # without an overlay (UMAP view) only data points count
    assert click_from_selection([{"curve_number": 0, "x": 1.0, "y": 1.0}], None) is None


def test_latents_csv_has_one_row_per_image():
    mu = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.25]], np.float32)
    sigma = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    lines = latents_csv(mu, sigma, np.array([7, 2])).decode().splitlines()
    assert lines[0] == "index,label,mu_0,mu_1,mu_2,sigma_0,sigma_1,sigma_2"
    assert lines[2] == "1,2,1,0,-0.25,0.4,0.5,0.6"
    assert len(lines) == 3
