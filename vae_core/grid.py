"""A grid sweep (`python -m vae_core sweep`): every combination of β × latent size × seed of one recipe, trained in
groups (vae_core.backends: here, or on a Ray cluster), each model saved in one folder as `beta<B>_z<d>_seed<S>.pt`
with its history, and `sweep.csv` listing them with their test metrics (the app's Compare page opens such a folder).

Groups: models of one latent size share an architecture, so they can train together (the engine lets β and the seed
differ within a group). They are ordered by seed, then β, and cut into groups of at most `group_size` models: by
default all models of a latent size train together here (one device, one batched step), and on a Ray cluster each
(latent size, seed) is a group with its βs together, so the cluster's workers share the groups out and a worker lost
loses only its group's models. A model's result depends on its group (its noise is drawn with the group's, seeded by
the group's first member, and batched kernels round differently): the same grid with the same group size gives the
same models here and on a cluster, within float rounding. sweep.csv records each model's group.
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from .atomic import TEMP_SUFFIX, write_atomic
from .backends import Backend, Group, Outcome
from .checkpoint import SUFFIX, CheckpointWriteError, save_checkpoint
from .config import ConfigError, ModelConfig, TrainConfig
from .data import ImageDataset
from .engine import Listener, Recorders, StopFlag
from .train import prepare_model
from .trajectory import TrajectoryRecorder

CSV_NAME = "sweep.csv"
MAX_MODELS = 256  # a grid beyond this is a typo, not a study
MAX_CSV_BYTES = 1 << 20  # a sweep.csv of MAX_MODELS rows is ~40 kB; anything far larger is not ours
COLUMNS = ("beta", "latent_dim", "seed", "test_elbo", "recon", "kl", "iw_logpx", "active_units", "status", "file",
           "seconds", "group", "ran_on", "message")
STATUSES = ("finished", "stopped", "diverged", "failed")


class GridError(ValueError):
    """A sweep cannot be run as asked, or a sweep folder cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class GridPoint:
    beta: float
    latent_dim: int
    seed: int

    @property
    def name(self) -> str:
        return f"beta{self.beta:g}_z{self.latent_dim}_seed{self.seed}"

    @property
    def label(self) -> str:
        return f"β = {self.beta:g}, d = {self.latent_dim}, seed {self.seed}"


