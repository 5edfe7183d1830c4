"""What every kind of model is to the rest of the code: encode, decode, an objective, and what it can do.

Callers (training, evaluation, inference, the app) use only this interface and ask a kind's class what it can do
(its capabilities: has a posterior, takes a label, its settings, can be trained) rather than compare kinds' names,
so a new kind of model is a new file beside this one plus a line in the registry (`vae_core.models.KINDS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ARCHITECTURES, LIKELIHOODS, MAX_CLASSES, ConfigError, ModelConfig, _shown, parse_noise
from ..loss import LossTerms, reconstruction_nll
from .nets import build_decoder, build_encoder

GAUSSIAN_VAR = 0.1  # a Gaussian likelihood's variance per pixel where a kind fixes it, and where learned ones start
FIELD_NAMES = {"arch": "architecture", "likelihood": "likelihood"}


@dataclass
class Posterior:
    """The code of a batch: q(z|x) = N(mean, diag exp(logvar)) for probabilistic encoders; `logvar` is None for a
    deterministic one (an autoencoder's code is a point)."""

    mean: torch.Tensor  # (B, d)
    logvar: torch.Tensor | None = None

    @property
    def std(self) -> torch.Tensor:
        """σ per dim; zero for a deterministic code."""
        return torch.zeros_like(self.mean) if self.logvar is None else torch.exp(0.5 * self.logvar)


class LatentModel(nn.Module):
    """An encoder x → z and a decoder z → p(x|z) with the networks of `nets`; each kind adds its objective.

    The decoder returns logits shaped like the input: Bernoulli logits, or for the Gaussian likelihood the
    pre-sigmoid mean, with one learned log-variance per pixel (`log_var_x`).
    """

    kind: ClassVar[str]
    title: ClassVar[str]  # what the app calls it in a sentence: "denoising autoencoder"
    short_title: ClassVar[str]  # in labels and pickers: "denoising AE"
    probabilistic: ClassVar[bool] = False  # q(z|x) has a variance, and a prior: ELBO, KL, IW log p(x) exist
    conditional: ClassVar[bool] = False  # encoder and decoder also take the class label (ModelConfig.n_classes)
    trainable: ClassVar[bool] = True  # built from its config and fitted here; an imported model (onnx_model) is not
    # The settings (ModelConfig and TrainConfig fields) that only some kinds use, in the order a form asks for them:
    # "beta" and "kl_warmup" weigh a KL term, "noise" corrupts the inputs (a kind that has it needs one), "sparsity"
    # is an L1 penalty on the code. A kind without one of them is refused a value for it.
    settings: ClassVar[tuple[str, ...]] = ()
    curves: ClassVar[tuple[str, ...]] = ("recon",)  # the per-image quantities its training reports, in nats
    # The values of the shared fields it takes: architectures, likelihoods, and whether it has hidden layers (the
    # `hidden` sizes; a kind without them takes none). The first of each is its default where the dataclass's is not.
    architectures: ClassVar[tuple[str, ...]] = ARCHITECTURES
    likelihoods: ClassVar[tuple[str, ...]] = LIKELIHOODS
    hidden_layers: ClassVar[bool] = True
    fixed_variance: ClassVar[bool] = False  # a Gaussian likelihood's variance is GAUSSIAN_VAR, not learned per pixel
    linear: ClassVar[bool] = False  # encoder and decoder are affine maps: the decoder has a column space (decoder_weight)

    @classmethod
    def label(cls, config: ModelConfig) -> str:
        """The short title of a model of this kind made with `config` (some settings make another well-known model)."""
        return cls.short_title

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """ConfigError unless `config` (its fields already well-formed) gives this kind what it takes and nothing else:
        classes to a conditional kind, a noise where it is a setting, a sparsity only where it is one. ModelConfig
        asks on creation."""
        if not (config.n_classes >= 2 if cls.conditional else config.n_classes == 0):
            raise ConfigError(f"a {cls.title} takes {'2 to ' + str(MAX_CLASSES) if cls.conditional else 'no'} classes, "
                              f"got {config.n_classes}")
        has_noise = parse_noise(config.noise)[0] is not None
        if has_noise != ("noise" in cls.settings):
            raise ConfigError(f"a {cls.title} takes no noise, got {config.noise!r}" if has_noise else
                              f"a {cls.title} needs a noise such as mask:0.5 or gauss:0.3")
        if config.sparsity and "sparsity" not in cls.settings:
            raise ConfigError(f"a {cls.title} takes no L1 sparsity penalty on its code, got {config.sparsity!r}")
        for field, known, allowed in (("arch", ARCHITECTURES, cls.architectures),
                                      ("likelihood", LIKELIHOODS, cls.likelihoods)):
            value = getattr(config, field)
            if value in known and value not in allowed:  # an unknown value is ModelConfig's to refuse
                raise ConfigError(f"a {cls.title} takes the {FIELD_NAMES[field]} {' or '.join(allowed)}, got {value}")
        if not cls.hidden_layers and config.hidden != ():
            raise ConfigError(f"a {cls.title} has no hidden layers, got hidden sizes {_shown(config.hidden)}")

    @classmethod
    def default(cls, field: str, usual: str) -> str:
        """The architecture or likelihood (`field`) this kind gets unless one is asked for: `usual` (the dataclass's
        default, or the data's usual architecture) when it takes it, else its first."""
        allowed = {"arch": cls.architectures, "likelihood": cls.likelihoods}[field]
        return usual if usual in allowed else allowed[0]

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        extra = config.n_classes if self.conditional else 0
        self.encoder = build_encoder(config, self.code_width(config.latent_dim), extra)
        self.decoder = build_decoder(config, extra)
        if config.likelihood == "gaussian":
            log_var = torch.full(config.image_shape, math.log(GAUSSIAN_VAR))
            if self.fixed_variance:  # part of the kind, not of its weights: a file cannot change it
                self.register_buffer("log_var_x", log_var, persistent=False)
            else:
                self.log_var_x = nn.Parameter(log_var)

    @staticmethod
    def code_width(latent_dim: int) -> int:
        """How many numbers the encoder puts out per input."""
        return latent_dim

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def condition(self, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        """The one-hot label a conditional model is fed (None for the others); `like` gives device and dtype.

        `y` holds class indices, one per row or one for all, or is already float rows (B, n_classes): how an exported
        model takes its label (`vae_core.onnx_export`), which also lets a caller blend classes."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"a {self.title} needs the class label of each input")
        y = y.to(like.device) if isinstance(y, torch.Tensor) else torch.as_tensor(y, device=like.device)
        if y.is_floating_point() and y.ndim == 2:
            return y.to(like.dtype)
        y = y.long().reshape(-1)
        if len(y) == 1 and len(like) > 1:
            y = y.expand(len(like))
        return F.one_hot(y, self.config.n_classes).to(like.dtype)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """The code of images x (B, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder logits (B, C, H, W) for latents z (B, d)."""
        condition = self.condition(y, z)
        h = z if condition is None else torch.cat([z, condition], dim=1)
        return self.decoder(h).view(-1, *self.config.image_shape)

    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel means in [0, 1]: what the app shows for a latent point."""
        return torch.sigmoid(self.decode(z, y))

    def recon_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per image in nats, summed over pixels, for this model's likelihood."""
        return reconstruction_nll(logits, x, self.config.likelihood, getattr(self, "log_var_x", None))

    def sampled_recon_nll(self, q: Posterior, x: torch.Tensor, y: torch.Tensor | None,
                          eps: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) (k, B) for the k codes z = μ + σ·ε of each input, ε (k, B, d) or (k, 1, d) drawn by the
        caller (how it draws them is what differs between training, evaluation and typicality)."""
        k = len(eps)
        z = q.mean + q.std * eps
        x_rep = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
        y_rep = None if y is None else torch.as_tensor(y, device=x.device).reshape(-1).repeat(k)
        return self.recon_nll(self.decode(z.flatten(0, 1), y_rep), x_rep).view(k, -1)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        """Batch means per image of what training minimises, and its parts."""
        raise NotImplementedError
