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
    probabilistic = True
    curves = ("elbo", "recon", "kl")

    @staticmethod
    def code_width(latent_dim: int) -> int:
        return 2 * latent_dim  # μ and log σ²

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        mu, logvar = self.encoder(x, self.condition(y, x)).chunk(2, dim=-1)
        return Posterior(mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        """−ELBO with L reparameterised samples per input (recon averaged over them) and the closed-form KL."""
        q = self.encode(x, y)
        if mc_samples == 1:
            recon = self.recon_nll(self.decode(self.reparameterize(q.mean, q.logvar), y), x)
        else:
            eps = torch.randn(mc_samples, *q.mean.shape, device=q.mean.device, dtype=q.mean.dtype)
            z = (q.mean + torch.exp(0.5 * q.logvar) * eps).flatten(0, 1)
            x_rep = x.unsqueeze(0).expand(mc_samples, *x.shape).flatten(0, 1)
            y_rep = None if y is None else torch.as_tensor(y).reshape(1, -1).expand(mc_samples, -1).flatten()
            recon = self.recon_nll(self.decode(z, y_rep), x_rep).view(mc_samples, -1).mean(0)
        kl = gaussian_kl(q.mean, q.logvar)
        recon, kl = recon.mean(), kl.mean()
        return LossTerms(loss=recon + kl_weight * kl, recon=recon, kl=kl)
