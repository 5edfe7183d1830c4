"""The model family: every kind shares the interface of `base.LatentModel`; those trained here share the networks of
`nets`, imported ones (`onnx_model`) run ONNX graphs and are not trainable.

A new kind of model is a new file here and an entry in KINDS.
"""
from __future__ import annotations

from ..config import ModelConfig
from .ae import AE
from .base import LatentModel, Posterior
from .cvae import CVAE
from .dae import DAE
from .onnx_model import ImportedAE, ImportedModel, ImportedVAE
from .vae import VAE

KINDS: dict[str, type[LatentModel]] = {cls.kind: cls for cls in (AE, DAE, VAE, CVAE, ImportedVAE, ImportedAE)}


def build_model(config: ModelConfig) -> LatentModel:
    """The model `config.kind` names, freshly initialised (a trainable kind: an imported one is read from its file)."""
    return KINDS[config.kind](config)


__all__ = ["AE", "CVAE", "DAE", "KINDS", "VAE", "ImportedAE", "ImportedModel", "ImportedVAE", "LatentModel", "Posterior",
           "build_model"]
