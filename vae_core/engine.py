"""The one training loop: K ≥ 1 models of one architecture trained at once on one device, telling listeners what
happens (`Listener`: step, epoch, frame). The CLI's printer, a job's progress and the history recorder are listeners;
`train.fit` and `sweep.fit_together` are this loop with callbacks wrapped as listeners.

The loop, top to bottom: every epoch a seeded permutation of the training images (uint8, resident on the device,
batched by index); before every step the stop flag and the listeners' frames; the step; every LOG_EVERY steps one
read of the device (the metrics since the last read), a divergence check, and the step events; at the epoch's end the
test −ELBO and the epoch events.

K = 1 runs the model's own step (plain kernels). K > 1 stacks the members' weights along a new first dimension
(`torch.func.stack_module_state`) and runs the model's own `objective` once per member under `torch.func.vmap`, so
K models cost one pass of K-wide batched kernels instead of K passes of small ones (on a GPU the small passes are
launch-bound, so K members take about the time of one); Adam is elementwise, so one fused Adam over the stacked
tensors updates each member exactly as its own Adam would. On a GPU either step is replayed from a CUDA graph
(vae_core.graph_step).

What members share: the architecture and every setting but β and the seed (`check_together`). A member's seed is
its initialisation (the caller's `train.prepare_model`) and its batch order: members with equal seeds follow one
permutation, members with different seeds each their own, the one a lone run with that seed would follow. Noise
(reparameterisation samples, a denoiser's corruption) comes from one batched draw seeded by the first member's seed,
so with K = 1 a member is `fit`'s run exactly and with K > 1 member k's noise is not the one a lone run would draw
(and the batched kernels round differently). A member that diverges gets its last good weights back and is frozen
there (no gradient, no Adam moments) while the others train on, so its divergence changes nothing for them.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Callable, Iterable, Protocol, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import evaluate
from .config import TrainConfig
from .data import ImageDataset, to_float
from .graph_step import step_runner
from .loss import kl_weight
from .models import LatentModel

LOG_EVERY = 10  # steps between metric reads: each read syncs the device, so not every step
LR_WARMUP_SHARE = 0.1  # of a run's steps, over which "warmup_cosine" raises the learning rate to its peak


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


def pick_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple's MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def device_label(device: torch.device) -> str:
    """What to tell the user about the device: the GPU's name, or CPU."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return "Apple GPU (MPS)" if device.type == "mps" else f"CPU ({threads} thread{'s' if threads != 1 else ''})"


@dataclass(frozen=True)
class StepMetrics:
    epoch: int  # 1-based, counted over the model's whole history
    step: int  # within the epoch, 1-based
    steps_per_epoch: int
    loss: float  # the objective: recon + kl_weight·kl, mean since the last report
    recon: float
    kl: float
    kl_weight: float
    images_per_s: float
    elapsed: float
    eta: float
    progress: float  # 0..1 over this run

    @property
    def at(self) -> float:
        """Where the run is, in fractional epochs counted from 0."""
        return self.epoch - 1 + self.step / self.steps_per_epoch


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_elbo: float  # −ELBO at β = 1 over the epoch's batches
    train_recon: float
    train_kl: float
    test_elbo: float
    test_recon: float
    test_kl: float
    kl_weight: float
    images_per_s: float
    elapsed: float
    eta: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class TrainResult:
    model: LatentModel
    history: list[dict[str, float]]
    status: str  # "finished", "stopped" or "diverged"
    message: str = ""
    device: str = "cpu"
    images_per_s: float = 0.0


class Listener:
    """What a run tells whoever listens; override what you need. `member` is the model's index in the run (0 when it
    trains alone). Called in the thread that trains, in the order the listeners were given; keep them quick."""

    def step(self, member: int, metrics: StepMetrics) -> None:
        """Every LOG_EVERY steps and at each epoch's last step, for each member still training."""

    def epoch(self, member: int, metrics: EpochMetrics, model: LatentModel) -> None:
        """At each epoch's end (a stopped one's too), with the member's model holding the weights of that moment."""

    def frame_due(self, member: int, at: float) -> bool:
        """Asked before every step and at each epoch's end (`at` in fractional epochs over the model's whole history):
        whether `frame` is wanted now. Only then does a member trained with others get its weights written back."""
        return False

    def frame(self, member: int, at: float, model: LatentModel) -> None:
        """A moment of the member's history: when `frame_due` said so, and where a stopped run stopped (so a
        history ends at the weights that are kept)."""


