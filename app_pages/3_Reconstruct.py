"""Reconstruct: upload your own images and see how the model reads them.

Each file made into an input the way the model's dataset was made (MNIST's normalisation for digits, a square crop
and resize for any other set), step by step, its reconstruction, where its posterior lands on the latent map, and
how typical its −ELBO is among the test set's.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui import latent_views, map_overlays, shared, uploads
from ui.latent_plane import Mark
from ui.session_keys import DRAWN_DIGITS
from ui.images import GRID_PAD_VALUE, tile, tint, to_png_bytes
from ui.shared import Selection, open_page
from vae_core import inference, preprocess, typicality
from vae_core.checkpoint import CheckpointInfo
from vae_core.config import DEFAULT_PATCH_SIDE, parse_noise, parse_patch
from vae_core.corruption import corrupt, hidden_patches
from vae_core.data import as_model_input, to_display
from vae_core.ellipses import ellipse, projected_covariances

EXAMPLES_KEY = "recon_examples"
ELLIPSES = {"1σ": 1.0, "2σ": 2.0, "none": 0.0}
OOD_PERCENTILES = (90.0, 95.0, 99.0, 99.9)
THUMB = 104  # px, the height of each preprocessing step
PER_ROW = 6  # pictures a row of a card holds: 6 × THUMB fits three quarters of the page at 1400 px
DOWNLOAD_SCALE = 8
NOISES = ("none", "mask ν", "Gaussian σ", "patches ρ")
# the denoising picture, and the masked AE for hidden patches, when the shipped models are there
CONTRASTS = ("mnist_ae_z2", "mnist_dae_z2", "mnist_z2", "mnist_mae_z20")


def example_files(sel: Selection, digit_like: bool) -> list[tuple[str, bytes]]:
    """Three real test images of different classes, fed through the same path as uploads: one as stored, one drawn
    larger (digits as dark ink on white paper at 8× size, which exercises inversion and cropping; any other set's at
    8× size, which exercises the resize)."""
    labels = sel.data.test_labels.numpy()
    picks: list[int] = []
    for i in np.random.default_rng(0).permutation(len(labels)):
        if labels[i] not in labels[picks] or len(set(labels.tolist())) < 3:
            picks.append(int(i))
        if len(picks) == 3:
            break
    files = []
    for n, i in enumerate(picks):
        image = to_display(sel.data.test_images[i])
        name = f"test #{i} ({sel.data.class_names[labels[i]]})"
        if n == 1 and digit_like:
            files.append((f"{name} as ink on paper.png", to_png_bytes(255 - np.pad(image, 10), scale=8)))
        elif n == 1:
            files.append((f"{name} at 8× size.png", to_png_bytes(image, scale=8)))
        else:
            files.append((f"{name}.png", to_png_bytes(image)))
    return files


def score_name(probabilistic: bool) -> str:
    """What an image is scored by: a VAE's −ELBO, else (an autoencoder, no posterior) its reconstruction loss."""
    return "−ELBO" if probabilistic else "reconstruction loss"


def _verdict(t: typicality.Typicality, ood_percentile: float, name: str) -> None:
    line = f"{name} **{t.nelbo:.1f} nats**, costlier than {t.percentile:.1f} % of the test set"
    if t.ood:
        st.warning(f"{line}. Beyond the {ood_percentile:g}th percentile ({t.high:.1f} nats): "
                   "unusual for this model, probably unlike its training data.", icon="⚠️")
    elif t.unusually_low:
        st.info(f"{line}. Among the cheapest {100 - ood_percentile:g} % (below {t.low:.1f} nats): easier than nearly "
                f"every test image; blank or very simple inputs do that, so a low {name} is no proof of a digit.")
    else:
        st.success(f"{line}: typical for this model.")


