"""Test metrics of any kind of model: reconstruction for all; for those with a posterior and a prior (vae, cvae) the
ELBO at β = 1, an importance-weighted log p(x) and the active units; for a linear one (linear_ae) the largest principal
angle between its decoder's column space and PCA's subspace. A conditional model is given the true labels."""
from __future__ import annotations

import itertools
import math
from typing import Iterator

import torch

from .data import ImageDataset, to_float
from .loss import gaussian_kl
from .models import LatentModel

ACTIVE_UNIT_THRESHOLD = 0.01


def device_of(model: LatentModel) -> torch.device:
    """Where the model's inputs go: where its weights are; the CPU for a model that holds none (an imported one runs
    in onnxruntime and takes tensors on any device)."""
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def batches(images: torch.Tensor, labels: torch.Tensor | None, batch_size: int,
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(x, y) on `device`: uint8 images as the model's float input, labels alongside (None stays None)."""
    for start in range(0, len(images), batch_size):
        x = to_float(images[start : start + batch_size].to(device, non_blocking=True))
        y = None if labels is None else labels[start : start + batch_size].to(device)
        yield x, y


def _normal(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


class eval_mode:
    """`with eval_mode(model):` runs in eval mode and gives the model back in the mode it was in."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self) -> torch.nn.Module:
        return self.model.eval()

    def __exit__(self, *exc) -> None:
        self.model.train(self.was_training)


@torch.no_grad()
def elbo(model: LatentModel, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 2000,
         seed: int = 0) -> dict[str, float]:
    """Per image in nats: recon, KL and −ELBO at β = 1 with one seeded posterior sample per image (repeatable).

    A deterministic code (ae, dae) has no KL: recon is that of the code itself, kl is 0 and "elbo" equals recon,
    so training histories have the same fields for every kind."""
    with eval_mode(model):
        device = device_of(model)
        gen = torch.Generator(device=device).manual_seed(seed)
        recon_sum = kl_sum = 0.0
        for x, y in batches(images, labels, batch_size, device):
            q = model.encode(x, y)
            z = q.mean if q.logvar is None else q.mean + q.std * _normal(q.mean.shape, gen, q.mean)
            recon_sum += float(model.recon_nll(model.decode(z, y), x).sum())
            if q.logvar is not None:
                kl_sum += float(gaussian_kl(q.mean, q.logvar).sum())
    n = len(images)
    return {"elbo": (recon_sum + kl_sum) / n, "recon": recon_sum / n, "kl": kl_sum / n}


@torch.no_grad()
def iw_log_px(model: LatentModel, images: torch.Tensor, labels: torch.Tensor | None = None, k: int = 100,
              batch_size: int = 500, seed: int = 0) -> float:
    """Mean over images of log (1/k) Σ p(x, z_i)/q(z_i|x), z_i ~ q(z|x): the IWAE bound, tighter than the ELBO as k
    grows (conditioned on the label for a cvae: log p(x|y))."""
    if not model.probabilistic:
        raise ValueError(f"a {model.title} has no posterior, so no importance-weighted log p(x)")
    with eval_mode(model):
        device = device_of(model)
        gen = torch.Generator(device=device).manual_seed(seed)
        batch_size = max(1, batch_size * 100 // max(k, 1))  # keep k·batch decoder passes bounded in memory
        total = 0.0
        for x, y in batches(images, labels, batch_size, device):
            q = model.encode(x, y)
            eps = _normal(torch.Size((k, *q.mean.shape)), gen, q.mean)
            z = q.mean + q.std * eps  # (k, B, d)
            log_px_z = -model.sampled_recon_nll(q, x, y, eps)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps.pow(2) + q.logvar + math.log(2 * math.pi)).sum(-1)
            total += float((torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)).sum())
    return total / len(images)


@torch.no_grad()
def posterior_means(model: LatentModel, images: torch.Tensor, labels: torch.Tensor | None = None,
                    batch_size: int = 5000) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) of every image's code on the CPU; σ is 0 for a deterministic code."""
    mus, sigmas = [], []
    with eval_mode(model):
        for x, y in batches(images, labels, batch_size, device_of(model)):
            q = model.encode(x, y)
            mus.append(q.mean.cpu())
            sigmas.append(q.std.cpu())
    return torch.cat(mus), torch.cat(sigmas)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dims whose posterior mean varies across inputs: Cov_x(E_q[z_j]) > threshold."""
    if len(mu) < 2:
        return 0
    return int((mu.var(dim=0) > threshold).sum())


def evaluate(model: LatentModel, images: torch.Tensor, labels: torch.Tensor | None = None, iw_samples: int = 100,
             seed: int = 0, train_images: torch.Tensor | None = None) -> dict[str, float | int | str]:
    """Everything the CLI's `evaluate` reports for this kind of model, on uint8 test images (and their labels, which
    a conditional model needs); a linear model's principal angle ("pca_angle") when its `train_images` are given."""
    if model.conditional and labels is None:
        raise ValueError(f"a {model.title} is evaluated given the true labels; none were passed")
    terms = elbo(model, images, labels, seed=seed)
    metrics: dict[str, float | int | str] = {"kind": model.kind, "recon": terms["recon"]}
    if model.probabilistic:
        metrics.update(elbo=terms["elbo"], kl=terms["kl"])
        metrics["iw_logpx"] = iw_log_px(model, images, labels, k=iw_samples, seed=seed) if iw_samples > 0 else math.nan
        metrics["iw_samples"] = iw_samples
        metrics["active_units"] = active_units(posterior_means(model, images, labels)[0])
    if model.linear and train_images is not None:
        metrics["pca_angle"] = pca_angle(model, train_images)
    metrics["n_images"] = len(images)
    return metrics


def pca_angle(model: LatentModel, images: torch.Tensor) -> float:
    """Degrees between a linear model's decoder column space and the top-d principal subspace of `images` (uint8):
    the images it was trained on, since another sample's subspace is itself tilted from theirs (on the sample's
    4,000 training and 1,000 test digits, 18° apart at d = 6 and 57° at d = 20)."""
    from .linear_probe import largest_principal_angle  # scikit-learn loads only when asked for

    return largest_principal_angle(model.decoder_weight().cpu().numpy(), to_float(images).flatten(1).numpy())


def factor_metrics(model: LatentModel, data: ImageDataset, seed: int = 0) -> dict:
    """The disentanglement metrics (vae_core.disentanglement) of the model's posterior means of `data`'s test images
    against their known factors: the seven figures of METRIC_KEYS, the latent × factor mutual-information shares
    ("mutual_info", d × F), each dimension's best factor and each metric's seconds. ValueError for a dataset whose
    factors are unknown."""
    from .disentanglement import disentanglement_metrics  # scikit-learn's models load only when asked for

    if data.factors is None:
        raise ValueError(f"{data.name} has no known generative factors (only class labels); "
                         "disentanglement is measured on a dataset such as dsprites")
    mu = posterior_means(model, data.test_images, data.test_labels if model.conditional else None)[0]
    return disentanglement_metrics(mu.numpy(), data.factors, data.factor_names, seed=seed)
