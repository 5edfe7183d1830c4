"""The networks every kind of model shares: an MLP or a small convnet each way, optionally fed a condition.

Module and parameter names are those of the first VAE release (`encoder.1.0.weight`, `decoder.body.0.weight`, …),
so every checkpoint written since loads unchanged.
"""
from __future__ import annotations

import math

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


MAX_CONV_CHANNELS = 128


def conv_widths(side: int) -> list[int]:
    """Channels after each stride-2 convolution for square images of `side` px: the side is halved while it is even
    and its half at least 4 (28 → 14 → 7, 32 → 16 → 8 → 4, 64 → … → 4), the channels go 32, 64, 128 and stay there."""
    widths: list[int] = []
    while side % 2 == 0 and side // 2 >= 4:
        side //= 2
        widths.append(min(32 << len(widths), MAX_CONV_CHANNELS))
    return widths


class ConvEncoder(nn.Module):
    """Stride-2 convolutions as deep as the side allows (`conv_widths`), then a dense head; a condition joins the
    flattened features. For 28 px that is two, the layout of every conv checkpoint written so far."""

    def __init__(self, channels: int, size: int, hidden: int, out: int, extra: int = 0) -> None:
        super().__init__()
        widths = conv_widths(size)
        layers: list[nn.Module] = []
        for c_in, c_out in zip([channels, *widths], widths):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        side = size >> len(widths)
        self.head = nn.Sequential(nn.Linear(widths[-1] * side ** 2 + extra, hidden), nn.ReLU(),
                                  nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(_with(self.features(x), condition))


class ConvDecoder(nn.Module):
    """Dense layers up to the encoder's smallest feature map (`map_shape`), then stride-2 transposed convolutions
    mirroring the encoder's."""

    def __init__(self, channels: int, size: int, hidden: int, latent: int) -> None:
        super().__init__()
        widths = conv_widths(size)
        self.map_shape = (widths[-1], size >> len(widths), size >> len(widths))
        self.body = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(),
            nn.Linear(hidden, math.prod(self.map_shape)), nn.ReLU(),
        )
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[::-1], [*widths[-2::-1], channels]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.deconv = nn.Sequential(*layers[:-1])  # logits out: no ReLU after the last

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(z).view(-1, *self.map_shape))


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
