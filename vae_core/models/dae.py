"""The denoising autoencoder: the autoencoder's network, trained to give back the clean image of a corrupted one."""
from __future__ import annotations

import torch

from ..config import ModelConfig, parse_noise
from ..corruption import corrupt
from .ae import AE


class DAE(AE):
    kind = "dae"
    title = "denoising autoencoder"
    short_title = "denoising AE"
    settings = ("noise", "sparsity")

    @classmethod
    def label(cls, config: ModelConfig) -> str:
        """Trained to fill in hidden patches, it is a masked autoencoder (He et al. 2022)."""
        return "masked AE" if parse_noise(config.noise)[0] == "patch" else cls.short_title

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.config.noise)
