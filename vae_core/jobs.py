"""Background training for the app: a job trains one model or a β sweep (its models at once, vae_core.sweep) in a
worker thread, and a process-wide registry runs one job at a time.

The worker thread does all of a job's work (load, fit, snapshots, evaluation, saves) and touches only its own job
object: metrics and snapshots go in under a lock, and the page reads a consistent copy with `view()`. A stop event is
checked by `fit` every step. The thread is a daemon of the server process, so training ends when the server does,
however it ends. Every failure ends up in `JobView.error` as a sentence for the user, never only in a log; a model
that trained but could not be saved (a full disk) stays in memory for `save_again`.

Why a thread and not a process: on a 2-core machine `fit` in a worker thread ran at 0.76–0.81 of the main thread's
speed when the machine was otherwise idle, and 7–8× faster when other processes were busy. Both are libgomp's wait
policy, not the thread: OpenMP workers spin between kernels while the process has a single OpenMP pool and sleep
once a second pool (a second thread running torch) exists; with OMP_WAIT_POLICY=passive the main thread matched the
worker thread (0.996). `torch.set_num_threads` in the worker changes neither.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from . import evaluate
from .checkpoint import SUFFIX, CheckpointWriteError, DiskFullError, megabytes, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import DatasetUnavailable, ImageDataset, load_dataset
from .models import LatentModel
from .snapshots import Snapshot, example_indices, map_indices, take_snapshot
from .sweep import fit_together
from .train import EpochMetrics, StepMetrics, TrainResult, device_label, fit, pick_device, prepare_model
from .trajectory import Trajectory, TrajectoryRecorder

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"  # the models that ship with the repository
SNAPSHOT_INTERVAL_S = 2.0  # the live view never costs the training thread more than one snapshot per 2 s
IW_SAMPLES = 50  # importance samples for the stored log p(x) of a finished run: modest, so it takes seconds
MAX_NAME_LENGTH = 80
KEEP_JOBS = 10

RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"


class JobError(ValueError):
    """A job cannot be started as asked; the message is meant for the user."""


class JobBusy(JobError):
    """Another job is still running."""


def sanitize_name(text: str) -> str:
    """A safe checkpoint file stem: only [A-Za-z0-9_.-], no leading dot, no path separators, not empty.

    Spaces and other characters become '_'; a trailing '.pt' the user typed is dropped.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip())
    if name.lower().endswith(SUFFIX):
        name = name[: -len(SUFFIX)]
    name = name.lstrip("._-").rstrip("_")[:MAX_NAME_LENGTH]
    if not name:
        raise JobError(f"model name {text!r} has no usable characters; use letters, digits, '_', '-' or '.'")
    return name


def shipped_names() -> frozenset[str]:
    """The names of the models shipped in the repository's checkpoints folder, read from it (so a model added there
    is protected without a list to keep up)."""
    return frozenset(p.stem for p in SHIPPED_DIR.glob(f"*{SUFFIX}"))


def target_path(folder: str | os.PathLike, name: str, replace_existing: bool = False) -> Path:
    """Where a model named `name` is saved. A shipped model's name is always refused: the app saves elsewhere, so the
    new file would sit beside the shipped one under the same name in the picker. Replacing a trained model must be asked for."""
    if name in shipped_names():
        raise JobError(f"'{name}' is the name of a model shipped with the app; choose another name.")
    path = Path(folder) / f"{name}{SUFFIX}"
    if not replace_existing and path.exists():
        raise JobError(f"a model named '{name}' already exists; choose another name, or confirm that it may be replaced.")
    return path


def sweep_member_name(name: str, beta: float) -> str:
    return f"{name}_beta{beta:g}"


@dataclass(frozen=True)
class RunSpec:
    """One model to train and where to save it."""

    model_config: ModelConfig
    train_config: TrainConfig
    path: Path
    label: str


@dataclass(frozen=True)
class JobSpec:
    title: str
    runs: tuple[RunSpec, ...]
    iw_samples: int = IW_SAMPLES


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"cannot create the checkpoint folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK):
        raise JobError(f"the checkpoint folder {folder} is not writable")
    return folder


