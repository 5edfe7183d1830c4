"""Latent traversals on the page (vae_core.traversal): one row per latent dimension swept over [-3, 3] from a chosen
code, rows ordered by KL, collapsed dimensions marked; cached per model, start and class."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui import shared
from ui.images import rgb_cells, tile
from ui.plots import png_data_uri
from vae_core.checkpoint import CheckpointInfo
from vae_core.data import ImageDataset
from vae_core.traversal import DimensionStats, Traversal, dimension_stats, encode_one, traverse

COLLAPSED_TINT = np.float32([0.85, 0.85, 0.85])  # collapsed rows fade toward grey: nothing changes along them anyway


def traversal_picture(tr: Traversal) -> np.ndarray:
    """The traversal as one RGB picture (rows × steps cells, 1-px white gaps), collapsed rows faded toward grey."""
    cells = rgb_cells(tr.images)
    fade = tr.collapsed[:, None, None, None, None]
    cells = np.where(fade, 0.45 * cells + 0.55 * COLLAPSED_TINT, cells)
    return tile(cells, padding=1)


def row_label(dim: int, kl: float, collapsed: bool, probabilistic: bool, factor: str | None = None) -> str:
    """"z3 · 2.1 nats", "z3 · collapsed", with the factor the dimension captures where it is known ("z3 · scale")."""
    name = f"z{dim}" + (f" · {factor}" if factor else "")
    if not probabilistic:
        return name
    return f"{name} · collapsed" if collapsed else f"{name} · {kl:.1f} nats"


def traversal_figure(tr: Traversal, probabilistic: bool, height: int | None = None,
                     factors: list[str | None] | None = None) -> go.Figure:
    """The picture with each row named by its dimension, the factor it captures (`factors`, per dimension, where
    known) and its KL ("collapsed" where it is), the swept values below."""
    picture = traversal_picture(tr)
    rows, steps = tr.images.shape[:2]
    cell_h, cell_w = picture.shape[0] / rows, picture.shape[1] / steps
    labelled = sorted({0, steps // 2, steps - 1})  # the ends and the middle: the cells are too narrow for every value
    fig = go.Figure(go.Image(source=png_data_uri(picture), hoverinfo="skip"))
    fig.update_layout(
        # about the height the picture takes at a Compare column's width, so no band of white sits above and below it
        height=height or 40 + 21 * rows, margin=dict(l=10, r=10, t=10, b=30),
        yaxis=dict(tickvals=[(r + 0.5) * cell_h for r in range(rows)], showgrid=False, zeroline=False,
                   ticktext=[row_label(d, k, c, probabilistic, factors[d] if factors else None)
                             for d, k, c in zip(tr.dims, tr.kl, tr.collapsed)]),
        xaxis=dict(tickvals=[(s + 0.5) * cell_w for s in labelled], ticktext=[f"{tr.values[s]:g}" for s in labelled],
                   showgrid=False, zeroline=False, tickangle=0),
    )
    return fig


@st.cache_data(show_spinner="Measuring each latent dimension…", max_entries=32)
def _stats(path: str, stamp: float, dataset: str, _info: CheckpointInfo, _data: ImageDataset) -> DimensionStats:
    return dimension_stats(shared.load_model(_info), _data.test_images, _data.test_labels)


def stats(info: CheckpointInfo, data: ImageDataset) -> DimensionStats:
    """KL and Var(μ) of every dimension over the model's own test split."""
    return _stats(str(info.path), shared.stamp(info.path), info.dataset, info, data)


@st.cache_data(show_spinner="Decoding the traversals…", max_entries=64)
def _traversal(path: str, stamp: float, start: Start, label: int | None, _info: CheckpointInfo,
               _data: ImageDataset) -> Traversal:
    model = shared.load_model(_info)
    if start is None:
        z = np.zeros(model.latent_dim, np.float32)
    elif isinstance(start, tuple):
        z = np.asarray(start, np.float32)
    else:
        z = encode_one(model, _data.test_images[start], label)
    return traverse(model, z, stats(_info, _data), label=label)


Start = int | tuple[float, ...] | None  # a test image's index, a code (a pinned position), or the origin


def traversal(info: CheckpointInfo, data: ImageDataset, start: Start, label: int | None) -> Traversal:
    """From test image `start`'s μ, from a given code (a tuple of d numbers), or from the origin z = 0 (None);
    a conditional model draws `label`."""
    label = label if info.model_class.conditional else None
    return _traversal(str(info.path), shared.stamp(info.path), start, label, info, data)


def show(info: CheckpointInfo, data: ImageDataset, start: Start, label: int | None,
         factors: list[str | None] | None = None) -> None:
    """One model's traversal with a caption saying how many of its dimensions collapsed; rows are labelled by the
    factor each dimension captures where `factors` (per dimension) is given."""
    if isinstance(start, tuple) and len(start) != info.model_config.latent_dim:
        st.caption(f"the pinned position has {len(start)} numbers; this model's codes have "
                   f"{info.model_config.latent_dim}")
        return
    tr = traversal(info, data, start, label)
    probabilistic = info.model_class.probabilistic
    st.plotly_chart(traversal_figure(tr, probabilistic, factors=factors), key=f"traversal-{info.name}",
                    config={"displayModeBar": False})
    if probabilistic:
        n = int(tr.collapsed.sum())
        st.caption(f"rows by KL over the test set, most informative first; {n} of {len(tr.dims)} collapsed "
                   "(faded: the decoder ignores them)" if n else
                   f"rows by KL over the test set, most informative first; none of {len(tr.dims)} collapsed")
    else:
        st.caption("no posterior, so no KL: rows by the code's variance; the sweep over [-3, 3] may stay inside "
                   "or leave the region its codes use")
