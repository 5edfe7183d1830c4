"""One file per model: weights, configs, dataset, history and metrics.

Loading never executes code from the file, and a hostile or broken file costs at most a few megabytes and gives one
CheckpointError line naming it: the archive is checked before unpickling, tensors are memory-mapped rather than read,
and every tensor's shape is compared with what the stored configuration implies before any weight is allocated.
"""
from __future__ import annotations

import errno
import io
import math
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import torch

from .atomic import remove_stale_temp_files, write_atomic
from .config import ConfigError, ModelConfig, TrainConfig
from .data import SHA_PATTERN, valid_name
from .models import LatentModel, build_model, model_class
from .trajectory import Trajectory, TrajectoryError, validate

FORMAT = "latent-explorer-vae"
IMPORTED_FORMAT = "latent-explorer-onnx"  # a model imported from ONNX files (vae_core.imported): listed and loaded alike
VERSION = 1
SUFFIX = ".pt"
# The pickled part holds configs, history and metrics (a few kB; ~2 MB for 20,000 epochs of history). Capping it
# bounds what unpickling a hostile file can allocate, since the weights themselves are memory-mapped.
MAX_METADATA_BYTES = 8 << 20
FINITE_CHECK_CHUNK = 1 << 20  # elements per isfinite() pass, so checking a large layer allocates ~1 MB, not its size
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class CheckpointError(ValueError):
    """The file is not a usable checkpoint; the message is one line naming the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the target is untouched and nothing partial is left behind.

    `path` is the target, `needed_bytes` the size of the checkpoint, `free_bytes` the free space in its folder
    (None when unknown).
    """

    def __init__(self, message: str, path: Path, needed_bytes: int, free_bytes: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes


class DiskFullError(CheckpointWriteError):
    """The disk (or the user's quota) has no room for the checkpoint."""


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
    # The content hash of an imported dataset the model was trained on (vae_core.data.load_test_set checks it), so a
    # set imported again under the same name with other images is never shown as this model's; None for built-in sets.
    dataset_sha: str | None = None

    @property
    def model_class(self) -> type[LatentModel]:
        """Its kind's class: what the model can do (probabilistic, conditional, …) without building it."""
        return model_class(self.model_config.kind)

    @property
    def beta(self) -> float:
        return self.train_config.beta

    @property
    def test_elbo(self) -> float | None:
        """Test −ELBO at β = 1 in nats, if it was measured."""
        value = self.metrics.get("elbo")
        return None if value is None else float(value)


def megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def save_checkpoint(
    path: str | os.PathLike,
    model: LatentModel,
    train_config: TrainConfig,
    dataset: str,
    history: list[dict[str, float]] | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    trajectory: dict[str, torch.Tensor] | None = None,
    dataset_sha: str | None = None,
) -> Path:
    """Write atomically (vae_core.atomic: a locked temp file in the same folder, fsync, then rename over the target).

    Raises DiskFullError when there is no room and CheckpointWriteError for any other write failure; either way the
    target keeps its old content and no temp file is left. Temp files of earlier saves that were killed are removed.
    `trajectory` is a TrajectoryRecorder's payload (the replayable history), stored under "trajectory" when given;
    `dataset_sha` the content hash of an imported dataset (`ImageDataset.sha`), stored when given.
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "dataset": dataset,
        "history": list(history or []),
        # Loaders accept only finite numbers as metrics, so a NaN from a measurement that failed is left out (absent
        # means unknown) rather than making the file unloadable.
        "metrics": {k: v for k, v in (metrics or {}).items() if _is_number(v) and math.isfinite(v)},
        "extra": dict(extra or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if trajectory is not None:
        payload["trajectory"] = trajectory
    if dataset_sha is not None:
        payload["dataset_sha"] = dataset_sha
    return write_payload(path, payload)


def write_payload(path: Path, payload: dict[str, Any]) -> Path:
    """torch.save `payload` to `path` atomically (vae_core.atomic): see save_checkpoint for the guarantees."""
    # Serialised in memory first: torch's zip writer turns a failed write into "unexpected pos 2752 vs 2646", while
    # the atomic write raises ENOSPC as it is and knows the exact size needed.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    try:
        return write_atomic(path, data)
    except OSError as exc:
        raise _write_error(path, exc, len(data)) from exc


def _write_error(path: Path, exc: OSError, needed: int) -> CheckpointWriteError:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if exc.errno in DISK_FULL_ERRNOS:
        room = f", {megabytes(free)} free" if free is not None else ""
        return DiskFullError(f"disk full: cannot save {path} (needs {megabytes(needed)}{room}); the file was left unchanged",
                             path, needed, free)
    reason = exc.strerror or str(exc)
    return CheckpointWriteError(f"cannot save {path}: {reason}; the file was left unchanged", path, needed, free)


def _check_archive(path: Path) -> None:
    """torch.save writes an uncompressed zip; refuse anything else before torch reads it (random bytes, a truncated
    file, a compressed 'zip bomb', an oversized pickle)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, OSError, ValueError, EOFError... depending on the damage
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, corrupted or not a PyTorch file)") from exc
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{path}: not a checkpoint written by PyTorch (it holds compressed entries)")
        if entry.filename.endswith("data.pkl") and entry.file_size > MAX_METADATA_BYTES:
            raise CheckpointError(f"{path}: refused: its metadata is {megabytes(entry.file_size)}, more than the "
                                  f"{megabytes(MAX_METADATA_BYTES)} a checkpoint ever needs")