def training_spec(
    name: str, folder: str | os.PathLike, model_config: ModelConfig, train_config: TrainConfig,
    replace_existing: bool = False, iw_samples: int = IW_SAMPLES,
) -> JobSpec:
    """One model saved as <folder>/<name>.pt; raises JobError for a bad or taken name."""
    stem = sanitize_name(name)
    path = target_path(_writable(Path(folder)), stem, replace_existing)
    return JobSpec(title=stem, runs=(RunSpec(model_config, train_config, path, stem),), iw_samples=iw_samples)


def sweep_spec(
    name: str, folder: str | os.PathLike, model_config: ModelConfig, train_config: TrainConfig, betas: tuple[float, ...],
    replace_existing: bool = False, iw_samples: int = IW_SAMPLES,
) -> JobSpec:
    """One model per β with otherwise equal settings, trained together (vae_core.sweep), saved as <name>_beta<B>.pt."""
    stem = sanitize_name(name)
    folder = _writable(Path(folder))
    if not betas:
        raise JobError("give at least one β")
    runs = tuple(
        RunSpec(model_config, replace(train_config, beta=beta),
                target_path(folder, sweep_member_name(stem, beta), replace_existing), f"β = {beta:g}")
        for beta in betas
    )
    return JobSpec(title=f"{stem} (β sweep: {', '.join(f'{b:g}' for b in betas)})", runs=runs, iw_samples=iw_samples)


@dataclass(frozen=True)
class SavedModel:
    path: Path
    label: str
    status: str  # fit's status: finished or stopped
    metrics: dict[str, float]


@dataclass(frozen=True)
class UnsavedModel:
    """A model that trained but could not be written (a full disk); the job keeps it in memory for `save_again`."""

    path: Path
    label: str
    status: str
    metrics: dict[str, float]
    reason: str  # a sentence for the user


@dataclass(frozen=True)
class JobView:
    """A consistent copy of a job's state for the page; never changes after it is made."""

    id: str
    title: str
    state: str  # running, finished, stopped or failed
    phase: str  # what the worker is doing, for the user
    run_index: int  # 0-based index of the model being trained
    n_runs: int
    run_label: str
    kind: str  # the kind of model being trained, so the page draws the curves it has
    epochs: int  # epochs asked for per model
    epoch: int  # the epoch being trained, 1-based; 0 before the first step
    progress: float  # 0..1 over the whole job
    eta: float | None  # seconds left, None before the first measurement
    images_per_s: float
    device: str
    class_names: tuple[str, ...]
    steps: tuple[tuple[float, float, float, float], ...]  # (epoch as a fraction, −ELBO, recon, KL) every LOG_EVERY steps
    history: tuple[dict[str, float], ...]  # per-epoch metrics of the current model
    snapshot: Snapshot | None
    recorder: TrajectoryRecorder | None  # the current model's replayable history, while and after it trains
    n_frames: int  # how many of the recorder's frames existed when this view was made
    saved: tuple[SavedModel, ...]
    unsaved: tuple[UnsavedModel, ...]
    error: str | None
    message: str

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def trajectory(self) -> Trajectory | None:
        """The history recorded up to this view (frames are only ever appended, so the first n_frames stay put)."""
        return None if self.recorder is None else Trajectory.from_frames(self.recorder, self.recorder.frames[:self.n_frames])


Save = Callable[[], object]


