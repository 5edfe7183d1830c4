"""A model trained elsewhere and imported as two ONNX files (`python -m vae_core import`), run by onnxruntime.

It answers the interface of every other model (encode, decode, decode_mean, recon_nll, sampled_recon_nll,
latent_dim, config), so evaluation, inference, typicality, traversals and the app use it unchanged; it has no
parameters and is not trained here. Its kind says whether the encoder gives log σ² beside μ: an imported VAE has a
posterior (ELBO, KL, IW log p(x), active units), an imported autoencoder a point code. The files are checked by
`vae_core.onnx_check` before a session is made of them (`vae_core.imported` does both).

Decoder output "probs" (pixel means in [0, 1]) becomes logits as logit(clamp(p, ε, 1 − ε)) with ε = LOGIT_EPS = 1e-7,
in float64: logits within ±16.1, so a pixel the decoder calls certain and that is not costs at most 16.1 nats, where
torch's binary_cross_entropy (on probabilities) caps −log p at 100. The Gaussian likelihood uses the sigmoid of those
logits (the decoder's mean) and a fixed variance per pixel, `gaussian_var`, stored in the file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, ModelConfig
from ..loss import LossTerms
from .base import GAUSSIAN_VAR, LatentModel, Posterior
from .vae import LOGVAR_MAX, LOGVAR_MIN

if TYPE_CHECKING:
    from ..onnx_check import Graph, Pair

DECODER_OUTPUTS = ("probs", "logits")
LOGIT_EPS = 1e-7
DEFAULT_GAUSSIAN_VAR = GAUSSIAN_VAR  # the variance our own Gaussian decoders start from, or keep (linear AE)
RUN_BUDGET_BYTES = 64 << 20  # the largest tensor one onnxruntime run may make: big batches are run in chunks


@dataclass(frozen=True)
class ImportedConfig(ModelConfig):
    """What an imported model is: the shared fields that apply (latent_dim, image_shape, likelihood, kind) and how its
    files are read; arch is "onnx" and there are no hidden sizes, classes, noise or sparsity."""

    kind: str = "onnx_vae"
    arch: str = "onnx"
    hidden: tuple[int, ...] = ()
    decoder_output: str = "probs"
    input_rank: int = 4  # the encoder takes (N, C, H, W), or with 2 their flattening (N, C·H·W)
    gaussian_var: float = DEFAULT_GAUSSIAN_VAR

    def __post_init__(self) -> None:
        if self.kind not in ("onnx_vae", "onnx_ae"):
            raise ConfigError(f"unknown kind of imported model {self.kind!r}")
        # the limits every model keeps, checked where they are kept
        ModelConfig(latent_dim=self.latent_dim, image_shape=self.image_shape, likelihood=self.likelihood)
        if self.arch != "onnx" or self.hidden or self.n_classes or self.noise or self.sparsity:
            raise ConfigError("an imported model has no architecture, hidden sizes, classes, noise or sparsity of ours")
        if self.decoder_output not in DECODER_OUTPUTS:
            raise ConfigError(f"decoder output must be one of {', '.join(DECODER_OUTPUTS)}, got {self.decoder_output!r}")
        if self.input_rank not in (2, 4):
            raise ConfigError(f"the encoder's input rank must be 2 or 4, got {self.input_rank!r}")
        if not (isinstance(self.gaussian_var, (int, float)) and math.isfinite(self.gaussian_var) and self.gaussian_var > 0):
            raise ConfigError(f"the Gaussian variance must be a finite positive number, got {self.gaussian_var!r}")


class OnnxRunner:
    """One checked ONNX graph in an onnxruntime session on the CPU, taking and giving torch tensors.

    A batch is run in chunks whose largest tensor stays within RUN_BUDGET_BYTES (as shape inference sized it), and a
    graph whose batch size is fixed gets chunks of that size, the last one padded."""

    def __init__(self, data: bytes, graph: Graph) -> None:
        import onnxruntime as ort  # here, not above: importing vae_core.models should not cost onnxruntime's import

        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False  # give memory back after a large batch rather than keep it for the next
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.graph = graph

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        rows = self.graph.rows_per_run(RUN_BUDGET_BYTES)
        inputs = x.detach().to("cpu", torch.float32).contiguous().numpy()
        parts = []
        for start in range(0, len(inputs), rows):
            chunk = inputs[start:start + rows]
            n = len(chunk)
            if self.graph.batch and n < rows:
                chunk = np.concatenate([chunk, np.zeros((rows - n, *chunk.shape[1:]), np.float32)])
            outputs = self.session.run(list(self.graph.outputs), {self.graph.input_name: chunk})
            parts.append([o[:n] for o in outputs])
        return [torch.from_numpy(np.concatenate(p)).to(x.device) for p in zip(*parts)]


class ImportedModel(LatentModel):
    """The two graphs behind LatentModel's interface; encoder and decoder are OnnxRunners, not modules."""

    trainable = False
    config: ImportedConfig

    def __init__(self, config: ImportedConfig, encoder: bytes, decoder: bytes, pair: Pair) -> None:
        nn.Module.__init__(self)  # no networks of ours to build: onnxruntime runs the imported graphs
        self.config = config
        self.encoder = OnnxRunner(encoder, pair.encoder)
        self.decoder = OnnxRunner(decoder, pair.decoder)
        self.onnx_files = (encoder, decoder)  # as imported: what a runtime elsewhere (the browser) is given
        if config.likelihood == "gaussian":  # a buffer, so it follows .to(device) like a trained model's log_var_x
            self.register_buffer("log_var_x", torch.full(config.image_shape, math.log(config.gaussian_var)))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        codes = self.encoder(x.flatten(1) if self.config.input_rank == 2 else x)
        if len(codes) == 1:
            return Posterior(codes[0])
        return Posterior(codes[0], codes[1].clamp(LOGVAR_MIN, LOGVAR_MAX))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(z)[0].view(-1, *self.config.image_shape)
        if self.config.decoder_output == "logits":
            return out
        return torch.logit(out.double(), eps=LOGIT_EPS).to(out.dtype)

    def objective(self, x: torch.Tensor, y: torch.Tensor | None = None, *, kl_weight: float = 1.0,
                  mc_samples: int = 1) -> LossTerms:
        raise TypeError(f"an {self.title} is run as imported, not trained here")


class ImportedVAE(ImportedModel):
    kind = "onnx_vae"
    title = "imported VAE"
    short_title = "imported VAE"
    probabilistic = True
    curves = ("elbo", "recon", "kl")


class ImportedAE(ImportedModel):
    kind = "onnx_ae"
    title = "imported autoencoder"
    short_title = "imported AE"
