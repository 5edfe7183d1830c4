"""The variational autoencoder (and β-VAE): a diagonal-Gaussian q(z|x), prior N(0, I), loss −ELBO with β·KL."""
from __future__ import annotations

import torch

from ..loss import LossTerms, gaussian_kl
from .base import LatentModel, Posterior

# log σ² is left unconstrained by activations; the clamp only keeps exp() finite in float32.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class VAE(LatentModel):
    kind = "vae"
    title = "VAE"
    short_title = "VAE"
    probabilistic = True
    settings = ("beta", "kl_warmup")
    curves = ("elbo", "recon", "kl")

    @staticmethod
    def code_width(latent_dim: int) -> int:
        return 2 * latent_dim  # μ and log σ²

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        d = self.latent_dim  # constant sizes: the exported graph's μ is (N, d), not a size found as it runs
        mu, logvar = self.encoder(x, self.condition(y, x)).split([d, d], dim=-1)
        return Posterior(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        """−ELBO with L reparameterised samples per input (recon averaged over them) and the closed-form KL."""
        q = self.encode(x, y)
        eps = torch.randn(mc_samples, *q.mean.shape, device=q.mean.device, dtype=q.mean.dtype)
        recon = self.sampled_recon_nll(q, x, y, eps).mean(0)
        kl = gaussian_kl(q.mean, q.logvar)
        recon, kl = recon.mean(), kl.mean()
        return LossTerms(loss=recon + kl_weight * kl, recon=recon, kl=kl)
