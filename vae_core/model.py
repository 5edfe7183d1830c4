"""Encoder q(z|x) and decoder p(x|z): MLP or convolutional, any latent size."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig

# log σ² is left unconstrained by activations; the clamp only keeps exp() finite in float32.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class _ConvEncoder(nn.Module):
    def __init__(self, channels: int, size: int, hidden: int, out: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(64 * (size // 4) ** 2, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _ConvDecoder(nn.Module):
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


class VAE(nn.Module):
    """A VAE with a diagonal-Gaussian encoder and a prior N(0, I).

    The decoder returns logits shaped like the input: Bernoulli logits, or for the Gaussian
    likelihood the pre-sigmoid mean, with one learned log-variance per pixel.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, h, w = config.image_shape
        if config.arch == "conv" and (h % 4 or w % 4 or h != w):
            raise ValueError("the convolutional model needs square images with a side divisible by 4")
        d = config.latent_dim
        n_pixels = c * h * w
        hidden = [int(x) for x in config.hidden]
        if config.arch == "mlp":
            self.encoder: nn.Module = nn.Sequential(nn.Flatten(), _mlp([n_pixels, *hidden, 2 * d]))
            self.decoder: nn.Module = _mlp([d, *reversed(hidden), n_pixels])
        else:
            self.encoder = _ConvEncoder(c, h, hidden[0], 2 * d)
            self.decoder = _ConvDecoder(c, h, hidden[0], d)
        if config.likelihood == "gaussian":
            self.log_var_x = nn.Parameter(torch.full(config.image_shape, math.log(0.1)))

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² of q(z|x) for images x of shape (B, C, H, W) in [0, 1]."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits for latents z of shape (B, d)."""
        return self.decoder(z).view(-1, *self.config.image_shape)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means in [0, 1]: what the app shows for a latent point."""
        return torch.sigmoid(self.decode(z))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoder output, μ, log σ², z) with one reparameterised sample per input."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar, z


def build_model(config: ModelConfig) -> VAE:
    return VAE(config)
