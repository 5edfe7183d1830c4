"""The networks every kind of model shares: an MLP or a small convnet each way, optionally fed a condition.

Module and parameter names are those of the first VAE release (`encoder.1.0.weight`, `decoder.body.0.weight`, …),
so every checkpoint written since loads unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _with(h: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    return h if condition is None else torch.cat([h, condition], dim=1)


class MLPEncoder(nn.Sequential):
    """Flatten, then an MLP; a condition (e.g. a one-hot label) joins the flattened pixels."""

    def __init__(self, n_pixels: int, hidden: list[int], out: int, extra: int = 0) -> None:
        super().__init__(nn.Flatten(), mlp([n_pixels + extra, *hidden, out]))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self[1](_with(self[0](x), condition))


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions, then a dense head; a condition joins the flattened features."""

    def __init__(self, channels: int, size: int, hidden: int, out: int, extra: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(64 * (size // 4) ** 2 + extra, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_with(self.features(x), condition))


class ConvDecoder(nn.Module):
    """Dense layers up to a 64-channel quarter-size map, then two stride-2 transposed convolutions."""

    def __init__(self, channels: int, size: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.side = size // 4
        self.body = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(),
            nn.Linear(hidden, 64 * self.side ** 2), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(z).view(-1, 64, self.side, self.side))


def build_encoder(config: ModelConfig, out: int, extra: int = 0) -> nn.Module:
    """x (B, C, H, W) [+ condition (B, extra)] -> (B, out)."""
    c, h, w = config.image_shape
    hidden = [int(x) for x in config.hidden]
    if config.arch == "mlp":
        return MLPEncoder(c * h * w, hidden, out, extra)
    return ConvEncoder(c, h, hidden[0], out, extra)


def build_decoder(config: ModelConfig, extra: int = 0) -> nn.Module:
    """(B, d + extra) -> logits, flat for the MLP, (B, C, H, W) for the convnet."""
    c, h, w = config.image_shape
    hidden = [int(x) for x in config.hidden]
    if config.arch == "mlp":
        return mlp([config.latent_dim + extra, *reversed(hidden), c * h * w])
    return ConvDecoder(c, h, hidden[0], config.latent_dim + extra)
