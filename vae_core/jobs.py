"""Background training for the app: a job trains one model or a β sweep (its models at once, vae_core.engine) in a
worker thread of a process-wide registry, which trains a few jobs at a time and queues the rest.

The worker thread does all of a job's work (load, train, snapshots, evaluation, saves) and touches only its own job
object. The job listens to its run (`ProgressListener`, an engine.Listener): each event replaces the job's frozen
view (`JobView`) in its `ProgressRecord`, and the page reads the current one with `view()`. A stop event is checked
by the engine every step. Training ends when the server does, however it ends (JobRegistry). Every failure ends up
in `JobView.error` as a sentence for the user, never only in a log; a model that trained but could not be saved (a
full disk) stays in memory for `save_again`.

Jobs have owners (`Owner`: a key that identifies whoever started it, and the name others see). The registry keeps
the server's limits (`JobLimits`: how many train at once, how many may wait, how long one may train) and, per owner,
at most one running and one waiting job; a waiting job starts, in the order jobs were submitted, once a slot is free
and its owner has no other job running. Who may replace a saved model is written into it (`OWNER_KEY` in the
checkpoint's `extra`) and checked before a job is accepted (`target_path`, `check_may_change`); a name a job not
ended yet will save under is refused to other jobs and to imports (`JobRegistry.check_unclaimed`), and a name an
import is writing is refused to jobs (`JobRegistry.claim`).

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
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

import torch

from . import backends, evaluate
from .checkpoint import (SUFFIX, CheckpointError, CheckpointWriteError, DiskFullError, megabytes, read_info,
                         save_checkpoint)
from .config import ModelConfig, TrainConfig
from .data import DatasetUnavailable, ImageDataset, load_dataset
from .engine import EpochMetrics, Recorders, StepMetrics, TrainResult, device_label, pick_device
from .models import LatentModel
from .snapshots import Snapshot, example_indices, map_indices, take_snapshot
from .train import prepare_model
from .trajectory import Trajectory, TrajectoryRecorder

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"  # the models that ship with the repository
SNAPSHOT_INTERVAL_S = 2.0  # the live view never costs the training thread more than one snapshot per 2 s
IW_SAMPLES = 50  # importance samples for the stored log p(x) of a finished run: modest, so it takes seconds
MAX_NAME_LENGTH = 80
MAX_OWNER_NAME = 40
KEEP_ENDED = 20  # ended jobs the registry keeps (with their live views), so their owners can still read them
MAX_JOBS_ENV, MAX_WAITING_ENV, MAX_JOB_MINUTES_ENV = "VAE_MAX_JOBS", "VAE_MAX_QUEUE", "VAE_MAX_JOB_MINUTES"
OWNER_KEY, OWNER_NAME_KEY = "owner", "owner_name"  # in a checkpoint's `extra`: who may replace or delete it

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, CANCELLED = "queued", "running", "finished", "stopped", "failed", "cancelled"
ENDED = (FINISHED, STOPPED, FAILED, CANCELLED)


class JobError(ValueError):
    """A job cannot be started as asked; the message is meant for the user."""


class JobBusy(JobError):
    """The queue or the owner's share of it is full."""


@dataclass(frozen=True)
class Owner:
    """Whoever started a job. `key` tells owners apart and is written into the models they save: a hash (of the
    signed-in user, or of the token their browser keeps), never the secret itself. `name` is what others see."""

    key: str = ""  # "" is nobody in particular (the CLI, a script): such models are never replaced by the app
    name: str = "someone"

    def __post_init__(self) -> None:
        name = " ".join(str(self.name).split())[:MAX_OWNER_NAME] or "someone"
        object.__setattr__(self, "name", name)


