"""The denoising autoencoder: the autoencoder's network, trained to give back the clean image of a corrupted one."""
from __future__ import annotations

import torch

from ..corruption import corrupt
from .ae import AE


class DAE(AE):
    kind = "dae"
    title = "denoising autoencoder"
    short_title = "denoising AE"
    settings = ("noise", "sparsity")

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return corrupt(x, self.config.noise)
