"""The linear autoencoder: one affine map each way (no hidden layer, no activation), fitted by squared error, i.e. a
Gaussian likelihood with a fixed variance. Trained, its decoder's columns span the data's top-d principal subspace
(Baldi & Hornik 1989), so it is PCA reached by gradient descent; vae_core.linear_probe measures how close it got."""
from __future__ import annotations

import torch

from ..loss import LossTerms, gaussian_nll
from .ae import AE

MEAN_EPS = 1e-6  # pixel means are kept this far inside (0, 1), where their logits are finite in float32


class LinearAE(AE):
    kind = "linear_ae"
    title = "linear autoencoder"
    short_title = "linear AE"
    settings = ()
    architectures = ("mlp",)
    likelihoods = ("gaussian",)
    hidden_layers = False
    fixed_variance = True
    linear = True

    def means(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = W z + b, shaped like the images and not clamped: what training fits."""
        return self.decoder(z).view(-1, *self.config.image_shape)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits whose sigmoid is x̂ clamped into [0, 1], as every other kind's decoder gives them (decode_mean,
        recon_nll, the ONNX export): the pages show and score the clamped means."""
        p = self.means(z).clamp(MEAN_EPS, 1 - MEAN_EPS)
        return torch.log(p) - torch.log1p(-p)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        """−log N(x; x̂, σ²I) of the unclamped x̂ (σ² fixed): the squared error / 2σ² plus a constant, whose minimiser
        is PCA's. Clamping here would stop the gradient of every pixel it cuts."""
        recon = gaussian_nll(self.means(self.encode(x).mean), x, self.log_var_x).mean()
        return LossTerms(loss=recon, recon=recon, kl=torch.zeros_like(recon))

    def decoder_weight(self) -> torch.Tensor:
        """W (C·H·W, d) of x̂ = W z + b, whose column space vae_core.linear_probe compares with PCA's subspace."""
        return self.decoder[0].weight.detach()