@dataclass(frozen=True)
class JobLimits:
    """The server's limits on training: jobs that train at once, jobs that may wait for a slot (all owners together),
    and how long one job may train (0: as long as it asks), so that one long run cannot hold a slot for hours while a
    class waits. Each owner also has at most one job running and one waiting, whatever these say."""

    running: int = 1
    waiting: int = 20
    job_s: float = 0.0  # a job training longer is stopped, and saved as a stopped run is

    GPU_RUNNING = 4  # small models leave a GPU mostly idle, so a few train at once there by default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, gpu: bool | None = None) -> "JobLimits":
        """$VAE_MAX_JOBS (default 1 on a CPU, where jobs would only share the cores, 4 on a CUDA GPU),
        $VAE_MAX_QUEUE (default 20) and $VAE_MAX_JOB_MINUTES (default 0: no limit); a value that is not a whole number
        ≥ 1 (≥ 0 for the queue and the minutes) is logged and the default used."""
        gpu = torch.cuda.is_available() if gpu is None else gpu
        defaults = cls(running=cls.GPU_RUNNING if gpu else cls.running)

        def read(name: str, default: int, least: int) -> int:
            text = environ.get(name, "").strip()
            if not text:
                return default
            try:
                value = int(text)
            except ValueError:
                value = least - 1
            if value < least:
                log.warning("%s=%r is not a whole number ≥ %d; using %d", name, text, least, default)
                return default
            return value

        return cls(running=read(MAX_JOBS_ENV, defaults.running, 1), waiting=read(MAX_WAITING_ENV, defaults.waiting, 0),
                   job_s=60.0 * read(MAX_JOB_MINUTES_ENV, 0, 0))


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


def owner_extra(owner: Owner) -> dict[str, str]:
    """What a saved model records of its owner, in its `extra` (nothing for nobody in particular)."""
    return {OWNER_KEY: owner.key, OWNER_NAME_KEY: owner.name} if owner.key else {}


def model_owner(path: str | os.PathLike) -> Owner | None:
    """Who may replace or delete the saved model at `path`: the owner recorded in it, or None when it records none
    (trained by the CLI, or before owners were recorded) or cannot be read."""
    try:
        extra = read_info(path).extra
    except (CheckpointError, OSError):
        return None
    key = extra.get(OWNER_KEY)
    return Owner(key, str(extra.get(OWNER_NAME_KEY, ""))) if isinstance(key, str) and key else None


def check_may_change(path: str | os.PathLike, owner: Owner) -> None:
    """Raise JobError unless `owner` may replace or delete the model at `path`: the owner recorded in it. A model that
    records none (the CLI's, or one trained before owners were recorded) is anyone's, as every model was before."""
    recorded = model_owner(path)
    if recorded is not None and recorded.key != owner.key:
        raise JobError(f"'{Path(path).stem}' belongs to {recorded.name or 'someone else'}; only they can replace "
                       "or delete it. Choose another name.")


def target_path(folder: str | os.PathLike, name: str, replace_existing: bool = False, owner: Owner = Owner()) -> Path:
    """Where a model named `name` is saved. A shipped model's name is always refused: the app saves elsewhere, so the
    new file would sit beside the shipped one under the same name in the picker. Replacing a trained model must be
    asked for, and only its owner may."""
    if name in shipped_names():
        raise JobError(f"'{name}' is the name of a model shipped with the app; choose another name.")
    path = Path(folder) / f"{name}{SUFFIX}"
    if path.exists():
        if not replace_existing:
            raise JobError(f"a model named '{name}' already exists; choose another name, or confirm that it may be replaced.")
        check_may_change(path, owner)
    return path


def delete_model(path: str | os.PathLike, owner: Owner) -> None:
    """Delete a saved model that `owner` may change (JobError otherwise, or when it is gone already)."""
    path = Path(path)
    if path.stem in shipped_names() and path.parent.resolve() == SHIPPED_DIR:
        raise JobError(f"'{path.stem}' ships with the app and is not deleted.")
    check_may_change(path, owner)
    try:
        path.unlink()
    except FileNotFoundError as exc:
        raise JobError(f"'{path.stem}' is not there any more.") from exc


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
    owner: Owner = Owner()


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
    replace_existing: bool = False, iw_samples: int = IW_SAMPLES, owner: Owner = Owner(),
) -> JobSpec:
    """One model saved as <folder>/<name>.pt for `owner`; raises JobError for a bad or taken name."""
    stem = sanitize_name(name)
    path = target_path(_writable(Path(folder)), stem, replace_existing, owner)
    return JobSpec(title=stem, runs=(RunSpec(model_config, train_config, path, stem),), iw_samples=iw_samples,
                   owner=owner)


