"""A small MNIST classifier: the app's judge of decoded images (is this sample a digit the classifier reads with
confidence?), which makes "the AE's latent space has holes" a number. Trained by `python -m vae_core classifier`."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointError, load_payload, write_payload
from .data import ImageDataset, as_model_input, to_float
from .evaluate import eval_mode

FORMAT = "latent-explorer-classifier"
CONFIDENT = 0.9  # a decoded image counts as a readable digit when the classifier gives one class this probability


class Classifier(nn.Sequential):
    """Two conv-pool stages and a small dense head: ~100k weights (~0.4 MB), ≥ 98 % on the MNIST test set."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, n_classes),
        )
        self.n_classes = n_classes


def fit_classifier(data: ImageDataset, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                   on_epoch=None) -> Classifier:
    """Adam with a cosine decay over `epochs`, on the uint8 images kept as they are (batches are indexed)."""
    torch.manual_seed(seed)
    model = Classifier(len(data.class_names))
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
    """(N, classes) class probabilities of float images (N, 28, 28) in [0, 1] or uint8 images."""
    x = as_model_input(images)
    with eval_mode(model):
        return torch.cat([F.softmax(model(x[s:s + batch_size]), dim=1) for s in range(0, len(x), batch_size)]).numpy()


def accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((probabilities(model, images).argmax(1) == labels.numpy()).mean())


def confident_share(model: Classifier, images: np.ndarray, threshold: float = CONFIDENT) -> float:
    """The share of images the classifier reads as some class with probability ≥ threshold."""
    return float((probabilities(model, images).max(1) >= threshold).mean())


def save_classifier(path: str | os.PathLike, model: Classifier, dataset: str, test_accuracy: float) -> Path:
    return write_payload(Path(path), {"format": FORMAT, "dataset": dataset, "n_classes": model.n_classes,
                                      "test_accuracy": float(test_accuracy),
                                      "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})


def load_classifier(path: str | os.PathLike) -> tuple[Classifier, dict]:
    """The classifier and its metadata (dataset, test_accuracy); CheckpointError naming the file otherwise."""
    path = Path(path)
    payload = load_payload(path, FORMAT, "classifier")
    n_classes = payload.get("n_classes")
    if not isinstance(n_classes, int) or not 2 <= n_classes <= 100:
        raise CheckpointError(f"{path}: not a usable classifier (n_classes {n_classes!r})")
    model = Classifier(n_classes)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: classifier weights do not match its layers") from exc
    return model.eval(), {k: payload.get(k) for k in ("dataset", "test_accuracy")}
