"""Input corruption for the denoising autoencoder and the app's noise control: `mask:ν`, `gauss:σ` or `patch:ρ:k`."""
from __future__ import annotations

import torch

from .config import parse_noise, parse_patch


def corrupt(x: torch.Tensor, noise: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """`mask:ν` zeroes each pixel with probability ν; `gauss:σ` adds N(0, σ²) noise and clips to [0, 1]; `patch:ρ:k`
    zeroes a share ρ of each image's k×k patches (hide_patches); '' is none.

    A `generator` (on x's device) makes the corruption repeatable, e.g. the same noise for every model compared."""
    family, level = parse_noise(noise)
    if family == "patch":
        return hide_patches(x, *parse_patch(noise), generator=generator)
    if family is None or level == 0:
        return x
    if family == "mask":
        return x * (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= level)
    noise_ = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + level * noise_).clamp(0.0, 1.0)


def hide_patches(x: torch.Tensor, share: float, side: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The masked autoencoder's corruption (He et al. 2022): images (N, C, H, W) with the patches of `hidden_patches`
    zeroed in every channel."""
    return x * ~hidden_patches(x.shape, share, side, generator, x.device)


def hidden_patches(shape: torch.Size | tuple[int, ...], share: float, side: int,
                   generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(N, 1, H, W) bool, True where hidden: images of `shape` (N, C, H, W) cut into side×side patches (those at the
    right and bottom edges cut short when side does not divide H or W), round(share · patches) of each image's
    patches drawn without replacement. Pages draw it to show which pixels a model was not given."""
    n, _, height, width = shape
    rows, cols = -(-height // side), -(-width // side)
    count = round(share * rows * cols)
    rank = torch.rand((n, rows * cols), generator=generator, device=device).argsort(dim=1).argsort(dim=1)
    hidden = (rank < count).view(n, 1, rows, cols)
    return hidden.repeat_interleave(side, dim=2).repeat_interleave(side, dim=3)[:, :, :height, :width]