def sweep_spec(
    name: str, folder: str | os.PathLike, model_config: ModelConfig, train_config: TrainConfig, betas: tuple[float, ...],
    replace_existing: bool = False, iw_samples: int = IW_SAMPLES, owner: Owner = Owner(),
) -> JobSpec:
    """One model per β with otherwise equal settings, trained together (vae_core.sweep), saved as <name>_beta<B>.pt."""
    stem = sanitize_name(name)
    folder = _writable(Path(folder))
    if not betas:
        raise JobError("give at least one β")
    runs = tuple(
        RunSpec(model_config, replace(train_config, beta=beta),
                target_path(folder, sweep_member_name(stem, beta), replace_existing, owner), f"β = {beta:g}")
        for beta in betas
    )
    return JobSpec(title=f"{stem} (β sweep: {', '.join(f'{b:g}' for b in betas)})", runs=runs, iw_samples=iw_samples,
                   owner=owner)


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
    owner_name: str = "someone"  # what everyone sees of whoever started it
    state: str = QUEUED  # queued, running, then finished, stopped, failed or cancelled (while it waited)
    phase: str = "waiting for a free slot"  # what the worker is doing, for the user
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
    time_limit_s: float | None = None  # the server's limit per job, once it stopped this one

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def queued(self) -> bool:
        return self.state == QUEUED

    @property
    def active(self) -> bool:
        """Queued or running: not ended yet."""
        return self.state not in ENDED

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
        if self.state == CANCELLED:
            return "Cancelled while it waited for a free slot; nothing was trained."
        if self.state not in (FINISHED, STOPPED):
            return ""
        names = (", ".join(m.path.name for m in self.saved)
                 or ("nothing" if self.unsaved else "nothing (stopped before the first step)"))
        waiting = f"; not saved yet: {', '.join(m.path.name for m in self.unsaved)}" if self.unsaved else ""
        limit = self.time_limit_s or 0
        why = ((f" at the server's limit of {limit / 60:g} min per job" if limit % 60 == 0 else
                f" at the server's limit of {limit:g} s per job") if self.state == STOPPED and limit else "")
        return f"{'Finished' if self.state == FINISHED else 'Stopped'}{why}; saved {names}{waiting}."

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
                 snapshot_interval_s: float = SNAPSHOT_INTERVAL_S, deadline: float | None = None) -> None:
        super().__init__(recorders)
        self.record, self.data, self.snapshot_interval = record, data, snapshot_interval_s
        self.deadline = deadline  # time.monotonic() when the server's limit per job stops it, if it has one
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
        eta = m.eta if self.deadline is None else min(m.eta, max(self.deadline - time.monotonic(), 0.0))
        shown = dict(progress=m.progress, eta=eta, images_per_s=m.images_per_s, epoch=m.epoch) if member == 0 else {}
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

    def __init__(self, spec: JobSpec, *, snapshot_interval_s: float = SNAPSHOT_INTERVAL_S, loader: Loader = load_dataset,
                 backend: backends.Backend | None = None) -> None:
        if not spec.runs:
            raise JobError("nothing to train")
        self.spec = spec
        self._backend = backend  # where it trains; None: chosen as it starts (backends.for_jobs: $RAY_ADDRESS, else here)
        self.id = uuid.uuid4().hex[:12]
        self._snapshot_interval = snapshot_interval_s
        self._loader = loader
        self._save_lock = threading.Lock()  # two sessions pressing Save again must not write the same file at once
        self._start_lock = threading.Lock()  # a job is either started or cancelled, never both
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._retry: dict[Path, Save] = {}  # the write of each model in `unsaved`, to retry
        self._future: Future | None = None
        self._on_end: Callable[[], None] | None = None
        self._time_limit_s = 0.0
        self._deadline: float | None = None  # time.monotonic() when the time limit stops it, while it trains
        first = spec.runs[0]
        self.progress = ProgressRecord(JobView(
            id=self.id, title=spec.title, kind=first.model_config.kind, epochs=first.train_config.epochs,
            members=tuple(MemberView(run.label) for run in spec.runs), owner_name=spec.owner.name))

    @property
    def owner(self) -> Owner:
        return self.spec.owner

    # --- called by the registry and the page -----------------------------------------------------------------------
    def start(self, executor: Executor, on_end: Callable[[], None] | None = None, time_limit_s: float = 0.0) -> bool:
        """Hand the job to a worker of `executor` (`on_end` is called in that worker once the job has ended), to be
        stopped after `time_limit_s` of work (0: none); False when it was cancelled while it waited."""
        with self._start_lock:
            if self._stop.is_set() or self._future is not None:
                return False
            self.progress.update(state=RUNNING, phase="starting")
            self._on_end = on_end
            self._time_limit_s = time_limit_s
            self._future = executor.submit(self._work)
            log.info("job %s started: %s, by %s", self.id, self.spec.title, self.owner.name)
            return True

    def stop(self) -> None:
        """Ask the worker to stop at the next step (the weights reached so far are still saved); a job still waiting
        for a slot is cancelled and never starts."""
        with self._start_lock:
            self._stop.set()
            if self._future is None and self.view().queued:
                self.progress.update(state=CANCELLED, phase="cancelled", eta=None)
                self._ended.set()
                log.info("job %s cancelled while it waited", self.id)
            elif (view := self.view()).running:
                log.info("job %s: stop asked (%s)", self.id, view.phase)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self.view().running

    @property
    def active(self) -> bool:
        """Waiting or running."""
        return self.view().active

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended (a waiting job first waits for its turn); True when it has."""
        return self._ended.wait(timeout)

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
        began = time.monotonic()
        timer = threading.Timer(self._time_limit_s, self._time_up) if self._time_limit_s else None
        self._deadline = began + self._time_limit_s if timer else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            self._run()
        except (DatasetUnavailable, backends.TrainingLost) as exc:
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
            if timer is not None:
                timer.cancel()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            view = self.view()
            log.info("job %s ended %s after %.1f s; saved: %s", self.id, view.state, time.monotonic() - began,
                     ", ".join(m.path.name for m in view.saved) or "nothing")
            if self._on_end is not None:  # before `join` returns: whoever waited for this job sees the next one started
                self._on_end()
            self._ended.set()

    def _time_up(self) -> None:
        """The server's limit per job is reached: stop as Stop does, the weights reached are saved."""
        if self._deadline is not None and not self._stop.is_set():
            self.progress.update(time_limit_s=self._time_limit_s)
            self._stop.set()

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
                                                          for run, model in zip(runs, models)], self._snapshot_interval,
                                    self._deadline)
        listener.snapshot(0, models[0], 0)
        where = backends.Choice(self._backend) if self._backend is not None else backends.for_jobs()
        self.progress.update(device=device_label(pick_device(runs[0].train_config.device)),
                             phase=(f"training {runs[0].label}" if len(runs) == 1 else
                                    f"training {len(runs)} models together ({', '.join(run.label for run in runs)})")
                             + where.phrase)
        results = where.backend.train(models, data, [run.train_config for run in runs], listeners=[listener],
                                      stop=self._stop)
        self._deadline = None  # trained: measuring and saving are not cut short, nor called stopped
        log.info("job %s trained (%s); measuring and saving", self.id, ", ".join(r.status for r in results))
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
                 "message": result.message, "trained_in": "app", **owner_extra(self.owner)}
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


