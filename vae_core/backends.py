"""Where training runs: here, in this process (embedded, the default), or on a Ray cluster when `RAY_ADDRESS` (or the
CLI's `--ray ADDRESS`) names one (vae_core.ray_backend, imported only then: the embedded path never imports Ray).

A backend trains groups: a group is models of one architecture trained together by the engine (vae_core.engine; they
may differ in β and seed), one group at a time here, each group a Ray task there. Listeners hear every member by its
index over all the groups in order, as if one run trained them all, whichever backend runs them. A group may ask for
its members to be measured (`evaluate.evaluate`) where they trained, so a cluster's workers do that work too.

Every member ends as an `Outcome`: its TrainResult (status finished, stopped, diverged, or failed when the worker or
cluster training it was lost, with the message saying so; a member stopped before its first step has no history and
is never saved) and its metrics when asked for.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from . import evaluate
from .config import TrainConfig
from .data import ImageDataset
from .engine import EpochMetrics, Listener, StepMetrics, StopFlag, TrainResult, device_label, pick_device, train_models
from .models import LatentModel

log = logging.getLogger(__name__)

RAY_ADDRESS_ENV = "RAY_ADDRESS"  # Ray's own variable: the cluster `ray.init()` would join
FAILED = "failed"  # a member whose worker or cluster was lost: nothing of it is kept


class TrainingLost(RuntimeError):
    """A group's training was lost with its worker or cluster; the message is one line for the user."""


class ClusterUnavailable(RuntimeError):
    """The Ray cluster asked for cannot be used (not reachable, Ray not installed); the message is one line."""


@dataclass(frozen=True)
class Group:
    """Models of one architecture trained together (`configs[k]` for `models[k]`, equal but for β and the seed).

    `iw_samples`: measure each trained member where it trained (`evaluate.evaluate` with that many importance samples;
    0 leaves the IW bound out, and so does a stopped member); None: not measured."""

    models: Sequence[LatentModel]
    configs: Sequence[TrainConfig]
    iw_samples: int | None = None


@dataclass
class Outcome:
    """One member of a group, trained (or not)."""

    result: TrainResult
    metrics: dict[str, float | int | str] | None = None
    ran_on: str = "here"  # where it trained: "here", or the Ray node's address


Done = Callable[[int, list["Outcome"]], None]


class Backend:
    """Trains groups of models and tells `listeners` what happens, members numbered over all the groups."""

    where = "this machine"  # for the user: where training runs

    def run(self, groups: Sequence[Group], data: ImageDataset, listeners: Sequence[Listener] = (),
            stop: StopFlag | None = None, done: Done | None = None) -> list[list[Outcome]]:
        """Train every group; one Outcome per member, per group. Stop stops every group with the weights reached
        (groups not started yet end stopped with no history). `done(g, outcomes)` is called as each group ends, in
        the order they end (so its models can be saved before the others finish)."""
        raise NotImplementedError

    def train(self, models: Sequence[LatentModel], data: ImageDataset, configs: Sequence[TrainConfig], *,
              listeners: Sequence[Listener] = (), stop: StopFlag | None = None) -> list[TrainResult]:
        """One group, as `engine.train_models` trains it; TrainingLost when its worker or cluster was lost."""
        outcomes = self.run([Group(models, configs)], data, listeners, stop)[0]
        lost = next((o.result.message for o in outcomes if o.result.status == FAILED), None)
        if lost is not None:
            raise TrainingLost(lost)
        return [o.result for o in outcomes]


class Embedded(Backend):
    """Here, in this process, one group after another on this machine's device."""

    def run(self, groups: Sequence[Group], data: ImageDataset, listeners: Sequence[Listener] = (),
            stop: StopFlag | None = None, done: Done | None = None) -> list[list[Outcome]]:
        outcomes, first = [], 0
        for group in groups:
            if stop is not None and stop.is_set():
                results = [not_started(model, group.configs[0]) for model in group.models]
            else:
                results = train_models(group.models, data, group.configs,
                                       listeners=[Renumbered(listener, first) for listener in listeners], stop=stop)
            outcomes.append([Outcome(r, measure(r, data, group.iw_samples)) for r in results])
            if done is not None:
                done(len(outcomes) - 1, outcomes[-1])
            first += len(group.models)
        return outcomes


EMBEDDED = Embedded()


def not_started(model: LatentModel, config: TrainConfig) -> TrainResult:
    """A member stopped before its group began: nothing trained, nothing to save."""
    return TrainResult(model=model, history=[], status="stopped", message="stopped before it started",
                       device=device_label(pick_device(config.device)))


def measure(result: TrainResult, data: ImageDataset, iw_samples: int | None) -> dict[str, float | int | str] | None:
    """A trained member's test metrics (the IW bound only for a finished run: Stop → saved stays quick), or None when
    not asked for or there is nothing to measure."""
    if iw_samples is None or not result.history or result.status not in ("finished", "stopped"):
        return None
    return evaluate.evaluate(result.model, data.test_images, data.test_labels,
                             iw_samples=iw_samples if result.status == "finished" else 0)


class Renumbered(Listener):
    """A listener hearing a group's member k as member `first + k` of the whole run."""

    def __init__(self, listener: Listener, first: int) -> None:
        self.listener, self.first = listener, first

    def step(self, member: int, metrics: StepMetrics) -> None:
        self.listener.step(self.first + member, metrics)

    def epoch(self, member: int, metrics: EpochMetrics, model: LatentModel) -> None:
        self.listener.epoch(self.first + member, metrics, model)

    def frame_due(self, member: int, at: float) -> bool:
        return self.listener.frame_due(self.first + member, at)

    def frame(self, member: int, at: float, model: LatentModel) -> None:
        self.listener.frame(self.first + member, at, model)


@dataclass
class Choice:
    """The backend a run uses and, when it is not the one asked for, why."""

    backend: Backend
    instead: str = ""  # why it trains here although a cluster was asked for, e.g. "the Ray cluster at … is unreachable"

    @property
    def phrase(self) -> str:
        """What a progress line adds about where training runs: nothing when it runs here as asked."""
        if self.instead:
            return f" here, as {self.instead}"
        return "" if self.backend is EMBEDDED else f" on {self.backend.where}"


def ray_backend(address: str) -> Backend:
    """The Ray cluster at `address`, connected; ClusterUnavailable (one line) when Ray is missing or nothing answers."""
    try:
        from .ray_backend import RayBackend
    except ImportError as exc:
        raise ClusterUnavailable(f"a Ray cluster was asked for ({address}) but Ray is not installed "
                                 f"({exc}); pip install ray") from exc
    return RayBackend.connect(address)


def for_jobs() -> Choice:
    """The app's choice for its next job: the cluster `RAY_ADDRESS` names, else here. A cluster that cannot be used
    (gone, unreachable) is reported in the note and the job trains here; each job asks again, so a cluster that comes
    back is used again."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if not address:
        return Choice(EMBEDDED)
    try:
        return Choice(ray_backend(address))
    except ClusterUnavailable as exc:
        log.warning("training here instead: %s", exc)
        return Choice(EMBEDDED, instead=str(exc))

