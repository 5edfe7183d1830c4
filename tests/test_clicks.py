"""The click lattice of the latent map and the reading of Plotly selections (ui.clicks)."""
from __future__ import annotations

import numpy as np
import pytest

from ui.clicks import OVERLAY_NODES, Click, click_from_selection, node_index, overlay_nodes, snap
from vae_core.inference import GRID_EXTENT

STEP = 2 * GRID_EXTENT / (OVERLAY_NODES - 1)


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
