"""Several models of one architecture trained at once (a β sweep): the engine's run of K members (vae_core.engine,
where what members share and what not is told) with per-member callbacks."""
from __future__ import annotations

from typing import Callable, Sequence

from .config import TrainConfig
from .data import ImageDataset
from .engine import (Callbacks, EpochMetrics, Recorder, Recorders, StepMetrics, StopFlag, TrainResult,  # noqa: F401
                     check_together, train_models)
from .models import LatentModel


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
    """Train fresh `models[k]` with `configs[k]` (equal but for β and the seed) at once; one TrainResult per member.

    Callbacks name the member by its index: `on_step(k, metrics)` every LOG_EVERY steps for each member still
    training, `on_epoch(k, metrics, model)` with member k's ordinary model holding its weights of that moment;
    `recorders[k]` (optional) records member k's history.
    """
    listeners = [Recorders(recorders if recorders is not None else [None] * len(models)), Callbacks(on_step, on_epoch)]
    return train_models(models, dataset, configs, listeners=listeners, stop=stop,
                        evaluate_each_epoch=evaluate_each_epoch)
