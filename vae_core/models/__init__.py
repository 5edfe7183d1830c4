"""The model family: every kind shares the interface of `base.LatentModel`, and its class says what it can do (see
base); those trained here share the networks of `nets`, imported ones (`onnx_model`) run ONNX graphs and are not
trainable.

A new kind of model is a new file here and an entry in KINDS.
"""
from __future__ import annotations

from ..config import ConfigError, ModelConfig
from .ae import AE
from .base import LatentModel, Posterior
from .cvae import CVAE
from .dae import DAE
from .linear_ae import LinearAE
from .onnx_model import ImportedAE, ImportedModel, ImportedVAE
from .vae import VAE

KINDS: dict[str, type[LatentModel]] = {cls.kind: cls for cls in (AE, DAE, VAE, CVAE, LinearAE, ImportedVAE, ImportedAE)}
TRAINABLE_KINDS: tuple[str, ...] = tuple(kind for kind, cls in KINDS.items() if cls.trainable)


def model_class(kind: str) -> type[LatentModel]:
    """The class of a kind of model, whose attributes say what it can do without building one; ConfigError for a kind
    that is not one of KINDS."""
    found = KINDS.get(kind) if isinstance(kind, str) else None
    if found is None:
        raise ConfigError(f"unknown kind of model {repr(kind)[:40]}; choose one of {', '.join(KINDS)}")
    return found


def build_model(config: ModelConfig) -> LatentModel:
    """The model `config.kind` names, freshly initialised (a trainable kind: an imported one is read from its file)."""
    return model_class(config.kind)(config)


__all__ = ["AE", "CVAE", "DAE", "KINDS", "LinearAE", "TRAINABLE_KINDS", "VAE", "ImportedAE", "ImportedModel", "ImportedVAE",
           "LatentModel", "Posterior", "build_model", "model_class"]