@dataclass(frozen=True)
class GridSpec:
    """The recipe (`model_config`, `train_config`) and the axes; each point takes its β, latent size and seed."""

    model_config: ModelConfig
    train_config: TrainConfig
    betas: tuple[float, ...]
    latent_dims: tuple[int, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        for axis, values in (("β", self.betas), ("latent size", self.latent_dims), ("seed", self.seeds)):
            if not values:
                raise GridError(f"give at least one {axis}")
            if len(set(values)) < len(values):
                raise GridError(f"a {axis} is given twice: {', '.join(f'{v:g}' for v in values)}")
        if len(self.points()) > MAX_MODELS:
            raise GridError(f"{len(self.points())} models is more than a sweep may train ({MAX_MODELS})")
        for point in self.points():  # every combination must be a valid configuration before anything trains
            self.configs(point)

    def points(self) -> list[GridPoint]:
        """Every combination, by latent size, then seed, then β (the order groups are cut in)."""
        return [GridPoint(b, d, s) for d in self.latent_dims for s in self.seeds for b in self.betas]

    def configs(self, point: GridPoint) -> tuple[ModelConfig, TrainConfig]:
        """The point's configurations; ConfigError for a value out of range."""
        return (replace(self.model_config, latent_dim=point.latent_dim),
                replace(self.train_config, beta=point.beta, seed=point.seed))

    def groups(self, group_size: int | None = None) -> list[list[GridPoint]]:
        """The points in groups of one latent size, each at most `group_size` long (None: one group per size)."""
        if group_size is not None and group_size < 1:
            raise GridError(f"a group holds at least one model, got {group_size}")
        groups = []
        for d in self.latent_dims:
            members = [p for p in self.points() if p.latent_dim == d]
            size = group_size or len(members)
            groups += [members[i:i + size] for i in range(0, len(members), size)]
        return groups


def default_group_size(spec: GridSpec, on_cluster: bool) -> int | None:
    """All models of a latent size together here; one (latent size, seed) per group on a cluster."""
    return len(spec.betas) if on_cluster else None


def check_folder(spec: GridSpec, folder: Path, replace_existing: bool = False) -> None:
    """GridError unless `folder` can take the sweep: a folder, or one that can be made, where files can be created,
    with room for the models and without models of these names unless they may be replaced. Writes nothing."""
    if folder.exists() and not folder.is_dir():
        raise GridError(f"--out-dir {folder} is a file, not a folder")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise GridError(f"--out-dir {folder}: {existing} is a file, not a folder")
    # Creating a file is the only honest test (os.access says yes for root on a read-only mount); the probe is named
    # like an atomic write's temp file, so even a kill right here leaves nothing a later save would not remove.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{CSV_NAME}.", suffix=TEMP_SUFFIX, dir=existing)
    except OSError as exc:
        raise GridError(f"--out-dir {folder}: cannot create files in {existing} ({exc.strerror or exc})") from exc
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    taken = [p.name for p in (folder / f"{point.name}{SUFFIX}" for point in spec.points()) if p.exists()]
    if taken and not replace_existing:
        shown = ", ".join(taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise GridError(f"--out-dir {folder} already holds {shown}; choose another folder or add --replace")
    # a model's history stays under trajectory.MAX_BYTES (4.5 MB); the weights of the default MLP are ~2 MB
    needed = len(spec.points()) * 7_000_000
    if shutil.disk_usage(existing).free < needed:
        raise GridError(f"--out-dir {folder}: its disk has less than the {needed / 1e6:.0f} MB the sweep may need")


@dataclass(frozen=True)
class Row:
    """One model of a sweep, as sweep.csv lists it."""

    point: GridPoint
    status: str
    file: str  # the checkpoint's name in the sweep's folder; "" when none was written
    group: int
    ran_on: str
    message: str = ""
    test_elbo: float | None = None
    recon: float | None = None
    kl: float | None = None
    iw_logpx: float | None = None
    active_units: int | None = None
    seconds: float | None = None

    def cells(self) -> list[str]:
        def number(x: float | None) -> str:
            return "" if x is None else f"{x:.4f}"

        return [f"{self.point.beta:g}", str(self.point.latent_dim), str(self.point.seed), number(self.test_elbo),
                number(self.recon), number(self.kl), number(self.iw_logpx),
                "" if self.active_units is None else str(self.active_units), self.status, self.file,
                "" if self.seconds is None else f"{self.seconds:.2f}", str(self.group), self.ran_on, self.message]


def write_csv(folder: Path, rows: Sequence[Row]) -> Path:
    """sweep.csv of `rows`, written atomically (a reader sees the old table or the new one)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return write_atomic(folder / CSV_NAME, text.getvalue().encode())


def _number(metrics: dict | None, key: str) -> float | None:
    value = (metrics or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def run(spec: GridSpec, folder: Path, data: ImageDataset, backend: Backend, *, group_size: int | None = None,
        iw_samples: int = 0, listeners: Sequence[Listener] = (), stop: StopFlag | None = None,
        on_row: Callable[[Row], None] | None = None) -> list[Row]:
    """Train the grid on `backend`, saving each model into `folder` as its group ends (with its history and test
    metrics) and rewriting sweep.csv each time, so an interrupted sweep leaves a consistent folder. Listeners hear
    every model by its index in `spec.points()` order of the groups; `on_row(row)` is told each model's fate."""
    grouped = spec.groups(group_size)
    points = [p for group in grouped for p in group]
    folder.mkdir(parents=True, exist_ok=True)
    groups, recorders = [], []
    for members in grouped:
        group_models = []
        for point in members:
            model_config, train_config = spec.configs(point)
            group_models.append(prepare_model(model_config, train_config)[0])
            recorders.append(TrajectoryRecorder(data, train_config.epochs, point.latent_dim))
        groups.append(Group(group_models, [spec.configs(p)[1] for p in members], iw_samples=iw_samples))
    firsts = [sum(len(g) for g in grouped[:i]) for i in range(len(grouped))]
    rows: dict[GridPoint, Row] = {}

    def done(g: int, outcomes: list[Outcome]) -> None:
        for k, outcome in enumerate(outcomes):
            point = grouped[g][k]
            row = _save(point, outcome, g, folder, data, spec.configs(point)[1], recorders[firsts[g] + k])
            rows[point] = row
            if on_row is not None:
                on_row(row)
        write_csv(folder, [rows[p] for p in points if p in rows])

    backend.run(groups, data, [Recorders(recorders), *listeners], stop, done)
    return [rows[p] for p in points]


def _save(point: GridPoint, outcome: Outcome, group: int, folder: Path, data: ImageDataset, config: TrainConfig,
          recorder: TrajectoryRecorder) -> Row:
    """Write one trained model (a failed, diverged or never-started one writes nothing) and return its row; a model
    that cannot be written (a full disk) is failed, with the reason, and the sweep goes on."""
    r = outcome.result
    seconds = r.history[-1].get("elapsed") if r.history else None
    common = dict(point=point, group=group, ran_on=outcome.ran_on, message=r.message, seconds=seconds)
    if r.status not in ("finished", "stopped") or not r.history:
        return Row(status=r.status, file="", **common)
    metrics = outcome.metrics or {}
    path = folder / f"{point.name}{SUFFIX}"
    try:
        save_checkpoint(path, r.model, config, data.name, r.history, metrics,
                        extra={"images_per_s": r.images_per_s, "device": r.device, "status": r.status,
                               "message": r.message, "trained_in": "sweep", "sweep_group": group},
                        trajectory=recorder.to_payload())
    except CheckpointWriteError as exc:
        return Row(status="failed", file="", **{**common, "message": str(exc)})
    return Row(status=r.status, file=path.name, test_elbo=_number(metrics, "elbo"), recon=_number(metrics, "recon"),
               kl=_number(metrics, "kl"), iw_logpx=_number(metrics, "iw_logpx"),
               active_units=int(metrics["active_units"]) if "active_units" in metrics else None, **common)


# --- reading a sweep folder back (the app's Compare page) ----------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """A folder written by `sweep`: its name and its rows (those with a file are the models it holds)."""

    folder: Path
    rows: tuple[Row, ...]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def saved(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.file)


def read_sweep(folder: Path) -> Sweep:
    """The sweep.csv of `folder`, checked (size, columns, every value's type, file names inside the folder);
    GridError naming the file when it is not one `sweep` wrote."""
    path = Path(folder) / CSV_NAME
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise GridError(f"{path}: refused: {path.stat().st_size:,} bytes, more than a sweep's table needs")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{path}: not readable ({getattr(exc, 'strerror', None) or type(exc).__name__})") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header[:len(COLUMNS)]) != COLUMNS:
        raise GridError(f"{path}: not a sweep table (its columns are not {', '.join(COLUMNS[:4])}, …)")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if len(rows) >= MAX_MODELS:
            raise GridError(f"{path}: more than {MAX_MODELS} models")
        try:
            rows.append(_row(dict(zip(COLUMNS, cells)), len(cells)))
        except (ValueError, ConfigError) as exc:
            raise GridError(f"{path}, line {line}: {exc}") from exc
    return Sweep(Path(folder), tuple(rows))


def _row(cells: dict[str, str], n_cells: int) -> Row:
    if n_cells != len(COLUMNS):
        raise ValueError(f"{n_cells} values, expected {len(COLUMNS)}")

    def number(key: str) -> float | None:
        if not cells[key]:
            return None
        value = float(cells[key])
        if not math.isfinite(value):
            raise ValueError(f"{key} is not a finite number")
        return value

    file = cells["file"]
    if file and (Path(file).name != file or not file.endswith(SUFFIX) or file.startswith(".")):
        raise ValueError(f"file {file[:40]!r} is not a checkpoint's name in the sweep's folder")
    if cells["status"] not in STATUSES:
        raise ValueError(f"unknown status {cells['status'][:20]!r}")
    beta, latent_dim, seed = float(cells["beta"]), int(cells["latent_dim"]), int(cells["seed"])
    if not math.isfinite(beta):
        raise ValueError("beta is not a finite number")
    units = number("active_units")
    return Row(point=GridPoint(beta, latent_dim, seed), status=cells["status"], file=file, group=int(cells["group"]),
               ran_on=cells["ran_on"][:80], message=cells["message"][:300], test_elbo=number("test_elbo"),
               recon=number("recon"), kl=number("kl"), iw_logpx=number("iw_logpx"),
               active_units=None if units is None else int(units), seconds=number("seconds"))


def find_sweeps(folder: Path) -> tuple[list[Sweep], list[str]]:
    """The sweep folders directly inside `folder` (those holding a sweep.csv), newest first, and one line per folder
    whose table is not usable."""
    sweeps, errors = [], []
    if not Path(folder).is_dir():
        return sweeps, errors
    candidates = [p for p in Path(folder).iterdir() if p.is_dir() and not p.is_symlink() and (p / CSV_NAME).is_file()]
    for sub in sorted(candidates, key=lambda p: (p / CSV_NAME).stat().st_mtime, reverse=True):
        try:
            sweeps.append(read_sweep(sub))
        except GridError as exc:
            errors.append(str(exc))
    return sweeps, errors
