"""The model family: every kind shares the networks of `nets` and the interface of `base.LatentModel`.

A new kind of model is a new file here and an entry in KINDS.
"""
from __future__ import annotations

from ..config import ModelConfig
from .ae import AE
from .base import LatentModel, Posterior
from .cvae import CVAE
from .dae import DAE
from .vae import VAE

KINDS: dict[str, type[LatentModel]] = {cls.kind: cls for cls in (AE, DAE, VAE, CVAE)}


def build_model(config: ModelConfig) -> LatentModel:
    """The model `config.kind` names, freshly initialised."""
    return KINDS[config.kind](config)


__all__ = ["AE", "CVAE", "DAE", "KINDS", "VAE", "LatentModel", "Posterior", "build_model"]