@dataclass(frozen=True)
class QueuePlace:
    """Where a waiting job stands: its place among the waiting jobs and when it should start."""

    position: int  # 1-based, in the order jobs were submitted
    waiting: int  # jobs waiting in all
    start_in: float | None  # seconds until it should start; None while a job it waits for has no ETA yet
    at_least: bool  # jobs ahead of it have not run yet, so nothing is known of their length: it may start later


def estimate_start(running: list[tuple[str, float | None]], waiting: list[str], limit: int) -> tuple[float | None, bool]:
    """When the last of `waiting` (owner keys, in queue order) should start, given the running jobs as (owner key,
    ETA in s): the registry's rule replayed (a slot frees when a running job ends; the first waiting job whose owner
    has nothing running takes it). A waiting job ahead counts as taking no time, since its length is not known before
    it runs. Returns (seconds, at_least: jobs ahead were counted so); seconds is None when the job must wait for a
    running job that has no ETA yet."""
    ends = sorted((eta, owner) for owner, eta in running if eta is not None)
    busy = [owner for owner, _ in running]
    free = limit - len(running)
    pending, now, ahead = list(waiting), 0.0, False
    while True:
        while free > 0:
            ready = next((k for k, owner in enumerate(pending) if owner not in busy), None)
            if ready is None:
                break
            if ready == len(pending) - 1:
                return now, ahead
            pending.pop(ready)
            ahead = True
        if not ends:
            return None, ahead
        now, owner = ends.pop(0)
        busy.remove(owner)
        free += 1


