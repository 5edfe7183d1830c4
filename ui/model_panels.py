"""One model at a glance, for side-by-side comparisons: its latent map, decoded grid, prior samples,
reconstructions and numbers, with the dataset's classifier (where it has one) as the judge of what the decoder draws.

Cached by checkpoint path and modification time, so a model is drawn once per server however often it is compared."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import streamlit as st

from ui import shared
from ui.images import rgb_cells, tile
from ui.latent_plane import latent_plane
from ui.plots import code_extent
from vae_core import evaluate, inference
from vae_core.checkpoint import CheckpointInfo
from vae_core.classifier import CONFIDENT, probabilities
from vae_core.data import ImageDataset, to_display, to_float
from vae_core.projection import decode_plane
from vae_core.snapshots import Snapshot, example_indices, map_indices, take_snapshot

GRID_N = 12
PRIOR_DRAWS = 1000  # prior samples the classifier judges per model: the share's standard error stays under 1.6 %
IW_SAMPLES = 50
POSTERIOR_METRICS = ("elbo", "kl", "iw_logpx", "active_units")


@dataclass(frozen=True)
class Panel:
    snapshot: Snapshot  # map points, reconstructions of the fixed inputs, 16 prior samples
    grid: np.ndarray | None  # (n, n, H, W[, 3]) decoded over [-3, 3]² of the snapshot's plane; None for d = 1
    grid_confidence: np.ndarray | None  # (n, n) the classifier's top class probability per cell; None without one
    confident_share: float | None  # share of PRIOR_DRAWS prior samples the classifier reads with ≥ CONFIDENT
    in_prior_box: float  # share of the test set's codes with every coordinate in [-3, 3], where N(0, I) lives
    squared_error: float  # Σ over pixels of (x − x̂)² per test image, x̂ the decoded mean: comparable across likelihoods


@st.cache_data(show_spinner="Drawing the models…", max_entries=64)
def _panel(path: str, stamp: float, dataset: str, label: int | None, judge: tuple[str, float] | None,
           _info: CheckpointInfo, _data: ImageDataset) -> Panel:
    model = shared.load_model(_info)
    codes = inference.encode(model, _data.test_images, _data.test_labels)[0]
    in_box = float((np.abs(codes) <= inference.GRID_EXTENT).all(axis=1).mean())
    snap = take_snapshot(model, _data, len(_info.history), map_indices(len(_data.test_images)),
                         example_indices(_data.test_labels))
    grid = decode_plane(model, snap.plane, GRID_N, label=label) if model.latent_dim >= 2 else None
    confidence = share = None
    if judge is not None:
        classifier = shared.classifier(dataset)
        if grid is not None:
            confidence = probabilities(classifier, grid.reshape(-1, *grid.shape[2:])).max(1).reshape(GRID_N, GRID_N)
        draws = inference.sample_prior(model, PRIOR_DRAWS, seed=1)
        share = float((probabilities(classifier, draws).max(1) >= CONFIDENT).mean())
    return Panel(snap, grid, confidence, share, in_box, squared_error(model, _data))


def squared_error(model, data: ImageDataset, batch: int = 1000) -> float:
    """Mean over the test images of Σ (x − x̂)², x̂ the decoded posterior mean: where the likelihoods' nats differ
    (a Bernoulli's against a Gaussian's), the squared error still compares reconstructions."""
    total = 0.0
    for start in range(0, len(data.test_images), batch):
        images = data.test_images[start:start + batch]
        labels = None if data.test_labels is None else data.test_labels[start:start + batch]
        x = to_display(to_float(images)).reshape(len(images), -1)
        total += float(((inference.reconstruct(model, images, labels).reshape(len(images), -1) - x) ** 2).sum())
    return total / len(data.test_images)


def panel(info: CheckpointInfo, data: ImageDataset, label: int | None = None) -> Panel:
    """The model's panel on its own test split; `label` picks the class a conditional model's grid draws. Judged by
    its dataset's classifier when there is one (drawn again once one is trained)."""
    return _panel(str(info.path), shared.stamp(info.path), info.dataset,
                  label if info.model_class.conditional else None, shared.classifier_file(info.dataset), info, data)


