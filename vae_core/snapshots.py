"""What a model looks like right now: its latent map in 2-D, reconstructions of fixed inputs and samples from fixed z.

Used by the live training view (one snapshot per epoch) and by the β comparison (one per model).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import inference
from .data import ImageDataset, to_display
from .models import LatentModel
from .projection import LatentPlane, default_plane

MAP_POINTS = 2000  # test points re-encoded per snapshot: enough to see the clusters, cheap enough to do every epoch
N_EXAMPLES = 8
N_SAMPLES = 16
PRIOR_SEED = 0


def map_indices(n_total: int, n: int = MAP_POINTS, seed: int = 0) -> np.ndarray:
    """A fixed, sorted random subset of the test set for the latent map."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def example_indices(labels: np.ndarray | torch.Tensor, n: int = N_EXAMPLES) -> np.ndarray:
    """The first test image of each class in turn (0, 1, 2, …), so the fixed examples show different classes."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in classes]
    picked = firsts[:n]
    taken = set(picked)
    rest = [i for i in range(len(labels)) if i not in taken][: n - len(picked)]
    return np.asarray(picked + rest, dtype=np.int64)


@dataclass(frozen=True)
class Snapshot:
    epoch: int
    points: np.ndarray  # (N, 2) projected posterior means of the map subset
    labels: np.ndarray  # (N,) class of each point
    plane: LatentPlane  # projection.default_plane of the posterior means
    # images in display layout, (n, H, W) grey or (n, H, W, 3) colour, in [0, 1]
    originals: np.ndarray  # (8, …)
    reconstructions: np.ndarray  # (8, …)
    samples: np.ndarray  # (16, …) decoded from the same seeded z every time


def take_snapshot(model: LatentModel, data: ImageDataset, epoch: int, map_idx: np.ndarray,
                  example_idx: np.ndarray) -> Snapshot:
    """Everything the live view draws, as numpy arrays (inference leaves the model in the mode it found it in)."""
    map_idx, example_idx = torch.as_tensor(map_idx), torch.as_tensor(example_idx)
    mu, _ = inference.encode(model, data.test_images[map_idx], data.test_labels[map_idx])
    plane = default_plane(model.latent_dim, mu)  # a PCA plane is fitted anew per snapshot, its signs fixed
    originals = data.test_images[example_idx]
    return Snapshot(
        epoch=epoch,
        points=plane.project(mu),
        labels=data.test_labels[map_idx].numpy(),
        plane=plane,
        originals=to_display(originals).astype(np.float32) / 255.0,
        reconstructions=inference.reconstruct(model, originals, data.test_labels[example_idx]),
        samples=inference.sample_prior(model, N_SAMPLES, seed=PRIOR_SEED),
    )
