"""Latent traversals: from one code, sweep each latent dimension over [-3, 3] with the others held, one row per
dimension, rows ordered by how much information the dimension carries (its mean KL over the test set), collapsed
dimensions marked. Side by side across β, this is the β-VAE's disentanglement picture."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import inference
from .evaluate import ACTIVE_UNIT_THRESHOLD, batches, device_of, eval_mode
from .models import LatentModel

STEPS = 9
EXTENT = 3.0


@dataclass(frozen=True)
class DimensionStats:
    """Per latent dimension, over a set of test images."""

    kl: np.ndarray  # (d,) mean KL(q(z_j|x) ‖ N(0, 1)) in nats; zeros for a model without a posterior
    variance: np.ndarray  # (d,) Var_x of μ_j: the active-unit statistic
    probabilistic: bool

    @property
    def collapsed(self) -> np.ndarray:
        """(d,) True where the dimension is inactive (Var_x μ_j ≤ the active-unit threshold): its posterior is the same
        for every input, so it carries nothing about the image. Only a model with a posterior can collapse."""
        if not self.probabilistic:
            return np.zeros(len(self.variance), dtype=bool)
        return self.variance <= ACTIVE_UNIT_THRESHOLD

    def order(self) -> np.ndarray:
        """Dimensions from most to least informative: by KL with a posterior, else by the code's variance (stable)."""
        key = self.kl if self.probabilistic else self.variance
        return np.argsort(-key, kind="stable")


@torch.no_grad()
def dimension_stats(model: LatentModel, images: torch.Tensor, labels: torch.Tensor | None = None,
                    batch_size: int = 5000) -> DimensionStats:
    """Mean KL and Var(μ) of every latent dimension over uint8 `images` (a conditional model is given `labels`)."""
    mus, kl_sum = [], torch.zeros(model.latent_dim, dtype=torch.float64)
    with eval_mode(model):
        for x, y in batches(images, labels if model.conditional else None, batch_size, device_of(model)):
            q = model.encode(x, y)
            mus.append(q.mean.double().cpu())
            if q.logvar is not None:
                kl_sum += (0.5 * (q.mean.pow(2) + q.logvar.exp() - 1.0 - q.logvar)).double().sum(0).cpu()
    mu = torch.cat(mus)
    variance = mu.var(0).numpy() if len(mu) > 1 else np.zeros(model.latent_dim)
    return DimensionStats(kl=(kl_sum / max(len(mu), 1)).numpy(), variance=variance, probabilistic=model.probabilistic)


@dataclass(frozen=True)
class Traversal:
    images: np.ndarray  # (d, steps, H, W[, 3]) in [0, 1] (display layout), row r sweeps dimension dims[r]
    dims: np.ndarray  # (d,) the dimension of each row, most informative first
    kl: np.ndarray  # (d,) each row's dimension's KL
    collapsed: np.ndarray  # (d,) bool per row
    values: np.ndarray  # (steps,) the swept values


def traverse(model: LatentModel, z: np.ndarray, stats: DimensionStats, steps: int = STEPS, extent: float = EXTENT,
             label: int | None = None) -> Traversal:
    """Decode z with one dimension at a time set to each of `steps` values in [-extent, extent], the others held at z;
    rows ordered by `stats` (a conditional model draws class `label`)."""
    z = np.asarray(z, np.float32).reshape(-1)
    d = model.latent_dim
    if len(z) != d:
        raise ValueError(f"a traversal of a d = {d} model starts from a code of {d} numbers, got {len(z)}")
    values = np.linspace(-extent, extent, steps, dtype=np.float32)
    order = stats.order()
    codes = np.repeat(z[None, None], d, 0).repeat(steps, 1)  # (d, steps, d)
    codes[np.arange(d), :, order] = values  # row r sets dimension order[r]
    decoded = inference.decode(model, codes.reshape(-1, d), label)
    return Traversal(images=decoded.reshape(d, steps, *decoded.shape[1:]), dims=order, kl=stats.kl[order],
                     collapsed=stats.collapsed[order], values=values)


def encode_one(model: LatentModel, image: torch.Tensor, label: int | None = None) -> np.ndarray:
    """μ of one uint8 image (C, H, W): the code a traversal starts from."""
    return inference.encode(model, image[None], label)[0][0]
