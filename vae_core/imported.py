"""Models trained elsewhere, imported from an ONNX encoder and decoder into one file that loads like a checkpoint.

The file is what `torch.save` writes (read back with `weights_only=True`, so it never runs code): a dict with
  format "latent-explorer-onnx", version 1,
  model_config  an ImportedConfig (kind onnx_vae / onnx_ae, latent_dim, image_shape, likelihood, decoder_output,
                input_rank, gaussian_var),
  train_config  {"dataset": NAME} (nothing else: it was not trained here),
  dataset, metrics (test −ELBO, recon, KL measured at import, or recon alone for an autoencoder),
  extra         title, the source files' names and sha256, and which input and outputs of the graphs are used,
  encoder, decoder  the two ONNX files as they were given, uint8 tensors (memory-mapped when loaded).
Listing and loading check both graphs again and run them once in the capped child process (`onnx_check.check_pair`),
since the file may have been edited since it was written.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (IMPORTED_FORMAT, VERSION, CheckpointError, CheckpointInfo, info_from_payload,
                         write_payload)
from .data import ImageDataset
from .evaluate import elbo
from .models import ImportedAE, ImportedModel, ImportedVAE, model_class
from .models.onnx_model import DEFAULT_GAUSSIAN_VAR, ImportedConfig
from .onnx_check import MAX_ONNX_BYTES, OnnxError, Pair, check_pair

ROLES = ("encoder", "decoder")


def read_onnx(path: str | os.PathLike) -> bytes:
    """A user's ONNX file, read only when it is a regular file within the size limit; OnnxError naming it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise OnnxError(f"{path}: {'no such file' if not path.exists() else 'not a regular file'}")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise OnnxError(f"{path}: refused: it is {size / 1e6:.1f} MB, more than the {MAX_ONNX_BYTES / 1e6:.1f} MB an "
                        "imported file may be")
    with path.open("rb") as fh:
        return fh.read(MAX_ONNX_BYTES + 1)  # the file may have grown since stat; check_graph refuses what is too long


def build(encoder: bytes, decoder: bytes, data: ImageDataset, *, decoder_output: str = "probs",
          likelihood: str = "bernoulli", gaussian_var: float = DEFAULT_GAUSSIAN_VAR, encoder_name: str = "encoder.onnx",
          decoder_name: str = "decoder.onnx") -> ImportedModel:
    """The imported model of two ONNX byte strings, checked against the contract and `data`'s image shape and run
    once in the capped child process; OnnxError naming the file at fault, ConfigError for a bad setting."""
    shape = data.image_shape  # what an imported model must take and draw
    pair = check_pair(encoder, decoder, shape, decoder_output, encoder_name=encoder_name, decoder_name=decoder_name)
    config = ImportedConfig(kind=(ImportedVAE if pair.probabilistic else ImportedAE).kind, latent_dim=pair.latent_dim,
                            image_shape=shape, likelihood=likelihood, decoder_output=decoder_output,
                            input_rank=pair.encoder.input_rank, gaussian_var=gaussian_var)
    return model_class(config.kind)(config, encoder, decoder, pair)


def save_imported(path: str | os.PathLike, model: ImportedModel, encoder: bytes, decoder: bytes, data: ImageDataset, *,
                  title: str = "", sources: tuple[str, str] = ("encoder.onnx", "decoder.onnx")) -> Path:
    """Measure the model on `data`'s test split and write the file (atomically, as checkpoints are written)."""
    terms = elbo(model, data.test_images)
    metrics = dict(terms) if model.probabilistic else {"recon": terms["recon"]}
    extra: dict[str, Any] = {"title": title, "n_test_images": len(data.test_images),
                             "input": model.encoder.graph.input_name, "outputs": list(model.encoder.graph.outputs)}
    for role, blob, source in zip(ROLES, (encoder, decoder), sources):
        extra[f"{role}_file"] = Path(source).name
        extra[f"{role}_sha256"] = hashlib.sha256(blob).hexdigest()
    payload = {"format": IMPORTED_FORMAT, "version": VERSION, "model_config": model.config.to_dict(),
               "train_config": {"dataset": data.name}, "dataset": data.name, "metrics": metrics, "extra": extra,
               **({} if data.sha is None else {"dataset_sha": data.sha}),
               "encoder": torch.frombuffer(bytearray(encoder), dtype=torch.uint8),
               "decoder": torch.frombuffer(bytearray(decoder), dtype=torch.uint8)}
    return write_payload(Path(path), payload)


def _stored(path: Path, payload: dict[str, Any]) -> tuple[CheckpointInfo, bytes, bytes]:
    info = info_from_payload(path, payload, ImportedConfig)
    blobs = []
    for role in ROLES:
        tensor = payload.get(role)
        if not (isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8 and tensor.ndim == 1
                and tensor.numel() <= MAX_ONNX_BYTES and tensor.is_contiguous()):
            raise CheckpointError(f"{path}: its {role} is not stored as the bytes of an ONNX file")
        blob = tensor.numpy().tobytes()
        if hashlib.sha256(blob).hexdigest() != info.extra.get(f"{role}_sha256"):
            raise CheckpointError(f"{path}: its {role} does not match the checksum recorded at import (damaged or edited)")
        blobs.append(blob)
    return info, blobs[0], blobs[1]


def _checked(path: Path, payload: dict[str, Any]) -> tuple[CheckpointInfo, bytes, bytes, Pair]:
    """Everything an imported file holds, its graphs checked again and run once in the capped child process (once
    per process for the same bytes: onnx_check remembers the pairs that passed)."""
    info, encoder, decoder = _stored(path, payload)
    config = info.model_config
    pair = check_pair(encoder, decoder, config.image_shape, config.decoder_output,
                      encoder_name=f"{path} (encoder)", decoder_name=f"{path} (decoder)")
    found = ((ImportedVAE if pair.probabilistic else ImportedAE).kind, pair.latent_dim, pair.encoder.input_rank)
    if found != (config.kind, config.latent_dim, config.input_rank):
        raise CheckpointError(f"{path}: its graphs (kind, d, input rank {found}) no longer match what was recorded at "
                              f"import ({(config.kind, config.latent_dim, config.input_rank)})")
    return info, encoder, decoder, pair


def read_info(path: Path, payload: dict[str, Any]) -> CheckpointInfo:
    """The metadata of an imported file whose graphs pass every check."""
    return _checked(path, payload)[0]


def load(path: Path, payload: dict[str, Any]) -> tuple[ImportedModel, CheckpointInfo]:
    """The imported model of a file whose graphs pass every check."""
    info, encoder, decoder, pair = _checked(path, payload)
    return model_class(info.model_config.kind)(info.model_config, encoder, decoder, pair), info
