"""Training on a Ray cluster (`RAY_ADDRESS`, or the CLI's `--ray ADDRESS`): each group of models trained together
(vae_core.backends) is one Ray task, so a cluster's workers take the groups between them.

- The dataset goes into Ray's object store once per run (`ray.put`) and every task reads it from there, so the
  workers need no data files, and a dataset imported on this machine trains too (the full MNIST is ~55 MB).
- Fresh models travel as their initial weights (made here, seeded as an embedded run makes them) and come back as
  their trained weights, with their histories and, when asked for, their test metrics measured on the worker.
  Checkpoints are written here by the caller, so the workers share no folder with it.
- Progress comes back through a `ray.util.queue.Queue` (an actor on this machine's node): step events, batched; at
  each epoch's end and at each moment of the history recorder's schedule (vae_core.trajectory.schedule) the member's
  weights, so the caller's own listeners (history recorders, the app's live view, the CLI's bar) hear the run as if it
  trained here, computing what they draw from those weights.
- Stop is a flag (a small actor beside the queue) that every running task reads every POLL_S and that stops its
  engine at the next step, so a stopped group returns the weights it reached (saved as "stopped", as here). Groups
  not started yet are cancelled (`ray.cancel`) and end stopped with nothing trained. A running task is never
  cancelled without force: Ray may then answer its `ray.get` with TaskCancelledError even though the task caught the
  interrupt and returned its weights (seen on a loaded machine: every model of a stopped sweep lost). A task that has
  not stopped STOP_GRACE_S after Stop is killed (`force=True`) and its members end failed, with nothing kept.
- `max_retries=0`: a worker killed mid-run fails its task, and so that group's members (one line each, no file),
  instead of Ray silently training it again; the other groups go on.
- The cluster is watched while a run lasts (its head's port, every WATCH_S): a cluster that goes away fails the groups
  still training, in one line, within seconds. Ray is connected only while a run lasts and disconnected after it, so
  a cluster that dies between runs costs nothing; the next run finds it unreachable (the app then trains here).

What this machine must be: a node of the cluster (`ray start --address=HEAD:6379 --num-cpus=0`) with the head's
address as RAY_ADDRESS, or any machine with a Ray Client address (`ray://HEAD:10001`). The workers need the same
Python packages as this machine (torch, numpy); this package itself is shipped to them (`py_modules`).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

# Ray's default would end this whole process (the app's server) 60 s after the cluster's head went away while it is
# connected. A run watches the head itself and disconnects within seconds instead; this must be set before Ray starts
# its core worker in this process.
os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "86400")

import ray  # noqa: E402
import torch  # noqa: E402
from ray.exceptions import (NodeDiedError, RayError, RayTaskError, TaskCancelledError,  # noqa: E402
                            WorkerCrashedError)
from ray.util.queue import Empty, Queue  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from .backends import FAILED, Backend, ClusterUnavailable, Done, Group, Outcome, measure, not_started  # noqa: E402
from .config import ModelConfig, TrainConfig  # noqa: E402
from .data import ImageDataset  # noqa: E402
from .engine import EpochMetrics, Listener, StepMetrics, StopFlag, TrainResult, train_models  # noqa: E402
from .models import LatentModel, build_model  # noqa: E402
from .trajectory import TRAJECTORY_POINTS, schedule  # noqa: E402

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent  # shipped to the workers as it is here
PROBE_TIMEOUT_S = 3.0  # a head that does not accept a connection within this is not there
WATCH_S = 2.0  # how often a run checks that the head is still there
POLL_S = 0.2  # how long the caller waits for progress before looking at the tasks again
FLUSH_S = 0.5  # a task sends its step events at most this often (one actor call for all of them)
STOP_GRACE_S = 60.0  # after Stop, how long a running group has to stop at its next step and send its weights
SHUTDOWN_TIMEOUT_S = 30.0


Weights = dict[str, torch.Tensor]


def _weights(model: LatentModel) -> Weights:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` or `ray://HOST:PORT` address; None for what Ray resolves itself ("auto")."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def unreachable(address: str) -> str | None:
    """Why nothing accepts a connection at the address's port (e.g. "Connection refused"), or None when something
    does (or the address is one Ray resolves itself)."""
    target = _host_port(address)
    if target is None:
        return None
    try:
        socket.create_connection(target, timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def probe(address: str) -> None:
    """ClusterUnavailable unless something answers at `address`: ray.init would otherwise retry for minutes."""
    reason = unreachable(address)
    if reason is not None:
        raise ClusterUnavailable(f"the Ray cluster at {address} is unreachable ({reason})")


class _Connection:
    """This process's connection to Ray, opened for the runs under way and closed after the last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0
        self.address: str | None = None
        self.broken: str | None = None  # why Ray cannot be used again in this process

    def open(self, address: str) -> None:
        with self.lock:
            if self.broken:
                raise ClusterUnavailable(self.broken)
            if self.users and address != self.address:
                raise ClusterUnavailable(f"connected to the Ray cluster at {self.address} for another run")
            if not self.users:
                probe(address)
                try:
                    ray.init(address=address, namespace="latent-explorer", log_to_driver=False,
                             logging_level=logging.ERROR,
                             runtime_env={"py_modules": [str(PACKAGE)], "excludes": ["__pycache__", "bundled"]})
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise ClusterUnavailable(f"cannot join the Ray cluster at {address}: {_one_line(exc)}") from exc
                self.address = address
            self.users += 1

    def close(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users:
                return
            # After a cluster went away, shutting down has been seen to hang; a run must not hang with it.
            done = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
            done.start()
            done.join(SHUTDOWN_TIMEOUT_S)
            if done.is_alive():
                self.broken = (f"the connection to the Ray cluster at {self.address} could not be closed; "
                               "restart this program to use Ray again")
                log.warning(self.broken)


_CONNECTION = _Connection()


@dataclass(frozen=True)
class Worker:
    """Where a group runs: its node (address and Ray's node id) and the worker process's id there."""

    node: str  # "IP node <first 8 hex digits of its id>": nodes on one machine share the IP
    pid: int


@dataclass(frozen=True)
class _Trained:
    """One member as its task hands it back."""

    weights: Weights
    history: list[dict[str, float]]
    status: str
    message: str
    device: str
    images_per_s: float
    metrics: dict[str, Any] | None


class RayBackend(Backend):
    """The Ray cluster at `address`: one task per group. `workers` tells where each group of the last run ran."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.where = f"the Ray cluster at {address}"
        self.workers: dict[int, Worker] = {}

    @classmethod
    def connect(cls, address: str) -> "RayBackend":
        """The cluster at `address` if something answers there (and Ray can be used in this process); else
        ClusterUnavailable. Ray itself is joined only while a run lasts."""
        if _CONNECTION.broken:
            raise ClusterUnavailable(_CONNECTION.broken)
        probe(address)
        return cls(address)

    def run(self, groups: Sequence[Group], data: ImageDataset, listeners: Sequence[Listener] = (),
            stop: StopFlag | None = None, done: Done | None = None) -> list[list[Outcome]]:
        _CONNECTION.open(self.address)
        try:
            queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False)})
            stopping = _StopSignal.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False)).remote()
            try:
                return self._run(groups, data, listeners, stop, done, queue, stopping)
            finally:
                try:
                    queue.shutdown()
                    ray.kill(stopping)
                except RayError:
                    pass
        finally:
            _CONNECTION.close()

    def _options(self, config: TrainConfig) -> dict[str, Any]:
        # Ray hides the GPUs from a task that did not ask for one: on a cluster with GPUs, each group takes one.
        gpus = ray.cluster_resources().get("GPU", 0) if config.device != "cpu" else 0
        return {"num_cpus": 1, **({"num_gpus": 1} if gpus >= 1 else {})}

    def _run(self, groups: Sequence[Group], data: ImageDataset, listeners: Sequence[Listener], stop: StopFlag | None,
             done: Done | None, queue: Queue, stopping: "ray.actor.ActorHandle") -> list[list[Outcome]]:
        self.workers = {}
        data_ref = ray.put(data)
        options = self._options(groups[0].configs[0])
        pending: dict[ray.ObjectRef, int] = {}
        for g, group in enumerate(groups):
            ref = _train_group.options(name=f"latent-explorer group {g}", **options).remote(
                g, [_weights(m) for m in group.models], group.models[0].config, list(group.configs), data_ref, queue,
                group.iw_samples, stopping)
            pending[ref] = g
        replay = _Replay(groups, listeners, self.workers)
        outcomes: list[list[Outcome] | None] = [None] * len(groups)
        cancelled_at = forced = None
        watched = time.monotonic()
        while pending:
            lost = None
            try:
                replay.events(_drain(queue, POLL_S))
            except RayError as exc:  # the queue lives on this node: without it the run cannot go on
                lost = self._gone() or f"the Ray cluster lost this run's progress queue ({_one_line(exc)[:200]})"
            if lost is None and time.monotonic() - watched >= WATCH_S:
                watched = time.monotonic()
                lost = self._gone()
            if lost is not None:  # the tasks still running end with this run's connection (closed by `run`)
                for g in pending.values():
                    outcomes[g] = _failed(groups[g], f"{lost}; nothing of it was kept")
                    if done is not None:
                        done(g, outcomes[g])
                break
            if stop is not None and stop.is_set() and cancelled_at is None:
                cancelled_at = time.monotonic()
                stopping.set.remote()
                for ref, g in pending.items():
                    if g not in self.workers:  # not started: it never will
                        ray.cancel(ref)
            elif cancelled_at is not None and forced is None and time.monotonic() - cancelled_at > STOP_GRACE_S:
                forced = True
                for ref in pending:
                    ray.cancel(ref, force=True)
            ended, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            if ended:
                try:  # a task puts its events before it returns: they are all in the queue by now
                    replay.events(_drain(queue, 0))
                except RayError:
                    pass  # the next turn tells whether the cluster is still there
                for ref in ended:
                    g = pending.pop(ref)
                    outcomes[g] = self._collect(ref, g, groups[g], forced is not None)
                    if done is not None:
                        done(g, outcomes[g])
        return outcomes

    def _gone(self) -> str | None:
        """That the cluster went away and why, or None while its head still answers."""
        reason = unreachable(self.address)
        return None if reason is None else f"the Ray cluster at {self.address} went away ({reason})"

    def _collect(self, ref: ray.ObjectRef, g: int, group: Group, forced: bool) -> list[Outcome]:
        """A finished task's members, or its failure for each of them."""
        where = self.workers.get(g)
        try:
            trained: list[_Trained] = ray.get(ref)
        except TaskCancelledError:  # cancelled before it started (or as it started, before its first report)
            return [Outcome(not_started(m, c)) for m, c in zip(group.models, group.configs)]
        except WorkerCrashedError:
            if forced:
                return _failed(group, f"it did not stop within {STOP_GRACE_S:.0f} s of Stop, so its Ray worker was "
                                      "killed; nothing of it was kept")
            at = f" (pid {where.pid} on {where.node})" if where else ""
            return _failed(group, f"the Ray worker training it died{at}; nothing of it was kept")
        except NodeDiedError:
            lost = self._gone() or f"the Ray node training it{f' ({where.node})' if where else ''} died"
            return _failed(group, f"{lost}; nothing of it was kept")
        except RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            return _failed(group, f"training failed on the Ray worker: {type(cause).__name__}: {_one_line(cause)}")
        except RayError as exc:
            lost = self._gone() or f"the Ray task training it failed ({_one_line(exc)[:200]})"
            return _failed(group, f"{lost}; nothing of it was kept")
        node = where.node if where else "the cluster"
        outcomes = []
        for model, member in zip(group.models, trained):
            model.load_state_dict(member.weights)
            model.eval()
            result = TrainResult(model=model, history=member.history, status=member.status, message=member.message,
                                 device=f"{member.device} on {node}", images_per_s=member.images_per_s)
            outcomes.append(Outcome(result, member.metrics, ran_on=node))
        return outcomes


def _failed(group: Group, message: str) -> list[Outcome]:
    return [Outcome(TrainResult(model=m, history=[], status=FAILED, message=message)) for m in group.models]


def _drain(queue: Queue, timeout: float) -> list[tuple]:
    """What the tasks sent since the last call: waits up to `timeout` for the first event."""
    try:
        first = [queue.get(timeout=timeout)] if timeout > 0 else [queue.get_nowait()]
    except Empty:
        return []
    waiting = queue.qsize()
    return first + (queue.get_nowait_batch(waiting) if waiting else [])


class _Replay:
    """The tasks' events told to the caller's listeners, member k of group g numbered as over the whole run; the
    weights an event carries are put into the caller's own model of that member first."""

    def __init__(self, groups: Sequence[Group], listeners: Sequence[Listener], workers: dict[int, Worker]) -> None:
        self.listeners, self.workers = list(listeners), workers
        self.models = [list(group.models) for group in groups]
        self.first = [sum(len(group.models) for group in groups[:g]) for g in range(len(groups))]

    def events(self, events: list[tuple]) -> None:
        for kind, g, *rest in events:
            if kind == "started":
                node, pid = rest
                self.workers[g] = Worker(node, pid)
            elif kind == "step":
                k, metrics = rest
                for listener in self.listeners:
                    listener.step(self.first[g] + k, metrics)
            elif kind == "epoch":
                k, metrics, weights = rest
                model = self._model(g, k, weights)
                for listener in self.listeners:
                    listener.epoch(self.first[g] + k, metrics, model)
            elif kind == "frame":
                k, at, weights, stopped = rest
                member, model = self.first[g] + k, self._model(g, k, weights)
                # as the engine does: a frame where a stopped run ends goes to every listener, others to those due
                for listener in self.listeners:
                    if stopped or listener.frame_due(member, at):
                        listener.frame(member, at, model)

    def _model(self, g: int, k: int, weights: Weights) -> LatentModel:
        model = self.models[g][k]
        model.load_state_dict(weights)
        return model


# --- what runs on a worker ----------------------------------------------------------------------------------------

class _Forwarder(Listener):
    """A task's listener: sends the run's events to the caller's queue, with the member's weights at each epoch's end
    and at the history recorder's moments (trajectory.schedule, the same a recorder here follows)."""

    def __init__(self, queue: Queue, group: int, stop: threading.Event, moments: list[list[float]]) -> None:
        self.queue, self.group, self.stop = queue, group, stop
        self.moments, self.next = moments, [0] * len(moments)
        self.buffer: list[tuple] = []
        self.sent = time.monotonic()

    def send(self, event: tuple, now: bool = True) -> None:
        self.buffer.append(event)
        if now or time.monotonic() - self.sent >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.queue.put_nowait_batch(self.buffer)
            self.buffer, self.sent = [], time.monotonic()

    def step(self, member: int, metrics: StepMetrics) -> None:
        self.send(("step", self.group, member, metrics), now=False)

    def epoch(self, member: int, metrics: EpochMetrics, model: LatentModel) -> None:
        self.send(("epoch", self.group, member, metrics, _weights(model)))

    def frame_due(self, member: int, at: float) -> bool:
        moments, i = self.moments[member], self.next[member]
        return i < len(moments) and at >= moments[i] - 1e-9

    def frame(self, member: int, at: float, model: LatentModel) -> None:
        moments = self.moments[member]
        while self.next[member] < len(moments) and moments[self.next[member]] <= at + 1e-9:
            self.next[member] += 1
        self.send(("frame", self.group, member, at, _weights(model), self.stop.is_set()))


@ray.remote
class _StopSignal:
    """Whether the caller pressed Stop: set once, read by every running task of the run."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped


def _watch(stopping: "ray.actor.ActorHandle", stop: threading.Event, ended: threading.Event) -> None:
    """In a task: set `stop` once the caller's Stop is seen (or the caller is gone: nobody waits for the weights)."""
    while not ended.wait(POLL_S):
        try:
            stopped = ray.get(stopping.is_set.remote())
        except RayError:
            stopped = True
        if stopped:
            stop.set()
            return


@ray.remote(max_retries=0)
def _train_group(group: int, weights: list[Weights], model_config: ModelConfig, configs: list[TrainConfig],
                 data: ImageDataset, queue: Queue, iw_samples: int | None,
                 stopping: "ray.actor.ActorHandle") -> list[_Trained]:
    """Train one group on this worker; the caller's Stop (`stopping`) stops it at its next step."""
    stop, ended = threading.Event(), threading.Event()
    threading.Thread(target=_watch, args=(stopping, stop, ended), name="stop-watch", daemon=True).start()
    try:
        context = ray.get_runtime_context()
        node = f"{ray.util.get_node_ip_address()} node {context.get_node_id()[:8]}"
        queue.put(("started", group, node, os.getpid()))
        models = []
        for w in weights:
            model = build_model(model_config)
            model.load_state_dict(w)
            models.append(model)
        pixels, points = model_config.image_shape, min(TRAJECTORY_POINTS, len(data.test_images))
        moments = [schedule(c.epochs, 0, model_config.latent_dim, pixels[0] * pixels[1] * pixels[2], points).tolist()
                   for c in configs]
        forwarder = _Forwarder(queue, group, stop, moments)
        results = train_models(models, data, configs, listeners=[forwarder], stop=stop)
        forwarder.flush()
        return [_Trained(_weights(r.model), r.history, r.status, r.message, r.device, r.images_per_s,
                         measure(r, data, iw_samples)) for r in results]
    finally:
        ended.set()

