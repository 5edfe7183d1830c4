"""Background training for the app: a job trains one model or a β sweep (its models at once, vae_core.engine) in a
worker thread of a process-wide registry, which runs one job at a time.

The worker thread does all of a job's work (load, train, snapshots, evaluation, saves) and touches only its own job
object. The job listens to its run (`ProgressListener`, an engine.Listener): each event replaces the job's frozen
view (`JobView`) in its `ProgressRecord`, and the page reads the current one with `view()`. A stop event is checked
by the engine every step. Training ends when the server does, however it ends (JobRegistry). Every failure ends up
in `JobView.error` as a sentence for the user, never only in a log; a model that trained but could not be saved (a
full disk) stays in memory for `save_again`.

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
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from . import evaluate
from .checkpoint import SUFFIX, CheckpointWriteError, DiskFullError, megabytes, save_checkpoint
from .config import ModelConfig, TrainConfig
from .data import DatasetUnavailable, ImageDataset, load_dataset
from .engine import EpochMetrics, Recorders, StepMetrics, TrainResult, device_label, pick_device, train_models
from .models import LatentModel
from .snapshots import Snapshot, example_indices, map_indices, take_snapshot
from .train import prepare_model
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
class MemberView:
    """One model of a job as its run's events told it."""

    label: str
    steps: tuple[tuple[float, float, float, float], ...] = ()  # (epoch as a fraction, −ELBO, recon, KL) per report
    history: tuple[dict[str, float], ...] = ()  # per-epoch metrics
    recorder: TrajectoryRecorder | None = None  # its replayable history, while and after it trains
    n_frames: int = 0  # how many of the recorder's frames were recorded (frames are only ever appended)


@dataclass(frozen=True)
class JobView:
    """A job's progress record: fed by its run's events, replaced (never changed) on each, so `TrainingJob.view()`
    hands out the current one as a consistent copy."""

    id: str
    title: str
    kind: str  # the kind of model being trained, so the page draws the curves it has
    epochs: int  # epochs asked for per model
    members: tuple[MemberView, ...]  # one per model, in the spec's order
    state: str = RUNNING  # running, finished, stopped or failed
    phase: str = "starting"  # what the worker is doing, for the user
    run_index: int = 0  # 0-based index of the model shown (the first while all train, then each as it is saved)
    epoch: int = 0  # the epoch being trained, 1-based; 0 before the first step
    progress: float = 0.0  # 0..1 over the whole job
    eta: float | None = None  # seconds left, None before the first measurement
    images_per_s: float = 0.0
    device: str = ""
    class_names: tuple[str, ...] = ()
    snapshot: Snapshot | None = None
    saved: tuple[SavedModel, ...] = ()
    unsaved: tuple[UnsavedModel, ...] = ()
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def n_runs(self) -> int:
        return len(self.members)

    @property
    def member(self) -> MemberView:
        return self.members[self.run_index]

    @property
    def run_label(self) -> str:
        return self.member.label

    @property
    def steps(self) -> tuple[tuple[float, float, float, float], ...]:
        return self.member.steps

    @property
    def history(self) -> tuple[dict[str, float], ...]:
        return self.member.history

    @property
    def recorder(self) -> TrajectoryRecorder | None:
        return self.member.recorder

    @property
    def message(self) -> str:
        """The sentence for a job that ended without failing: what was saved and what still waits for Save again."""
        if self.state not in (FINISHED, STOPPED):
            return ""
        names = (", ".join(m.path.name for m in self.saved)
                 or ("nothing" if self.unsaved else "nothing (stopped before the first step)"))
        waiting = f"; not saved yet: {', '.join(m.path.name for m in self.unsaved)}" if self.unsaved else ""
        return f"{'Finished' if self.state == FINISHED else 'Stopped'}; saved {names}{waiting}."

    def trajectory(self) -> Trajectory | None:
        """The shown model's history as recorded up to this view."""
        m = self.member
        return None if m.recorder is None else Trajectory.from_frames(m.recorder, m.recorder.frames[:m.n_frames])


