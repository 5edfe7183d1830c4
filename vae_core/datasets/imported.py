"""The user's own image sets, imported once into a store (`vae_core.importer`: `python -m vae_core data add`) as
uint8 arrays of one side and channel count, with a manifest naming their classes and content hash.

An unlabelled set (a flat folder; labels -1 and no class names in the store) is served as one class, UNLABELLED,
with labels 0, so everything that groups or colours by class works on it; `labelled` False says they mean nothing."""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from .. import importer
from .base import DatasetInfo, DatasetUnavailable, DataSource, ImageDataset

UNLABELLED = ("unlabelled",)


def _info(manifest) -> DatasetInfo:
    return DatasetInfo(name=manifest.name, class_names=tuple(manifest.class_names) if manifest.labelled else UNLABELLED,
                       image_shape=(int(manifest.channels), int(manifest.side), int(manifest.side)),
                       labelled=bool(manifest.labelled), pad=bool(manifest.settings.get("pad")),
                       sha=str(manifest.sha))


def _labels(values, labelled: bool) -> torch.Tensor:
    labels = torch.from_numpy(values).to(torch.int64)
    return labels if labelled else torch.zeros_like(labels)


@lru_cache(maxsize=2)
def _load(name: str, sha: str, root: str | None) -> ImageDataset:
    """Keyed by the content hash, so a set removed and imported again under the same name is read afresh."""
    manifest = importer.find_imported(name, root)
    if manifest is None or manifest.sha != sha:
        raise DatasetUnavailable(f"the imported dataset {name} changed while it was being read; try again")
    try:
        arrays = importer.load_arrays(manifest)
    except importer.ImportedDataError as exc:  # a damaged or half-deleted store entry; the message says which
        raise DatasetUnavailable(str(exc)) from exc
    info = _info(manifest)
    return ImageDataset(
        name=name,
        train_images=torch.from_numpy(arrays["train_images"]).contiguous(),
        train_labels=_labels(arrays["train_labels"], info.labelled),
        test_images=torch.from_numpy(arrays["test_images"]).contiguous(),
        test_labels=_labels(arrays["test_labels"], info.labelled),
        class_names=info.class_names,
        source=f"imported set {name}: {len(arrays['train_images']):,} train / {len(arrays['test_images']):,} test "
               f"images, {info.image_shape[1]}×{info.image_shape[2]} "
               f"{'greyscale' if info.image_shape[0] == 1 else 'colour'}",
        labelled=info.labelled,
        pad=info.pad,
        sha=info.sha,
    )


class Imported(DataSource):
    """`root`: the store's folder (None: $VAE_DATASETS_DIR, else the repository's datasets/)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = None if root is None else str(root)

    def names(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        return [m.name for m in importer.list_imported(self.root)]

    def serves(self, name: str) -> bool:
        return importer.find_imported(name, self.root) is not None

    def info(self, name: str) -> DatasetInfo:
        manifest = importer.find_imported(name, self.root)
        if manifest is None:
            raise DatasetUnavailable(f"no imported dataset named {name}")
        return _info(manifest)

    def load(self, name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
        return _load(name, self.info(name).sha, self.root)


SOURCE = Imported()
