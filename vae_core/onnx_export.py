"""PyTorch encoders and decoders written as the two ONNX files Latent Explorer imports (`python -m vae_core import`).

The contract (README, "Your own model"): `encoder.onnx` takes images x, float32 in [0, 1], (N, C, H, W) or flattened
to (N, C·H·W), and outputs μ, or μ and log σ², each (N, d); `decoder.onnx` takes z (N, d) and outputs the images (or
their flattening) as probabilities or as logits. The batch axis N is dynamic.

Our own models are exported the same way by `export_model`, with fixed names: encoder inputs "x" [, "y"], outputs
"mu" [, "logvar"] (log σ² already clamped as `encode` clamps it); decoder inputs "z" [, "y"], output "logits"
(N, C, H, W): the pre-sigmoid values `LatentModel.decode` returns, so the pixel means are their sigmoid. A conditional
model (cvae) takes its label as a second input "y": float32 one-hot rows (N, n_classes), which may also blend classes.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .evaluate import device_of
from .models import ImportedModel, LatentModel
from .onnx_check import check_graph

EXAMPLE_BATCH = 2  # torch.export specialises a batch of 1 into a constant, so the traced example batch is 2


class _Encoder(nn.Module):
    def __init__(self, model: LatentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        q = self.model.encode(x, y)
        return q.mean if q.logvar is None else (q.mean, q.logvar)


class _Decoder(nn.Module):
    def __init__(self, model: LatentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.decode(z, y)


def module_bytes(module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], *, traced: bool = False) -> bytes:
    """`module` run on `args` as one ONNX model, every input's (and output's) first axis a dynamic batch.

    With `traced`, torch.onnx's TorchScript exporter (dynamo=False), for our own nets: it writes the same graph far
    sooner than the torch.export one (mnist_z20's encoder and decoder: median 0.08 s vs 5.05 s, 3 interleaved pairs,
    load 5.8), and the live plane exports every model the first time a page shows it. It writes a size computed from
    a shape (a `chunk`'s) as ops that `check_graph` cannot size before running them, so any other module goes through
    the torch.export exporter, which writes such sizes as constants. The module is put in eval mode (dropout off,
    batch norm on its running statistics), as it is meant to be run."""
    module.eval()
    if traced:
        buf = io.BytesIO()
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of torch.export's, the slow one here
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(module, args, buf, dynamo=False, input_names=input_names, output_names=output_names,
                              dynamic_axes={name: {0: "batch"} for name in (*input_names, *output_names)})
        return buf.getvalue()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # the exporter reports its steps on stdout, and warns that inputs sharing the batch axis share its name
        warnings.filterwarnings("ignore", message=".*The axis name: batch will not be used")
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=tuple({0: batch} for _ in args), verbose=False)
    return program.model_proto.SerializeToString()


def export_model(model: LatentModel) -> tuple[bytes, bytes]:
    """Our model's encoder and decoder as ONNX bytes, named as the module docstring says (decoder output: logits).

    An imported model gives back its own two files as imported: its config says whether its decoder puts out
    probabilities or logits (`decoder_output`) and whether its encoder takes flattened images (`input_rank` 2)."""
    if isinstance(model, ImportedModel):
        return model.onnx_files
    config = model.config
    device = device_of(model)
    x = torch.rand(EXAMPLE_BATCH, *config.image_shape, device=device)
    z = torch.randn(EXAMPLE_BATCH, config.latent_dim, device=device)
    y = ((torch.eye(config.n_classes, device=device)[:EXAMPLE_BATCH],) if model.conditional else ())
    label = ["y"] if model.conditional else []
    was_training = model.training
    try:
        encoder = module_bytes(_Encoder(model), (x, *y), ["x", *label],
                               ["mu", "logvar"] if model.probabilistic else ["mu"], traced=True)
        decoder = module_bytes(_Decoder(model), (z, *y), ["z", *label], ["logits"], traced=True)
    finally:
        model.train(was_training)
    return encoder, decoder


def export_modules(encoder: nn.Module, decoder: nn.Module, image_shape: tuple[int, int, int], latent_dim: int,
                   out_dir: str | os.PathLike, *, flat_input: bool = False) -> tuple[Path, Path]:
    """Write `out_dir`/encoder.onnx and `out_dir`/decoder.onnx for any PyTorch encoder and decoder; returns the paths.

    `encoder` maps images (N, *image_shape) in [0, 1], or (N, C·H·W) with `flat_input`, to μ or a tuple (μ, log σ²),
    each (N, latent_dim); `decoder` maps z (N, latent_dim) to images (N, *image_shape) or (N, C·H·W), probabilities or
    logits (say which when importing). Both are put in eval mode. Wrap a module whose forward returns something else
    (a dict, a dataclass) in a small nn.Module that returns these tensors. The files are checked as `import` checks
    them, short of running them: OnnxError (one line) when they do not meet the contract."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = torch.rand(EXAMPLE_BATCH, *image_shape, device=device_of(encoder))
    x = x.flatten(1) if flat_input else x
    with torch.no_grad():
        code = encoder.eval()(x)
    n_outputs = len(code) if isinstance(code, (tuple, list)) else 1
    z = torch.randn(EXAMPLE_BATCH, latent_dim, device=device_of(decoder))
    files = module_bytes(encoder, (x,), ["x"], ["mu", "logvar"][:n_outputs]), module_bytes(decoder, (z,), ["z"], ["x"])
    paths = out / "encoder.onnx", out / "decoder.onnx"
    width = check_graph(files[0], str(paths[0]), "encoder", tuple(image_shape)).width
    check_graph(files[1], str(paths[1]), "decoder", tuple(image_shape), latent_dim=width)
    for path, blob in zip(paths, files):
        path.write_bytes(blob)
    return paths
