"""Latent Map: the test set on the latent plane, the decoded manifold, and a click anywhere to decode it."""
from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st

from ui import latent_views, session_keys, shared
from ui.clicks import OVERLAY_NODES, click_from_selection, node_index
from ui.images import tile, to_png_bytes
from ui.plots import add_prior_box, code_extent, latent_map
from vae_core import inference
from vae_core.data import class_names as dataset_classes
from vae_core.projection import LatentPlane, dims_by_variance, pca_plane, slice_plane

CLICK_KEY = "latent_map_click"  # {"x", "y", "z", "plane"}: the last click on empty space, written by the callback
PICKED_KEY = "latent_map_picked"  # test-set index of the last data point clicked
MAX_RECENT = 10  # clicked latents kept for the Interpolate page
FROM_CHART_KEY = "latent_map_from_chart"  # set by the callback: which chart the click of this rerun came from
MARKS_KEY = "latent_map_marks"  # chart key -> (inputs, marks) it was last drawn with
MAX_POINTS = 10_000
VIEWS = ("Two dims", "PCA", "UMAP")


def on_select(chart_key: str, overlay_curve: int | None, plane: LatentPlane, extent: float) -> None:
    """Store the click before the rerun (a chart drawn anew starts with no selection)."""
    event = st.session_state.get(chart_key)
    points = event["selection"]["points"] if event else []
    click = click_from_selection(points, overlay_curve, extent=extent)
    if click is None:
        return
    st.session_state[FROM_CHART_KEY] = chart_key
    if click.kind == "point":
        st.session_state[PICKED_KEY] = click.index
    else:
        z = plane.to_latent(np.array([click.x, click.y]))
        st.session_state[CLICK_KEY] = {"x": click.x, "y": click.y, "z": z.tolist(), "plane": plane.labels}
        recent = st.session_state.get(session_keys.CLICKED_LATENTS, [])
        st.session_state[session_keys.CLICKED_LATENTS] = [*recent, z][-MAX_RECENT:]


def chart_marks(chart_key: str, inputs: tuple, marks: tuple) -> tuple:
    """The marks (clicked node, picked index) a chart starts with as its selection.

    Right after a click on the chart, with nothing else changed, the browser already shows that click as the
    chart's selection; keeping the marks it was drawn with keeps the figure identical, so Streamlit sends a
    reference instead of the figure and the browser does not redraw ~25k WebGL points. That makes a click take
    ~0.3 s instead of ~1 s on two busy cores.
    """
    drawn = st.session_state.setdefault(MARKS_KEY, {})
    if from_chart == chart_key and chart_key in drawn and drawn[chart_key][0] == inputs:
        marks = drawn[chart_key][1]
    drawn[chart_key] = (inputs, marks)
    return marks


def show_chart(fig, key: str, overlay_curve: int | None, plane: LatentPlane, extent: float) -> None:
    st.plotly_chart(fig, key=key, on_select=partial(on_select, key, overlay_curve, plane, extent),
                    selection_mode="points",
                    config={"displaylogo": False, "scrollZoom": False})


@st.fragment(run_every=1.0)
def umap_progress(job, shown_instead: str) -> None:
    status = job.status()
    if status.state != "running":
        st.rerun()
    st.progress(status.progress, text=f"UMAP is being computed in the background ({status.message}, "
                                      f"{status.elapsed:.0f} s so far). Meanwhile the map shows the "
                                      f"{shown_instead} plane.")


def image(pixels: np.ndarray, caption: str, scale: int = 4) -> None:
    """A 28×28 image enlarged by nearest neighbour, so pixels stay crisp."""
    st.image(to_png_bytes(pixels, scale), caption=caption, width=scale * 28)


from_chart = st.session_state.pop(FROM_CHART_KEY, None)
sel = shared.open_page("Latent Map", "Latent map")
d = sel.latent_dim
if d < 2:
    st.warning(f"{sel.info.name} has a {d}-dimensional latent space; the map needs at least 2 dims.")
    st.stop()

has_data = sel.data is not None
if has_data:
    n_points = min(len(sel.mu), MAX_POINTS)
    mu, labels = sel.mu[:n_points], sel.data.test_labels.numpy()[:n_points]
    class_names = sel.data.class_names
else:  # decoder-only: the plane, its grid and clicks, with no test points
    n_points, mu, labels, class_names = 0, np.zeros((0, d), np.float32), np.zeros(0, np.int64), ()
