"""Configuration dataclasses. They round-trip through plain dicts so a checkpoint alone rebuilds its model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
LR_SCHEDULES = ("constant", "cosine")


class ConfigError(ValueError):
    """A setting is out of range; the message is meant for the user."""


def _from_dict(cls, data: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in known}
    for key, value in kwargs.items():
        if isinstance(value, list):
            kwargs[key] = tuple(value)
    return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "mlp"
    latent_dim: int = 2
    hidden: tuple[int, ...] = (512, 256)
    likelihood: str = "bernoulli"
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if int(self.latent_dim) < 1:
            raise ConfigError(f"latent size must be at least 1, got {self.latent_dim}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {list(self.hidden)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist-sample"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0
    kl_warmup: int = 0  # epochs over which the KL weight rises linearly from 0 to beta
    mc_samples: int = 1
    seed: int = 0
    device: str = "auto"
    lr_schedule: str = "constant"  # "cosine" decays the learning rate to 0 over this run's steps

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if not self.beta >= 0:
            raise ConfigError(f"beta must be non-negative, got {self.beta}")
        if self.kl_warmup < 0:
            raise ConfigError(f"KL warm-up must be non-negative, got {self.kl_warmup}")
        if self.mc_samples < 1:
            raise ConfigError(f"Monte-Carlo samples must be at least 1, got {self.mc_samples}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data)