@dataclass
class _State:
    state: str = RUNNING
    phase: str = "starting"
    run_index: int = 0
    progress: float = 0.0
    eta: float | None = None
    images_per_s: float = 0.0
    epoch: int = 0
    device: str = ""
    class_names: tuple[str, ...] = ()
    steps: list[tuple[float, float, float, float]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    snapshot: Snapshot | None = None
    recorder: TrajectoryRecorder | None = None
    saved: list[SavedModel] = field(default_factory=list)
    unsaved: dict[Path, tuple[UnsavedModel, Save]] = field(default_factory=dict)  # with the write to retry
    error: str | None = None


Loader = Callable[[str], ImageDataset]


class TrainingJob:
    """Trains the runs of a JobSpec (one model, or a sweep's models together) in a daemon thread."""

    def __init__(self, spec: JobSpec, *, snapshot_interval_s: float = SNAPSHOT_INTERVAL_S, loader: Loader = load_dataset) -> None:
        if not spec.runs:
            raise JobError("nothing to train")
        self.spec = spec
        self.id = uuid.uuid4().hex[:12]
        self._snapshot_interval = snapshot_interval_s
        self._loader = loader
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # two sessions pressing Save again must not write the same file at once
        self._stop = threading.Event()
        self._state = _State()
        self._thread = threading.Thread(target=self._work, name=f"vae-train-{self.id}", daemon=True)

    # --- called by the page -------------------------------------------------------------------------------------
    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the worker to stop at the next step; the weights reached so far are still saved."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._state.state == RUNNING

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self.running

    def save_again(self) -> bool:
        """Retry the saves that failed (after the user freed some space); True when every model is saved now."""
        with self._save_lock:
            with self._lock:
                pending = list(self._state.unsaved.values())
            for model, save in pending:
                self._save(SavedModel(model.path, model.label, model.status, model.metrics), save)
            with self._lock:
                return not self._state.unsaved

    def view(self) -> JobView:
        with self._lock:
            s = self._state
            run = self.spec.runs[min(s.run_index, len(self.spec.runs) - 1)]
            unsaved = tuple(model for model, _ in s.unsaved.values())
            return JobView(
                id=self.id, title=self.spec.title, state=s.state, phase=s.phase, run_index=s.run_index,
                n_runs=len(self.spec.runs), run_label=run.label, kind=run.model_config.kind, epochs=run.train_config.epochs, epoch=s.epoch,
                progress=s.progress, eta=s.eta, images_per_s=s.images_per_s, device=s.device,
                class_names=s.class_names, steps=tuple(s.steps), history=tuple(s.history), snapshot=s.snapshot,
                recorder=s.recorder, n_frames=0 if s.recorder is None else len(s.recorder.frames),
                saved=tuple(s.saved), unsaved=unsaved, error=s.error, message=_outcome(s.state, s.saved, unsaved),
            )

    # --- the worker -----------------------------------------------------------------------------------------------
    def _set(self, **changes) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self._state, key, value)

    def _work(self) -> None:
        try:
            self._run_all()
        except DatasetUnavailable as exc:
            self._fail(str(exc))
        except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
            self._fail(_out_of_memory(exc))
        except RuntimeError as exc:
            if _looks_like_oom(exc):
                self._fail(_out_of_memory(exc))
            else:
                log.exception("training job %s failed", self.id)
                self._fail(f"training failed: {type(exc).__name__}: {exc}")
        except Exception as exc:  # the worker is the last place an error can be caught before it is lost
            log.exception("training job %s failed", self.id)
            self._fail(f"training failed: {type(exc).__name__}: {exc}")
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _fail(self, message: str) -> None:
        with self._lock:
            self._state.state = FAILED
            self._state.error = message
            self._state.phase = "failed"
            self._state.eta = None

    def _run_all(self) -> None:
        runs = self.spec.runs
        self._set(phase=f"loading {runs[0].train_config.dataset}")
        data = self._loader(runs[0].train_config.dataset)  # a sweep's members share their dataset (sweep_spec)
        self._set(class_names=data.class_names)
        if len(runs) == 1:
            model, _ = prepare_model(runs[0].model_config, runs[0].train_config)
            status, message = self._train(runs[0], model, data)
            failure = message if status == "diverged" else ""
        else:
            failure = self._train_together(data)
        if failure:
            self._fail(failure)
            return
        with self._lock:
            s = self._state
            s.state = STOPPED if self._stop.is_set() else FINISHED
            s.phase = "stopped" if self._stop.is_set() else "finished"
            s.progress = 1.0 if s.state == FINISHED else s.progress
            s.eta = 0.0 if s.state == FINISHED else None

    def _train_together(self, data: ImageDataset) -> str:
        """Train a sweep's members at once (vae_core.sweep); then evaluate and save each in turn. The live view follows
        the first member while all train, then shows each member's own curves and last snapshot as it is saved.
        Returns what to tell the user when a member diverged ("" otherwise); the others are saved all the same."""
        runs = self.spec.runs
        models = [prepare_model(run.model_config, run.train_config)[0] for run in runs]
        recorders = [TrajectoryRecorder(data, run.train_config.epochs, model.latent_dim) for run, model in zip(runs, models)]
        steps: list[list[tuple[float, float, float, float]]] = [[] for _ in runs]
        histories: list[list[dict[str, float]]] = [[] for _ in runs]
        map_idx, example_idx = map_indices(len(data.test_images)), example_indices(data.test_labels)
        last_snapshot = -math.inf

        def snapshot(model: LatentModel, epoch: int) -> None:
            nonlocal last_snapshot
            snap = take_snapshot(model, data, epoch, map_idx, example_idx)
            last_snapshot = time.monotonic()
            self._set(snapshot=snap)

        def on_step(k: int, m: StepMetrics) -> None:
            with self._lock:
                steps[k].append((m.epoch - 1 + m.step / m.steps_per_epoch, m.recon + m.kl, m.recon, m.kl))
                if k == 0:
                    s = self._state
                    s.progress, s.eta, s.images_per_s, s.epoch = m.progress, m.eta, m.images_per_s, m.epoch

        def on_epoch(k: int, m: EpochMetrics, trained: LatentModel) -> None:
            with self._lock:
                histories[k].append(m.to_dict())
            if k == 0 and time.monotonic() - last_snapshot >= self._snapshot_interval:
                snapshot(trained, m.epoch)

        snapshot(models[0], 0)
        self._set(run_index=0, steps=steps[0], history=histories[0], recorder=recorders[0],
                  device=device_label(pick_device(runs[0].train_config.device)),
                  phase=f"training {len(runs)} models together ({', '.join(run.label for run in runs)})")
        results = fit_together(models, data, [run.train_config for run in runs], on_step=on_step, on_epoch=on_epoch,
                               stop=self._stop, recorders=recorders)
        failures = []
        for k, (run, result) in enumerate(zip(runs, results)):
            self._set(run_index=k, steps=steps[k], history=histories[k], recorder=recorders[k])
            if result.history:
                snapshot(result.model, len(result.history))
            if result.status == "diverged":
                failures.append(f"{run.label}: {result.message}")
            elif result.history:
                self._evaluate_and_save(run, result, data, recorders[k].to_payload())
        saved = f"; {len(self._state.saved)} other model(s) of the sweep were saved" if failures and self._state.saved else ""
        return "; ".join(failures) + saved

    def _train(self, run: RunSpec, model: LatentModel, data: ImageDataset) -> tuple[str, str]:
        """The single-model path (a sweep's members train together in `_train_together`)."""
        map_idx = map_indices(len(data.test_images))
        example_idx = example_indices(data.test_labels)
        last_snapshot = -math.inf

        def snapshot(epoch: int) -> None:
            nonlocal last_snapshot
            snap = take_snapshot(model, data, epoch, map_idx, example_idx)
            last_snapshot = time.monotonic()
            self._set(snapshot=snap)

        def on_step(m: StepMetrics) -> None:
            point = (m.epoch - 1 + m.step / m.steps_per_epoch, m.recon + m.kl, m.recon, m.kl)
            with self._lock:
                s = self._state
                s.steps.append(point)
                s.progress = m.progress
                s.eta = m.eta
                s.images_per_s = m.images_per_s
                s.epoch = m.epoch
                s.phase = f"training {run.label}"

        def on_epoch(m: EpochMetrics, trained: LatentModel) -> None:
            with self._lock:
                self._state.history.append(m.to_dict())
            if time.monotonic() - last_snapshot >= self._snapshot_interval:
                snapshot(m.epoch)

        snapshot(0)
        recorder = TrajectoryRecorder(data, run.train_config.epochs, model.latent_dim)
        self._set(phase=f"training {run.label}", device=device_label(pick_device(run.train_config.device)),
                  recorder=recorder)
        result = fit(model, data, run.train_config, on_step=on_step, on_epoch=on_epoch, stop=self._stop,
                     recorder=recorder)
        epochs_done = len(result.history)
        if epochs_done and self._state.snapshot.epoch != epochs_done:
            snapshot(epochs_done)
        if result.status == "diverged" or epochs_done == 0:  # nothing worth saving
            return result.status, result.message
        self._evaluate_and_save(run, result, data, recorder.to_payload())
        return result.status, result.message

    def _evaluate_and_save(self, run: RunSpec, result: TrainResult, data: ImageDataset,
                           trajectory: dict[str, torch.Tensor] | None = None) -> None:
        """The test metrics of a trained model, then its checkpoint with its recorded history (kept in memory for
        `save_again` if the write fails)."""
        # The importance-weighted bound costs k decoder passes per test image, most of the time between Stop and a
        # saved file, so a stopped run is saved without it (no iw_logpx, iw_samples 0); Compare measures it if shown.
        iw_samples = self.spec.iw_samples if result.status == "finished" else 0
        self._set(phase=f"measuring test metrics of {run.label}", eta=None)
        metrics = evaluate.evaluate(result.model, data.test_images, data.test_labels, iw_samples=iw_samples)
        self._set(phase=f"saving {run.path.name}")
        extra = {"images_per_s": result.images_per_s, "device": result.device, "status": result.status,
                 "message": result.message, "trained_in": "app"}
        self._save(SavedModel(run.path, run.label, result.status, metrics),
                   lambda: save_checkpoint(run.path, result.model, run.train_config, data.name, result.history, metrics,
                                           extra=extra, trajectory=trajectory))

    def _save(self, model: SavedModel, save: Save) -> None:
        """Write one model; when the write fails, keep the model (and the write) for `save_again`, with the reason."""
        try:
            save()
        except OSError as exc:
            log.warning("training job %s could not save %s: %s", self.id, model.path, exc)
            unsaved = UnsavedModel(model.path, model.label, model.status, model.metrics, _save_failure(model.path, exc))
            with self._lock:
                self._state.unsaved[model.path] = (unsaved, save)
            return
        with self._lock:
            self._state.unsaved.pop(model.path, None)
            self._state.saved.append(model)


