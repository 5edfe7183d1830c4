"""Latent Explorer home: the chosen model at a glance, which data is in use, and a short tour of the pages."""
from __future__ import annotations

import ast
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from ui import latent_views, shared

st.set_page_config(page_title="Latent Explorer", layout="wide")

PAGES = Path(__file__).resolve().parent / "pages"
TOUR_GRID = 12


@st.cache_data(show_spinner=False)
def _page_blurbs(stamp: tuple) -> list[tuple[str, str, str]]:
    """(path, label, first docstring line) for every page, so the tour lists the pages that exist."""
    out = []
    for path in sorted(PAGES.glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except (OSError, SyntaxError, UnicodeDecodeError):
            doc = ""
        stem = path.stem.split("_", 1)[-1] if path.stem[0].isdigit() else path.stem  # "1_Latent_Map" -> "Latent Map"
        label = stem.replace("_", " ")
        blurb = doc.splitlines()[0] if doc else ""
        if ":" in blurb:  # "Latent Map: the test set on..." -> "The test set on..."
            blurb = blurb.split(":", 1)[1].strip()
        blurb = blurb[:1].upper() + blurb[1:]
        out.append((f"pages/{path.name}", label, blurb))
    return out


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
    if sel.data_notice:
        st.warning(f"**Data in use: the embedded {sel.data.name}** ({len(sel.data.test_images):,} test images), "
                   f"not the full {info.dataset}, which is not available here.")
        with st.expander("How to get the full dataset"):
            st.markdown(shared.data_notice_text(sel.data_notice))
    else:
        st.caption(f"Data in use: {sel.data.source} ({len(sel.data.test_images):,} test images).")

    tour, text = st.columns([2, 3], gap="large")
    with tour:
        d = sel.latent_dim
        if d >= 2:
            plane = latent_views.default_plane(sel)
            grid_png, _ = latent_views.decoded_grid(sel, plane, TOUR_GRID)
            st.image(grid_png, width="stretch",
                     caption=f"What {info.name} draws across [-3, 3]² of {plane.labels[0]} / {plane.labels[1]}")
    with text:
        st.subheader("A short tour")
        st.markdown(
            "A VAE squeezes each image into a small code **z** (the latent vector) and learns to draw an image "
            "back from any code. The grid at the left decodes evenly spaced codes: nearby codes draw similar "
            "images, and the prior N(0, I) keeps the useful codes inside [-3, 3].\n\n"
            "On the **Latent Map** every test image is a dot at its code; click empty space to see what the "
            "model draws there. Larger latent sizes reconstruct better but need a projection to look at."
        )
        pages = _page_blurbs(tuple(sorted((p.name, p.stat().st_mtime_ns) for p in PAGES.glob("*.py"))))
        for path, label, blurb in pages:
            c_link, c_blurb = st.columns([1, 3], vertical_alignment="center")
            try:
                c_link.page_link(path, label=label)
            except StreamlitPageNotFoundError:  # a page added after the server started is listed after a restart
                c_link.markdown(label)
            c_blurb.caption(blurb)