def noise_control(side: int) -> str:
    """"" or the corruption asked for, as vae_core.corruption reads it ("mask:0.5", "gauss:0.3", "patch:0.75:7");
    patches are at most `side` px, the images' side."""
    c_kind, c_level, c_side, _ = st.columns([3, 2, 1, 2])
    choice = c_kind.radio("Corrupt the inputs", NOISES, horizontal=True, key="recon_noise",
                          help="The same corruption a denoising autoencoder is trained on; every model below gets the "
                               "same corrupted pixels. Hiding whole patches is the masked autoencoder's corruption: "
                               "the hidden patches are drawn blue, and each model fills them in.")
    if choice == NOISES[0]:
        return ""
    if choice == NOISES[1]:
        return f"mask:{c_level.slider('ν: share of pixels zeroed', 0.1, 0.9, 0.5, 0.05, key='recon_nu'):g}"
    if choice == NOISES[2]:
        return f"gauss:{c_level.slider('σ of the added noise', 0.1, 1.0, 0.3, 0.05, key='recon_sigma'):g}"
    share = c_level.slider("ρ: share of patches hidden", 0.1, 0.9, 0.75, 0.05, key="recon_rho")
    k = c_side.number_input("patch side k", 1, side, min(DEFAULT_PATCH_SIDE, side), key="recon_patch")
    return f"patch:{share:g}:{int(k)}"


def corrupted_inputs(clean: np.ndarray, noise: str, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The inputs every model is given (display layout) under one seeded corruption, so they are compared on the same
    pixels, and how to show them: hidden patches tinted, other corruptions as they are."""
    x = as_model_input(clean, image_shape)
    generator = torch.Generator().manual_seed(0)
    if parse_noise(noise)[0] != "patch":
        images = to_display(corrupt(x, noise, generator))
        return images, images
    hidden = hidden_patches(x.shape, *parse_patch(noise), generator=generator)
    images = to_display(x * ~hidden)
    return images, tint(images, to_display(hidden))


def other_models(sel: Selection) -> list[CheckpointInfo]:
    """Models of the same dataset to reconstruct with as well; the shipped AE and denoising AE by default."""
    infos = [i for i in shared.checkpoints()[0] if i.dataset == sel.info.dataset and i.name != sel.info.name]
    names = [i.name for i in infos]
    chosen = st.multiselect("Also reconstruct with", names, key="recon_others",
                            default=[n for n in CONTRASTS if n in names],
                            format_func=lambda n: f"{n} ({shared.kind_label(next(i for i in infos if i.name == n))})",
                            help="AE vs denoising AE vs VAE on the same (corrupted) inputs: the denoising picture; "
                                 "with patches hidden, the masked AE (mnist_mae_z20) fills them in.")
    return [i for i in infos if i.name in chosen]


def _steps(result: preprocess.PreprocessResult, how: uploads.UploadStyle) -> list[tuple[np.ndarray, str, bool]]:
    """What happened to an upload, as (picture, caption, is a model-sized image to upscale): for digits MNIST's
    steps, for any other set the original, the square it keeps and the input at the set's size."""
    side = how.side
    if how.digit_like:
        return [(result.original, "original", False),
                (result.grayscale, "grayscale, inverted" if result.inverted else "grayscale", False),
                (result.cropped, "cropped", False),
                (result.image, f"{side}×{side} input", True)]
    return [(result.original, "original", False),
            (result.cropped, "padded to a square" if how.pad else "centre square", False),
            (result.image, f"resized to {side}×{side}", True)]


def _card(number: int, result: preprocess.PreprocessResult, how: uploads.UploadStyle, corrupted: np.ndarray | None,
          noise: str, recons: list[tuple[np.ndarray, str]], mu: np.ndarray, sigma: np.ndarray,
          score: typicality.Typicality | None, ood_percentile: float, probabilistic: bool) -> None:
    recon = recons[0][0]
    with st.container(border=True):
        st.markdown(f"**{number}. {result.name}**")
        given = [
            *_steps(result, how),
            *([(corrupted, f"{'hidden patches, blue' if parse_noise(noise)[0] == 'patch' else 'corrupted'} ({noise})",
                True)] if corrupted is not None else []),
        ]
        scale = uploads.scale_for(how.side, THUMB)
        images_column, text_column = st.columns([3, 1])
        # What the models were given on one row, what each gave back on the next, PER_ROW slots a row: one row of
        # everything overlapped its pictures once it held eight (four steps, the corrupted input, three models).
        with images_column:
            rows = [given[i:i + PER_ROW] for i in range(0, len(given), PER_ROW)]
            rows += [[(image, caption, True) for image, caption in recons[i:i + PER_ROW]]
                     for i in range(0, len(recons), PER_ROW)]
            for row in rows:
                for column, (image, caption, model_sized) in zip(st.columns(PER_ROW), row):
                    h, w = image.shape[:2]
                    # same height for every step: a tall crop is shown narrower rather than taller
                    column.image(to_png_bytes(image, scale=scale if model_sized else 1), caption=caption,
                                 width=max(8, round(THUMB * min(1.0, w / h))), output_format="PNG")
        with text_column:
            if score is not None:
                _verdict(score, ood_percentile, score_name(probabilistic))
            st.caption(f"μ = {map_overlays.vector_text(mu)}, σ = {map_overlays.vector_text(sigma)}" if probabilistic
                       else f"z = {map_overlays.vector_text(mu)} (an autoencoder's code is a point: no spread to show)")
            st.download_button("Reconstruction (PNG)", to_png_bytes(recon, scale=DOWNLOAD_SCALE),
                               f"reconstruction_{number}.png", "image/png", key=f"recon_dl_{number}", on_click="ignore")


def _histogram(reference: np.ndarray, scores: list[typicality.Typicality], name: str) -> go.Figure:
    """The test set's −ELBOs (or reconstruction losses), each image as a numbered marker above them (staggered so close
    ones stay readable)."""
    fig = go.Figure(go.Histogram(x=reference, nbinsx=60, name="test set", marker_color="#9aa7b8",
                                 hovertemplate="%{y} test images<extra></extra>"))
    top = float(np.histogram(reference, bins=60)[0].max())
    order = np.argsort([t.nelbo for t in scores])
    levels = np.empty(len(scores))
    levels[order] = top * (1.12 + 0.14 * (np.arange(len(scores)) % 3))
    fig.add_trace(go.Scatter(
        x=[t.nelbo for t in scores], y=levels, mode="markers+text", text=[str(i + 1) for i in range(len(scores))],
        textposition="middle right", marker={"symbol": "triangle-down", "size": 11,
                                             "color": ["#d62728" if t.ood else "#111111" for t in scores]},
        hovertemplate="image %{text}: %{x:.1f} nats<extra></extra>",
    ))
    fig.add_vline(x=scores[0].high, line_dash="dash", line_color="#d62728",
                  annotation_text="flag above", annotation_position="top left")
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False,
                      xaxis_title=f"{name} (nats per image)", yaxis_title="test images", bargap=0.02)
    return fig