def _save_failure(path: Path, exc: OSError) -> str:
    if isinstance(exc, DiskFullError) or exc.errno in (errno.ENOSPC, errno.EDQUOT):
        room = (f" ({megabytes(exc.needed_bytes)} needed, {megabytes(exc.free_bytes)} free)"
                if isinstance(exc, CheckpointWriteError) and exc.free_bytes is not None else "")
        return (f"The disk is full: {path.name} could not be saved{room}. The trained model is kept in memory: "
                "free some space, then press Save again.")
    return (f"{path.name} could not be saved: {exc.strerror or exc}. The trained model is kept in memory: "
            "fix the cause, then press Save again.")


def _outcome(state: str, saved: list[SavedModel], unsaved: tuple[UnsavedModel, ...]) -> str:
    """The sentence for a job that ended without failing: what was saved and what still waits for Save again."""
    if state not in (FINISHED, STOPPED):
        return ""
    names = ", ".join(m.path.name for m in saved) or ("nothing" if unsaved else "nothing (stopped before the first step)")
    waiting = f"; not saved yet: {', '.join(m.path.name for m in unsaved)}" if unsaved else ""
    return f"{'Finished' if state == FINISHED else 'Stopped'}; saved {names}{waiting}."


def _looks_like_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def _out_of_memory(exc: BaseException) -> str:
    return ("training ran out of memory; try a smaller batch size, smaller hidden sizes or the MLP architecture "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})")


class JobRegistry:
    """Every job of this server process; at most one runs at a time, since they would share the same cores or GPU."""

    def __init__(self, keep: int = KEEP_JOBS) -> None:
        self._lock = threading.Lock()
        self._jobs: list[TrainingJob] = []
        self._keep = keep

    def submit(self, job: TrainingJob) -> TrainingJob:
        """Start `job` unless another is running (then JobBusy says which)."""
        with self._lock:
            busy = next((j for j in self._jobs if j.running), None)
            if busy is not None:
                raise JobBusy(f"'{busy.spec.title}' is still training; stop it or wait for it to finish before starting another.")
            self._jobs = [*self._jobs[-(self._keep - 1):], job] if self._keep > 1 else [job]
            return job.start()

    def active(self) -> TrainingJob | None:
        with self._lock:
            return next((j for j in self._jobs if j.running), None)

    def latest(self) -> TrainingJob | None:
        with self._lock:
            return self._jobs[-1] if self._jobs else None

    def get(self, job_id: str) -> TrainingJob | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def clear(self, timeout: float = 60.0) -> None:
        """Stop every job, wait for the workers, forget them (tests; a server shutting down)."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.stop()
        for job in jobs:
            job.join(timeout)