@st.cache_data(show_spinner="Measuring test metrics…", max_entries=64)
def _metrics(path: str, stamp: float, dataset: str, _info: CheckpointInfo,
             _data: ImageDataset | None) -> tuple[dict[str, float] | None, str]:
    stored = _info.metrics
    wanted = ("recon", *POSTERIOR_METRICS) if _info.model_class.probabilistic else ("recon",)
    if all(isinstance(stored.get(k), (int, float)) and math.isfinite(stored[k]) for k in wanted):
        k = stored.get("iw_samples")
        return dict(stored), f"stored at training (k = {k})" if k and "iw_logpx" in wanted else "stored at training"
    if _data is None:
        return None, "not measured: no test images"
    measured = evaluate.evaluate(shared.load_model(_info), _data.test_images, _data.test_labels, iw_samples=IW_SAMPLES)
    return measured, f"measured here (k = {IW_SAMPLES})" if "iw_logpx" in wanted else "measured here"


def metrics(info: CheckpointInfo, data: ImageDataset | None) -> tuple[dict[str, float] | None, str]:
    """The metrics this kind has: stored in the checkpoint when complete, else measured on the model's own test
    split (None when that is missing), and where they came from."""
    return _metrics(str(info.path), shared.stamp(info.path), info.dataset, info, data)


def live_map(info: CheckpointInfo, snap: Snapshot, data: ImageDataset, label: int | None, key: str,
             group: str | None, sent: dict[str, list[int]] | None = None) -> None:
    """The snapshot's map on the live plane in its compact form (decoded under the pointer, hover shows the test
    image); an autoencoder's codes on their own extent with the prior's square drawn on top. `sent` ({split: image
    indices}, a selection made on the Latent Map) adds those images, encoded by this model, and fades the rest."""
    probabilistic = info.model_class.probabilistic
    model = shared.load_model(info)
    sel = shared.Selection(info=info, model=model, data=data, data_notice=None, mu=None, sigma=None)
    xy, labels, indices = [snap.points], [snap.labels], [map_indices(len(data.test_images))]
    counts = {"test": len(snap.points), "train": 0}
    for split in shared.SPLITS:  # in this order: the test segment holds the map's points and the sent test images
        chosen = np.asarray((sent or {}).get(split, []), np.int64)
        if not len(chosen):
            continue
        images, split_labels = shared.split_images(data, split)
        chosen = chosen[(chosen >= 0) & (chosen < len(split_labels))]
        mu = inference.encode(model, images[chosen], split_labels[chosen])[0]
        xy.append(snap.plane.project(mu))
        labels.append(split_labels[chosen].numpy())
        indices.append(chosen)
        counts[split] += len(chosen)
    highlight = None
    if sent:
        highlight = np.zeros(sum(counts.values()), bool)
        highlight[len(snap.points):] = True
    latent_plane(sel, snap.plane, inference.GRID_EXTENT if probabilistic else code_extent(snap.points), key=key,
                 xy=np.concatenate(xy), labels=np.concatenate(labels), indices=np.concatenate(indices),
                 segments=tuple((s, n) for s, n in counts.items() if n), highlight=highlight,
                 class_names=data.class_names, show_grid=False, prior_box=not probabilistic, klass=label,
                 compact=True, group=group)


def grid_picture(grid: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
    """The decoded grid as one RGB picture (H, W, 3) with 1-px white gaps; cells the classifier does not read with
    confidence (top probability < CONFIDENT) tinted red, when `confidence` is given."""
    cells = rgb_cells(grid)
    if confidence is not None:
        doubtful = (confidence < CONFIDENT)[..., None, None, None]
        cells = np.where(doubtful, 0.55 * cells + 0.45 * np.float32([0.9, 0.1, 0.1]), cells)
    return tile(cells, padding=1)
