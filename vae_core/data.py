"""Datasets held in memory as uint8 tensors (N, C, H, W), whichever source they come from (`vae_core.datasets`:
the MNIST family's files, the bundled test splits, the embedded sample, the user's imported sets), and the two
layouts images take: the model's NCHW floats in [0, 1], and the display layout, channels last with the channel
axis dropped for greyscale ((…, H, W) grey, (…, H, W, 3) colour)."""
from __future__ import annotations

import os

import numpy as np
import torch

from .datasets import SOURCES
from .datasets.base import (DATA_DIR_ENV, DEFAULT_DATA_DIR, OFFLINE_ENV, SHA_PATTERN, DatasetInfo, DatasetUnavailable,
                            DataSource, ImageDataset, resolve_data_dir, valid_name)
from .datasets.mnist import BUNDLED_DIR, BUNDLED_FILES, RAW_FILES, SAMPLE, TORCHVISION_DATASETS, missing_files
from .datasets.sample import SAMPLE_SPLIT_SEED, SAMPLE_TEST_SIZE

__all__ = [
    "BUNDLED_DIR", "BUNDLED_FILES", "DATA_DIR_ENV", "DEFAULT_DATA_DIR", "OFFLINE_ENV", "RAW_FILES", "SAMPLE",
    "SHA_PATTERN", "SAMPLE_SPLIT_SEED", "SAMPLE_TEST_SIZE", "TORCHVISION_DATASETS", "DataSource", "DatasetInfo",
    "DatasetUnavailable", "ImageDataset", "UnknownDataset", "as_model_input", "available_datasets", "class_names",
    "dataset_info", "display_shape", "known_datasets", "load_dataset", "load_test_set", "missing_files",
    "resolve_data_dir", "to_display", "to_float", "valid_name",
]


class UnknownDataset(DatasetUnavailable, ValueError):
    """No source serves this name (a typo, or an imported set since removed)."""


def _source(name: str) -> DataSource:
    if valid_name(name):
        for source in SOURCES:
            if source.serves(name):
                return source
    raise UnknownDataset(f"unknown dataset {str(name)[:64]!r}; choose one of {', '.join(known_datasets())}")


def known_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Every dataset name some source serves, whether or not its images are here."""
    return [name for source in SOURCES for name in source.names(data_dir)]


def available_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Datasets usable for training right now without a download: the sample, those whose files are on disk and the
    imported sets."""
    return [name for source in SOURCES for name in source.available(data_dir)]


def dataset_info(name: str) -> DatasetInfo:
    """What a dataset is (classes, image shape, ...) without loading its images; UnknownDataset for a name no source
    serves."""
    return _source(name).info(name)


def class_names(name: str) -> tuple[str, ...]:
    """The class names of a dataset, known without loading it (a conditional model is sized by their number)."""
    return dataset_info(name).class_names


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
    """Load a dataset by name, training and test images. A built-in set's files already in the data dir are used;
    else torchvision downloads them, unless `download` is False or $VAE_OFFLINE is set."""
    return _source(name).load(name, data_dir, download)


def load_test_set(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None,
                  sha: str | None = None) -> ImageDataset:
    """A dataset whose test split is certain to be that dataset's own (the full dataset when its files are on disk,
    else a bundled test split without training images, else whatever `load_dataset` can get), and, given the `sha` a
    checkpoint recorded, the very images its model was trained on. Raises DatasetUnavailable rather than hand back
    another dataset."""
    data = _source(name).load_test(name, data_dir, download)
    if sha is not None and data.sha != sha:
        raise DatasetUnavailable(f"the dataset {name} here is not the one the model was trained on: it was imported "
                                 f"again with other images (content {str(data.sha)[:12]}, the model's "
                                 f"{str(sha)[:12]}); import the model's images again under another name to see them")
    return data


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, C, H, W) in [0, 1], the model's input."""
    return images.float().div_(255.0)


def display_shape(image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The display layout of one image of model shape (C, H, W): (H, W) for C = 1, else (H, W, C)."""
    c, h, w = image_shape
    return (h, w) if c == 1 else (h, w, c)


def to_display(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Images (…, C, H, W), uint8 or float, in display layout as a C-contiguous numpy array of the same dtype:
    (…, H, W) for C = 1, else (…, H, W, C)."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.ndim < 3:
        raise ValueError(f"expected images shaped (…, C, H, W), got {x.shape}")
    return np.ascontiguousarray(x[..., 0, :, :] if x.shape[-3] == 1 else np.moveaxis(x, -3, -1))


def _nchw(x: torch.Tensor, image_shape: tuple[int, int, int] | None) -> torch.Tensor:
    """x in NCHW or display layout, one image or a batch, as (N, C, H, W); ValueError when it is neither."""
    if image_shape is None:  # without a shape to go by: 2-D and 3-D are greyscale (H, W) and (N, H, W)
        if x.ndim in (2, 3):
            return x.reshape(-1, 1, *x.shape[-2:])
        if x.ndim == 4:
            return x.permute(0, 3, 1, 2) if x.shape[-1] in (3, 4) and x.shape[1] not in (1, 3, 4) else x
    else:
        c, h, w = (int(n) for n in image_shape)
        one = display_shape((c, h, w))
        if x.ndim in (3, 4) and tuple(x.shape[-3:]) == (c, h, w):
            return x.reshape(-1, c, h, w)
        if x.ndim in (len(one), len(one) + 1) and tuple(x.shape[x.ndim - len(one):]) == one:
            x = x.reshape(-1, *one)
            return x[:, None] if c == 1 else x.permute(0, 3, 1, 2)
    wanted = "(N, C, H, W) or (N, H, W)" if image_shape is None else tuple(image_shape)
    raise ValueError(f"expected images shaped {wanted} or their display layout, one or a batch, got {tuple(x.shape)}")


def as_model_input(images: np.ndarray | torch.Tensor, image_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """One image or a batch, NCHW or display layout, uint8 or float in [0, 1] -> float (N, C, H, W) in [0, 1].

    `image_shape` (C, H, W), the model's, tells the layouts apart; without it 2-D and 3-D arrays are greyscale.
    Floats are clamped, not rounded to 256 levels, so an upload or a decoded image keeps its detail."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    x = _nchw(x, image_shape)
    x = x.contiguous()
    return to_float(x) if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0)