picked = st.session_state.get(PICKED_KEY)
if picked is not None and not 0 <= picked < n_points:  # a pick made with another model
    picked = st.session_state[PICKED_KEY] = None

st.caption(f"{shared.describe(sel.info)} · " + (
    f"{n_points:,} test images of {sel.data.source}. Click anywhere on the plane to decode that spot; "
    "click a point to pick that test image." if has_data else "Click anywhere on the plane to decode that spot."))

# --- controls -----------------------------------------------------------------------------------------------
view = plane_kind = "Two dims"
c_grid = st.container()
if d > 2:
    c_view, c_dims, c_base, c_grid = st.columns([3, 2, 2, 3], gap="medium")
    views = VIEWS if has_data else VIEWS[:1]  # PCA and UMAP are fitted on the test set's μ
    view = plane_kind = c_view.radio(
        "Projection", views, index=min(1, len(views) - 1), horizontal=True, key="lm_view",
        help="A slice through two latent dims, the top two principal components of the test set's μ, "
             "or UMAP (a view only: clicks on empty space are decoded on a plane).")
    if view == "UMAP":
        plane_kind = c_view.radio("Decode clicks on", ("PCA", "Two dims"), horizontal=True, key="lm_umap_plane",
                                  help="UMAP has no fast inverse, so clicks on empty space are decoded on this plane.")
dims, base = (0, 1), None
if plane_kind == "Two dims" and d > 2:
    # default to the two most used dims; with collapsed units, dims 0 and 1 may show nothing
    if has_data:
        order, variance = dims_by_variance(mu), mu.var(axis=0)
        label = lambda k: f"z{k} (Var μ {variance[k]:.2f})"  # noqa: E731
    else:
        order, label = np.arange(d), lambda k: f"z{k}"  # noqa: E731
    dx = c_dims.selectbox("x dim", range(d), index=int(order[0]), key="lm_dx", format_func=label)
    y_options = [int(k) for k in order if k != dx]
    dy = c_dims.selectbox("y dim", y_options, index=0, key="lm_dy", format_func=label)
    dims = (dx, dy)
    base_choice = c_base.radio("Other dims held at", ("zero", "picked point's μ"), key="lm_base",
                               disabled=picked is None,
                               help="Pick a point (click a test image on the map) to slice through its μ.")
    if base_choice != "zero" and picked is not None:
        base = mu[picked]
c_n, c_bg = c_grid.columns([3, 2], vertical_alignment="bottom") if d == 2 else (c_grid, c_grid)
n_grid = c_n.slider("Decoded grid size (n × n)", 5, 30, 15, key="lm_n")
show_background = c_bg.toggle("Show the grid under the points", value=True, key="lm_bg")
kind = sel.info.model_config.kind
drawn_class = None
if kind == "cvae":
    names = class_names or dataset_classes(sel.info.dataset)
    drawn_class = st.selectbox("Class the decoder draws", range(len(names)), format_func=lambda c: names[c],
                               key="lm_class", help="A conditional VAE decodes z together with a class, so z holds "
                                                    "only the style: the grid draws this class across the style plane.")

plane = slice_plane(d, dims, base) if plane_kind == "Two dims" else pca_plane(latent_views.pca(sel))
# An autoencoder's codes go wherever reconstruction is easiest, far outside [-3, 3]²: its map spans them.
autoencoder = kind in ("ae", "dae")
extent = code_extent(plane.project(mu)) if autoencoder else inference.GRID_EXTENT
grid_png, grid_uri = latent_views.decoded_grid(sel, plane, n_grid, extent, drawn_class)

umap_xy = None
if view == "UMAP":
    job = latent_views.umap_job(sel)
    status = job.status()
    if status.state == "done":
        umap_xy = job.embedding[:n_points]
    elif status.state == "failed":
        st.error(f"{status.message}. Showing the {plane_kind} plane instead.")
    else:
        umap_progress(job, plane_kind)

click = st.session_state.get(CLICK_KEY)
z_click = None
if click is not None and len(click["z"]) == d:
    z_click = np.asarray(click["z"], np.float32)

