"""Latent Map: the test set on the latent plane, decoded under the pointer in the browser; pin, pick, or draw."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import history_view, latent_views, navigation, session_keys, shared, uploads, view_url
from ui.images import tile, to_png_bytes
from ui.latent_plane import ColorBy, latent_plane, pinned_record, plane_id
from ui.selection_panel import neighbours_panel, selection_panel, selection_rows
from ui.map_overlays import remember_latent
from ui.point_set import PointSet
from ui.plots import CLASS_COLORS, code_extent, factor_colouring
from vae_core import inference, selection, typicality
from vae_core.data import to_display
from vae_core.per_image import FIGURES
from vae_core.projection import LatentPlane, dims_by_variance, pca_plane, slice_plane

CLICK_KEY = "latent_map_click"  # {"x", "y", "z", "plane"}: the last pinned position, written by the callback
PICKED_KEY = "latent_map_picked"  # {"split", "index"} of the image of the last data point clicked
CLASS_KEY = "latent_map_class"  # the class a conditional model draws, picked in the component
POINTS_KEY = "lm_points"  # which splits the plane shows
COLOR_KEY = "lm_color"  # what the points are coloured by: "class" or a vae_core.per_image figure
SELECTION_KEY = "latent_map_selection"  # {"key": plane_id, "shapes": [...]}: the selection drawn on the plane
VIEW_KEY = "latent_map_view"  # {"key": plane_id, "color", "cx", "cy", "span", "above"}: where the view last rested
LINKED_KEY = "latent_map_linked"  # a view.MapView from the URL, waiting for its plane (pin, view, selection)
SPLIT_CHOICES = {"test": ("test",), "train": ("train",), "both": ("test", "train")}
VIEWS = ("Two dims", "PCA", "UMAP")
PLANE_KEY, UMAP_KEY = "lm_plane", "lm_umap"
HISTORY_KEY = "lm_history"  # the history expander's state: open or not


def on_pin(key: str, plane: LatentPlane) -> None:
    record = pinned_record(st.session_state[key]["pin"], plane)
    if record is None:
        return
    st.session_state[CLICK_KEY] = record
    remember_latent(np.asarray(record["z"], np.float32))


def on_pick(key: str) -> None:
    pick = st.session_state[key]["pick"]
    if isinstance(pick, dict) and pick.get("split") in SPLIT_CHOICES["both"] and isinstance(pick.get("index"), int):
        st.session_state[PICKED_KEY] = {"split": pick["split"], "index": pick["index"]}


def on_select(key: str) -> None:
    value = st.session_state[key]["selection"]
    if value is None:
        st.session_state.pop(SELECTION_KEY, None)
        return
    try:
        selection.parse_shapes(value["shapes"])
    except (KeyError, TypeError, ValueError):
        return  # not a selection: the last good one stays
    if isinstance(value.get("key"), str):
        st.session_state[SELECTION_KEY] = {"key": value["key"], "shapes": value["shapes"]}


def on_view(key: str, pid: str, coloring: str) -> None:
    value = st.session_state[key]["view"]
    if isinstance(value, dict) and all(isinstance(value.get(k), (int, float)) for k in ("cx", "cy", "span")):
        above = value.get("above")
        st.session_state[VIEW_KEY] = {"key": pid, "color": coloring, "cx": value["cx"], "cy": value["cy"],
                                      "span": value["span"], "above": above if isinstance(above, (int, float)) else None}


def take_link(link: view_url.MapView, d: int) -> None:
    """A link's choices become the widgets' values (those that fit this model), before the widgets are drawn."""
    proj = view_url.PROJECTIONS.get(link.proj)
    for key, value, fits in ((POINTS_KEY, link.points, link.points in SPLIT_CHOICES), (COLOR_KEY, link.color, True),
                             ("lm_view", proj, d > 2 and proj is not None),
                             ("lm_dx", link.dims and link.dims[0], d > 2 and link.dims and max(link.dims) < d),
                             ("lm_dy", link.dims and link.dims[1], d > 2 and link.dims and max(link.dims) < d)):
        if value is not None and fits:
            st.session_state[key] = value
    if link.pick is not None:
        st.session_state[PICKED_KEY] = {"split": link.pick[0], "index": link.pick[1]}
    st.session_state[LINKED_KEY] = link


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


def image(pixels: np.ndarray, caption: str, width: int = 112) -> None:
    """An image enlarged by nearest neighbour to about `width` px whatever its side, so pixels stay crisp."""
    scale = uploads.scale_for(pixels.shape[1], width)
    st.image(to_png_bytes(pixels, scale), caption=caption, width=scale * pixels.shape[1], output_format="PNG")


def drawn_panel(sel: shared.Selection, drawn: dict) -> None:
    """The pad's digit as the server sees it: its −ELBO among the test set's, and where to send it."""
    pixels = drawn["pixels"]
    c_img, c_text = st.columns([1, 3])
    with c_img:
        image(pixels, "drawn, preprocessed", width=84)
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


link = view_url.from_url_once()  # a link opened in a new session: its model before the picker, the rest below
if link is not None and link.model:
    st.session_state[session_keys.SELECTED_MODEL] = link.model
sel = shared.open_page("Latent Map", "Latent map")
d = sel.latent_dim
if link is not None:
    take_link(link, d)
if d < 2:
    st.warning(f"{sel.info.name} has a {d}-dimensional latent space; the map needs at least 2 dims.")
    st.stop()

has_data = sel.data is not None
if has_data:  # PCA, the dims' order and an autoencoder's extent are fitted on the test split's μ
    mu, class_names = sel.mu, sel.data.class_names
    offered = [c for c, splits in SPLIT_CHOICES.items() if set(splits) <= set(sel.splits())]
else:  # decoder-only: the plane and its grid, with no points
    mu, class_names, offered = np.zeros((0, d), np.float32), sel.class_names, []

if st.session_state.get(POINTS_KEY) not in offered:
    st.session_state[POINTS_KEY] = offered[0] if offered else None
points = PointSet(sel, SPLIT_CHOICES[st.session_state[POINTS_KEY]]) if has_data else None
# the pad draws one grey channel: offered for grey sets, for a digit where the set holds digits
drawable = sel.info.model_config.image_shape[0] == 1
drawing = "a digit" if sel.data is None or sel.data.digit_like else "an image"
st.caption(f"{shared.describe(sel.info)} · " + (f"{len(points):,} {' + '.join(points.splits)} images of "
                                                f"{sel.data.source}. " if has_data else "")
           + "Move over the plane: the image under the pointer is decoded in your browser. Click empty space to pin "
             "it, click a point to pick its image, drag to pan, scroll to zoom, lasso or box points to see what they "
             "hold" + (f", or draw {drawing} on the pad." if drawable else "."))

# --- controls -----------------------------------------------------------------------------------------------
# on a dataset with known generative factors (dSprites), the test images' points can also be coloured by any one
factor_choices = (tuple(f"factor:{f}" for f in sel.data.factor_names)
                  if has_data and sel.data.factors is not None and points.splits == ("test",) else ())
colorings = ("class", *factor_choices, *sel.figure_names()) if has_data else ("class",)
if st.session_state.get(COLOR_KEY) not in colorings:
    st.session_state[COLOR_KEY] = "class"
if has_data:
    c_points, c_color = st.columns([3, 2], gap="medium", vertical_alignment="bottom")
    if len(offered) > 1:
        sizes = {c: sum(len(shared.split_images(sel.data, s)[1]) for s in SPLIT_CHOICES[c]) for c in offered}
        c_points.segmented_control("Points", offered, key=POINTS_KEY, format_func=lambda c: f"{c} ({sizes[c]:,})",
                                   help="Which images' codes the plane shows: the test split, the training split, "
                                        "or both.")
    c_color.selectbox("Colour by", colorings, key=COLOR_KEY,
                      format_func=lambda c: FIGURES.get(c, c.replace("factor:", "factor: ")),
                      help="Each point's class, a known factor of its image (a dimension or direction that captures "
                           "one shows it as a gradient along it), or a number the model gives its image (computed "
                           "once per model): the colour bar under the plane has a threshold to show only the points "
                           "above it.")
coloring = st.session_state[COLOR_KEY]
color_by = None if coloring == "class" or coloring in factor_choices else ColorBy(
    coloring, FIGURES[coloring], points.figure(coloring))
picked = st.session_state.get(PICKED_KEY)
if picked is not None and (points is None or picked.get("split") not in sel.splits()
                           or not 0 <= picked.get("index", -1) < len(shared.split_images(sel.data, picked["split"])[1])):
    picked = st.session_state[PICKED_KEY] = None  # a pick made with another model's data
picked_at = None if picked is None else points.position(picked["split"], picked["index"])

view = decoded_on = "Two dims"
if d > 2:
    c_view, c_dims, c_base = st.columns([3, 2, 2], gap="medium")
    views = VIEWS if has_data else VIEWS[:1]  # PCA and UMAP are fitted on the test set's μ
    if st.session_state.get("lm_view") not in views:  # defaults go through the state, which a link also sets
        st.session_state["lm_view"] = views[min(1, len(views) - 1)]
    view = decoded_on = c_view.radio(
        "Projection", views, horizontal=True, key="lm_view",
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
    if st.session_state.get("lm_dx") not in range(d):
        st.session_state["lm_dx"] = int(order[0])
    dx = c_dims.selectbox("x dim", range(d), key="lm_dx", format_func=label)
    y_options = [int(k) for k in order if k != dx]
    if st.session_state.get("lm_dy") not in y_options:
        st.session_state["lm_dy"] = y_options[0]
    dy = c_dims.selectbox("y dim", y_options, key="lm_dy", format_func=label)
    dims = (dx, dy)
    base_choice = c_base.radio("Other dims held at", ("zero", "picked point's μ"), key="lm_base",
                               disabled=picked is None,
                               help="Pick a point (click a test image on the map) to slice through its μ.")
    if base_choice != "zero" and picked is not None:
        base = sel.encodings(picked["split"])[0][picked["index"]]

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
        umap_xy = job.embedding
    elif status.state == "failed":
        st.error(f"{status.message}. Showing the {decoded_on} plane instead.")
    else:
        umap_progress(job, decoded_on)

pid = plane_id(sel, plane)
linked = st.session_state.pop(LINKED_KEY, None)
if linked is not None:  # what a link put on this plane
    if linked.pin is not None:
        st.session_state[CLICK_KEY] = pinned_record({"x": linked.pin[0], "y": linked.pin[1]}, plane)
        remember_latent(np.asarray(st.session_state[CLICK_KEY]["z"], np.float32))
    if linked.sel:
        st.session_state[SELECTION_KEY] = {"key": pid, "shapes": linked.sel}
    if linked.view is not None:
        st.session_state[VIEW_KEY] = {"key": pid, "color": coloring, "cx": linked.view[0], "cy": linked.view[1],
                                      "span": linked.view[2], "above": linked.above}
click = st.session_state.get(CLICK_KEY)
z_click = None
if click is not None and len(click["z"]) == d and tuple(click["plane"]) == tuple(plane.labels):
    z_click = np.asarray(click["z"], np.float32)
pinned = None if z_click is None else tuple(plane.project(z_click[None])[0])
rested = st.session_state.get(VIEW_KEY)
rested = rested if rested and rested["key"] == pid else None
start_view = None if rested is None else {k: rested[k] for k in ("cx", "cy", "span")} | {
    "above": rested["above"] if rested["color"] == coloring else None}

# the points' plane coordinates as the browser gets them (float32): a selection is counted on exactly these
xy = None if points is None else np.asarray(plane.project(points.mu), np.float32)
stored = st.session_state.get(SELECTION_KEY)
shapes = stored["shapes"] if stored and stored["key"] == pid and umap_xy is None else None

# the points' colours: their class, or one known factor's values in bins
point_labels, colour_names, colours = (None if points is None else points.labels), names, CLASS_COLORS
if coloring in factor_choices:
    factor = coloring.removeprefix("factor:")
    point_labels, colour_names, colours = factor_colouring(
        sel.data.factors[:, sel.data.factor_names.index(factor)], factor)

# --- the plane ------------------------------------------------------------------------------------------------
common = dict(class_names=colour_names, colors=colours, prior_box=autoencoder, klass=klass,
              on_klass=lambda: on_klass(PLANE_KEY))
if umap_xy is not None:
    st.markdown("**UMAP of the test set's μ** · hover a point for its image, click it to pick it")
    lo, hi = umap_xy.min(axis=0), umap_xy.max(axis=0)
    latent_plane(sel, plane, float((hi - lo).max()) / 2 * 1.05, key=UMAP_KEY, xy=umap_xy,
                 labels=point_labels if coloring in factor_choices else sel.data.test_labels.numpy(),
                 class_names=colour_names, colors=colours, decode=False,
                 picked=picked["index"] if picked and picked["split"] == "test" else None,
                 on_pick=lambda: on_pick(UMAP_KEY), center=tuple((lo + hi) / 2), axis_titles=("UMAP 1", "UMAP 2"))
    st.markdown(f"**The {decoded_on} plane** · decoded under the pointer (UMAP has no fast inverse)")
    events = latent_plane(sel, plane, extent, key=PLANE_KEY, pad=True, pinned=pinned,
                          on_pin=lambda: on_pin(PLANE_KEY, plane), **common)
else:
    events = latent_plane(sel, plane, extent, key=PLANE_KEY, xy=xy, labels=point_labels,
                          segments=points and points.segments, pad=True, pinned=pinned, picked=picked_at,
                          select=True, selection=shapes, color_by=color_by, view=start_view,
                          on_pin=lambda: on_pin(PLANE_KEY, plane), on_pick=lambda: on_pick(PLANE_KEY),
                          on_select=lambda: on_select(PLANE_KEY),
                          on_view=lambda: on_view(PLANE_KEY, pid, coloring), **common)
if autoencoder:
    st.caption(f"An autoencoder's codes are not pulled toward N(0, I), so this map spans them (±{extent:g}). "
               "The dashed square is [-3, 3]², where a VAE's prior puts its mass: move between the clusters "
               "to see what the decoder draws in the holes.")

view_url.write(view_url.MapView(
    model=sel.info.name, points=st.session_state.get(POINTS_KEY), color=coloring,
    proj={v: k for k, v in view_url.PROJECTIONS.items()}[view] if d > 2 else None,
    dims=dims if d > 2 and decoded_on == "Two dims" else None,
    view=None if rested is None else (rested["cx"], rested["cy"], rested["span"]),
    above=None if start_view is None else start_view["above"],
    pin=None if z_click is None else (click["x"], click["y"]),
    pick=None if picked is None else (picked["split"], picked["index"]), sel=shapes or []))

# --- what the server adds: the selection's panel, the picked point's neighbours, the pinned spot, the drawn digit --
if shapes and points is not None:
    rows = selection_rows(points, xy, shapes)
    if rows is not None:
        selection_panel(points, rows)
if picked_at is not None and umap_xy is None:
    st.markdown("**The picked point's nearest neighbours**")
    neighbours_panel(points, picked_at)

c_pin, c_near, c_drawn = st.columns([3, 2, 4], gap="medium")
with c_pin:
    st.markdown("**Pinned**")
    if z_click is None:
        st.caption("Click empty space on the plane (or press Enter there) to pin a position.")
    else:
        image(inference.decode(sel.model, z_click, klass)[0], caption="decoded", width=140)
        st.markdown(f"(x, y) = ({click['x']:.3f}, {click['y']:.3f})" + (
            "" if d == 2 else "  \nz = [" + ", ".join(f"{v:.2f}" for v in z_click) + "]"))
        if klass is not None:
            every = inference.decode(sel.model, np.repeat(z_click[None], n_classes, 0), np.arange(n_classes))
            st.image(to_png_bytes(tile(every, 2), 2), caption="every class in this style", output_format="PNG")
with c_near:
    if z_click is not None and has_data:
        i = inference.nearest(mu, z_click)
        st.markdown("**Nearest test image**")
        image(to_display(sel.data.test_images[i]), caption=f"#{i} · class {class_names[int(sel.data.test_labels[i])]} · "
                                                        f"distance {np.linalg.norm(mu[i] - z_click):.2f}")
    if picked is not None:
        images, labels = shared.split_images(sel.data, picked["split"])
        i = picked["index"]
        st.markdown("**Picked point**")
        image(to_display(images[i]), caption=f"#{i}" + ("" if picked["split"] == "test" else " (train)")
              + f" · class {class_names[int(labels[i])]}")
with c_drawn:
    st.markdown(f"**Drawn {drawing.split()[1]}**")
    if not drawable:
        st.caption("The pad draws in grey, and this model takes colour: upload your images on Reconstruct.")
    elif events.drawn is None:
        st.caption(f"Draw {drawing} on the pad: its μ moves on the map as you draw, with its σ ellipse.")
    else:
        drawn_panel(sel, events.drawn)

if has_data:
    st.download_button("Latents as CSV", lambda: latent_views.latents_csv_bytes(sel),
                       file_name=f"{sel.info.name}_test_latents.csv", mime="text/csv", on_click="ignore",
                       help="index, label, mu_0..mu_{d-1}, sigma_0..sigma_{d-1} per test image")

# Built only once opened: the replay is a 2–3 MB Plotly figure, and Plotly's 4.7 MB script would load with it, both
# in the way of the plane's first paint (most of a new session's wait for it under load).
history = st.expander("Training history: replay, KL per dimension, active units", key=HISTORY_KEY, on_change="rerun")
if history.open:
    with history:
        history_view.model_history(sel)
