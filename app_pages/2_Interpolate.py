"""Interpolate: walk through the latent space between two inputs and watch the decoder morph one into the other."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import latent_views, map_overlays, session_keys
from ui.images import tile, to_gif_bytes, to_png_bytes
from ui.latent_plane import Mark
from ui.plots import PATH_COLOR
from ui.shared import Selection, open_page
from vae_core import inference, preprocess, typicality
from vae_core.data import to_display

SOURCES = ("Test images", "Points clicked on the Latent Map", "Uploaded images")
METHODS = {"linear": "Linear (straight line)", "spherical": "Spherical (slerp, great circle)"}
STRIP_SCALE = 3
GIF_SCALE = 8
GIF_FRAME_MS = 120


def _thumbnail(image: np.ndarray, caption: str) -> None:
    st.image(to_png_bytes(image, scale=4), caption=caption, width=112)


def _test_endpoint(sel: Selection, side: str, default_index: int) -> tuple[np.ndarray, str]:
    images, labels = sel.data.test_images, sel.data.test_labels.numpy()
    how = st.radio("Pick", ("By index", "Random of a class"), key=f"interp_how_{side}", horizontal=True)
    if how == "By index":
        key = f"interp_index_{side}"
        if st.session_state.get(key, 0) >= len(images):  # a smaller test set after switching models
            st.session_state[key] = len(images) - 1
        index = int(st.number_input("Test image index", 0, len(images) - 1, default_index, key=key))
    else:
        cls = st.selectbox("Class", range(len(sel.data.class_names)), key=f"interp_class_{side}",
                           format_func=lambda c: sel.data.class_names[c], index=default_index % len(sel.data.class_names))
        seed_key = f"interp_seed_{side}"
        if st.button("Draw another", key=f"interp_draw_{side}"):
            st.session_state[seed_key] = st.session_state.get(seed_key, 0) + 1
        members = np.flatnonzero(labels == cls)
        index = int(np.random.default_rng(st.session_state.get(seed_key, 0)).choice(members))
    label = f"test #{index} ({sel.data.class_names[labels[index]]})"
    _thumbnail(to_display(images[index]), label)
    return sel.mu[index], label


def _test_endpoints(sel: Selection) -> list[tuple[np.ndarray, str]]:
    columns = st.columns(2)
    ends = []
    for column, side, default in zip(columns, "AB", (0, 1)):
        with column:
            st.markdown(f"**{side}**")
            ends.append(_test_endpoint(sel, side, default))
    return ends


def _clicked_endpoints(sel: Selection, drawn_class: int | None) -> list[tuple[np.ndarray, str]] | None:
    clicked = [np.asarray(z, np.float32) for z in st.session_state.get(session_keys.CLICKED_LATENTS) or []]
    usable = [z for z in clicked if z.shape == (sel.latent_dim,)]
    if len(usable) < 2:
        more = "two points" if not usable else "one more point"
        st.info(f"Click {more} on the **Latent Map** page (with this model, d = {sel.latent_dim}); "
                "the last two clicked points become the ends of the path.")
        return None
    ends = [(usable[-2], "second-last click"), (usable[-1], "last click")]
    columns = st.columns(2)
    for column, (z, label), side in zip(columns, ends, "AB"):
        with column:
            st.markdown(f"**{side}**")
            _thumbnail(inference.decode(sel.model, z, drawn_class)[0], f"{label}: {map_overlays.vector_text(z)}")
    return ends


def _upload_endpoints(sel: Selection) -> list[tuple[np.ndarray, str]] | None:
    columns = st.columns(2)
    ends = []
    for column, side in zip(columns, "AB"):
        with column:
            upload = st.file_uploader(f"Image {side}", type=map_overlays.UPLOAD_TYPES,
                                      key=f"interp_upload_{side}",
                                      max_upload_size=preprocess.MAX_UPLOAD_BYTES // 2**20)
            if upload is None:
                st.caption("PNG, JPG, BMP, GIF or WebP of a single digit or drawing.")
                continue
            results, errors = preprocess.preprocess_many([(upload.name, upload.getvalue())])
            for message in errors:
                st.error(message)
            if results:
                image = results[0].image[None]
                mu, _ = inference.encode(sel.model, image, typicality.likely_labels(sel.model, image))
                _thumbnail(results[0].image, f"{upload.name}, preprocessed")
                ends.append((mu[0], upload.name))
    if len(ends) < 2:
        st.info("Upload one usable image for A and one for B.")
        return None
    return ends


def main() -> None:
    sel = open_page("Interpolate", "Interpolate",
                    "Pick two inputs, walk between their latent codes and decode every step. Linear interpolation "
                    "cuts straight across; spherical (slerp) keeps the norm near the prior's shell.")

    sources = SOURCES if sel.data is not None else SOURCES[1:]  # no test images without the model's data
    source = st.radio("Endpoints", sources, horizontal=True, key="interp_source")
    drawn_class = None
    if sel.conditional:  # z holds only the style: the path is drawn in one class
        drawn_class = st.selectbox("Class drawn along the path", range(len(sel.class_names)), key="interp_class",
                                   format_func=lambda c: sel.class_names[c],
                                   help="A conditional VAE decodes z together with a class; the ends' styles are "
                                        "blended, the class stays.")
    if source == SOURCES[0]:
        ends = _test_endpoints(sel)
    elif source == SOURCES[1]:
        ends = _clicked_endpoints(sel, drawn_class)
    else:
        ends = _upload_endpoints(sel)

    left, right = st.columns(2)
    steps = left.slider("Steps", 2, 30, 10, key="interp_steps")
    method = right.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True, key="interp_method")
    if ends is None:
        st.stop()
    (z0, label0), (z1, label1) = ends

    path = inference.interpolate(z0, z1, steps, method)
    frames = inference.decode(sel.model, path, drawn_class)
    strip = tile(frames, padding=2)
    strip_png = to_png_bytes(strip, scale=STRIP_SCALE)
    st.subheader(f"{label0} → {label1}")
    st.image(strip_png, caption=f"{steps} steps, {method}")
    gif = to_gif_bytes(list(frames), scale=GIF_SCALE, duration_ms=GIF_FRAME_MS)

    side_col, map_col = st.container(), st.container()  # the live plane needs the full width for its side panel
    with side_col:
        st.image(gif, caption="the morph, as the GIF download plays it", width=GIF_SCALE * 28)
        a, b = st.columns(2)
        a.download_button("Strip (PNG)", strip_png, "interpolation.png", "image/png", key="interp_dl_png",
                          on_click="ignore", width="stretch")
        b.download_button("Morph (animated GIF)", gif, "interpolation.gif", "image/gif", key="interp_dl_gif",
                          on_click="ignore", width="stretch")
        norms = np.linalg.norm(path, axis=1)
        st.caption(f"‖z‖ along the path: {norms.min():.2f} – {norms.max():.2f} "
                   f"(under the prior N(0, I) a typical ‖z‖ is about √d = {np.sqrt(sel.latent_dim):.2f}).")
    with map_col:
        if sel.latent_dim < 2:
            st.caption("A 1-D latent space has no plane to draw the path on.")
        else:
            plane = latent_views.default_plane(sel)
            xy = plane.project(path)
            map_overlays.overlay_plane(sel, plane, "interp_plane", [Mark(path=xy.tolist(), dots=True, color=PATH_COLOR)],
                                       reach=xy)
            st.caption(f"{method} path, A (large dot) → B. Move over the plane to decode any spot; click empty space "
                       "to pin it: the last two pins are the **Clicked points** endpoints.")
            note = map_overlays.view_note(sel)
            if note:
                st.caption(f"{note} A straight path stays straight in this view; a great circle need not look like one.")

main()