Save = Callable[[], object]
Loader = Callable[[str], ImageDataset]


class ProgressRecord:
    """A job's progress as its events told it: the current JobView, replaced (never changed) under a lock."""

    def __init__(self, view: JobView) -> None:
        self._view = view
        self._lock = threading.Lock()

    def view(self) -> JobView:
        with self._lock:
            return self._view

    def change(self, change: Callable[[JobView], JobView]) -> None:
        """Replace the view by `change(view)`, with no other change in between."""
        with self._lock:
            self._view = change(self._view)

    def update(self, **fields) -> None:
        self.change(lambda v: replace(v, **fields))

    def update_member(self, member: int, change: Callable[[MemberView], MemberView], **fields) -> None:
        """Replace member `member` by `change(member)`, and the job's `fields`, at once."""
        def changed(v: JobView) -> JobView:
            members = list(v.members)
            members[member] = change(members[member])
            return replace(v, members=tuple(members), **fields)

        self.change(changed)


class ProgressListener(Recorders):
    """A job's listener: records each member's history and turns the run's events into its progress record; the job's
    figures (progress, ETA, speed, epoch, snapshot) follow the first member while all train."""

    def __init__(self, record: ProgressRecord, data: ImageDataset, recorders: list[TrajectoryRecorder],
                 snapshot_interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        super().__init__(recorders)
        self.record, self.data, self.snapshot_interval = record, data, snapshot_interval_s
        self.map_idx, self.example_idx = map_indices(len(data.test_images)), example_indices(data.test_labels)
        self.last_snapshot = -math.inf
        self.snapshot_of: tuple[int, int] | None = None  # (member, epoch) of the record's snapshot
        record.update(class_names=data.class_names, members=tuple(
            replace(member, recorder=recorder) for member, recorder in zip(record.view().members, recorders)))

    def snapshot(self, member: int, model: LatentModel, epoch: int) -> None:
        snap = take_snapshot(model, self.data, epoch, self.map_idx, self.example_idx)
        self.last_snapshot, self.snapshot_of = time.monotonic(), (member, epoch)
        self.record.update(snapshot=snap)

    def step(self, member: int, m: StepMetrics) -> None:
        point = (m.at, m.recon + m.kl, m.recon, m.kl)
        shown = dict(progress=m.progress, eta=m.eta, images_per_s=m.images_per_s, epoch=m.epoch) if member == 0 else {}
        self.record.update_member(member, lambda v: replace(v, steps=v.steps + (point,)), **shown)

    def epoch(self, member: int, m: EpochMetrics, model: LatentModel) -> None:
        self.record.update_member(member, lambda v: replace(v, history=v.history + (m.to_dict(),)))
        if member == 0 and time.monotonic() - self.last_snapshot >= self.snapshot_interval:
            self.snapshot(member, model, m.epoch)

    def frame(self, member: int, at: float, model: LatentModel) -> None:
        super().frame(member, at, model)
        frames = len(self.recorders[member].frames)
        self.record.update_member(member, lambda v: replace(v, n_frames=frames))


class TrainingJob:
    """Trains the runs of a JobSpec (one model, or a sweep's models together) in a worker of a JobRegistry."""

    def __init__(self, spec: JobSpec, *, snapshot_interval_s: float = SNAPSHOT_INTERVAL_S, loader: Loader = load_dataset) -> None:
        if not spec.runs:
            raise JobError("nothing to train")
        self.spec = spec
        self.id = uuid.uuid4().hex[:12]
        self._snapshot_interval = snapshot_interval_s
        self._loader = loader
        self._save_lock = threading.Lock()  # two sessions pressing Save again must not write the same file at once
        self._stop = threading.Event()
        self._retry: dict[Path, Save] = {}  # the write of each model in `unsaved`, to retry
        self._future: Future | None = None
        first = spec.runs[0]
        self.progress = ProgressRecord(JobView(
            id=self.id, title=spec.title, kind=first.model_config.kind, epochs=first.train_config.epochs,
            members=tuple(MemberView(run.label) for run in spec.runs)))

    # --- called by the registry and the page -----------------------------------------------------------------------
    def start(self, executor: Executor) -> "TrainingJob":
        self._future = executor.submit(self._work)
        return self

    def stop(self) -> None:
        """Ask the worker to stop at the next step; the weights reached so far are still saved."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self.view().running

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker; True when it has ended."""
        if self._future is not None:
            wait([self._future], timeout)
        return not self.running

    def save_again(self) -> bool:
        """Retry the saves that failed (after the user freed some space); True when every model is saved now."""
        with self._save_lock:
            for model in self.view().unsaved:
                self._save(SavedModel(model.path, model.label, model.status, model.metrics), self._retry[model.path])
            return not self.view().unsaved

    def view(self) -> JobView:
        return self.progress.view()

    # --- the worker -----------------------------------------------------------------------------------------------
    def _work(self) -> None:
        threading.current_thread().name = f"vae-train-{self.id}"
        try:
            self._run()
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
        self.progress.update(state=FAILED, error=message, phase="failed", eta=None)

    def _run(self) -> None:
        """Train the runs together (one model is a run of one), then evaluate and save each in turn, the view showing
        each member's own curves and last snapshot as it is saved. A member that diverged fails the job with what to
        tell the user; the others are saved all the same."""
        runs = self.spec.runs
        self.progress.update(phase=f"loading {runs[0].train_config.dataset}")
        data = self._loader(runs[0].train_config.dataset)  # a sweep's members share their dataset (sweep_spec)
        models = [prepare_model(run.model_config, run.train_config)[0] for run in runs]
        listener = ProgressListener(self.progress, data, [TrajectoryRecorder(data, run.train_config.epochs,
                                                                             model.latent_dim)
                                                          for run, model in zip(runs, models)], self._snapshot_interval)
        listener.snapshot(0, models[0], 0)
        self.progress.update(device=device_label(pick_device(runs[0].train_config.device)),
                             phase=f"training {runs[0].label}" if len(runs) == 1 else
                             f"training {len(runs)} models together ({', '.join(run.label for run in runs)})")
        results = train_models(models, data, [run.train_config for run in runs], listeners=[listener],
                               stop=self._stop)
        failures = []
        for k, (run, result) in enumerate(zip(runs, results)):
            self.progress.update(run_index=k)
            epochs_done = len(result.history)
            if epochs_done and listener.snapshot_of != (k, epochs_done):
                listener.snapshot(k, result.model, epochs_done)
            if result.status == "diverged":
                failures.append(result.message if len(runs) == 1 else f"{run.label}: {result.message}")
            elif epochs_done:  # a run stopped before its first step has nothing worth saving
                self._evaluate_and_save(run, result, data, listener.recorders[k].to_payload())
        saved = self.view().saved
        if failures:
            others = f"; {len(saved)} other model(s) of the sweep were saved" if len(runs) > 1 and saved else ""
            self._fail("; ".join(failures) + others)
        elif self._stop.is_set():
            self.progress.update(state=STOPPED, phase="stopped", eta=None)
        else:
            self.progress.update(state=FINISHED, phase="finished", progress=1.0, eta=0.0)

    def _evaluate_and_save(self, run: RunSpec, result: TrainResult, data: ImageDataset,
                           trajectory: dict[str, torch.Tensor] | None = None) -> None:
        """The test metrics of a trained model, then its checkpoint with its recorded history (kept in memory for
        `save_again` if the write fails)."""
        # The importance-weighted bound costs k decoder passes per test image, most of the time between Stop and a
        # saved file, so a stopped run is saved without it (no iw_logpx, iw_samples 0); Compare measures it if shown.
        iw_samples = self.spec.iw_samples if result.status == "finished" else 0
        self.progress.update(phase=f"measuring test metrics of {run.label}", eta=None)
        metrics = evaluate.evaluate(result.model, data.test_images, data.test_labels, iw_samples=iw_samples,
                                    train_images=data.train_images)
        self.progress.update(phase=f"saving {run.path.name}")
        extra = {"images_per_s": result.images_per_s, "device": result.device, "status": result.status,
                 "message": result.message, "trained_in": "app"}
        self._save(SavedModel(run.path, run.label, result.status, metrics),
                   lambda: save_checkpoint(run.path, result.model, run.train_config, data.name, result.history, metrics,
                                           extra=extra, trajectory=trajectory, dataset_sha=data.sha))

    def _save(self, model: SavedModel, save: Save) -> None:
        """Write one model; when the write fails, keep the model (and the write) for `save_again`, with the reason."""
        try:
            save()
        except OSError as exc:
            log.warning("training job %s could not save %s: %s", self.id, model.path, exc)
            unsaved = UnsavedModel(model.path, model.label, model.status, model.metrics, _save_failure(model.path, exc))
            self._retry[model.path] = save
            self.progress.change(lambda v: replace(v, unsaved=tuple(  # a retry keeps its place
                ({u.path: u for u in v.unsaved} | {model.path: unsaved}).values())))
            return
        self._retry.pop(model.path, None)  # the model it holds is no longer needed
        self.progress.change(lambda v: replace(v, unsaved=tuple(u for u in v.unsaved if u.path != model.path),
                                               saved=(*v.saved, model)))


def _save_failure(path: Path, exc: OSError) -> str:
    if isinstance(exc, DiskFullError) or exc.errno in (errno.ENOSPC, errno.EDQUOT):
        room = (f" ({megabytes(exc.needed_bytes)} needed, {megabytes(exc.free_bytes)} free)"
                if isinstance(exc, CheckpointWriteError) and exc.free_bytes is not None else "")
        return (f"The disk is full: {path.name} could not be saved{room}. The trained model is kept in memory: "
                "free some space, then press Save again.")
    return (f"{path.name} could not be saved: {exc.strerror or exc}. The trained model is kept in memory: "
            "fix the cause, then press Save again.")


def _looks_like_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def _out_of_memory(exc: BaseException) -> str:
    return ("training ran out of memory; try a smaller batch size, smaller hidden sizes or the MLP architecture "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})")


