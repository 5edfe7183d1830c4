"""The small latent-map figure (live training, Compare) and the extent that holds an autoencoder's codes."""
from __future__ import annotations

import numpy as np

from ui.plots import CLASS_COLORS, code_extent, latent_map
from vae_core.inference import GRID_EXTENT


def test_one_trace_per_class_on_equal_axes():
    xy = np.array([[0.0, 0.0], [1.0, -1.0], [2.0, 2.0]], np.float32)
    fig = latent_map(xy, np.array([0, 1, 1]), ("zero", "one"))
    assert [t.name for t in fig.data] == ["zero", "one"]
    assert list(fig.data[1].customdata) == [1, 2]  # test-set indices ride along for the hover
    assert fig.data[1].marker.color == CLASS_COLORS[1]
    assert fig.layout.xaxis.range == (-GRID_EXTENT, GRID_EXTENT) and fig.layout.yaxis.scaleanchor == "x"


def test_code_extent_holds_every_code_and_never_shrinks_below_the_prior_square():
    assert code_extent(np.zeros((0, 2))) == GRID_EXTENT
    assert code_extent(np.array([[0.5, -1.0]])) == GRID_EXTENT
    far = np.array([[10.2, -3.0], [1.0, 40.1]])
    extent = code_extent(far)
    assert extent >= np.abs(far).max() and extent % 0.5 == 0
