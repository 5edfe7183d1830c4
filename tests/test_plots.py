"""The latent-map figure: the decoded grid under its nodes, and test points winning the pointer over the click lattice."""
from __future__ import annotations

import numpy as np
import pytest

from ui.clicks import OVERLAY_NODES, node_index, overlay_nodes
from ui.plots import MARGINS, POINT_SIZE, clear_of_points, grid_image_bounds, latent_map, node_clearance
from vae_core.inference import GRID_EXTENT, grid_axis


def test_no_lattice_node_lies_within_two_marker_radii_of_a_point():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(2000, 2)).astype(np.float32)
    height = 560
    clearance = node_clearance(GRID_EXTENT, height)
    px_per_unit = (height - MARGINS["t"] - MARGINS["b"]) / (2 * GRID_EXTENT)
    assert clearance * px_per_unit >= 2 * POINT_SIZE - 1e-9  # four radii, in screen pixels
    ox, oy = clear_of_points(*overlay_nodes(), xy, clearance)
    live = np.isfinite(ox)
    assert 0 < live.sum() < len(ox)  # some nodes were cleared, most of the empty plane stays clickable
    nodes = np.column_stack([ox[live], oy[live]])
    gaps = np.linalg.norm(nodes[:, None, :] - xy[None, :, :], axis=2).min(axis=1)
    assert gaps.min() >= clearance
    # cleared nodes keep their place: a live node's index still maps back to its own coordinates
    for k in np.flatnonzero(live)[::997]:
        assert node_index(ox[k], oy[k]) == k


def test_the_figure_clears_nodes_under_points_and_keeps_the_lattice_size():
    xy = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
    fig, overlay = latent_map(xy, np.array([0, 1]), ("0", "1"))
    nodes = fig.data[overlay]
    assert len(nodes.x) == OVERLAY_NODES**2
    cleared = [k for k, x in enumerate(nodes.x) if x is None or not np.isfinite(x)]
    assert node_index(0.0, 0.0) in cleared and node_index(1.0, -1.0) in cleared
    assert node_index(2.0, 2.0) not in cleared


def test_grid_image_bounds_put_cell_centres_on_grid_nodes():
    n = 5
    left, top, size = grid_image_bounds(n)
    step = size / n
    centres = left + step / 2 + step * np.arange(n)
    assert np.allclose(centres, grid_axis(n))
    assert top - step / 2 == pytest.approx(GRID_EXTENT)
