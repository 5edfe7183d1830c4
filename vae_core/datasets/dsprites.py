"""`dsprites` (64×64) and `dsprites-32` (2×2 block means, for CPU runs): dSprites generated in the process
(vae_core.dsprites), a seeded split of its grid with the shape as the class and every test image's factor values.

Training sets: the whole grid but the 10,000 test images at 32×32 (745 MB); a random third of it at 64×64 (245,760
images, 1.0 GB; the whole grid would be 2.9 GB), where neighbouring positions are a pixel apart, so every image keeps
a near neighbour. The first load renders and caches the grid (about 20 s), later ones unpack it from the cache.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from .. import dsprites
from .base import DatasetInfo, DataSource, DatasetUnavailable, ImageDataset

SIDES = {"dsprites": 64, "dsprites-32": 32}
TRAIN_SIZE = {64: dsprites.N_IMAGES // 3, 32: None}  # None: all but the test set
TEST_SIZE = dsprites.DEFAULT_TEST_SIZE


@lru_cache(maxsize=2)
def _load(name: str, with_train: bool) -> ImageDataset:
    side = SIDES[name]
    try:
        part = dsprites.split(side, train_size=TRAIN_SIZE[side] if with_train else 0, test_size=TEST_SIZE)
    except OSError as exc:  # the cache folder cannot be written (read-only, full disk)
        raise DatasetUnavailable(f"{name}: cannot cache the generated grid in {dsprites.cache_dir()} ({exc}); point "
                                 f"${dsprites.DATASETS_DIR_ENV} at a writable folder") from exc
    return ImageDataset(
        name=name,
        train_images=torch.from_numpy(part.train_images),
        train_labels=torch.from_numpy(part.train_factors[:, 0]),
        test_images=torch.from_numpy(part.test_images),
        test_labels=torch.from_numpy(part.test_factors[:, 0]),
        class_names=dsprites.SHAPES,
        source=(f"dSprites generated here at {side}×{side}: {len(part.train_images):,} train / "
                f"{len(part.test_images):,} test images of the 737,280"),
        factors=dsprites.factor_values(part.test_factors).astype(np.float32),
        factor_names=dsprites.FACTOR_NAMES,
    )


class DSprites(DataSource):
    def names(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        return list(SIDES)

    def info(self, name: str) -> DatasetInfo:
        side = SIDES[name]
        return DatasetInfo(name=name, class_names=dsprites.SHAPES, image_shape=(1, side, side))

    def load(self, name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
        return _load(name, True)

    def load_test(self, name: str, data_dir: str | os.PathLike | None = None,
                  download: bool | None = None) -> ImageDataset:
        return _load(name, False)


SOURCE = DSprites()