class JobRegistry:
    """Every job of this server process and its queue: at most `limits.running` jobs train at once, each in a worker
    thread of the registry's pool (they share the cores or the GPU); others wait in the order they were submitted, at
    most `limits.waiting` of them, and each owner has at most one job running and one waiting.

    Training ends with the process however it ends. kill -9 ends the thread with it. A process that ends normally
    (the server's Ctrl-C or SIGTERM) joins a pool's threads before anything `atexit` registered runs, so the
    registry stops its jobs from the hook that runs just before that join (the one concurrent.futures itself uses):
    waiting jobs are cancelled, and each running one stops at its next step and saves the weights reached, then the
    interpreter exits.
    """

    def __init__(self, limits: JobLimits = JobLimits(), keep: int = KEEP_ENDED) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._jobs: list[TrainingJob] = []  # in the order they were submitted
        self._keep = keep
        self._closing = False
        self._claims: set[Path] = set()  # files being written outside any job (imported models), by `claim`
        self._executor = ThreadPoolExecutor(max_workers=limits.running, thread_name_prefix="vae-train")
        threading._register_atexit(self.stop_all)  # runs before the pool's threads are joined (CPython ≥ 3.9)

    def submit(self, job: TrainingJob) -> TrainingJob:
        """Start `job` now if a slot is free and its owner has nothing running, else queue it; JobBusy when its owner
        already has a job waiting or the queue is full, JobError when a job not ended yet writes one of its files."""
        with self._lock:
            self._refuse_claimed([run.path for run in job.spec.runs], job.owner)
            active = [j for j in self._jobs if j.active]
            mine = [j for j in active if j.owner.key == job.owner.key]
            if any(j.view().queued for j in mine):
                raise JobBusy("you already have a job waiting for a slot; cancel it or wait until it starts before "
                              "queueing another.")
            must_wait = mine or sum(j.running for j in active) >= self.limits.running
            waiting = sum(j.view().queued for j in active)
            if must_wait and waiting >= self.limits.waiting:
                raise JobBusy(f"the queue is full ({waiting} job{'s' if waiting != 1 else ''} waiting); try again "
                              "when one has started.")
            self._jobs.append(job)
            self._forget_ended()
            self._dispatch()
            return job

    def check_unclaimed(self, path: str | os.PathLike, owner: Owner) -> None:
        """Raise JobError when a job not ended yet will save a model at `path`: the file is not there yet, but the name
        is taken (an imported model must not be written where a run under way saves, nor the run over it)."""
        with self._lock:
            self._refuse_claimed([Path(path)], owner)

    @contextmanager
    def claim(self, path: str | os.PathLike, owner: Owner) -> Iterator[Path]:
        """Hold `path` while a model is written there outside any job (an import): jobs, and other claims, are refused
        it until the block ends, so that nothing takes the name between the caller's last check and its write.
        JobError when a job not ended yet, or another claim, has it."""
        held = Path(path).resolve()
        with self._lock:
            self._refuse_claimed([held], owner)
            self._claims.add(held)
        try:
            yield Path(path)
        finally:
            with self._lock:
                self._claims.discard(held)

    def _refuse_claimed(self, paths: list[Path], owner: Owner) -> None:
        """Under the lock: JobError when a job not ended yet, or a claim, writes one of `paths`."""
        wanted = {p.resolve() for p in paths}
        if held := sorted(wanted & self._claims):
            raise JobError(f"'{held[0].stem}' is being saved by an import right now; choose another name.")
        for other in self._jobs:
            clash = [run.path for run in other.spec.runs if other.active and run.path.resolve() in wanted]
            if clash:
                raise JobError(f"'{min(clash).stem}' is being trained by {_whose(other, owner)}; choose another name.")

    def _dispatch(self) -> None:
        """Start waiting jobs, oldest first, while slots are free; a job whose owner has one running waits on. Called
        under the lock."""
        if self._closing:
            return
        running = [j for j in self._jobs if j.running]
        owners = {j.owner.key for j in running}
        for job in self._jobs:
            if len(running) >= self.limits.running:
                break
            if (job.view().queued and job.owner.key not in owners
                    and job.start(self._executor, self._ended, self.limits.job_s)):
                running.append(job)
                owners.add(job.owner.key)

    def _ended(self) -> None:
        with self._lock:
            self._dispatch()

    def _forget_ended(self) -> None:
        ended = [j for j in self._jobs if not j.active]
        forget = set(map(id, ended[:max(len(ended) - self._keep, 0)]))
        self._jobs = [j for j in self._jobs if id(j) not in forget]

    # --- reading ----------------------------------------------------------------------------------------------------
    def jobs(self) -> list[TrainingJob]:
        """Every job kept, in the order they were submitted."""
        with self._lock:
            return list(self._jobs)

    def running(self) -> list[TrainingJob]:
        return [j for j in self.jobs() if j.running]

    def waiting(self) -> list[TrainingJob]:
        """The queue, in order."""
        return [j for j in self.jobs() if j.view().queued]

    def of(self, owner: Owner) -> list[TrainingJob]:
        """`owner`'s jobs, oldest first."""
        return [j for j in self.jobs() if j.owner.key == owner.key]

    def latest(self) -> TrainingJob | None:
        with self._lock:
            return self._jobs[-1] if self._jobs else None

    def get(self, job_id: str) -> TrainingJob | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def place(self, job: TrainingJob) -> QueuePlace | None:
        """Where `job` stands in the queue; None once it is not waiting."""
        jobs = self.jobs()
        waiting = [j for j in jobs if j.view().queued]
        if job not in waiting:
            return None
        position = waiting.index(job) + 1
        running = [(j.owner.key, j.view().eta) for j in jobs if j.running]
        start_in, at_least = estimate_start(running, [j.owner.key for j in waiting[:position]], self.limits.running)
        return QueuePlace(position, len(waiting), start_in, at_least)

    # --- ending -----------------------------------------------------------------------------------------------------
    def stop_all(self) -> None:
        """Cancel every waiting job and ask every running one to stop (each saves what it reached)."""
        with self._lock:
            self._closing = True
            jobs = list(self._jobs)
        for job in jobs:
            job.stop()

    def clear(self, timeout: float = 60.0) -> None:
        """Stop every job, wait for the workers, forget them (tests); the registry takes jobs again after."""
        self.stop_all()
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.join(timeout)
        with self._lock:
            self._closing = False


def _whose(job: TrainingJob, asking: Owner) -> str:
    return "your other job" if job.owner.key == asking.key else f"a job of {job.owner.name}"
