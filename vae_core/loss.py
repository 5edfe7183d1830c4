"""−ELBO = reconstruction NLL + β·KL(q(z|x) ‖ N(0, I)), per image in nats, summed over pixels."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import VAE

LOG_2PI = math.log(2 * math.pi)


@dataclass
class LossTerms:
    """Batch means per image. `loss` is what is minimised: recon + kl_weight·kl."""

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
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif likelihood == "gaussian":
        if log_var_x is None:
            raise ValueError("the Gaussian likelihood needs the decoder's log-variance")
        nll = 0.5 * ((x - torch.sigmoid(logits)).pow(2) * torch.exp(-log_var_x) + log_var_x + LOG_2PI)
    else:
        raise ValueError(f"unknown likelihood {likelihood!r}")
    return nll.flatten(1).sum(dim=1)


def log_likelihood(model: VAE, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per image for the model's own likelihood."""
    return -reconstruction_nll(logits, x, model.config.likelihood, getattr(model, "log_var_x", None))


def vae_loss(model: VAE, x: torch.Tensor, kl_weight: float = 1.0, mc_samples: int = 1) -> LossTerms:
    """Negative ELBO with L reparameterised samples per input; recon is averaged over the L samples."""
    mu, logvar = model.encode(x)
    if mc_samples == 1:
        z = model.reparameterize(mu, logvar)
        recon = -log_likelihood(model, model.decode(z), x)
    else:
        eps = torch.randn(mc_samples, *mu.shape, device=mu.device, dtype=mu.dtype)
        z = (mu + torch.exp(0.5 * logvar) * eps).flatten(0, 1)
        x_rep = x.unsqueeze(0).expand(mc_samples, *x.shape).flatten(0, 1)
        recon = -log_likelihood(model, model.decode(z), x_rep).view(mc_samples, -1).mean(0)
    kl = gaussian_kl(mu, logvar)
    recon, kl = recon.mean(), kl.mean()
    return LossTerms(loss=recon + kl_weight * kl, recon=recon, kl=kl)


def kl_weight(beta: float, warmup_epochs: int, epoch_progress: float) -> float:
    """Linear KL warm-up: the weight rises from 0 to β over `warmup_epochs` (progress counted in epochs, fractional)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch_progress / warmup_epochs)
