"""The terms every objective is built from, per image in nats and summed over pixels: reconstruction NLL, the
closed-form Gaussian KL, and the KL warm-up schedule. Each kind of model assembles its own objective from them
(`vae_core.models`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


@dataclass
class LossTerms:
    """Batch means per image. `loss` is what is minimised (e.g. recon + kl_weight·kl); kl is 0 without a posterior."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor

    @property
    def elbo_loss(self) -> torch.Tensor:
        """−ELBO at β = 1, whatever weight was used for training."""
        return self.recon + self.kl


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Closed-form KL(N(μ, σ²) ‖ N(0, I)) per row, summed over latent dims."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def reconstruction_nll(
    logits: torch.Tensor, x: torch.Tensor, likelihood: str = "bernoulli", log_var_x: torch.Tensor | None = None
) -> torch.Tensor:
    """−log p(x|z) per image, summed over pixels. Grey levels in [0, 1] are Bernoulli targets, as in the PyTorch example."""
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)
    if likelihood == "gaussian":
        if log_var_x is None:
            raise ValueError("the Gaussian likelihood needs the decoder's log-variance")
        return gaussian_nll(torch.sigmoid(logits), x, log_var_x)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def gaussian_nll(mean: torch.Tensor, x: torch.Tensor, log_var_x: torch.Tensor) -> torch.Tensor:
    """−log N(x; mean, exp(log_var_x)) per image, summed over pixels: with a fixed variance σ², the squared error
    divided by 2σ² plus a constant."""
    nll = 0.5 * ((x - mean).pow(2) * torch.exp(-log_var_x) + log_var_x + LOG_2PI)
    return nll.flatten(1).sum(dim=1)


def kl_weight(beta: float, warmup_epochs: int, epoch_progress: float) -> float:
    """Linear KL warm-up: the weight rises from 0 to β over `warmup_epochs` (progress counted in epochs, fractional)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch_progress / warmup_epochs)
