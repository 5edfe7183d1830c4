"""The plain autoencoder: a deterministic code, reconstruction NLL only, and an optional L1 penalty on the code."""
from __future__ import annotations

import torch

from ..loss import LossTerms
from .base import LatentModel, Posterior


class AE(LatentModel):
    kind = "ae"
    title = "autoencoder"
    short_title = "AE"
    settings = ("sparsity",)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        return Posterior(self.encoder(x, self.condition(y, x)))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """What the encoder sees in training; the target stays x."""
        return x

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        """recon + λ·‖z‖₁ (λ = `sparsity`; kl_weight and mc_samples mean nothing to a deterministic code)."""
        z = self.encode(self.corrupt(x), y).mean
        recon = self.recon_nll(self.decode(z, y), x).mean()
        loss = recon + self.config.sparsity * z.abs().sum(dim=1).mean() if self.config.sparsity else recon
        return LossTerms(loss=loss, recon=recon, kl=torch.zeros_like(recon))
