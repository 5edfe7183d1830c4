"""Latent Map: the test set on the latent plane, decoded under the pointer in the browser; pin, pick, or draw."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import history_view, latent_views, navigation, session_keys, shared
from ui.images import tile, to_png_bytes
from ui.latent_plane import latent_plane, pinned_record
from ui.map_overlays import remember_latent
from ui.plots import CLASS_COLORS, code_extent, factor_colouring
from vae_core import inference, typicality
from vae_core.data import to_display
from vae_core.projection import LatentPlane, dims_by_variance, pca_plane, slice_plane

CLICK_KEY = "latent_map_click"  # {"x", "y", "z", "plane"}: the last pinned position, written by the callback
PICKED_KEY = "latent_map_picked"  # test-set index of the last data point clicked
CLASS_KEY = "latent_map_class"  # the class a conditional model draws, picked in the component
MAX_POINTS = 10_000
VIEWS = ("Two dims", "PCA", "UMAP")
PLANE_KEY, UMAP_KEY = "lm_plane", "lm_umap"


def on_pin(key: str, plane: LatentPlane) -> None:
    record = pinned_record(st.session_state[key]["pin"], plane)
    if record is None:
        return
    st.session_state[CLICK_KEY] = record
    remember_latent(np.asarray(record["z"], np.float32))


def on_pick(key: str) -> None:
    index = st.session_state[key]["pick"]
    if isinstance(index, int):
        st.session_state[PICKED_KEY] = index


def on_klass(key: str) -> None:
    st.session_state[CLASS_KEY] = st.session_state[key]["klass"]


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


def drawn_panel(sel: shared.Selection, drawn: dict) -> None:
    """The pad's digit as the server sees it: its −ELBO among the test set's, and where to send it."""
    pixels = drawn["pixels"]
    c_img, c_text = st.columns([1, 3])
    with c_img:
        image(pixels, "drawn, preprocessed", scale=3)
    with c_text:
        if sel.info.model_class.probabilistic and sel.data is not None:
            reference = latent_views.test_nelbo(sel)
            score = typicality.assess(reference, typicality.per_image_nelbo(sel.model, pixels[None]), 99.0)[0]
            st.markdown(f"−ELBO **{score.nelbo:.1f} nats**: costlier than **{score.percentile:.1f} %** of the "
                        "test images" + (" (unusual for this model)" if score.ood else ""))
        a, b = st.columns(2)
        if a.button("Send to Reconstruct", key="lm_send_recon", width="stretch"):
            sent = st.session_state.get(session_keys.DRAWN_DIGITS, [])
            st.session_state[session_keys.DRAWN_DIGITS] = [*sent, to_png_bytes(pixels)][-6:]
            st.switch_page(navigation.page_file("Reconstruct"))
        if b.button("Send to Interpolate", key="lm_send_interp", width="stretch",
                    help="The drawn digit's μ joins the pinned points; the last two are the path's ends."):
            remember_latent(np.asarray(drawn["mu"], np.float32))
            st.switch_page(navigation.page_file("Interpolate"))


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
else:  # decoder-only: the plane and its grid, with no test points
    n_points, mu, labels, class_names = 0, np.zeros((0, d), np.float32), np.zeros(0, np.int64), sel.class_names
picked = st.session_state.get(PICKED_KEY)
if picked is not None and not 0 <= picked < n_points:  # a pick made with another model
    picked = st.session_state[PICKED_KEY] = None

st.caption(f"{shared.describe(sel.info)} · " + (f"{n_points:,} test images of {sel.data.source}. " if has_data else "")
           + "Move over the plane: the image under the pointer is decoded in your browser. Click empty space to pin "
             "it, click a point to pick that test image, drag to pan, scroll to zoom, or draw a digit on the pad.")

# --- controls -----------------------------------------------------------------------------------------------
view = decoded_on = "Two dims"
if d > 2:
    c_view, c_dims, c_base = st.columns([3, 2, 2], gap="medium")
    views = VIEWS if has_data else VIEWS[:1]  # PCA and UMAP are fitted on the test set's μ
    view = decoded_on = c_view.radio(
        "Projection", views, index=min(1, len(views) - 1), horizontal=True, key="lm_view",
        help="A slice through two latent dims, the top two principal components of the test set's μ, "
             "or UMAP (a view only: decoding happens on a plane beside it).")
    if view == "UMAP":
        decoded_on = c_view.radio("Decode on", ("PCA", "Two dims"), horizontal=True, key="lm_umap_plane",
                                  help="UMAP has no fast inverse, so the plane beside it is decoded instead.")
dims, base = (0, 1), None
if decoded_on == "Two dims" and d > 2:
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

n_classes = sel.info.model_config.n_classes
klass = None
if sel.conditional:
    klass = st.session_state.get(CLASS_KEY, 0)
    klass = klass if isinstance(klass, int) and 0 <= klass < n_classes else 0
names = class_names or sel.class_names

plane = slice_plane(d, dims, base) if decoded_on == "Two dims" else pca_plane(latent_views.pca(sel))
# An autoencoder's codes (no prior pulls them) go wherever reconstruction is easiest, far outside [-3, 3]²: its map
# spans them.
autoencoder = not sel.info.model_class.probabilistic
extent = code_extent(plane.project(mu)) if autoencoder else inference.GRID_EXTENT

umap_xy = None
if view == "UMAP":
    job = latent_views.umap_job(sel)
    status = job.status()
    if status.state == "done":
        umap_xy = job.embedding[:n_points]
    elif status.state == "failed":
        st.error(f"{status.message}. Showing the {decoded_on} plane instead.")
    else:
        umap_progress(job, decoded_on)

click = st.session_state.get(CLICK_KEY)
z_click = None
if click is not None and len(click["z"]) == d and tuple(click["plane"]) == tuple(plane.labels):
    z_click = np.asarray(click["z"], np.float32)
pinned = None if z_click is None else tuple(plane.project(z_click[None])[0])

# the points' colours: their class, or on a dataset with known factors (dSprites) any one factor
colour_labels, colour_names, colours = labels, names, CLASS_COLORS
if has_data and sel.data.factors is not None:
    by = st.columns([1, 3])[0].selectbox(
        "Colour the points by", ("class", *sel.data.factor_names), key="lm_colour",
        help="The test images' known generative factors: a dimension (or direction) that captures one shows it "
             "as a colour gradient along it.")
    if by != "class":
        colour_labels, colour_names, colours = factor_colouring(
            sel.data.factors[:n_points, sel.data.factor_names.index(by)], by)

# --- the plane ------------------------------------------------------------------------------------------------
common = dict(class_names=colour_names, colors=colours, prior_box=autoencoder, klass=klass,
              on_klass=lambda: on_klass(PLANE_KEY))
if umap_xy is not None:
    st.markdown("**UMAP of the test set's μ** · hover a point for its image, click it to pick it")
    lo, hi = umap_xy.min(axis=0), umap_xy.max(axis=0)
    latent_plane(sel, plane, float((hi - lo).max()) / 2 * 1.05, key=UMAP_KEY, xy=umap_xy, labels=colour_labels,
                 class_names=colour_names, colors=colours, decode=False, picked=picked, on_pick=lambda: on_pick(UMAP_KEY),
                 center=tuple((lo + hi) / 2), axis_titles=("UMAP 1", "UMAP 2"))
    st.markdown(f"**The {decoded_on} plane** · decoded under the pointer (UMAP has no fast inverse)")
    events = latent_plane(sel, plane, extent, key=PLANE_KEY, pad=True, pinned=pinned,
                          on_pin=lambda: on_pin(PLANE_KEY, plane), **common)
else:
    events = latent_plane(sel, plane, extent, key=PLANE_KEY, xy=plane.project(mu), labels=colour_labels, pad=True,
                          pinned=pinned, picked=picked, on_pin=lambda: on_pin(PLANE_KEY, plane),
                          on_pick=lambda: on_pick(PLANE_KEY), **common)
if autoencoder:
    st.caption(f"An autoencoder's codes are not pulled toward N(0, I), so this map spans them (±{extent:g}). "
               "The dashed square is [-3, 3]², where a VAE's prior puts its mass: move between the clusters "
               "to see what the decoder draws in the holes.")

# --- what the server adds: pinned spot, nearest and picked test images, the drawn digit's score --------------------
c_pin, c_near, c_drawn = st.columns([3, 2, 4], gap="medium")
with c_pin:
    st.markdown("**Pinned**")
    if z_click is None:
        st.caption("Click empty space on the plane (or press Enter there) to pin a position.")
    else:
        image(inference.decode(sel.model, z_click, klass)[0], caption="decoded", scale=5)
        st.markdown(f"(x, y) = ({click['x']:.3f}, {click['y']:.3f})" + (
            "" if d == 2 else "  \nz = [" + ", ".join(f"{v:.2f}" for v in z_click) + "]"))
        if klass is not None:
            every = inference.decode(sel.model, np.repeat(z_click[None], n_classes, 0), np.arange(n_classes))
            st.image(to_png_bytes(tile(every, 2), 2), caption="every class in this style")
with c_near:
    if z_click is not None and has_data:
        i = inference.nearest(mu, z_click)
        st.markdown("**Nearest test image**")
        image(to_display(sel.data.test_images[i]), caption=f"#{i} · class {class_names[labels[i]]} · "
                                                        f"distance {np.linalg.norm(mu[i] - z_click):.2f}")
    if picked is not None:
        st.markdown("**Picked point**")
        image(to_display(sel.data.test_images[picked]), caption=f"#{picked} · class {class_names[labels[picked]]}")
with c_drawn:
    st.markdown("**Drawn digit**")
    if events.drawn is None:
        st.caption("Draw a digit on the pad: its μ moves on the map as you draw, with its σ ellipse.")
    else:
        drawn_panel(sel, events.drawn)

if has_data:
    st.download_button("Latents as CSV", lambda: latent_views.latents_csv_bytes(sel),
                       file_name=f"{sel.info.name}_test_latents.csv", mime="text/csv", on_click="ignore",
                       help="index, label, mu_0..mu_{d-1}, sigma_0..sigma_{d-1} per test image")

with st.expander("Training history: replay, KL per dimension, active units"):
    history_view.model_history(sel)