class Recorder(Protocol):
    """What a history recorder (vae_core.trajectory.TrajectoryRecorder) offers a run."""

    def due(self, epoch: float) -> bool: ...

    def record(self, model: LatentModel, epoch: float) -> None: ...


class Recorders(Listener):
    """History recorders as a listener: `recorders[k]` records member k's frames (None: member k is not recorded)."""

    def __init__(self, recorders: Sequence[Recorder | None]) -> None:
        self.recorders = list(recorders)

    def frame_due(self, member: int, at: float) -> bool:
        recorder = self.recorders[member]
        return recorder is not None and recorder.due(at)

    def frame(self, member: int, at: float, model: LatentModel) -> None:
        if self.recorders[member] is not None:
            self.recorders[member].record(model, at)


class Callbacks(Listener):
    """Plain functions as a listener: `on_step(member, metrics)`, `on_epoch(member, metrics, model)`."""

    def __init__(self, on_step: Callable[[int, StepMetrics], None] | None = None,
                 on_epoch: Callable[[int, EpochMetrics, LatentModel], None] | None = None) -> None:
        self.on_step, self.on_epoch = on_step, on_epoch

    def step(self, member: int, metrics: StepMetrics) -> None:
        if self.on_step is not None:
            self.on_step(member, metrics)

    def epoch(self, member: int, metrics: EpochMetrics, model: LatentModel) -> None:
        if self.on_epoch is not None:
            self.on_epoch(member, metrics, model)


def check_together(models: Sequence[LatentModel], configs: Sequence[TrainConfig]) -> None:
    """ValueError unless these models can train together: one config per model, one architecture of a kind that can be
    trained, settings equal but β and the seed."""
    if not models or len(models) != len(configs):
        raise ValueError(f"give one training configuration per model (got {len(models)} models, {len(configs)} configurations)")
    if any(m.config != models[0].config for m in models):
        raise ValueError("models trained together must share one architecture (the same model configuration)")
    if not models[0].trainable:
        raise ValueError(f"a {models[0].title} cannot be trained here")
    shared = replace(configs[0], beta=0.0, seed=0)
    for c in configs[1:]:
        if replace(c, beta=0.0, seed=0) != shared:
            different = sorted(k for k, v in c.to_dict().items() if k not in ("beta", "seed") and v != getattr(shared, k))
            raise ValueError(f"models trained together may differ only in β and seed, not in {', '.join(different)}")