# --- map and side panel ---------------------------------------------------------------------------------------
clicked_node = node_index(*plane.project(z_click[None])[0], extent=extent) if z_click is not None else None
view_inputs = (latent_views.model_key(sel), view, latent_views.plane_key(plane), n_grid)
left, right = st.columns([5, 3], gap="medium")
with left:
    if umap_xy is not None:
        _, marked = chart_marks("lm_chart_umap", view_inputs, (None, picked))
        fig, _ = latent_map(umap_xy, labels, class_names, axis_titles=("UMAP 1", "UMAP 2"), extent=None,
                            clickable=False, marked_index=marked)
        show_chart(fig, "lm_chart_umap", None, plane, extent)
        st.caption("UMAP is a view only: it has no fast inverse, so click a test image here to pick it, and click "
                   f"empty space on the {plane_kind} plane at the right to decode it.")
    else:
        node, marked = chart_marks("lm_chart", (*view_inputs, show_background), (clicked_node, picked))
        fig, overlay = latent_map(plane.project(mu), labels, class_names, axis_titles=plane.labels, extent=extent,
                                  background=(grid_uri, n_grid) if show_background else None,
                                  marked_node=node, marked_index=marked)
        if autoencoder:
            add_prior_box(fig)
        show_chart(fig, "lm_chart", overlay, plane, extent)
        if autoencoder:
            st.caption(f"An autoencoder's codes are not pulled toward N(0, I), so this map spans them (±{extent:g}). "
                       "The dashed square is [-3, 3]², where a VAE's prior puts its mass: click between the clusters "
                       "to see what the decoder draws in the holes.")
    c_png, c_csv, c_tip = st.columns([2, 2, 3], vertical_alignment="center")
    c_png.download_button("Grid as PNG", grid_png, file_name=f"{sel.info.name}_grid_{n_grid}.png", mime="image/png",
                          on_click="ignore", width="stretch")
    c_csv.download_button("Latents as CSV", lambda: latent_views.latents_csv_bytes(sel),
                          file_name=f"{sel.info.name}_test_latents.csv", mime="text/csv", on_click="ignore",
                          width="stretch", help="index, label, mu_0..mu_{d-1}, sigma_0..sigma_{d-1} per test image")
    c_tip.caption("Hover a point for its class and index. Drag to pan; the toolbar zooms and resets the view.")

with right:
    if umap_xy is not None:
        node, _ = chart_marks("lm_plane_chart", view_inputs, (clicked_node, None))
        plane_fig, overlay = latent_map(axis_titles=plane.labels, background=(grid_uri, n_grid), height=360,
                                        background_opacity=1.0, marked_node=node, extent=extent)
        plane_fig.update_layout(showlegend=False)
        show_chart(plane_fig, "lm_plane_chart", overlay, plane, extent)

    c_decoded, c_near = st.columns([3, 2])
    with c_decoded:
        st.markdown("**Decoded at the clicked spot**")
        if z_click is None:
            st.info("Click anywhere on the plane to decode that spot.")
        else:
            image(inference.decode(sel.model, z_click, drawn_class)[0], caption="decoded", scale=7)
            axes = " / ".join(label.split(" (")[0] for label in click["plane"])
            st.markdown(f"clicked at (x, y) = ({click['x']:.3f}, {click['y']:.3f}) on the {axes} plane",
                        help=f"Clicks snap to a lattice with a step of {2 * extent / (OVERLAY_NODES - 1):.2f}.")
            if drawn_class is not None:
                n_classes = sel.info.model_config.n_classes
                every = inference.decode(sel.model, np.repeat(z_click[None], n_classes, 0), np.arange(n_classes))
                st.image(to_png_bytes(tile(every, 2), 2), caption="every class in this style")
            if d > 2:
                st.caption("z = [" + ", ".join(f"{v:.2f}" for v in z_click) + "]")
    with c_near:
        if z_click is not None and has_data:
            i = inference.nearest(mu, z_click)
            st.markdown("**Nearest test image**")
            image(sel.data.test_images[i].numpy(), caption=f"#{i} · class {class_names[labels[i]]} · "
                                                            f"distance {np.linalg.norm(mu[i] - z_click):.2f}")
        if picked is not None:
            st.markdown("**Picked point**")
            image(sel.data.test_images[picked].numpy(), caption=f"#{picked} · class {class_names[labels[picked]]}")

    st.markdown(f"**Decoded manifold** · {n_grid} × {n_grid} over [-{extent:g}, {extent:g}]² of {plane.labels[0]} / "
                f"{plane.labels[1]}"
                + ("" if plane_kind == "PCA" or d == 2 else
                   f", other dims at {'the picked μ' if base is not None else 'zero'}")
                + (" (the clickable plane above)" if umap_xy is not None else ""))
    if umap_xy is None:  # with UMAP, the clickable plane above already is this grid
        st.image(grid_png, width="stretch")
