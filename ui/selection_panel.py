"""What the Latent Map says about the points a user selected (lasso or box) or picked: the selection's count, class
mix, mean image, decoded mean code, the spread of its codes, the KL per dimension, its most and least typical members,
its CSV and where to send it; a picked point's nearest neighbours in latent space and in pixel space."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import latent_views, navigation, session_keys
from ui.images import to_png_bytes
from ui.map_overlays import remember_latent
from ui.point_set import PointSet
from vae_core import inference, selection
from vae_core.data import to_display

STRIP = 8  # members shown at each end of the typicality strip, and neighbours shown per space
MAX_SENT = 2_000  # images a selection places on each of Compare's maps (a seeded sample of a larger one)
MEAN_SCALE = 4  # the mean image and the decoded mean code are enlarged this many times


def selection_rows(points: PointSet, xy: np.ndarray, shapes: list[dict]) -> np.ndarray | None:
    """Positions of the points inside the selection's shapes (on the float32 coordinates the browser was sent), or
    None when the shapes are not a usable selection."""
    try:
        polygons = selection.parse_shapes(shapes)
    except ValueError:
        return None
    return np.flatnonzero(selection.inside(np.asarray(xy, np.float32), polygons))


def _strip(images: np.ndarray, captions: list[str]) -> None:
    """Images as the dataset holds them (N, C, H, W), each twice its size."""
    shown = to_display(images)
    st.image([to_png_bytes(im, 2) for im in shown], caption=captions, width=2 * shown.shape[2], output_format="PNG")


def selection_panel(points: PointSet, rows: np.ndarray) -> None:
    """The panel of a selection: `rows` are point positions in `points`."""
    sel, names = points.sel, points.sel.data.class_names
    st.markdown(f"**Selection: {len(rows):,} image{'s' if len(rows) != 1 else ''}** "
                f"({', '.join(f'{n:,} {s}' for s, n in zip(*np.unique(points.identity(rows)[0], return_counts=True)))})"
                if len(rows) else "**Selection: 0 images**")
    if not len(rows):
        st.caption("The shapes hold no points of the splits shown. Draw another (Shift adds), or press Escape.")
        return
    probabilistic = sel.model.probabilistic
    summary = selection.summarize(points.images(rows), points.labels[rows], points.mu[rows],
                                  points.sigma[rows] if probabilistic else None, len(names))
    c_mix, c_mean, c_spread = st.columns([3, 2, 4], gap="medium")
    width = sel.info.model_config.image_shape[2] * MEAN_SCALE
    with c_mean:  # the pictures first: they reach the browser before the charts, which take longer to draw
        # PNG as it is: Streamlit would send a grey image without alpha as a JPEG, a few grey levels off
        st.image(to_png_bytes(to_display(summary.mean_image), MEAN_SCALE), caption="mean input image", width=width,
                 output_format="PNG")
        decoded = inference.decode(sel.model, summary.mean_mu.astype(np.float32),
                                   int(np.argmax(summary.class_counts)) if sel.conditional else None)[0]
        st.image(to_png_bytes(decoded, MEAN_SCALE), caption="decoded mean code" + (
            " (its commonest class)" if sel.conditional else ""), width=width, output_format="PNG")
    with c_mix:
        st.caption("class mix")
        st.bar_chart(pd.DataFrame({"images": summary.class_counts}, index=pd.Index(names, name="class")),
                     height=200, x_label="", y_label="images", sort=False)  # the classes' order, not the alphabet's
    with c_spread:
        st.plotly_chart(spread_figure(summary), key="lm_selection_spread")
    a, b, c = st.columns(3)
    a.download_button("Selection as CSV", lambda: selection_csv(points, rows), file_name=f"{sel.info.name}_selection.csv",
                      mime="text/csv", on_click="ignore", key="lm_selection_csv", width="stretch",
                      help="index, split, label, mu_*, sigma_*, nelbo per selected image")
    if b.button("Send to Compare", key="lm_send_compare", width="stretch",
                help=f"Compare places these images (up to {MAX_SENT:,}) on every model's map."):
        send_to_compare(points, rows)
        st.switch_page(navigation.page_file("Compare"))
    if c.button("Send to Interpolate", key="lm_send_selection_interp", width="stretch",
                help="The selection's mean code joins the pinned points; the last two are the path's ends."):
        remember_latent(summary.mean_mu.astype(np.float32))
        st.session_state["interp_source"] = "Points clicked on the Latent Map"
        st.switch_page(navigation.page_file("Interpolate"))
    # last: the first selection of a model scores all its images once (seconds for 70,000)
    nelbo = points.figure("nelbo")[rows]
    typical, atypical = selection.typical_ends(nelbo, STRIP)
    order = np.concatenate([typical, atypical])
    split, index = points.identity(rows[order])
    st.caption(f"the {len(typical)} most typical members (lowest −ELBO, nats), then the {len(atypical)} least typical")
    _strip(points.images(rows[order]), [f"#{i}{'' if s == 'test' else ' ' + s} · {nelbo[r]:.0f}"
                                        for r, s, i in zip(order, split, index)])


def spread_figure(summary: selection.Summary) -> go.Figure:
    """Per latent dimension: μ's median and 5–95 % range, σ's, and the mean KL (bars, right axis)."""
    d = len(summary.mean_mu)
    dims = [f"z{k}" for k in range(d)]
    fig = go.Figure()
    for name, spread, color, shift in (("μ", summary.mu_spread, "#1f77b4", -0.12), ("σ", summary.sigma_spread,
                                                                                     "#ff7f0e", 0.12)):
        if spread is None:
            continue
        fig.add_trace(go.Scatter(
            x=np.arange(d) + shift, y=spread[1], mode="markers", name=f"{name} (median, 5–95 %)",
            marker=dict(color=color, size=7),
            error_y=dict(type="data", symmetric=False, array=spread[2] - spread[1], arrayminus=spread[1] - spread[0])))
    if summary.kl is not None:
        fig.add_trace(go.Bar(x=np.arange(d), y=summary.kl, name="mean KL (nats)", yaxis="y2", opacity=0.3,
                             marker_color="#2ca02c"))
    fig.update_layout(height=230, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25),
                      xaxis=dict(tickmode="array", tickvals=list(range(d)), ticktext=dims),
                      yaxis=dict(title="μ, σ"), yaxis2=dict(title="KL", overlaying="y", side="right", showgrid=False, rangemode="tozero"))
    return fig


def selection_csv(points: PointSet, rows: np.ndarray) -> bytes:
    """index, split, label, mu_*, sigma_*, nelbo of each selected image, at full precision."""
    split, index = points.identity(rows)
    return latent_views.latents_csv(points.mu[rows], points.sigma[rows], points.labels[rows], index=index, split=split,
                                    nelbo=points.figure("nelbo")[rows], float_format="%.9g")


def send_to_compare(points: PointSet, rows: np.ndarray) -> None:
    """Compare reads {"dataset", split: sorted indices} and places those images on each model's map."""
    if len(rows) > MAX_SENT:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_SENT, replace=False))
    split, index = points.identity(rows)
    st.session_state[session_keys.COMPARED_SELECTION] = {
        "dataset": points.sel.info.dataset, **{s: np.sort(index[split == s]).tolist() for s in points.splits}}


