"""How typical an image is for a model: its −ELBO, and where that falls among the test set's −ELBOs.

A VAE's −ELBO upper-bounds −log p(x), so images unlike the training data tend to cost more nats.
It is a heuristic OOD score, not a test: likelihood models can give *simpler* foreign images
a higher likelihood than their own data (Nalisnick et al., 2019), so unusually low values are
reported too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import as_model_input
from .evaluate import device_of, eval_mode
from .loss import gaussian_kl
from .models import LatentModel

DEFAULT_SAMPLES = 4
OOD_PERCENTILE = 99.0


def _nelbo(model: LatentModel, x: torch.Tensor, y: torch.Tensor | None, eps: torch.Tensor) -> torch.Tensor:
    """−ELBO of each row of x given labels y, with the shared draws eps (samples, 1, d); the reconstruction cost of
    the code itself for a deterministic one."""
    q = model.encode(x, y)
    if q.logvar is None:
        return model.recon_nll(model.decode(q.mean, y), x)
    return model.sampled_recon_nll(q, x, y, eps).mean(0) + gaussian_kl(q.mean, q.logvar)


def per_image_nelbo(
    model: LatentModel, images: np.ndarray | torch.Tensor, samples: int = DEFAULT_SAMPLES, seed: int = 0,
    batch_size: int = 500,
) -> np.ndarray:
    """How many nats each image costs the model, float64 (N,): −ELBO (β = 1) averaged over `samples` draws of
    z ~ q(z|x); for a deterministic code (ae, dae) its reconstruction cost; for a conditional model, which is not
    told the class, −log Σ_y p(y)·exp ELBO(x|y) with a uniform p(y), itself a bound on −log p(x).

    Every image uses the same standard-normal draws (z = μ + σ·ε_s): an upload scores the same alone or
    with others, and uploads and the test set are scored with the same draws (common random numbers).
    The price: the Monte-Carlo noise of a set's *mean* does not shrink with the set's size.
    """
    if model.conditional:
        per_class = torch.as_tensor(per_class_nelbo(model, images, samples, seed, batch_size))
        k = per_class.shape[1]
        return (-(torch.logsumexp(-per_class, dim=1) - np.log(k))).numpy()
    return _scores(model, images, samples, seed, batch_size, None)[:, 0]


def per_class_nelbo(model: LatentModel, images: np.ndarray | torch.Tensor, samples: int = DEFAULT_SAMPLES,
                    seed: int = 0, batch_size: int = 500) -> np.ndarray:
    """−ELBO(x | y) of each image under each class y of a conditional model, float64 (N, classes)."""
    if not model.conditional:
        raise ValueError(f"a {model.title} takes no class")
    return _scores(model, images, samples, seed, batch_size, model.config.n_classes)


def likely_labels(model: LatentModel, images: np.ndarray | torch.Tensor) -> np.ndarray | None:
    """For a conditional model, the class under which each image costs the fewest nats (what to condition an
    unlabelled upload on); None for the other kinds, which take no class."""
    return per_class_nelbo(model, images).argmin(axis=1) if model.conditional else None


def shared_draws(model: LatentModel, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> torch.Tensor:
    """The standard-normal draws (samples, 1, d) every image is scored with, on the model's device."""
    if samples < 1:
        raise ValueError("samples must be at least 1")
    return torch.randn(samples, 1, model.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device_of(model))


@torch.no_grad()
def _scores(model: LatentModel, images: np.ndarray | torch.Tensor, samples: int, seed: int, batch_size: int,
            n_classes: int | None) -> np.ndarray:
    """(N, n_classes) −ELBO under each class, or (N, 1) unconditioned, with shared draws."""
    x_all = as_model_input(images, model.config.image_shape)
    device = device_of(model)
    eps = shared_draws(model, samples, seed)
    out = []
    with eval_mode(model):
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size].to(device)
            labels = [None] if n_classes is None else [torch.full((len(x),), c, device=device) for c in range(n_classes)]
            out.append(torch.stack([_nelbo(model, x, y, eps) for y in labels], dim=1).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes or 1))


def percentile_among(reference: np.ndarray, values: np.ndarray | float) -> np.ndarray:
    """Percent of `reference` at or below each value (0..100): 99 means costlier than 99 % of the test set."""
    ref = np.sort(np.asarray(reference, np.float64).ravel())
    if ref.size == 0:
        raise ValueError("the reference distribution is empty")
    return 100.0 * np.searchsorted(ref, np.asarray(values, np.float64), side="right") / ref.size


@dataclass(frozen=True)
class Typicality:
    """One image's −ELBO placed among the test set's."""

    nelbo: float
    percentile: float  # percent of test images with a −ELBO at or below this one
    high: float  # −ELBO at the OOD percentile of the test set
    low: float  # −ELBO at the mirrored low percentile

    @property
    def ood(self) -> bool:
        """Costlier than all but (100 − OOD percentile) % of the test set: likely not from the training distribution."""
        return self.nelbo > self.high

    @property
    def unusually_low(self) -> bool:
        """Cheaper than nearly every test image: often a blank or very simple image, not a better digit."""
        return self.nelbo < self.low


def assess(reference: np.ndarray, values: np.ndarray, ood_percentile: float = OOD_PERCENTILE) -> list[Typicality]:
    """Typicality of each value against the reference −ELBOs (e.g. the test set's)."""
    if not 50.0 < ood_percentile < 100.0:
        raise ValueError("ood_percentile must lie between 50 and 100")
    ref = np.asarray(reference, np.float64)
    high, low = (float(v) for v in np.percentile(ref, [ood_percentile, 100.0 - ood_percentile]))
    values = np.asarray(values, np.float64).ravel()
    pct = percentile_among(ref, values)
    return [Typicality(float(v), float(p), high, low) for v, p in zip(values, pct)]
