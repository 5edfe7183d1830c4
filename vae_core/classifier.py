"""A small image classifier per labelled dataset: the app's judge of decoded images (is this sample something the
classifier reads as one class with confidence?), which makes "the AE's latent space has holes" a number. Trained by
`python -m vae_core classifier --dataset NAME --out FILE`; MNIST's ships in checkpoints/classifier/, the user's go
to the git-ignored checkpoints/trained/classifier/, and `find_classifier` looks a dataset's up in both."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, load_payload, write_payload
from .config import MAX_CHANNELS, MAX_CLASSES, MAX_IMAGE_SIDE
from .data import DatasetInfo, ImageDataset, as_model_input, to_float
from .evaluate import eval_mode

FORMAT = "latent-explorer-classifier"
CONFIDENT = 0.9  # a decoded image counts as readable when the classifier gives one class this probability
MNIST_SHAPE = (1, 28, 28)  # what classifiers saved before they recorded their image shape were trained on
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "classifier"
TRAINED_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "trained" / "classifier"


class Classifier(nn.Sequential):
    """Two conv-pool stages and a small dense head: for MNIST ~100k weights (~0.4 MB), ≥ 98 % on its test set."""

    def __init__(self, n_classes: int = 10, image_shape: tuple[int, int, int] = MNIST_SHAPE) -> None:
        c, h, w = image_shape
        super().__init__(
            nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), 64), nn.ReLU(), nn.Linear(64, n_classes),
        )
        self.n_classes = n_classes
        self.image_shape = tuple(image_shape)


def fit_classifier(data: ImageDataset, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                   on_epoch=None) -> Classifier:
    """Adam with a cosine decay over `epochs`, on the uint8 images kept as they are (batches are indexed)."""
    if not data.labelled or len(data.class_names) < 2:
        raise ValueError(f"{data.name} has no classes to learn: a classifier needs a labelled dataset")
    torch.manual_seed(seed)
    model = Classifier(len(data.class_names), data.image_shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data.train_images)
    steps = epochs * math.ceil(n / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(to_float(data.train_images[idx])), data.train_labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, accuracy(model, data.test_images, data.test_labels))
    return model.eval()


@torch.no_grad()
def probabilities(model: Classifier, images: np.ndarray | torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """(N, classes) class probabilities of images of the classifier's shape, NCHW or display layout, float in
    [0, 1] or uint8."""
    x = as_model_input(images, model.image_shape)
    with eval_mode(model):
        return torch.cat([F.softmax(model(x[s:s + batch_size]), dim=1) for s in range(0, len(x), batch_size)]).numpy()


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probabilities(model, images).argmax(1) == labels.numpy()).mean())


def confident_share(model: Classifier, images: np.ndarray, threshold: float = CONFIDENT) -> float:
    """The share of images the classifier reads as some class with probability ≥ threshold."""
    return float((probabilities(model, images).max(1) >= threshold).mean())


def save_classifier(path: str | os.PathLike, model: Classifier, data: ImageDataset, test_accuracy: float) -> Path:
    return write_payload(Path(path), {"format": FORMAT, "dataset": data.name, "dataset_sha": data.sha,
                                      "n_classes": model.n_classes, "image_shape": list(model.image_shape),
                                      "test_accuracy": float(test_accuracy),
                                      "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """The classifier and its metadata (dataset, dataset_sha, image_shape, test_accuracy); CheckpointError naming
    the file otherwise."""
    path = Path(path)
    payload = load_payload(path, FORMAT, "classifier")
    n_classes = payload.get("n_classes")
    if not isinstance(n_classes, int) or not 2 <= n_classes <= MAX_CLASSES:
        raise CheckpointError(f"{path}: not a usable classifier (n_classes {n_classes!r})")
    shape = payload.get("image_shape", list(MNIST_SHAPE))
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) for n in shape)
            and 1 <= shape[0] <= MAX_CHANNELS and all(4 <= n <= MAX_IMAGE_SIDE for n in shape[1:])):
        raise CheckpointError(f"{path}: not a usable classifier (image shape {repr(shape)[:40]})")
    with torch.device("meta"):  # the shapes its weights must have, allocating nothing
        expected = Classifier(n_classes, tuple(shape)).state_dict()
    weights = payload.get("state_dict")
    if not isinstance(weights, dict) or set(weights) != set(expected) or any(
            not isinstance(weights[k], torch.Tensor) or weights[k].shape != v.shape for k, v in expected.items()):
        raise CheckpointError(f"{path}: classifier weights do not match its layers")
    model = Classifier(n_classes, tuple(shape))
    model.load_state_dict(weights)
    return model.eval(), {"dataset": payload.get("dataset"), "dataset_sha": payload.get("dataset_sha"),
                          "image_shape": tuple(shape), "test_accuracy": payload.get("test_accuracy")}


def classifier_path(dataset: str, folder: str | os.PathLike = TRAINED_DIR) -> Path:
    """Where the classifier of `dataset` is saved in `folder` (by default the trained one)."""
    return Path(folder) / f"{dataset}.pt"


def find_classifier(info: DatasetInfo, trained_dir: str | os.PathLike = TRAINED_DIR) -> Path | None:
    """The file of a usable classifier of the dataset `info` describes (of its family's images: the sample is read
    by MNIST's), shipped or trained, or None. It must have been trained on the same name, image shape, class count
    and, for an imported set, the same content (a set imported again under the same name needs its own)."""
    name = info.family or info.name
    for folder in (SHIPPED_DIR, Path(trained_dir)):
        path = classifier_path(name, folder)
        if not path.is_file():
            continue
        try:
            model, meta = load_classifier(path)
        except CheckpointError:
            continue
        if (meta["dataset"] == name and meta["image_shape"] == tuple(info.image_shape)
                and model.n_classes == len(info.class_names) and meta["dataset_sha"] == info.sha):
            return path
    return None
