"""What every data source hands the rest of the code: a dataset's description (known without its pixels) and its
images as uint8 tensors (N, C, H, W), plus the interface a source implements."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA_DIR = "data"
DATA_DIR_ENV = "VAE_DATA_DIR"
OFFLINE_ENV = "VAE_OFFLINE"
# A dataset's name is stored in checkpoints and shown everywhere: short, printable, no path separators, so a
# hostile checkpoint cannot smuggle anything through it.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SHA_PATTERN = re.compile(r"[0-9a-f]{8,128}")


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing and could not be downloaded; the message says what to put where."""


def valid_name(name: object) -> bool:
    """Whether `name` can name a dataset (built in or imported), whether or not such a dataset exists here."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, known without loading its images: enough to size a model and to describe it."""

    name: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    # MNIST-style: a light figure on a black field, centred by mass; an upload is then normalised like MNIST's
    # digits (vae_core.preprocess), any other set's uploads are only cropped and resized.
    digit_like: bool = False
    labelled: bool = True  # False: the labels are all 0 and mean nothing (a flat folder of images)
    pad: bool = False  # its images were padded to a square rather than cropped (uploads are made the same way)
    # The content hash of a set that can change under the same name (an imported one), recorded in checkpoints so a
    # model is never shown other images than its own; None for the built-in sets, whose content is fixed.
    sha: str | None = None
    # The dataset whose images these are, for whatever judges images of that kind (the sample's are MNIST's digits,
    # so MNIST's classifier reads them); the dataset itself unless a source says otherwise.
    family: str = ""


@dataclass(frozen=True)
class ImageDataset:
    name: str
    train_images: torch.Tensor  # uint8 (N, C, H, W)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor  # uint8 (M, C, H, W)
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str  # where the images came from, for the user
    digit_like: bool = False
    labelled: bool = True
    pad: bool = False
    sha: str | None = None
    family: str = ""
    # Known generative factors of the test images (dSprites: shape, scale, rotation, x, y), float (M, F), and their
    # names; None for sets whose factors are unknown (only class labels).
    factors: np.ndarray | None = None
    factor_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for split in ("train_images", "test_images"):
            images = getattr(self, split)
            if images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError(f"{self.name}: {split} must be uint8 (N, C, H, W), got {images.dtype} "
                                 f"{tuple(images.shape)}")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")
        if self.factors is not None and (self.factors.shape[0] != len(self.test_images) or self.factors.ndim != 2
                                         or self.factors.shape[1] != len(self.factor_names)):
            raise ValueError(f"{self.name}: factors must be (test images, factor names) = "
                             f"({len(self.test_images)}, {len(self.factor_names)}), got {self.factors.shape}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.test_images.shape[1:])


class DataSource:
    """One kind of data (the MNIST family's IDX files, the embedded sample, the user's imported sets, ...).

    A source answers for the names it `serves`; `vae_core.data` asks each registered source in turn. `load` may
    download; `load_test` must hand back the named set's own test split or raise DatasetUnavailable, never another
    set's images (what a model is shown)."""

    def serves(self, name: str) -> bool:
        return name in self.names()

    def names(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        """Every name this source serves (a built-in one even before its files are here)."""
        raise NotImplementedError

    def available(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        """The names whose training images are here now, without a download."""
        return self.names(data_dir)

    def info(self, name: str) -> DatasetInfo:
        raise NotImplementedError

    def load(self, name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
        raise NotImplementedError

    def load_test(self, name: str, data_dir: str | os.PathLike | None = None,
                  download: bool | None = None) -> ImageDataset:
        return self.load(name, data_dir, download)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $VAE_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()
