"""Batched inference for the app: encode, decode, grids over the latent plane, interpolation, prior samples.

`labels` are the class labels a conditional model (cvae) needs beside its input or latent; other kinds ignore them.
A single label is used for every row."""
from __future__ import annotations

import numpy as np
import torch

from .data import as_model_input, to_display
from .evaluate import device_of, eval_mode
from .models import LatentModel

Labels = np.ndarray | torch.Tensor | int | None

GRID_EXTENT = 3.0  # under N(0, I) the square [-3, 3]² holds nearly all the latent mass


def _labels(model: LatentModel, labels: Labels, n: int) -> torch.Tensor | None:
    """Labels as a tensor of n on the model's device when the model takes them, else None."""
    if not model.conditional:
        return None
    if labels is None:
        raise ValueError(f"a {model.title} needs a class label for each input")
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1)
    return (y.expand(n) if len(y) == 1 else y).to(device_of(model))


def encode(model: LatentModel, images: torch.Tensor | np.ndarray, labels: Labels = None,
           batch_size: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) as float32 arrays (N, d) for images in NCHW or display layout (one or a batch, of the model's image
    shape), uint8 or float in [0, 1]; σ = 0 for a point code."""
    x = as_model_input(images, model.config.image_shape)
    y = _labels(model, labels, len(x))
    mus, sigmas = [], []
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(x), batch_size):
            q = model.encode(x[start:start + batch_size].to(device_of(model)),
                             None if y is None else y[start:start + batch_size])
            mus.append(q.mean.cpu())
            sigmas.append(q.std.cpu())
    return torch.cat(mus).numpy(), torch.cat(sigmas).numpy()


@torch.no_grad()
def decode(model: LatentModel, z: np.ndarray | torch.Tensor, labels: Labels = None) -> np.ndarray:
    """Pixel means in [0, 1] in display layout ((N, H, W) grey, (N, H, W, 3) colour) for latents (N, d); a single
    latent (d,) gives N = 1."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(device_of(model))
    if z.ndim == 1:
        z = z.unsqueeze(0)
    with eval_mode(model):
        return to_display(model.decode_mean(z, _labels(model, labels, len(z))))


@torch.no_grad()
def reconstruct(model: LatentModel, images: np.ndarray | torch.Tensor, labels: Labels = None,
                sample: bool = False) -> np.ndarray:
    """Decode the posterior mean (or one sample) of each image (as `encode` takes them), in display layout."""
    x = as_model_input(images, model.config.image_shape).to(device_of(model))
    y = _labels(model, labels, len(x))
    with eval_mode(model):
        q = model.encode(x, y)
        z = q.mean + q.std * torch.randn_like(q.mean) if sample else q.mean
        return to_display(model.decode_mean(z, y))


def grid_axis(n: int, extent: float = GRID_EXTENT) -> np.ndarray:
    """The n coordinates of a decode grid along one axis, from -extent to +extent."""
    return np.linspace(-extent, extent, n, dtype=np.float32)


def grid_latents(
    n: int, latent_dim: int, dims: tuple[int, int] = (0, 1), base: np.ndarray | None = None, extent: float = GRID_EXTENT
) -> np.ndarray:
    """(n·n, d) latents on an n×n grid through dims (i, j); the other dims held at `base` (zero by default).

    Row-major with y decreasing down the rows, so reshaping the decoded images to (n, n) reads like the plot.
    """
    i, j = dims
    if latent_dim < 2:
        raise ValueError("a 2-D grid needs a latent size of at least 2")
    if i == j or not (0 <= i < latent_dim and 0 <= j < latent_dim):
        raise ValueError(f"grid dims must be two different dims in 0..{latent_dim - 1}, got {dims}")
    axis = grid_axis(n, extent)
    xs, ys = np.meshgrid(axis, axis[::-1])
    z = np.tile(np.zeros(latent_dim, np.float32) if base is None else np.asarray(base, np.float32), (n * n, 1))
    z[:, i] = xs.ravel()
    z[:, j] = ys.ravel()
    return z


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int, method: str = "linear") -> np.ndarray:
    """(steps, d) latents from z0 to z1 inclusive, along a line or a great circle (slerp)."""
    if steps < 2:
        raise ValueError("interpolation needs at least 2 steps")
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if method == "linear":
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    if method != "spherical":
        raise ValueError(f"unknown interpolation {method!r}; use linear or spherical")
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 < 1e-8 or n1 < 1e-8:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    omega = np.arccos(np.clip(np.dot(z0 / n0, z1 / n1), -1.0, 1.0))
    if omega < 1e-6:
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    # slerp (Shoemake 1985; White 2016): the path stays near the prior's shell instead of cutting through its low-density centre
    return ((np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)).astype(np.float32)


def sample_prior(model: LatentModel, n: int, seed: int = 0, labels: Labels = None) -> np.ndarray:
    """n images decoded from z ~ N(0, I), seeded so reruns show the same samples (a conditional model without
    labels cycles through its classes)."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    if model.conditional and labels is None:
        labels = np.arange(n) % model.config.n_classes
    return decode(model, z, labels)


def nearest(points: np.ndarray, query: np.ndarray) -> int:
    """Index of the row of `points` (N, k) closest to `query` (k,)."""
    return int(np.argmin(((points - np.asarray(query, points.dtype)) ** 2).sum(axis=1)))
