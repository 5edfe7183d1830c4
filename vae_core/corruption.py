"""Input corruption for the denoising autoencoder and the app's noise control: `mask:ν` or `gauss:σ`."""
from __future__ import annotations

import torch

from .config import parse_noise


def corrupt(x: torch.Tensor, noise: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """`mask:ν` zeroes each pixel with probability ν; `gauss:σ` adds N(0, σ²) noise and clips to [0, 1]; '' is none.

    A `generator` (on x's device) makes the corruption repeatable, e.g. the same noise for every model compared."""
    family, level = parse_noise(noise)
    if family is None or level == 0:
        return x
    if family == "mask":
        return x * (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= level)
    noise_ = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + level * noise_).clamp(0.0, 1.0)