def load_payload(path: Path, fmt: str | tuple[str, ...], what: str = "checkpoint") -> dict[str, Any]:
    """The dict a file of format `fmt` (or one of several) holds, read without running code or copying tensors
    (memory-mapped); CheckpointError naming the file when it is anything else."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    _check_archive(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, IndexError, UnicodeDecodeError... on garbage
        if "weights only" in str(exc).lower():
            raise CheckpointError(f"{path}: refused: it holds Python objects other than weights and settings "
                                  "(possibly code, which is never run)") from exc
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, corrupted or not a PyTorch file: "
                              f"{type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") not in ((fmt,) if isinstance(fmt, str) else fmt):
        raise CheckpointError(f"{path}: not a Latent Explorer {what} (foreign file)")
    return payload


def _read(path: Path) -> dict[str, Any]:
    payload = load_payload(path, (FORMAT, IMPORTED_FORMAT))
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported (expected {VERSION})")
    return payload


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def info_from_payload(path: Path, payload: dict[str, Any], config_type: type[ModelConfig] = ModelConfig) -> CheckpointInfo:
    """The metadata of a loaded payload, its model configuration read as `config_type`; CheckpointError when malformed."""
    try:
        model_config = config_type.from_dict(payload["model_config"])
        train_config = TrainConfig.from_dict(payload["train_config"])
    except KeyError as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: no {exc.args[0]}") from exc
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: {exc}") from exc
    dataset, sha = payload.get("dataset"), payload.get("dataset_sha")
    # Any well-formed name is accepted (an imported set may be missing here: the pages then show the decoder only);
    # the name is shown and used to look data up, so anything else is refused.
    if not valid_name(dataset):
        raise CheckpointError(f"{path}: trained on a dataset with a malformed name {repr(dataset)[:40]}")
    if sha is not None and not (isinstance(sha, str) and SHA_PATTERN.fullmatch(sha)):
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: the dataset's content hash is "
                              f"{repr(sha)[:40]}")
    history, metrics, extra = payload.get("history", []), payload.get("metrics", {}), payload.get("extra", {})
    # History may hold NaN (test metrics that were not measured) but only numbers; metrics are shown and compared,
    # so each must be a finite number.
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and all(isinstance(k, str) and _is_number(v) for k, v in h.items()) for h in history
    ):
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: the training history is not a list of numbers")
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: the metrics are not a mapping")
    for key, value in metrics.items():
        if not (isinstance(key, str) and _is_number(value) and math.isfinite(value)):
            raise CheckpointError(f"{path}: stored metric {str(key)[:40]!r} is {repr(value)[:40]}, not a finite number")
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: checkpoint metadata is malformed: 'extra' is not a mapping")
    return CheckpointInfo(path=path, name=path.stem, model_config=model_config, train_config=train_config,
                          dataset=dataset, history=history, metrics=metrics, extra=extra, dataset_sha=sha)


def _checked_weights(path: Path, config: ModelConfig, state_dict: Any) -> dict[str, torch.Tensor]:
    """The stored tensors, once each has exactly the shape and dtype the configuration implies and only finite values.

    The expected shapes come from a model built on the meta device, which allocates nothing."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{path}: weights do not match the stored model configuration: no state dict of tensors")
    with torch.device("meta"):
        expected = build_model(config).state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [str(k)[:40] for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the stored model configuration: "
                              f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    for key, want in expected.items():
        tensor = state_dict[key]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(f"{path}: weights do not match the stored model configuration: {key} is "
                                  f"{tensor.dtype} {list(tensor.shape)}, expected {want.dtype} {list(want.shape)}")
        if not tensor.is_contiguous():  # e.g. a stride-0 tensor that claims a large layer on one stored number
            raise CheckpointError(f"{path}: weights are not stored densely ({key})")
        flat = tensor.view(-1)
        for start in range(0, flat.numel(), FINITE_CHECK_CHUNK):
            if not torch.isfinite(flat[start:start + FINITE_CHECK_CHUNK]).all():
                raise CheckpointError(f"{path}: weights hold NaN or infinite values ({key}); the model is unusable")
    return state_dict


def _checked_trajectory(path: Path, config: ModelConfig, trajectory: Any) -> dict[str, torch.Tensor] | None:
    """The stored training history (None in files written before histories were recorded), once trajectory.validate
    has found it consistent with the model's configuration."""
    if trajectory is None:
        return None
    try:
        validate(trajectory, config.latent_dim, config.image_shape, model_class(config.kind).probabilistic)
    except TrajectoryError as exc:
        raise CheckpointError(f"{path}: its training history is malformed: {exc}") from exc
    return trajectory


def _validated(path: Path, payload: dict[str, Any]) -> tuple[CheckpointInfo, dict[str, torch.Tensor],
                                                             dict[str, torch.Tensor] | None]:
    info = info_from_payload(path, payload)
    weights = _checked_weights(path, info.model_config, payload.get("state_dict"))
    return info, weights, _checked_trajectory(path, info.model_config, payload.get("trajectory"))


def _imported():
    """vae_core.imported, which builds on this module, so it is imported when a file of its format is met."""
    from . import imported

    return imported


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The metadata of a checkpoint that would load; the weights are checked through a memory map, never copied (an
    imported model's graphs are checked without being run)."""
    path = Path(path)
    payload = _read(path)
    if payload["format"] == IMPORTED_FORMAT:
        return _imported().read_info(path, payload)
    return _validated(path, payload)[0]


def load_trajectory(path: str | os.PathLike) -> Trajectory | None:
    """The checkpoint's replayable training history as numpy arrays, or None when it has none (older files, imported
    models)."""
    path = Path(path)
    payload = _read(path)
    if payload["format"] == IMPORTED_FORMAT:
        _imported().read_info(path, payload)
        return None
    stored = _validated(path, payload)[2]
    return None if stored is None else Trajectory.from_payload(stored)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[LatentModel, CheckpointInfo]:
    """Rebuild the model from the file alone, in eval mode on `device`."""
    path = Path(path)
    payload = _read(path)
    if payload["format"] == IMPORTED_FORMAT:
        model, info = _imported().load(path, payload)
    else:
        info, state_dict, _ = _validated(path, payload)
        model = build_model(info.model_config)
        model.load_state_dict(state_dict)  # copies out of the memory map: the model owns its weights
    return model.to(device).eval(), info


def list_checkpoints(folder: str | os.PathLike) -> tuple[list[CheckpointInfo], list[str]]:
    """Metadata of every usable checkpoint in `folder`, sorted by name, plus one error line per refused file.

    Temp files left by killed saves are removed on the way."""
    infos, errors = [], []
    folder = Path(folder)
    if not folder.is_dir():
        return infos, errors
    remove_stale_temp_files(folder, SUFFIX)
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            infos.append(read_info(path))
        except CheckpointError as exc:
            errors.append(str(exc))
    return infos, errors
