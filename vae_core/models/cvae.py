"""The conditional VAE: q(z|x, y) and p(x|z, y) take the one-hot class, so z is left to hold only the style."""
from __future__ import annotations

from .vae import VAE


class CVAE(VAE):
    kind = "cvae"
    title = "conditional VAE"
    short_title = "conditional VAE"
    conditional = True