def train_models(
    models: Sequence[LatentModel],
    dataset: ImageDataset,
    configs: Sequence[TrainConfig],
    *,
    listeners: Sequence[Listener] = (),
    stop: StopFlag | None = None,
    histories: Sequence[Sequence[dict[str, float]]] | None = None,
    evaluate_each_epoch: bool = True,
) -> list[TrainResult]:
    """Train `models[k]` with `configs[k]` for `configs[k].epochs` more epochs, all at once; one TrainResult per
    member, in order, each holding an ordinary model.

    `histories[k]` is member k's per-epoch history so far (a resumed model; all of one length), continued in its
    result. Stop is checked before every step and stops every member with the weights reached.
    """
    check_together(models, configs)
    histories = [list(h) for h in histories] if histories is not None else [[] for _ in models]
    if len({len(h) for h in histories}) != 1 or len(histories) != len(models):
        raise ValueError("models trained together must have trained the same number of epochs before")
    config, n_models, first_epoch = configs[0], len(models), len(histories[0])
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    for model in models:
        model.to(device).train()
    train_images = dataset.train_images.to(device)
    test_images = dataset.test_images.to(device)
    # labels go along only where the model takes them (a conditional model), so the others stay as fast as before
    conditional = models[0].conditional
    train_labels = dataset.train_labels.to(device) if conditional else None
    test_labels = dataset.test_labels.to(device) if conditional else None
    n = len(train_images)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    per_member = len({c.seed for c in configs}) > 1  # a batch order per member, else one for all
    orders = [torch.Generator(device="cpu").manual_seed(c.seed + first_epoch)
              for c in (configs if per_member else configs[:1])]
    batch_shape = (n_models, config.batch_size) if per_member else (config.batch_size,)
    members = (_Alone(models[0], config, train_images, train_labels, device, total_steps) if n_models == 1 else
               _Stacked(models, configs, train_images, train_labels, device, total_steps, batch_shape))
    snapshot = members.snapshot()
    statuses, messages = ["finished"] * n_models, [""] * n_models
    training = list(range(n_models))  # members neither diverged nor done
    start = time.perf_counter()
    seen = done_steps = 0

    def frames(at: float, stopped: bool = False) -> None:
        for k in training:
            wanting = listeners if stopped else [lst for lst in listeners if lst.frame_due(k, at)]
            if wanting:
                model = members.model(k)
                for listener in wanting:
                    listener.frame(k, at, model)

    for epoch in range(first_epoch, first_epoch + config.epochs):
        perms = [torch.randperm(n, generator=g) for g in orders]
        order = (torch.stack(perms) if per_member else perms[0]).to(device)
        sums = torch.zeros(n_models, 3, device=device)  # objective, recon, kl since the last report
        epoch_sums = torch.zeros(n_models, 2, device=device)
        since_report = epoch_seen = 0
        stopped = False
        for step in range(steps_per_epoch):
            at = epoch + step / steps_per_epoch
            if stop is not None and stop.is_set():
                stopped = True
                for k in training:
                    statuses[k], messages[k] = "stopped", f"stopped by the user during epoch {epoch + 1}"
                frames(at, stopped=True)
                break
            frames(at)
            idx = order[..., step * config.batch_size : (step + 1) * config.batch_size]
            size = idx.shape[-1]
            ramp = kl_weight(1.0, config.kl_warmup, at)  # shared warm-up: one float times each member's β
            batch_terms = members.step(idx, ramp)
            sums += batch_terms * size
            epoch_sums += batch_terms[:, 1:] * size
            since_report += size
            epoch_seen += size
            seen += size
            done_steps += 1
            if done_steps % LOG_EVERY == 0 or step == steps_per_epoch - 1:
                rows = (sums / since_report).tolist()
                for k in list(training):
                    loss, recon, kl = rows[k]
                    if not all(map(math.isfinite, (loss, recon, kl))):
                        members.restore(k, snapshot)
                        training.remove(k)
                        statuses[k], messages[k] = "diverged", divergence_message(epoch, step, loss)
                snapshot = members.snapshot()
                elapsed = time.perf_counter() - start
                for k in training:
                    loss, recon, kl = rows[k]
                    metrics = StepMetrics(
                        epoch=epoch + 1, step=step + 1, steps_per_epoch=steps_per_epoch, loss=loss, recon=recon,
                        kl=kl, kl_weight=configs[k].beta * ramp, images_per_s=seen / elapsed, elapsed=elapsed,
                        eta=elapsed / done_steps * (total_steps - done_steps), progress=done_steps / total_steps,
                    )
                    for listener in listeners:
                        listener.step(k, metrics)
                sums.zero_()
                since_report = 0
                if not training:
                    break
        if not training or epoch_seen == 0:
            break
        rows = (epoch_sums / epoch_seen).tolist()
        for k in training:
            model = members.model(k)
            train_recon, train_kl = rows[k]
            test = (evaluate.elbo(model, test_images, test_labels) if evaluate_each_epoch
                    else {"elbo": math.nan, "recon": math.nan, "kl": math.nan})
            model.train()
            elapsed = time.perf_counter() - start
            metrics = EpochMetrics(
                epoch=epoch + 1, train_elbo=train_recon + train_kl, train_recon=train_recon, train_kl=train_kl,
                test_elbo=test["elbo"], test_recon=test["recon"], test_kl=test["kl"], kl_weight=configs[k].beta * ramp,
                images_per_s=seen / elapsed, elapsed=elapsed,
                eta=elapsed / max(done_steps, 1) * (total_steps - done_steps),
            )
            histories[k].append(metrics.to_dict())
            if not stopped:
                for listener in listeners:
                    if listener.frame_due(k, epoch + 1):
                        listener.frame(k, epoch + 1, model)
            for listener in listeners:
                listener.epoch(k, metrics, model)
        if stopped:
            break

    members.finish()
    elapsed = time.perf_counter() - start
    for model in models:
        model.eval()
    return [
        TrainResult(model=models[k], history=histories[k], status=statuses[k], message=messages[k],
                    device=device_label(device), images_per_s=seen / elapsed if elapsed > 0 else 0.0)
        for k in range(n_models)
    ]


