"""Plotly figures of the latent plane, shared by the pages that draw on it (Latent Map, Interpolate, Reconstruct).

Build a map with `latent_map`, then draw on it with `add_path`. Paths skip hover, so a click on them still
lands on the plane beneath (the invisible click overlay).
"""
from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go

from ui.clicks import OVERLAY_NODES, overlay_nodes
from ui.images import to_png_bytes
from vae_core.inference import GRID_EXTENT

# Plotly's D3 palette: ten well separated hues, one per class
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARK_COLOR = "#000000"
PATH_COLOR = "#e4007c"
POINT_SIZE = 4  # marker diameter of the test points, in screen pixels
MARGINS = dict(l=50, r=10, t=30, b=45)


def png_data_uri(image: np.ndarray) -> str:
    """A float [0, 1] or uint8 image as a PNG data URI, e.g. a decoded grid for `latent_map(background=...)`."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(image)).decode()


def latent_map(
    xy: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    *,
    indices: np.ndarray | None = None,
    axis_titles: tuple[str, str] = ("z0", "z1"),
    extent: float | None = GRID_EXTENT,
    background: tuple[str, int] | None = None,
    background_opacity: float = 0.5,
    clickable: bool = True,
    marked_node: int | None = None,
    marked_index: int | None = None,
    height: int = 560,
) -> tuple[go.Figure, int | None]:
    """The latent plane as a square plot with equal axis scaling.

    xy (N, 2) points coloured by `labels` (one WebGL trace per class, hover shows class and index; the test-set
    index rides along as customdata so a click on a point says which image it was). `extent` fixes both axes
    to [-extent, extent] (None: fit the points, e.g. for UMAP). `background` = (PNG data URI of an n×n decoded
    grid, n) lays the grid under the points, each cell centred on its grid node. With `clickable`, an invisible
    lattice over the square makes empty space selectable; returns the figure and that overlay's curve number
    (for `ui.clicks.click_from_selection`), or None.

    Clicked spots are marked by plotly's own selection styling (a black × on the overlay node, a black dot on a
    data point), so the browser shows a click at once without a new figure. `marked_node` (index in
    `overlay_nodes` order) and `marked_index` (test-set index) start the figure with those selected.
    """
    fig = go.Figure()
    overlay_curve = None
    if clickable and extent is not None:
        ox, oy = overlay_nodes(OVERLAY_NODES, extent)
        if xy is not None and len(xy):
            ox, oy = clear_of_points(ox, oy, np.asarray(xy), node_clearance(extent, height))
        fig.add_trace(go.Scattergl(
            x=ox, y=oy, mode="markers", name="plane", showlegend=False,
            # "none", not "skip": skipped traces get no hover and so cannot be clicked
            hoverinfo="none", marker=dict(size=6, opacity=0, color=MARK_COLOR, symbol="x"),
            selected=dict(marker=dict(opacity=1, size=15)), unselected=dict(marker=dict(opacity=0)),
            selectedpoints=[marked_node] if marked_node is not None else None,
        ))
        overlay_curve = 0
    if xy is not None:
        xy = np.asarray(xy)
        labels = np.zeros(len(xy), int) if labels is None else np.asarray(labels)
        indices = np.arange(len(xy)) if indices is None else np.asarray(indices)
        for c in np.unique(labels):
            mask = labels == c
            name = class_names[c] if c < len(class_names) else str(c)
            marked = np.flatnonzero(indices[mask] == marked_index).tolist() if marked_index is not None else []
            fig.add_trace(go.Scattergl(
                x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name, customdata=indices[mask].astype(np.int32),
                hovertemplate=f"class {name}<br>index %{{customdata}}<extra></extra>",
                marker=dict(size=POINT_SIZE, color=CLASS_COLORS[c % len(CLASS_COLORS)], opacity=0.8),
                # a selection would otherwise fade every other point
                selected=dict(marker=dict(size=11, color=MARK_COLOR, opacity=1)),
                unselected=dict(marker=dict(opacity=0.8)),
                selectedpoints=marked or None,
            ))
    if background is not None and extent is not None:
        uri, n = background
        left, top, size = grid_image_bounds(n, extent)
        fig.add_layout_image(source=uri, xref="x", yref="y", x=left, y=top, sizex=size, sizey=size,
                             sizing="stretch", layer="below", opacity=background_opacity)
    axis = dict(zeroline=False, showgrid=background is None, gridcolor="#e6e6e6")
    fig.update_layout(
        height=height, margin=MARGINS, plot_bgcolor="white",
        hovermode="closest", clickmode="event+select", dragmode="pan",
        legend=dict(itemsizing="constant", x=1.01, xanchor="left", y=1, yanchor="top"),
        # equal scaling shrinks one axis to fit; keep the plot at the top, under the toolbar
        xaxis=dict(title=axis_titles[0], constrain="domain", **axis),
        yaxis=dict(title=axis_titles[1], scaleanchor="x", scaleratio=1, constrain="domain", constraintoward="top",
                   **axis),
    )
    if extent is not None:
        fig.update_xaxes(range=[-extent, extent])
        fig.update_yaxes(range=[-extent, extent])
    return fig, overlay_curve


def grid_image_bounds(n: int, extent: float = GRID_EXTENT) -> tuple[float, float, float]:
    """(left, top, size) in plane units of an n×n tile image whose cell centres sit on the grid nodes."""
    if n < 2:
        raise ValueError("a grid needs at least 2 nodes per axis")
    step = 2 * extent / (n - 1)
    return -extent - step / 2, extent + step / 2, n * step


def node_clearance(extent: float, height: int) -> float:
    """Plane distance within which a click-lattice node would compete with a test point for the pointer.

    Plotly's WebGL hover takes the trace whose nearest marker *centre* is closest, ignoring marker size, so
    a lattice node near a point steals clicks aimed at the point's marker. A node farther than two marker
    radii from every point can never be nearer than the point to a pointer inside that marker. Twice that is kept:
    the square plot spans at most (height − vertical margins) pixels but is drawn narrower in a narrow column
    (442 of 485 px on the Latent Map at 1400 px), and plotly's pointer position was seen ~1.5 px off the page's
    (a live node 4.9 px from a point won a pointer 1.4 px from the point)."""
    plot_px = max(height - MARGINS["t"] - MARGINS["b"], 1)
    return 2 * POINT_SIZE * (2 * extent) / plot_px


def clear_of_points(ox: np.ndarray, oy: np.ndarray, xy: np.ndarray, clearance: float) -> tuple[np.ndarray, np.ndarray]:
    """The lattice with every node closer than `clearance` to a point set to NaN: plotly skips NaN markers
    in hover and clicks, while the other nodes keep their indices (`ui.clicks.node_index`)."""
    from scipy.spatial import cKDTree  # scipy comes with scikit-learn; imported here as only this needs it

    near = np.isfinite(cKDTree(xy).query(np.column_stack([ox, oy]), distance_upper_bound=clearance)[0])
    return np.where(near, np.nan, ox), np.where(near, np.nan, oy)


def code_extent(xy: np.ndarray) -> float:
    """A square extent holding every point: GRID_EXTENT for codes that live in the prior's square, more for an
    autoencoder's codes (which nothing keeps near 0), rounded up to a half unit."""
    reach = float(np.abs(np.asarray(xy)).max()) if len(xy) else 0.0
    return max(GRID_EXTENT, math.ceil(reach * 1.05 * 2) / 2)


def add_prior_box(fig: go.Figure, extent: float = GRID_EXTENT) -> go.Figure:
    """The square [-extent, extent]² where N(0, I) puts nearly all its mass, dashed (the caption names it; a label
    inside would sit on the points): on an autoencoder's map it shows which codes a prior sample could land on."""
    fig.add_shape(type="rect", x0=-extent, y0=-extent, x1=extent, y1=extent, layer="above",
                  line=dict(color=MARK_COLOR, width=1.5, dash="dash"))
    return fig


def add_path(fig: go.Figure, xy: np.ndarray, name: str, color: str = PATH_COLOR, show_steps: bool = True) -> go.Figure:
    """A path through the plane (e.g. an interpolation), start and end emphasised."""
    xy = np.asarray(xy)
    fig.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="lines+markers" if show_steps else "lines", name=name, hoverinfo="skip",
        line=dict(color=color, width=2), marker=dict(size=6, color=color),
    ))
    fig.add_trace(go.Scatter(
        x=xy[[0, -1], 0], y=xy[[0, -1], 1], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(size=12, color=color, symbol=["circle", "diamond"], line=dict(width=1, color="white")),
    ))
    return fig
