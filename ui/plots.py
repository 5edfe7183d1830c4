"""Plotly pieces for the latent plane's small views (live training, Compare) and the colours every view shares."""
from __future__ import annotations

import base64
import math

import numpy as np
import plotly.graph_objects as go

from ui.images import to_png_bytes
from vae_core.inference import GRID_EXTENT

# Plotly's D3 palette: ten well separated hues, one per class
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FACTOR_BINS = 8  # a factor with more values than this is coloured by ranges of equal width, in order
PATH_COLOR = "#e4007c"
POINT_SIZE = 4  # marker diameter of the test points, in screen pixels
MARGINS = dict(l=50, r=10, t=30, b=45)


def factor_colouring(values: np.ndarray, name: str) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Points coloured by one known factor (`values` per point, e.g. dSprites' scale): each point's colour index,
    the legend's names and the colours, a sequential scale (Viridis) in the factor's order; a factor with more than
    FACTOR_BINS values is cut into FACTOR_BINS ranges of equal width."""
    from plotly.colors import sample_colorscale, unlabel_rgb

    values = np.asarray(values, np.float64)
    levels = np.unique(values)
    if len(levels) <= FACTOR_BINS:
        index = np.searchsorted(levels, values)
        names = tuple(f"{name} {v:.3g}" for v in levels)
    else:
        edges = np.linspace(levels[0], levels[-1], FACTOR_BINS + 1)
        index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, FACTOR_BINS - 1)
        names = tuple(f"{name} {a:.3g}–{b:.3g}" for a, b in zip(edges[:-1], edges[1:]))
    sampled = sample_colorscale("Viridis", list(np.linspace(0, 1, len(names)))) if len(names) > 1 else ["rgb(68, 1, 84)"]
    # as "#rrggbb", the form the plane's colours take (it reads the hex digits; "rgb(…)" would read as black)
    colours = tuple("#{:02x}{:02x}{:02x}".format(*(round(float(v)) for v in unlabel_rgb(c))) for c in sampled)
    return index.astype(np.int64), names, colours


def png_data_uri(image: np.ndarray) -> str:
    """A float [0, 1] or uint8 image as a PNG data URI, e.g. a decoded grid for `latent_map(background=...)`."""
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(image)).decode()


def latent_map(
    xy: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    *,
    axis_titles: tuple[str, str] = ("z0", "z1"),
    extent: float | None = GRID_EXTENT,
    height: int = 560,
) -> go.Figure:
    """The latent plane as a square plot with equal axis scaling, for the small views (training, Compare): xy (N, 2)
    points coloured by `labels`, one WebGL trace per class, hover shows class and index. `extent` fixes both axes to
    [-extent, extent] (None: fit the points). The pages one explores live use ui.latent_plane instead."""
    fig = go.Figure()
    if xy is not None:
        xy = np.asarray(xy)
        labels = np.zeros(len(xy), int) if labels is None else np.asarray(labels)
        indices = np.arange(len(xy))
        for c in np.unique(labels):
            mask = labels == c
            name = class_names[c] if c < len(class_names) else str(c)
            fig.add_trace(go.Scattergl(
                x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name, customdata=indices[mask].astype(np.int32),
                hovertemplate=f"class {name}<br>index %{{customdata}}<extra></extra>",
                marker=dict(size=POINT_SIZE, color=CLASS_COLORS[c % len(CLASS_COLORS)], opacity=0.8),
            ))
    axis = dict(zeroline=False, showgrid=True, gridcolor="#e6e6e6")
    fig.update_layout(
        height=height, margin=MARGINS, plot_bgcolor="white", hovermode="closest", dragmode="pan",
        legend=dict(itemsizing="constant", x=1.01, xanchor="left", y=1, yanchor="top"),
        # equal scaling shrinks one axis to fit; keep the plot at the top, under the toolbar
        xaxis=dict(title=axis_titles[0], constrain="domain", **axis),
        yaxis=dict(title=axis_titles[1], scaleanchor="x", scaleratio=1, constrain="domain", constraintoward="top",
                   **axis),
    )
    if extent is not None:
        fig.update_xaxes(range=[-extent, extent])
        fig.update_yaxes(range=[-extent, extent])
    return fig


def code_extent(xy: np.ndarray) -> float:
    """A square extent holding every point: GRID_EXTENT for codes that live in the prior's square, more for an
    autoencoder's codes (which nothing keeps near 0), rounded up to a half unit."""
    reach = float(np.abs(np.asarray(xy)).max()) if len(xy) else 0.0
    return max(GRID_EXTENT, math.ceil(reach * 1.05 * 2) / 2)
