"""Train several models of one architecture at once (a β sweep) as one batched network on one device.

The members' weights are stacked along a new first dimension (`torch.func.stack_module_state`) and each step runs
the model's own `objective` once per member under `torch.func.vmap`, so K models cost one pass of K-wide batched
kernels instead of K passes of small ones: on a GPU the small passes are launch-bound, so K members take about the
time of one. Adam is elementwise, so one fused Adam over the stacked tensors updates each member exactly as its own
Adam would. On a GPU the whole step is replayed from a CUDA graph, as `fit`'s is (vae_core.graph_step).

What members share and what not: every member sees the same batches in the same order (one permutation, from the
shared seed), and the settings must be equal except β. Each member draws its own noise (reparameterisation samples,
a denoiser's corruption) from one batched draw, so with K = 1 a member is `fit`'s run (within float tolerance, the
batched kernels round differently), and with K > 1 member k's noise is not the one a lone run would draw. A member
that diverges gets its last good weights back and is frozen there (no gradient, no Adam moments) while the others
train on, so its divergence changes nothing for them.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable, Protocol, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from . import evaluate
from .config import TrainConfig
from .data import ImageDataset, to_float
from .loss import kl_weight
from .models import LatentModel
from .graph_step import step_runner
from .train import (LOG_EVERY, EpochMetrics, StepMetrics, StopFlag, TrainResult, divergence_message, device_label,
                    make_optimizer, pick_device)


class Recorder(Protocol):
    """What a history recorder (vae_core.trajectory.TrajectoryRecorder) offers a training loop."""

    def due(self, epoch: float) -> bool: ...

    def record(self, model: LatentModel, epoch: float) -> None: ...


class _Objective(nn.Module):
    """The model's own objective as a module call, so `functional_call` can run it with one member's weights."""

    def __init__(self, model: LatentModel, mc_samples: int) -> None:
        super().__init__()
        self.model = model
        self.mc_samples = mc_samples

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        terms = self.model.objective(x, y, kl_weight=weight, mc_samples=self.mc_samples)
        return torch.stack([terms.loss, terms.recon, terms.kl])


def check_together(models: Sequence[LatentModel], configs: Sequence[TrainConfig]) -> None:
    """ValueError unless these models can train together: one config per model, one architecture, settings equal but β."""
    if not models or len(models) != len(configs):
        raise ValueError(f"give one training configuration per model (got {len(models)} models, {len(configs)} configurations)")
    if any(m.config != models[0].config for m in models):
        raise ValueError("models trained together must share one architecture (the same model configuration)")
    shared = replace(configs[0], beta=0.0)
    for c in configs[1:]:
        if replace(c, beta=0.0) != shared:
            different = sorted(k for k, v in c.to_dict().items() if k != "beta" and v != getattr(shared, k))
            raise ValueError(f"models trained together may differ only in β, not in {', '.join(different)}")


def fit_together(
    models: Sequence[LatentModel],
    dataset: ImageDataset,
    configs: Sequence[TrainConfig],
    *,
    on_step: Callable[[int, StepMetrics], None] | None = None,
    on_epoch: Callable[[int, EpochMetrics, LatentModel], None] | None = None,
    stop: StopFlag | None = None,
    recorders: Sequence[Recorder | None] | None = None,
    evaluate_each_epoch: bool = True,
) -> list[TrainResult]:
    """Train fresh `models[k]` with `configs[k]` (equal but for β) at once; one TrainResult per member, in order.

    Callbacks name the member by its index: `on_step(k, metrics)` every LOG_EVERY steps for each member still
    training, `on_epoch(k, metrics, model)` with member k's ordinary model holding its weights of that moment.
    `recorders[k]` (optional) records member k's history as `fit`'s recorder does. Stop is checked every step and
    stops every member; each keeps the weights reached. The returned models are ordinary models (save them as any).
    """
    check_together(models, configs)
    config, n_models = configs[0], len(models)
    recorders = list(recorders) if recorders is not None else [None] * n_models
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    for model in models:
        model.to(device).train()
    train_images = dataset.train_images.to(device)
    test_images = dataset.test_images.to(device)
    conditional = models[0].conditional
    train_labels = dataset.train_labels.to(device) if conditional else None
    test_labels = dataset.test_labels.to(device) if conditional else None
    n = len(train_images)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    params, buffers = (_prefixed(d) for d in stack_module_state(list(models)))
    stacked = {**params, **buffers}
    template = _Objective(models[0], config.mc_samples)

    def member_terms(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (p, b), (x, y, weight))

    # randomness="different": each member draws its own noise from one batched draw of the global generator
    batched_terms = vmap(member_terms, in_dims=(0, 0, None, None, 0), randomness="different")
    optimizer, scheduler = make_optimizer(list(params.values()), config, device, total_steps)
    betas = torch.tensor([c.beta for c in configs], dtype=torch.float32, device=device)
    live = torch.ones(n_models, dtype=torch.bool, device=device)  # False for a member frozen after diverging

    def train_step(idx: torch.Tensor, ramp: float | torch.Tensor) -> torch.Tensor:
        x = to_float(train_images[idx])
        y = None if train_labels is None else train_labels[idx]
        terms = batched_terms(params, buffers, x, y, betas * ramp)  # (K, 3)
        optimizer.zero_grad(set_to_none=True)
        terms[:, 0].sum().backward()  # members are independent, so each one's gradient is its own loss's
        # A frozen member's gradient may be NaN; zeroing it every step (not only once one froze) keeps the step the
        # same every time, as a replayed graph needs.
        for p in params.values():
            p.grad.masked_fill_(~live.view(-1, *[1] * (p.dim() - 1)), 0.0)
        optimizer.step()
        return terms.detach()

    run_step = step_runner(train_step, optimizer, config.batch_size, device)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    snapshot = _clone(params)
    histories: list[list[dict[str, float]]] = [[] for _ in models]
    statuses, messages = ["finished"] * n_models, [""] * n_models
    training = list(range(n_models))  # members neither diverged nor done
    start = time.perf_counter()
    seen = done_steps = 0

    def write_back(members: Sequence[int]) -> None:
        with torch.no_grad():
            for k in members:
                for name, tensor in [*models[k].named_parameters(), *models[k].named_buffers()]:
                    tensor.copy_(stacked[f"model.{name}"][k])

    def record_due(at: float, always: bool = False) -> None:
        for k in training:
            if recorders[k] is not None and (always or recorders[k].due(at)):
                write_back([k])
                recorders[k].record(models[k], at)

    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=gen).to(device)
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
                record_due(at, always=True)
                break
            record_due(at)
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            ramp = kl_weight(1.0, config.kl_warmup, at)  # shared warm-up, so one float times each member's β
            batch_terms = run_step(idx, ramp)
            if scheduler is not None:
                scheduler.step()
            sums += batch_terms * len(idx)
            epoch_sums += batch_terms[:, 1:] * len(idx)
            since_report += len(idx)
            epoch_seen += len(idx)
            seen += len(idx)
            done_steps += 1
            if done_steps % LOG_EVERY == 0 or step == steps_per_epoch - 1:
                rows = (sums / since_report).tolist()
                for k in list(training):
                    loss, recon, kl = rows[k]
                    if not all(map(math.isfinite, (loss, recon, kl))):
                        _freeze(k, params, snapshot, optimizer, live)
                        training.remove(k)
                        statuses[k], messages[k] = "diverged", divergence_message(epoch, step, loss)
                snapshot = _clone(params)
                elapsed = time.perf_counter() - start
                if on_step is not None:
                    for k in training:
                        loss, recon, kl = rows[k]
                        on_step(k, StepMetrics(
                            epoch=epoch + 1, step=step + 1, steps_per_epoch=steps_per_epoch, loss=loss, recon=recon,
                            kl=kl, kl_weight=configs[k].beta * ramp, images_per_s=seen / elapsed, elapsed=elapsed,
                            eta=elapsed / done_steps * (total_steps - done_steps), progress=done_steps / total_steps,
                        ))
                sums.zero_()
                since_report = 0
                if not training:
                    break
        if not training or epoch_seen == 0:
            break
        rows = (epoch_sums / epoch_seen).tolist()
        write_back(training)
        for k in training:
            train_recon, train_kl = rows[k]
            test = (evaluate.elbo(models[k], test_images, test_labels) if evaluate_each_epoch
                    else {"elbo": math.nan, "recon": math.nan, "kl": math.nan})
            elapsed = time.perf_counter() - start
            metrics = EpochMetrics(
                epoch=epoch + 1, train_elbo=train_recon + train_kl, train_recon=train_recon, train_kl=train_kl,
                test_elbo=test["elbo"], test_recon=test["recon"], test_kl=test["kl"],
                kl_weight=configs[k].beta * ramp,
                images_per_s=seen / elapsed, elapsed=elapsed,
                eta=elapsed / max(done_steps, 1) * (total_steps - done_steps),
            )
            histories[k].append(metrics.to_dict())
            if not stopped and recorders[k] is not None and recorders[k].due(epoch + 1):
                recorders[k].record(models[k], epoch + 1)
            if on_epoch is not None:
                on_epoch(k, metrics, models[k])
        if stopped:
            break

    write_back(range(n_models))  # a diverged member's slice holds its last good weights
    elapsed = time.perf_counter() - start
    for model in models:
        model.eval()
    return [
        TrainResult(model=models[k], history=histories[k], status=statuses[k], message=messages[k],
                    device=device_label(device), images_per_s=seen / elapsed if elapsed > 0 else 0.0)
        for k in range(n_models)
    ]


def _prefixed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stacked tensors named as `_Objective` holds them (its model sits under `model.`)."""
    return {f"model.{name}": t for name, t in tensors.items()}


def _clone(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in params.items()}


@torch.no_grad()
def _freeze(k: int, params: dict[str, torch.Tensor], snapshot: dict[str, torch.Tensor],
            optimizer: torch.optim.Optimizer, live: torch.Tensor) -> None:
    """Give member k its last good weights and keep it there: with zero moments and zero gradients Adam moves it by
    exactly 0, and the other members' slices are untouched."""
    live[k] = False
    for name, p in params.items():
        p[k] = snapshot[name][k]
        state = optimizer.state.get(p, {})
        for moment in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if moment in state:
                state[moment][k] = 0.0
