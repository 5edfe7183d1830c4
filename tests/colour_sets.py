"""Generated labelled image sets of any side and channel count, for tests and benchmarks: a filled shape (disc,
square, triangle or ring, the class) of one colour on a background of another, at a random place and size. Made in
numpy at ~1 s per 10,000 64×64 images, so nothing needs downloading.

`install_store` puts such sets behind the imported-datasets source (`vae_core.datasets.imported`), answering the
importer's API (`find_imported`, `list_imported`, `load_arrays`) from memory.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SHAPES = ("disc", "square", "triangle", "ring")


def shapes(n: int, side: int, channels: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, channels, side, side), labels int64 (n,)), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), n)
    r = rng.uniform(0.18, 0.32, (n, 1, 1)) * side
    cy, cx = (rng.uniform(0.35, 0.65, (2, n, 1, 1)) * side)
    y, x = np.mgrid[:side, :side].astype(np.float32) + 0.5
    dy, dx = y[None] - cy, x[None] - cx
    dist = np.hypot(dy, dx)
    masks = np.stack([
        dist <= r,
        (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85),
        (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6),
        (dist <= r) & (dist >= r * 0.55),
    ])[labels, np.arange(n)]  # (n, side, side)
    background = rng.uniform(0, 0.45, (n, channels, 1, 1))
    foreground = rng.uniform(0.55, 1.0, (n, channels, 1, 1))
    swap = rng.random(n) < 0.5  # light on dark or dark on light
    background[swap], foreground[swap] = foreground[swap].copy(), background[swap].copy()
    images = np.where(masks[:, None], foreground, background)
    images = images + rng.normal(0, 0.03, images.shape)
    return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8), labels.astype(np.int64)


@dataclass
class Manifest:
    """The fields of `vae_core.importer.Manifest` the data source reads."""

    name: str
    class_names: tuple[str, ...]  # () when unlabelled
    labelled: bool
    side: int
    channels: int
    sha: str  # 16 hex digits
    settings: dict  # what the import was asked for: side, channels, pad, ...
    arrays: dict[str, np.ndarray] = field(repr=False, default_factory=dict)


class ImportedDataError(Exception):
    """The importer's error for a damaged store entry."""


@dataclass
class Store:
    """In-memory stand-in for the importer's store, with its three functions and its error (labels -1 throughout
    for an unlabelled set, as the importer stores them)."""

    sets: dict[str, Manifest] = field(default_factory=dict)
    ImportedDataError = ImportedDataError

    def add(self, name: str, side: int, channels: int, n_train: int = 400, n_test: int = 100, seed: int = 0,
            labelled: bool = True, pad: bool = False) -> Manifest:
        images, labels = shapes(n_train + n_test, side, channels, seed)
        if not labelled:
            labels = np.full_like(labels, -1)
        arrays = {"train_images": images[:n_train], "train_labels": labels[:n_train],
                  "test_images": images[n_train:], "test_labels": labels[n_train:]}
        sha = hashlib.sha256(b"".join(a.tobytes() for a in arrays.values())).hexdigest()[:16]
        self.sets[name] = Manifest(name, SHAPES if labelled else (), labelled, side, channels, sha,
                                   {"side": side, "channels": channels, "pad": pad}, arrays)
        return self.sets[name]

    def remove(self, name: str) -> None:
        del self.sets[name]

    def find_imported(self, name: str, root=None) -> Manifest | None:
        return self.sets.get(name)

    def list_imported(self, root=None) -> list[Manifest]:
        return list(self.sets.values())

    def load_arrays(self, manifest: Manifest) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in manifest.arrays.items()}


def install_store(monkeypatch) -> Store:
    """An empty store behind the imported-datasets source for the test's duration (the caller clears the source's
    cache before and after: `imported._load.cache_clear()`)."""
    from vae_core.datasets import imported

    store = Store()
    monkeypatch.setattr(imported, "importer", store)
    return store
