"""Clicks on a latent map: the invisible lattice that makes empty space clickable, and Plotly selections read back.

A plotly selection only ever reports markers, so the map lays an n_nodes × n_nodes lattice of invisible markers
over [-extent, extent]² (drawn by `ui.plots.latent_map`); a click on it is snapped to its node, so the shown
coordinates carry no float noise from the round trip through the browser.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_core.inference import GRID_EXTENT, grid_axis

OVERLAY_NODES = 121  # invisible click targets per axis: a step of 0.05 over [-3, 3], ~5 px on a 600 px plot


def overlay_nodes(n_nodes: int = OVERLAY_NODES, extent: float = GRID_EXTENT) -> tuple[np.ndarray, np.ndarray]:
    """x and y of an n_nodes × n_nodes lattice over [-extent, extent]², row by row from the bottom."""
    xs, ys = np.meshgrid(grid_axis(n_nodes, extent), grid_axis(n_nodes, extent))
    return xs.ravel(), ys.ravel()


def snap(x: float, y: float, n_nodes: int = OVERLAY_NODES, extent: float = GRID_EXTENT) -> tuple[float, float]:
    """The lattice node nearest to (x, y), clipped to the square."""
    step = 2 * extent / (n_nodes - 1)

    def one(v: float) -> float:
        k = int(round((float(np.clip(v, -extent, extent)) + extent) / step))
        return round(-extent + k * step, 10)

    return one(x), one(y)


def node_index(x: float, y: float, n_nodes: int = OVERLAY_NODES, extent: float = GRID_EXTENT) -> int | None:
    """Index in `overlay_nodes` order of the node nearest (x, y), or None when (x, y) lies outside the lattice."""
    step = 2 * extent / (n_nodes - 1)
    col, row = (int(round((v + extent) / step)) for v in (x, y))
    return row * n_nodes + col if 0 <= col < n_nodes and 0 <= row < n_nodes else None


@dataclass(frozen=True)
class Click:
    """A click on the map: on empty space of the plane ("plane", decode x, y) or on a data point ("point", index)."""

    kind: str
    x: float
    y: float
    index: int | None = None


def click_from_selection(points: list[dict], overlay_curve: int | None, n_nodes: int = OVERLAY_NODES,
                         extent: float = GRID_EXTENT) -> Click | None:
    """Read a plotly selection event's points (as Streamlit reports them).

    Data points carry their test-set index as customdata; a point of the overlay trace is a click on empty
    space. Anything else (paths, markers drawn by other pages) is not a click target.
    """
    for point in points:
        x, y = point.get("x"), point.get("y")
        if x is None or y is None:
            continue
        if overlay_curve is not None and point.get("curve_number") == overlay_curve:
            return Click("plane", *snap(x, y, n_nodes, extent))
        custom = point.get("customdata")
        if isinstance(custom, list | tuple):
            custom = custom[0] if custom else None
        if custom is not None:
            return Click("point", float(x), float(y), int(custom))
    return None
