"""The test set's latent map (ui.plots) with things drawn on top: encoded uploads, numbered, and their posterior ellipses.

Overlays are drawn in `latent_views.default_plane`, the Latent Map's starting view (the latent axes for d = 2,
else the plane of the test μ's top two principal components), so a point sits where it would on the Latent Map.
Also what the two pages that draw on it (Interpolate, Reconstruct) share: the accepted upload types and
how a latent vector is written out.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ui import latent_views
from ui.plots import MARK_COLOR, latent_map
from ui.shared import Selection
from vae_core.projection import LatentPlane

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp"]  # what vae_core.preprocess decodes


def vector_text(v: np.ndarray, shown: int = 4) -> str:
    """(0.12, -1.30, …): the first few coordinates of a latent vector."""
    return "(" + ", ".join(f"{x:.2f}" for x in v[:shown]) + (", …" if len(v) > shown else "") + ")"


def view_note(sel: Selection) -> str | None:
    """What the reader should know about the view for d > 2, else None."""
    if sel.latent_dim <= 2:
        return None
    if sel.mu is None:
        return f"d = {sel.latent_dim}: drawn in the plane of z0 and z1 (the other dims at 0)."
    share = float(np.sum(latent_views.pca(sel).explained_variance_ratio_[:2]))
    return (f"d = {sel.latent_dim}: drawn in the plane of the test set's top two principal components "
            f"({share:.0%} of the variance of its posterior means), as on the Latent Map's PCA view.")


def latent_figure(sel: Selection, plane: LatentPlane, height: int = 480) -> go.Figure:
    """The test set's posterior means in `plane`, axes fitted to everything drawn (uploads may land far out)."""
    if sel.data is None:
        return latent_map(axis_titles=plane.labels, clickable=False, height=height)[0]
    fig, _ = latent_map(plane.project(sel.mu), sel.data.test_labels.numpy(), sel.data.class_names,
                        axis_titles=plane.labels, extent=None, clickable=False, height=height)
    return fig


def add_points(fig: go.Figure, xy: np.ndarray, names: list[str], label: str = "your images") -> go.Figure:
    """Encoded inputs as stars, numbered like their cards below the map."""
    fig.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers+text", name=label, text=[str(i + 1) for i in range(len(xy))],
        textposition="top right", textfont={"size": 15, "color": MARK_COLOR}, customdata=names,
        marker={"symbol": "star", "size": 10, "color": "gold", "line": {"color": MARK_COLOR, "width": 1.5}},
        hovertemplate="%{customdata}<br>(%{x:.2f}, %{y:.2f})<extra></extra>",
    ))
    return fig


def add_ellipses(fig: go.Figure, outlines: list[np.ndarray], label: str) -> go.Figure:
    """Posterior outlines, one legend entry for all so they toggle together."""
    for i, outline in enumerate(outlines):
        fig.add_trace(go.Scatter(
            x=outline[:, 0], y=outline[:, 1], mode="lines", name=label, legendgroup="ellipses", showlegend=i == 0,
            fill="toself", fillcolor="rgba(255, 200, 0, 0.35)", line={"color": MARK_COLOR, "width": 1.2},
            hoverinfo="skip",
        ))
    return fig
