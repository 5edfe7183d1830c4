"""Home: the chosen model at a glance, which data is in use, and a short tour of the pages."""
from __future__ import annotations

import streamlit as st

from ui import imports, latent_views, shared
from ui.navigation import HOME, PAGES

st.set_page_config(page_title="Latent Explorer", layout="wide")

TOUR_GRID = 12


st.title("Latent Explorer")
st.markdown("Train variational autoencoders, look at the latent space they learn, and decode any point of it. "
            "Pick a model in the sidebar; every page uses the same choice.")

sel = shared.current_selection()
if sel is None:
    st.info("No trained model yet. Train one on the Train page, or run "
            "`python -m vae_core train --dataset mnist-sample "
            "--epochs 5 --out checkpoints/first.pt`.")
else:
    info = sel.info
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Dataset", info.dataset)
    m2.metric("Latent size d", info.model_config.latent_dim)
    m3.metric("β", f"{info.beta:g}")
    m4.metric("Test −ELBO", f"{info.test_elbo:.1f} nats" if info.test_elbo is not None else "not measured",
              help="Negative evidence lower bound on the test set at β = 1, nats per image; lower is better.")
    if sel.data is not None:
        st.caption(f"Data in use: {sel.data.source} ({len(sel.data.test_images):,} test images).")
    tour, text = st.columns([2, 3], gap="large")
    with tour:
        d = sel.latent_dim
        if d >= 2:
            plane = latent_views.default_plane(sel)
            drawn = 0 if sel.conditional else None  # a conditional model draws one class across its style plane
            grid_png = latent_views.decoded_grid(sel, plane, TOUR_GRID, label=drawn)
            what = f" (class {sel.class_names[drawn]})" if drawn is not None else ""
            st.image(grid_png, width="stretch",
                     caption=f"What {info.name} draws{what} across [-3, 3]² of {plane.labels[0]} / {plane.labels[1]}")
    with text:
        st.subheader("A short tour")
        st.markdown(
            "A VAE squeezes each image into a small code **z** (the latent vector) and learns to draw an image "
            "back from any code. The grid at the left decodes evenly spaced codes: nearby codes draw similar "
            "images, and the prior N(0, I) keeps the useful codes inside [-3, 3].\n\n"
            "On the **Latent Map** every test image is a dot at its code; click empty space to see what the "
            "model draws there. Larger latent sizes reconstruct better but need a projection to look at."
        )
        for page in PAGES:
            if page is HOME:
                continue
            c_link, c_blurb = st.columns([1, 3], vertical_alignment="center")
            c_link.page_link(page.file, label=page.title, icon=page.icon)
            c_blurb.caption(page.blurb)

with st.expander("Import your own model (ONNX)"):
    imports.import_form()
