"""Test ELBO at β = 1, an importance-weighted log p(x), and active units."""
from __future__ import annotations

import math

import torch

from .data import to_float
from .loss import gaussian_kl, log_likelihood
from .model import VAE

ACTIVE_UNIT_THRESHOLD = 0.01


def _batches(images: torch.Tensor, batch_size: int, device: torch.device):
    for start in range(0, len(images), batch_size):
        yield to_float(images[start : start + batch_size].to(device, non_blocking=True))


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


def _normal(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


@torch.no_grad()
def elbo(model: VAE, images: torch.Tensor, batch_size: int = 2000, seed: int = 0) -> dict[str, float]:
    """−ELBO, recon and KL per image in nats at β = 1, one posterior sample per image (seeded, so repeatable)."""
    was_training = model.training
    model.eval()
    device = _device(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    recon_sum = kl_sum = 0.0
    for x in _batches(images, batch_size, device):
        mu, logvar = model.encode(x)
        z = mu + torch.exp(0.5 * logvar) * _normal(mu.shape, gen, mu)
        recon_sum += float(-log_likelihood(model, model.decode(z), x).sum())
        kl_sum += float(gaussian_kl(mu, logvar).sum())
    model.train(was_training)
    n = len(images)
    return {"elbo": (recon_sum + kl_sum) / n, "recon": recon_sum / n, "kl": kl_sum / n}


@torch.no_grad()
def iw_log_px(model: VAE, images: torch.Tensor, k: int = 100, batch_size: int = 500, seed: int = 0) -> float:
    """Mean over images of log (1/k) Σ p(x, z_i)/q(z_i|x), z_i ~ q(z|x): the IWAE bound, tighter than the ELBO as k grows."""
    was_training = model.training
    model.eval()
    device = _device(model)
    gen = torch.Generator(device=device).manual_seed(seed)
    batch_size = max(1, batch_size * 100 // max(k, 1))  # keep k·batch decoder passes bounded in memory
    total = 0.0
    for x in _batches(images, batch_size, device):
        mu, logvar = model.encode(x)
        std = torch.exp(0.5 * logvar)
        eps = _normal(torch.Size((k, *mu.shape)), gen, mu)
        z = mu + std * eps  # (k, B, d)
        x_rep = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        log_px_z = log_likelihood(model, model.decode(z.flatten(0, 1)), x_rep).view(k, -1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
        total += float((torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)).sum())
    model.train(was_training)
    return total / len(images)


@torch.no_grad()
def posterior_means(model: VAE, images: torch.Tensor, batch_size: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) of q(z|x) for every image, on the CPU."""
    was_training = model.training
    model.eval()
    mus, sigmas = [], []
    for x in _batches(images, batch_size, _device(model)):
        mu, logvar = model.encode(x)
        mus.append(mu.cpu())
        sigmas.append(torch.exp(0.5 * logvar).cpu())
    model.train(was_training)
    return torch.cat(mus), torch.cat(sigmas)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dims whose posterior mean varies across inputs: Cov_x(E_q[z_j]) > threshold."""
    if len(mu) < 2:
        return 0
    return int((mu.var(dim=0) > threshold).sum())


def evaluate(model: VAE, images: torch.Tensor, iw_samples: int = 100, seed: int = 0) -> dict[str, float]:
    """Everything the CLI's `evaluate` reports, on uint8 test images."""
    metrics = elbo(model, images, seed=seed)
    metrics["iw_logpx"] = iw_log_px(model, images, k=iw_samples, seed=seed) if iw_samples > 0 else float("nan")
    metrics["iw_samples"] = iw_samples
    metrics["active_units"] = active_units(posterior_means(model, images)[0])
    metrics["n_images"] = len(images)
    return metrics