def main() -> None:
    sel = open_page("Reconstruct", "Reconstruct your own images")
    how = uploads.style(sel.info)
    what = "digits" if how.digit_like else "images"
    st.caption(f"Each file is {how.steps()}, then encoded, decoded and scored. Files stay in memory and are never "
               "stored.")

    chosen = st.file_uploader("Images (PNG, JPG, BMP, GIF, WebP)", type=map_overlays.UPLOAD_TYPES,
                              accept_multiple_files=True,
                              key="recon_uploads", max_upload_size=preprocess.MAX_UPLOAD_BYTES // 2**20)
    a, b, c, _ = st.columns([1, 1, 1, 2])
    if sel.data is not None and a.button(f"Try with 3 test {what}", key="recon_try"):
        st.session_state[EXAMPLES_KEY] = True
    if st.session_state.get(EXAMPLES_KEY) and b.button("Remove the examples", key="recon_clear"):
        st.session_state[EXAMPLES_KEY] = False
    if st.session_state.get(DRAWN_DIGITS) and c.button("Remove the drawn digits", key="recon_clear_drawn",
                                                       help="Digits sent from the Latent Map's drawing pad"):
        st.session_state[DRAWN_DIGITS] = []

    files = [(f.name, f.getvalue()) for f in chosen or []]
    files += [(f"drawn digit {i + 1}.png", png) for i, png in enumerate(st.session_state.get(DRAWN_DIGITS, []))]
    if st.session_state.get(EXAMPLES_KEY) and sel.data is not None:
        files += example_files(sel, how.digit_like)
    if not files:
        st.info("Upload one or more images of digits (a photo of a digit drawn on paper works), "
                "or press **Try with 3 test digits**." if how.digit_like else
                f"Upload one or more images like those of {sel.info.dataset}, or press **Try with 3 test images**.")
        st.stop()

    results, errors = uploads.preprocess_uploads(sel.info, files)
    for message in errors:
        st.error(message)
    if not results:
        st.stop()

    clean = np.stack([r.image for r in results])
    image_shape = sel.info.model_config.image_shape
    noise = noise_control(image_shape[-1])
    images, shown = corrupted_inputs(clean, noise, image_shape) if noise else (clean, clean)
    labels = typicality.likely_labels(sel.model, images)  # what a conditional model is told: its likeliest class
    mu, sigma = inference.encode(sel.model, images, labels)
    recons = inference.decode(sel.model, mu, labels)
    others = other_models(sel)
    mine = shared.kind_label(sel.info) if others else "reconstruction"
    by_model = [[(r, mine + ("" if labels is None else f", as {sel.class_names[c]}")) for r, c in
                 zip(recons, labels if labels is not None else [None] * len(recons))]]
    for info in others:
        model = shared.load_model(info)
        their_labels = typicality.likely_labels(model, images)
        by_model.append([(r, shared.kind_label(info)) for r in inference.reconstruct(model, images, their_labels)])

    left, right = st.columns(2)
    name = score_name(sel.model.probabilistic)
    ood_percentile = left.select_slider(f"Flag as unusual above this percentile of the test set's {name}",
                                        OOD_PERCENTILES, value=99.0, key="recon_ood")
    k = (ELLIPSES[right.radio("Posterior ellipse", list(ELLIPSES), horizontal=True, key="recon_ellipse")]
         if sel.model.probabilistic else 0.0)  # an autoencoder's code has no σ to draw
    reference = latent_views.test_nelbo(sel)
    scores = ([None] * len(images) if reference is None else
              typicality.assess(reference, typicality.per_image_nelbo(sel.model, images), ood_percentile))

    map_col, hist_col = st.container(), st.container()  # the live plane needs the full width for its side panel
    with map_col:
        if sel.latent_dim < 2:
            st.caption("A 1-D latent space has no plane to draw on.")
        else:
            plane = latent_views.default_plane(sel)
            centres = plane.project(mu)
            marks = []
            if k:
                marks += [Mark(path=ellipse(c, cov, k).tolist(), closed=True, fill="rgba(255, 200, 0, 0.35)")
                          for c, cov in zip(centres, projected_covariances(plane.axes, sigma))]
            marks += [Mark(at=c.tolist(), label=str(i + 1)) for i, c in enumerate(centres)]
            reach = np.concatenate([centres, *(m.path for m in marks if m.path)])
            map_overlays.overlay_plane(sel, plane, "recon_plane", marks, reach=reach)
            note = map_overlays.view_note(sel)
            if note:
                st.caption(f"{note} Each ellipse is the exact projection of that image's diagonal-Gaussian "
                           "posterior onto this plane.")
    with hist_col:
        if reference is not None:
            st.plotly_chart(_histogram(reference, scores, name), key="recon_hist")
            st.caption(f"Test set: {len(reference):,} images, median {name} {np.median(reference):.1f} nats. "
                       f"A model's {name} is only a heuristic out-of-distribution score.")
        grid = tile(np.stack([images, recons], axis=1), padding=1, pad_value=GRID_PAD_VALUE)
        st.download_button("All inputs and reconstructions (PNG)", to_png_bytes(grid, scale=DOWNLOAD_SCALE),
                           "reconstructions.png", "image/png", key="recon_dl_all",
                           on_click="ignore")

    for number, (result, *row) in enumerate(zip(results, shown, zip(*by_model), mu, sigma, scores), start=1):
        corrupted, recon_row, *rest = row
        _card(number, result, how, corrupted if noise else None, noise, list(recon_row), *rest, ood_percentile,
              sel.model.probabilistic)


main()