class JobRegistry:
    """Every job of this server process, run by its own pool of one worker thread: at most one job trains at a time,
    since they would share the same cores or GPU.

    Training ends with the process however it ends. kill -9 ends the thread with it. A process that ends normally
    (the server's Ctrl-C or SIGTERM) joins a pool's threads before anything `atexit` registered runs, so the
    registry stops its jobs from the hook that runs just before that join (the one concurrent.futures itself uses):
    each job stops at its next step and saves the weights reached, then the interpreter exits.
    """

    def __init__(self, keep: int = KEEP_JOBS) -> None:
        self._lock = threading.Lock()
        self._jobs: list[TrainingJob] = []
        self._keep = keep
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vae-train")
        threading._register_atexit(self.stop_all)  # runs before the pool's threads are joined (CPython ≥ 3.9)

    def submit(self, job: TrainingJob) -> TrainingJob:
        """Start `job` unless another is running (then JobBusy says which)."""
        with self._lock:
            busy = next((j for j in self._jobs if j.running), None)
            if busy is not None:
                raise JobBusy(f"'{busy.spec.title}' is still training; stop it or wait for it to finish before starting another.")
            self._jobs = [*self._jobs[-(self._keep - 1):], job] if self._keep > 1 else [job]
            return job.start(self._executor)

    def active(self) -> TrainingJob | None:
        with self._lock:
            return next((j for j in self._jobs if j.running), None)

    def latest(self) -> TrainingJob | None:
        with self._lock:
            return self._jobs[-1] if self._jobs else None

    def get(self, job_id: str) -> TrainingJob | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def stop_all(self) -> None:
        """Ask every job to stop (each saves what it reached)."""
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.stop()

    def clear(self, timeout: float = 60.0) -> None:
        """Stop every job, wait for the workers, forget them (tests)."""
        self.stop_all()
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.join(timeout)