def make_optimizer(
    params: Iterable[torch.Tensor], config: TrainConfig, device: torch.device, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser and learning-rate schedule of a run of `total_steps` steps."""
    # The fused kernel updates all parameters in one pass: ~11% faster per step on a 2-core CPU for the 784-400-20 MLP.
    # Capturable on CUDA, where the step is replayed from a CUDA graph (vae_core.graph_step).
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=(0.9, config.adam_beta2),
                                 fused=device.type in ("cpu", "cuda"), capturable=device.type == "cuda")
    # A cosine decay reaches a given loss in fewer epochs than a constant rate when the run's length is known; a
    # linear warm-up before it lets a short run start at a higher peak rate without blowing up its first steps.
    if config.lr_schedule == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if config.lr_schedule == "warmup_cosine":
        factor = partial(warmup_cosine, warmup=round(LR_WARMUP_SHARE * total_steps), total=total_steps)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return optimizer, None


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The share of the peak rate used at 0-based `step` of `total`: (step + 1) / warmup over the first `warmup`
    steps, then a cosine from 1 down to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def divergence_message(epoch: int, step: int, loss: float) -> str:
    """What to tell the user when the loss of 0-based `epoch`, `step` became NaN or infinite."""
    return (f"training diverged at epoch {epoch + 1}, step {step + 1}: the loss became "
            f"{'NaN' if math.isnan(loss) else 'infinite'}; the last good weights were kept. "
            "Try a lower learning rate or a smaller β.")


# --- the members' step: one model alone, or K stacked -------------------------------------------------------------

class _Alone:
    """K = 1: the model's own step on its own weights."""

    def __init__(self, model: LatentModel, config: TrainConfig, images: torch.Tensor, labels: torch.Tensor | None,
                 device: torch.device, total_steps: int) -> None:
        self._model, self._beta = model, config.beta
        self.optimizer, self.scheduler = make_optimizer(model.parameters(), config, device, total_steps)
        optimizer, mc_samples = self.optimizer, config.mc_samples

        def train_step(idx: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
            x = to_float(images[idx])
            y = None if labels is None else labels[idx]
            terms = model.objective(x, y, kl_weight=weight, mc_samples=mc_samples)
            optimizer.zero_grad(set_to_none=True)
            terms.loss.backward()
            optimizer.step()
            return torch.stack([terms.loss.detach(), terms.recon.detach(), terms.kl.detach()]).unsqueeze(0)

        self._run = step_runner(train_step, optimizer, (config.batch_size,), device)

    def step(self, idx: torch.Tensor, ramp: float) -> torch.Tensor:
        """(1, 3): the batch's objective, recon and KL on the device, unread."""
        terms = self._run(idx, self._beta * ramp)
        if self.scheduler is not None:
            self.scheduler.step()
        return terms

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self._model.state_dict().items()}

    def restore(self, k: int, snapshot: dict[str, torch.Tensor]) -> None:
        self._model.load_state_dict(snapshot)

    def model(self, k: int) -> LatentModel:
        return self._model

    def finish(self) -> None:
        pass


class _Objective(nn.Module):
    """The model's own objective as a module call, so `functional_call` can run it with one member's weights."""

    def __init__(self, model: LatentModel, mc_samples: int) -> None:
        super().__init__()
        self.model = model
        self.mc_samples = mc_samples

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        terms = self.model.objective(x, y, kl_weight=weight, mc_samples=self.mc_samples)
        return torch.stack([terms.loss, terms.recon, terms.kl])


class _Stacked:
    """K > 1: the members' weights stacked, one vmapped step and one fused Adam for all; the members' own models get
    their weights written back only when asked for (`model`) and at the end (`finish`)."""

    def __init__(self, models: Sequence[LatentModel], configs: Sequence[TrainConfig], images: torch.Tensor,
                 labels: torch.Tensor | None, device: torch.device, total_steps: int,
                 batch_shape: tuple[int, ...]) -> None:
        self._models = list(models)
        params, buffers = (_prefixed(d) for d in stack_module_state(self._models))
        self._params, self._stacked = params, {**params, **buffers}
        template = _Objective(models[0], configs[0].mc_samples)

        def member_terms(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
            return functional_call(template, (p, b), (x, y, weight))

        # A batch per member when their batch orders differ (idx (K, B)), else one batch for all (idx (B,)).
        # randomness="different": each member draws its own noise from one batched draw of the global generator.
        x_dim = 0 if len(batch_shape) == 2 else None
        y_dim = x_dim if labels is not None else None
        batched_terms = vmap(member_terms, in_dims=(0, 0, x_dim, y_dim, 0), randomness="different")
        self.optimizer, self.scheduler = make_optimizer(list(params.values()), configs[0], device, total_steps)
        optimizer = self.optimizer
        betas = torch.tensor([c.beta for c in configs], dtype=torch.float32, device=device)
        self._live = live = torch.ones(len(models), dtype=torch.bool, device=device)  # False once frozen

        def train_step(idx: torch.Tensor, ramp: float | torch.Tensor) -> torch.Tensor:
            x = to_float(images[idx.flatten()]).unflatten(0, idx.shape)
            y = None if labels is None else labels[idx]
            terms = batched_terms(params, buffers, x, y, betas * ramp)  # (K, 3)
            optimizer.zero_grad(set_to_none=True)
            terms[:, 0].sum().backward()  # members are independent, so each one's gradient is its own loss's
            # A frozen member's gradient may be NaN; zeroing it every step (not only once one froze) keeps the step the
            # same every time, as a replayed graph needs.
            for p in params.values():
                p.grad.masked_fill_(~live.view(-1, *[1] * (p.dim() - 1)), 0.0)
            optimizer.step()
            return terms.detach()

        self._run = step_runner(train_step, optimizer, batch_shape, device)

    def step(self, idx: torch.Tensor, ramp: float) -> torch.Tensor:
        """(K, 3): each member's objective, recon and KL on the device, unread."""
        terms = self._run(idx, ramp)
        if self.scheduler is not None:
            self.scheduler.step()
        return terms

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().clone() for name, p in self._params.items()}

    @torch.no_grad()
    def restore(self, k: int, snapshot: dict[str, torch.Tensor]) -> None:
        """Give member k its last good weights and keep it there: with zero moments and zero gradients Adam moves it
        by exactly 0, and the other members' slices are untouched."""
        self._live[k] = False
        for name, p in self._params.items():
            p[k] = snapshot[name][k]
            state = self.optimizer.state.get(p, {})
            for moment in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
                if moment in state:
                    state[moment][k] = 0.0

    @torch.no_grad()
    def model(self, k: int) -> LatentModel:
        model = self._models[k]
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            tensor.copy_(self._stacked[f"model.{name}"][k])
        return model

    def finish(self) -> None:
        for k in range(len(self._models)):  # a diverged member's slice holds its last good weights
            self.model(k)


def _prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stacked tensors named as `_Objective` holds them (its model sits under `model.`)."""
    return {f"model.{name}": t for name, t in tensors.items()}
