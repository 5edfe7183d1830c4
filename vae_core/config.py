"""Configuration dataclasses. They round-trip through plain dicts so a checkpoint alone rebuilds its model."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")
NOISE_KINDS = ("mask", "gauss")
DEFAULT_NOISE = "mask:0.5"  # the corruption of a kind that takes one, unless another is asked for
DEFAULT_PATCH_SIDE = 7  # px, of the squares a masked autoencoder hides where none is asked for: 16 of a 28-px digit
DEFAULT_HIDDEN = {"mlp": (512, 256), "conv": (256,)}  # the conv model uses one dense width
CONV_FROM_SIDE = 32  # from this side on (and for colour at any side) the default model is the convnet
MAX_CLASSES = 100

# The one place for size limits: the CLI, the app's form and the checkpoint loader all check these, so a typo or a
# hostile file can never ask for a model that needs gigabytes. Every shipped model is far inside them.
MAX_LATENT_DIM = 64
MAX_HIDDEN_WIDTH = 8192
MAX_HIDDEN_LAYERS = 8
MAX_CHANNELS = 4
MAX_IMAGE_SIDE = 256


class ConfigError(ValueError):
    """A setting is out of range; the message is meant for the user."""


def _from_dict(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of settings, got {type(data).__name__}")
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
    kind: str = "vae"  # one of vae_core.models.KINDS, whose class checks the fields below (a file without one: vae)
    n_classes: int = 0  # how many labels a conditional kind takes; 0 for the others
    noise: str = ""  # the corruption of the inputs, "mask:ν" or "gauss:σ", for a kind with the "noise" setting
    sparsity: float = 0.0  # λ of the L1 penalty on the code, for a kind with the "sparsity" setting

    def __post_init__(self) -> None:
        from .models import model_class  # the kinds live with their models, which import this module

        kind = model_class(self.kind)
        if not _is_int(self.n_classes) or not 0 <= self.n_classes <= MAX_CLASSES:
            raise ConfigError(f"the number of classes must be a whole number from 0 to {MAX_CLASSES}, "
                              f"got {_shown(self.n_classes)}")
        parse_noise(self.noise)
        if not (_is_real(self.sparsity) and math.isfinite(self.sparsity) and self.sparsity >= 0):
            raise ConfigError(f"sparsity must be a finite non-negative number, got {self.sparsity!r}")
        kind.check_config(self)
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if not _is_int(self.latent_dim) or self.latent_dim < 1:
            raise ConfigError(f"latent size must be at least 1, got {self.latent_dim!r}")
        if self.latent_dim > MAX_LATENT_DIM:
            raise ConfigError(f"latent size must be at most {MAX_LATENT_DIM}, got {self.latent_dim}")
        if kind.hidden_layers:  # a kind without hidden layers has refused any sizes already
            if not isinstance(self.hidden, (tuple, list)) or not self.hidden or not all(_is_int(h) and h >= 1 for h in self.hidden):
                raise ConfigError(f"hidden sizes must be positive integers, got {_shown(self.hidden)}")
            if len(self.hidden) > MAX_HIDDEN_LAYERS or max(self.hidden) > MAX_HIDDEN_WIDTH:
                raise ConfigError(f"at most {MAX_HIDDEN_LAYERS} hidden layers of at most {MAX_HIDDEN_WIDTH} units "
                                  f"each, got {_shown(self.hidden)}")
        shape = self.image_shape
        if not (isinstance(shape, (tuple, list)) and len(shape) == 3 and all(_is_int(n) for n in shape)
                and 1 <= shape[0] <= MAX_CHANNELS and all(1 <= n <= MAX_IMAGE_SIDE for n in shape[1:])):
            raise ConfigError(f"image shape must be (channels ≤ {MAX_CHANNELS}, height, width ≤ {MAX_IMAGE_SIDE}), "
                              f"got {_shown(shape)}")
        if self.arch == "conv" and (shape[1] != shape[2] or shape[1] % 2 or shape[1] < 8):
            raise ConfigError(f"the convolutional model needs square images with an even side of at least 8, "
                              f"got {tuple(shape)}")

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
    # "cosine" decays the learning rate to 0 over this run's steps; "warmup_cosine" first raises it linearly from
    # near 0 over the run's first tenth (vae_core.train.LR_WARMUP_SHARE), then decays it the same way
    lr_schedule: str = "constant"
    adam_beta2: float = 0.999  # decay of Adam's second-moment average; 0.99 adapts faster, which a short run needs

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "kl_warmup", "mc_samples", "seed"):
            if not _is_int(getattr(self, name)):
                raise ConfigError(f"{name.replace('_', ' ')} must be a whole number, got {getattr(self, name)!r}")
        for name in ("dataset", "device"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a name, got {getattr(self, name)!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if not (_is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a finite positive number, got {self.lr!r}")
        if not (_is_real(self.beta) and math.isfinite(self.beta) and self.beta >= 0):
            raise ConfigError(f"beta must be a finite non-negative number, got {self.beta!r}")
        if self.kl_warmup < 0:
            raise ConfigError(f"KL warm-up must be non-negative, got {self.kl_warmup}")
        if self.mc_samples < 1:
            raise ConfigError(f"Monte-Carlo samples must be at least 1, got {self.mc_samples}")
        if not (_is_real(self.adam_beta2) and 0 <= self.adam_beta2 < 1):
            raise ConfigError(f"Adam's beta2 must be a number in [0, 1), got {self.adam_beta2!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data)


def default_arch(image_shape: tuple[int, int, int]) -> str:
    """The architecture a model of images (C, H, W) gets unless one is asked for: the convnet for colour and from
    32 px on (an MLP's first layer would be 3·64·64 × 512 weights, and it knows nothing of neighbouring pixels),
    the MLP (the dataclass's default) for small greyscale images such as MNIST's."""
    c, h, w = image_shape
    return "conv" if c > 1 or min(h, w) >= CONV_FROM_SIDE else "mlp"


def parse_noise(text: str) -> tuple[str | None, float]:
    """"mask:0.5" -> ("mask", 0.5), "gauss:0.3" -> ("gauss", 0.3), "patch:0.75:7" -> ("patch", 0.75), "" -> (None, 0.0);
    ConfigError otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"noise must be text such as mask:0.5 or gauss:0.3, got {_shown(text)}")
    if text.strip().startswith("patch:"):  # the masked autoencoder's corruption: parse_patch has its patch side
        return "patch", parse_patch(text)[0]
    if not text.strip():
        return None, 0.0
    family, _, level_text = text.strip().partition(":")
    try:
        level = float(level_text)
    except ValueError:
        level = math.nan
    top = 1.0 if family == "mask" else 10.0
    if family not in NOISE_KINDS or not (0 < level < top if family == "mask" else 0 < level <= top):
        raise ConfigError(f"noise must be mask:ν with 0 < ν < 1 or gauss:σ with 0 < σ ≤ 10, got {_shown(text)}")
    return family, level


def parse_patch(text: str) -> tuple[float, int]:
    """"patch:0.75:7" -> (0.75, 7): a share ρ (0 < ρ < 1) of the k×k patches hidden, k from 1 to MAX_IMAGE_SIDE."""
    family, _, rest = text.strip().partition(":")
    share_text, _, side_text = rest.partition(":")
    try:
        share, side = float(share_text), int(side_text)
    except ValueError:
        share, side = math.nan, 0
    if family != "patch" or not 0 < share < 1 or not 1 <= side <= MAX_IMAGE_SIDE:
        raise ConfigError(f"noise must be patch:ρ:k with 0 < ρ < 1 and a patch side 1 ≤ k ≤ {MAX_IMAGE_SIDE}, "
                          f"got {_shown(text)}")
    return share, side


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A setting for an error line, cut short: a hostile file may hold a million-entry list."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(repr, value[:8])) + (", ...]" if len(value) > 8 else "]")
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