@st.cache_resource(show_spinner="Indexing the images for nearest neighbours…", max_entries=2)
def _pixel_index(dataset: str, sha: str | None, splits: tuple[str, ...], _points: PointSet):
    from sklearn.neighbors import NearestNeighbors

    images = _points.images(np.arange(len(_points)))
    return NearestNeighbors(algorithm="brute").fit(images.reshape(len(images), -1).astype(np.float32))


@st.cache_resource(show_spinner=False, max_entries=4)
def _latent_index(key: tuple, splits: tuple[str, ...], _points: PointSet):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors().fit(_points.mu)


def neighbours(points: PointSet, position: int, space: str) -> tuple[np.ndarray, np.ndarray]:
    """The STRIP points nearest the one at `position` (itself left out) in latent space (μ) or pixel space, and their
    distances, nearest first."""
    if space == "latent":
        index, query = _latent_index(latent_views.model_key(points.sel), points.splits, points), points.mu[[position]]
    else:
        index = _pixel_index(points.sel.info.dataset, points.sel.info.dataset_sha, points.splits, points)
        query = points.images(np.array([position])).reshape(1, -1).astype(np.float32)
    dist, found = index.kneighbors(query, STRIP + 1)
    keep = found[0] != position
    return found[0][keep][:STRIP], dist[0][keep][:STRIP]


def neighbours_panel(points: PointSet, position: int) -> None:
    """A picked point's nearest neighbours in latent space and in pixel space, side by side."""
    names = points.sel.data.class_names
    columns = st.columns(2, gap="large")
    for column, space, title in zip(columns, ("latent", "pixel"), ("in latent space (μ)", "in pixel space")):
        with column:
            found, dist = neighbours(points, position, space)
            split, index = points.identity(found)
            st.caption(f"nearest {title}")
            _strip(points.images(found), [f"#{i}{'' if s == 'test' else ' ' + s} · {names[points.labels[p]]} · {d:.2g}"
                                          for p, s, i, d in zip(found, split, index, dist)])
