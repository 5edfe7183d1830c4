"""The MNIST family (MNIST, Fashion-MNIST, KMNIST): the four IDX files in the data folder, read directly, else
downloaded by torchvision; offline, the test splits of MNIST and Fashion-MNIST bundled with the package."""
from __future__ import annotations

import gzip
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .base import (DATA_DIR_ENV, OFFLINE_ENV, DatasetInfo, DatasetUnavailable, DataSource, ImageDataset,
                   resolve_data_dir)

DIGITS = tuple(str(i) for i in range(10))
# name -> (torchvision class name, folder under the data dir, class names)
TORCHVISION_DATASETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mnist": ("MNIST", "MNIST", DIGITS),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": ("KMNIST", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGE_SHAPE = (1, 28, 28)
# The official test splits (10,000 images each) of the datasets the shipped models use, so every model is shown
# its own data offline. They are the original IDX files gzipped reproducibly (6.0 MB in all), made once with
#   for d in MNIST FashionMNIST; do for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
#     gzip -9n < $VAE_DATA_DIR/$d/raw/$f > vae_core/bundled/$d/$f.gz; done; done
# and checked byte for byte against the full data by tests/test_datasets_mnist.py. Licences: bundled/README.md.
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
BUNDLED_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SAMPLE = "mnist-sample"  # named in the messages here: offline, the embedded sample is what can be trained on


def read_idx(path: Path, dims: int) -> np.ndarray:
    """A uint8 IDX file, gzipped when its name ends in .gz: magic 0 0 8 `dims`, `dims` big-endian int32 sizes, then
    the bytes. ValueError names the file when it is not that (a truncated or foreign file)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if data[:4] != bytes((0, 0, 8, dims)) or len(data) != 4 + 4 * dims + math.prod(shape):
        raise ValueError(f"{path.name} is not a uint8 IDX file of {dims} dimensions with all its bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def grey(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W), as IDX files and torchvision hold them, as (N, 1, H, W) (a copy: IDX arrays are read-only)."""
    x = images.to(torch.uint8) if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images, np.uint8))
    return x.reshape(len(x), 1, *x.shape[1:]).contiguous()


def labels(values: np.ndarray | torch.Tensor) -> torch.Tensor:
    return values.to(torch.int64) if isinstance(values, torch.Tensor) else torch.from_numpy(np.array(values, np.int64))


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    raw = resolve_data_dir(data_dir) / TORCHVISION_DATASETS[name][1] / "raw"
    return [raw / f for f in RAW_FILES if not (raw / f).exists()]


def _dataset(name: str, train_x, train_y, test_x, test_y, source: str) -> ImageDataset:
    return ImageDataset(
        name=name, train_images=grey(train_x), train_labels=labels(train_y), test_images=grey(test_x),
        test_labels=labels(test_y),
        class_names=TORCHVISION_DATASETS[name][2], source=source, digit_like=True,
    )


@lru_cache(maxsize=4)
def _load_raw(name: str, root: str) -> ImageDataset:
    """The four IDX files read directly: the same tensors torchvision makes, without its ~1.6 s import."""
    folder = TORCHVISION_DATASETS[name][1]
    raw = Path(root) / folder / "raw"
    try:
        arrays = [read_idx(raw / f, 3 if "images" in f else 1) for f in RAW_FILES]
    except (OSError, ValueError) as exc:
        raise DatasetUnavailable(f"{name} is not available: {exc}. Put the four uncompressed IDX files "
                                 f"({', '.join(RAW_FILES)}) in {raw} again, or delete them to download them") from exc
    return _dataset(name, *arrays, source=f"full {name} from {Path(root) / folder}")


@lru_cache(maxsize=4)
def _load_torchvision(name: str, root: str, download: bool) -> ImageDataset:
    from torchvision import datasets  # imported here: torchvision is slow to import and the sample does not need it

    cls_name, folder, _ = TORCHVISION_DATASETS[name]
    cls = getattr(datasets, cls_name)
    try:
        train = cls(root=root, train=True, download=download)
        test = cls(root=root, train=False, download=download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... depending on what failed
        missing = missing_files(name, root)
        where = Path(root) / folder / "raw"
        listed = ", ".join(p.name for p in missing) or ", ".join(RAW_FILES)
        raise DatasetUnavailable(
            f"{name} is not available ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}). "
            f"Missing files: {listed}. Put the four uncompressed IDX files in {where} "
            f"or point --data-dir / ${DATA_DIR_ENV} at a folder that holds {folder}/raw/; "
            f"offline, use the embedded '{SAMPLE}'."
        ) from exc
    return _dataset(name, train.data, train.targets, test.data, test.targets,
                    source=f"full {name} from {Path(root) / folder}")


def _has_bundle(name: str) -> bool:
    return all((BUNDLED_DIR / TORCHVISION_DATASETS[name][1] / f).is_file() for f in BUNDLED_FILES)


@lru_cache(maxsize=2)
def _load_bundled(name: str) -> ImageDataset:
    folder = BUNDLED_DIR / TORCHVISION_DATASETS[name][1]
    try:
        images = read_idx(folder / BUNDLED_FILES[0], 3)
        labels = read_idx(folder / BUNDLED_FILES[1], 1)
    except (OSError, EOFError, ValueError) as exc:  # a truncated checkout or a Git LFS pointer instead of the file
        raise DatasetUnavailable(f"the bundled {name} test split in {folder} is damaged ({exc}); "
                                 f"reinstall Latent Explorer or put the full {name} in the data folder") from exc
    return _dataset(name, np.empty((0, *images.shape[1:]), np.uint8), np.empty(0, np.int64), images, labels,
                    source=f"bundled {name} test split: the official {len(labels):,} test images shipped with "
                           "Latent Explorer")


class MnistFamily(DataSource):
    def names(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        return list(TORCHVISION_DATASETS)

    def available(self, data_dir: str | os.PathLike | None = None) -> list[str]:
        return [n for n in TORCHVISION_DATASETS if not missing_files(n, data_dir)]

    def info(self, name: str) -> DatasetInfo:
        return DatasetInfo(name=name, class_names=TORCHVISION_DATASETS[name][2], image_shape=IMAGE_SHAPE,
                           digit_like=True)

    def load(self, name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
        """Files already in the data dir are used; else torchvision downloads them, unless `download` is False or
        $VAE_OFFLINE is set."""
        root = resolve_data_dir(data_dir)
        if not missing_files(name, root):
            return _load_raw(name, str(root.resolve()))
        if download is None:
            download = not os.environ.get(OFFLINE_ENV)
        return _load_torchvision(name, str(root.resolve()), bool(download))

    def load_test(self, name: str, data_dir: str | os.PathLike | None = None,
                  download: bool | None = None) -> ImageDataset:
        """The full dataset when its files are on disk, else the bundled test split (no training images, and no
        download tried), else whatever `load` can get."""
        if not missing_files(name, data_dir):
            return self.load(name, data_dir, download=False)
        if _has_bundle(name):
            return _load_bundled(name)
        return self.load(name, data_dir, download)


SOURCE = MnistFamily()
