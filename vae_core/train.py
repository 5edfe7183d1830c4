"""Training one model: `fit` is the engine's run of one model (vae_core.engine) with callbacks, and `prepare_model`
makes the model it trains (fresh and seeded, or resumed from a checkpoint).

The engine's names used to live here and are still importable from here.
"""
from __future__ import annotations

from typing import Callable

import torch

from .checkpoint import load_checkpoint
from .config import ConfigError, ModelConfig, TrainConfig
from .data import ImageDataset
from .engine import (LOG_EVERY, LR_WARMUP_SHARE, Callbacks, EpochMetrics, Recorder, Recorders, StepMetrics,  # noqa: F401
                     StopFlag, TrainResult, device_label, divergence_message, make_optimizer, pick_device,
                     train_models, warmup_cosine)
from .models import LatentModel, build_model


def fit(
    model: LatentModel,
    dataset: ImageDataset,
    config: TrainConfig,
    *,
    history: list[dict[str, float]] | None = None,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics, LatentModel], None] | None = None,
    stop: StopFlag | None = None,
    evaluate_each_epoch: bool = True,
    recorder: Recorder | None = None,
) -> TrainResult:
    """Train `model` for `config.epochs` more epochs after its `history`: `engine.train_models` with one member.

    On stop the model keeps the weights reached so far; `recorder` records its history (vae_core.trajectory), and a
    stopped run's history ends where it stopped.
    """
    callbacks = Callbacks(on_step and (lambda k, m: on_step(m)), on_epoch and (lambda k, m, trained: on_epoch(m, trained)))
    [result] = train_models([model], dataset, [config], listeners=[Recorders([recorder]), callbacks], stop=stop,
                            histories=[history or []], evaluate_each_epoch=evaluate_each_epoch)
    return result


def prepare_model(
    model_config: ModelConfig, train_config: TrainConfig, resume_from: str | None = None
) -> tuple[LatentModel, list[dict[str, float]]]:
    """A fresh seeded model, or the model and history of a checkpoint to resume (its stored architecture wins)."""
    if resume_from:
        model, info = load_checkpoint(resume_from)
        if not model.trainable:
            raise ConfigError(f"{resume_from} is an {model.title}: it is run as imported, not trained here")
        return model, info.history
    torch.manual_seed(train_config.seed)
    return build_model(model_config), []
