"""One file per model: weights, configs, dataset, history and metrics. Loading never executes code from the file."""
from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, TrainConfig
from .model import VAE, build_model

FORMAT = "latent-explorer-vae"
VERSION = 1
SUFFIX = ".pt"


class CheckpointError(ValueError):
    """The file is not a usable checkpoint; the message names the file."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself, without building the model."""

    path: Path
    name: str
    model_config: ModelConfig
    train_config: TrainConfig
    dataset: str
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def beta(self) -> float:
        return self.train_config.beta

    @property
    def test_elbo(self) -> float | None:
        """Test −ELBO at β = 1 in nats, if it was measured."""
        value = self.metrics.get("elbo")
        return None if value is None else float(value)


def save_checkpoint(
    path: str | os.PathLike,
    model: VAE,
    train_config: TrainConfig,
    dataset: str,
    history: list[dict[str, float]] | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then rename over the target."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "dataset": dataset,
        "history": list(history or []),
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a checkpoint should read like any saved file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, corrupted or not a PyTorch file): {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (foreign file)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported (expected {VERSION})")
    return payload


def _info(path: Path, payload: dict[str, Any]) -> CheckpointInfo:
    try:
        return CheckpointInfo(
            path=path,
            name=path.stem,
            model_config=ModelConfig.from_dict(payload["model_config"]),
            train_config=TrainConfig.from_dict(payload["train_config"]),
            dataset=str(payload["dataset"]),
            history=list(payload.get("history", [])),
            metrics=dict(payload.get("metrics", {})),
            extra=dict(payload.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: {exc}") from exc


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    path = Path(path)
    return _info(path, _read(path))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[VAE, CheckpointInfo]:
    """Rebuild the model from the file alone, in eval mode on `device`."""
    path = Path(path)
    payload = _read(path)
    info = _info(path, payload)
    model = build_model(info.model_config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: weights do not match the stored model configuration: {exc}") from exc
    return model.to(device).eval(), info


def list_checkpoints(folder: str | os.PathLike) -> tuple[list[CheckpointInfo], list[str]]:
    """Metadata of every checkpoint in `folder`, sorted by name, plus one error line per unreadable file."""
    infos, errors = [], []
    folder = Path(folder)
    if not folder.is_dir():
        return infos, errors
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            infos.append(read_info(path))
        except CheckpointError as exc:
            errors.append(str(exc))
    return infos, errors
