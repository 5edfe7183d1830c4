"""Cached views of the chosen model's latent space: PCA, decoded grids, the latents CSV, a process-wide UMAP registry.

Everything is keyed by the checkpoint's path and modification time (plus the dataset), so a retrained
model gets fresh views and a click never recomputes encodings, PCA or UMAP; UMAP embeddings are also stored on
disk, keyed by the checkpoint's and the test images' content. (Streamlit leaves arguments
whose names start with '_' out of cache keys: those carry the unhashable objects, the others the identity.)
"""
from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from ui.images import tile, to_png_bytes
from ui.shared import Selection, shown_path, stamp, trained_dir
from vae_core import inference, projection, typicality, umap_view
from vae_core.projection import LatentPlane, fit_pca
from vae_core.projection import decode_plane
from vae_core.umap_view import UmapJob

if TYPE_CHECKING:
    from sklearn.decomposition import PCA  # imported by fit_pca on first use

GRID_PAD = 2  # pixels between cells of the downloadable grid


def model_key(sel: Selection) -> tuple[str, int, str]:
    return str(sel.info.path), stamp(sel.info.path), sel.info.dataset


@st.cache_data(show_spinner=False, max_entries=16)
def _pca(key: tuple, _mu: np.ndarray) -> PCA:
    return fit_pca(_mu, 2)


def pca(sel: Selection) -> PCA:
    """The top two principal components of the test set's μ."""
    return _pca(model_key(sel), sel.mu)


@st.cache_data(show_spinner=False, max_entries=16)
def _default_plane(key: tuple, _mu: np.ndarray) -> LatentPlane:
    return projection.default_plane(_mu.shape[1], _mu)


def default_plane(sel: Selection) -> LatentPlane:
    """projection.default_plane of the test set's μ, fitted once per model."""
    if sel.mu is None:  # nothing fitted, so nothing worth caching
        return projection.default_plane(sel.latent_dim)
    return _default_plane(model_key(sel), sel.mu)


def plane_key(plane: LatentPlane) -> tuple[bytes, bytes]:
    return np.asarray(plane.origin, np.float32).tobytes(), np.asarray(plane.axes, np.float32).tobytes()


@st.cache_data(show_spinner="Decoding the grid…", max_entries=64)
def _grid(key: tuple, plane_id: tuple, n: int, extent: float, label: int | None, _sel: Selection,
          _plane: LatentPlane) -> bytes:
    return to_png_bytes(tile(decode_plane(_sel.model, _plane, n, extent, label), GRID_PAD))


def decoded_grid(sel: Selection, plane: LatentPlane, n: int, extent: float = inference.GRID_EXTENT,
                 label: int | None = None) -> bytes:
    """The n×n grid over [-extent, extent]² of `plane` (of class `label` for a conditional model) as a PNG with thin
    gaps between cells, decoded and encoded once per plane and size."""
    return _grid(model_key(sel), plane_key(plane), n, float(extent), label, sel, plane)


@st.cache_data(show_spinner="Scoring the test set once for this model…", max_entries=16)
def _test_nelbo(key: tuple, _sel: Selection) -> np.ndarray:
    return typicality.per_image_nelbo(_sel.model, _sel.data.test_images)


def test_nelbo(sel: Selection) -> np.ndarray | None:
    """Per-image −ELBO of the whole test set (the reference for typicality), computed once per model, or None when
    the model's test set is not to be had."""
    if sel.data is None:
        return None
    return _test_nelbo(model_key(sel), sel)


def latents_csv(mu: np.ndarray, sigma: np.ndarray, labels: np.ndarray, index: np.ndarray | None = None,
                split: np.ndarray | None = None, nelbo: np.ndarray | None = None, float_format: str = "%.6g") -> bytes:
    """index, [split,] label, mu_0..mu_{d-1}, sigma_0..sigma_{d-1}[, nelbo]: one row per image (`index` its index in
    its split, default 0..N-1)."""
    d = mu.shape[1]
    names = [*(f"mu_{k}" for k in range(d)), *(f"sigma_{k}" for k in range(d))]
    table = pd.DataFrame(np.hstack([mu, sigma]), columns=names,
                         index=pd.Index(np.arange(len(mu)) if index is None else np.asarray(index), name="index"))
    table.insert(0, "label", np.asarray(labels))
    if split is not None:
        table.insert(0, "split", np.asarray(split))
    if nelbo is not None:
        table["nelbo"] = np.asarray(nelbo)
    return table.to_csv(float_format=float_format, lineterminator="\n").encode()


@st.cache_data(show_spinner=False, max_entries=8)
def _csv(key: tuple, _sel: Selection) -> bytes:
    return latents_csv(_sel.mu, _sel.sigma, _sel.data.test_labels.numpy())


def latents_csv_bytes(sel: Selection) -> bytes:
    """The test set's latent coordinates as CSV (index, label, mu_*, sigma_*)."""
    return _csv(model_key(sel), sel)


@st.cache_data(show_spinner=False, max_entries=16)
def _umap_key(key: tuple, _sel: Selection) -> str:
    return umap_view.embedding_key(umap_view.file_digest(_sel.info.path), _sel.data.test_images.numpy())


def umap_cache_dir() -> Path:
    """Where embeddings computed by the app are kept across restarts: beside the models trained in the app,
    so just as git-ignored."""
    return trained_dir() / ".umap"


@st.cache_resource(show_spinner=False)
def _umap_registry() -> tuple[dict[str, UmapJob], threading.Lock]:
    return {}, threading.Lock()


def _stored_or_started(sel: Selection, key: str) -> UmapJob:
    computed = umap_cache_dir() / f"{key}.npz"
    for path in (umap_view.shipped_path(sel.info.path), computed):
        embedding = umap_view.load_embedding(path, key)
        if embedding is not None:
            return UmapJob.loaded(embedding, shown_path(path))
    return UmapJob(sel.mu, on_done=partial(umap_view.save_embedding, computed, key, model=sel.info.path.name,
                                           dataset=sel.data.name)).start()


def umap_job(sel: Selection) -> UmapJob:
    """The UMAP of this model's test-set μ, shared by every session in the process: the shipped or a stored
    embedding when one was made from the same checkpoint bytes and test images, else a started job that stores
    its result."""
    jobs, lock = _umap_registry()
    key = _umap_key(model_key(sel), sel)
    with lock:
        if key not in jobs:
            jobs[key] = _stored_or_started(sel, key)
        return jobs[key]
