"""The test set's live latent plane (ui.latent_plane) with things drawn on top: paths, encoded uploads, posterior ellipses.

Overlays are drawn in `latent_views.default_plane`, the Latent Map's starting view (the latent axes for d = 2,
else the plane of the test μ's top two principal components), so a point sits where it would on the Latent Map.
Also what the two pages that draw on it (Interpolate, Reconstruct) share: the accepted upload types and
how a latent vector is written out.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import latent_views, session_keys
from ui.latent_plane import Mark, PlaneEvents, latent_plane, pinned_record
from ui.plots import code_extent
from ui.shared import Selection
from vae_core.inference import GRID_EXTENT
from vae_core.projection import LatentPlane

MAX_RECENT = 10  # pinned latents kept for the Interpolate page
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


def overlay_plane(sel: Selection, plane: LatentPlane, key: str, marks: list[Mark],
                  reach: np.ndarray | None = None) -> PlaneEvents:
    """The test set's posterior means on `plane` in the live plane (decoded under the pointer), with the page's
    marks; the view spans `reach` (the marks' plane coordinates: uploads may land far out). Pins there join the
    latents the Interpolate page can use as endpoints."""
    xy = None if sel.data is None else plane.project(sel.mu)
    # a VAE's view is the prior's square (a few outlying codes go off it); an autoencoder's spans its codes
    spans = [a for a in (None if sel.model.probabilistic else xy, reach) if a is not None and len(a)]
    extent = code_extent(np.concatenate(spans)) if spans else GRID_EXTENT
    return latent_plane(sel, plane, extent, key=key, xy=xy,
                        labels=None if xy is None else sel.data.test_labels.numpy()[:len(xy)],
                        class_names=sel.class_names, show_grid=False, marks=tuple(marks),
                        on_pin=lambda: pin_to_latents(key, plane))


def pin_to_latents(key: str, plane: LatentPlane) -> None:
    """A pin's callback: the pinned latent joins the ones the Interpolate page can use as endpoints."""
    record = pinned_record(st.session_state[key]["pin"], plane)
    if record is not None:
        remember_latent(np.asarray(record["z"], np.float32))


def remember_latent(z: np.ndarray) -> None:
    recent = st.session_state.get(session_keys.CLICKED_LATENTS, [])
    st.session_state[session_keys.CLICKED_LATENTS] = [*recent, z][-MAX_RECENT:]
