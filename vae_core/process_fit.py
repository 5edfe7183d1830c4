"""`fit` in a child process, with the same callbacks, for callers that would otherwise train in a thread.

PyTorch's CPU kernels ran ~35% slower from a non-main Python thread than from the main thread on the
2-core development machine (fit alone in a threading.Thread: 7.5k vs 12k images/s), so the app's jobs
train in a spawned process, whose main thread does the work, while their own thread only relays.
"""
from __future__ import annotations

import multiprocessing as mp
import queue as queue_module
from typing import Callable

from dataclasses import replace

import numpy as np
import torch

from .config import ModelConfig, TrainConfig
from .data import ImageDataset
from .model import VAE, build_model
from .train import EpochMetrics, StepMetrics, StopFlag, TrainResult, fit

POLL_S = 0.2  # how often the parent relays a stop and checks that the child is alive


# Tensors cross the process boundary as numpy arrays: torch's own pickling shares them through file
# descriptors that die with the sending process, which a finished child is by the time the parent reads.
_TENSOR_FIELDS = ("train_images", "train_labels", "test_images", "test_labels")


def _state(model: VAE) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def _load(model: VAE, state: dict[str, np.ndarray]) -> None:
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})


def _child(model_config: ModelConfig, state: dict[str, np.ndarray], dataset: ImageDataset, config: TrainConfig,
           history: list[dict[str, float]], evaluate_each_epoch: bool, out: mp.Queue, stop) -> None:
    try:
        dataset = replace(dataset, **{f: torch.from_numpy(getattr(dataset, f)) for f in _TENSOR_FIELDS})
        model = build_model(model_config)
        _load(model, state)
        result = fit(
            model, dataset, config, history=history, stop=stop, evaluate_each_epoch=evaluate_each_epoch,
            on_step=lambda m: out.put(("step", m)),
            on_epoch=lambda m, trained: out.put(("epoch", m, _state(trained))),
        )
        out.put(("done", result.status, result.message, result.device, result.images_per_s, result.history,
                 _state(result.model)))
    except BaseException as exc:  # everything goes back to the parent, which raises it where fit would have
        out.put(("error", type(exc).__name__, str(exc)))


def fit_in_process(
    model: VAE,
    dataset: ImageDataset,
    config: TrainConfig,
    *,
    history: list[dict[str, float]] | None = None,
    on_step: Callable[[StepMetrics], None] | None = None,
    on_epoch: Callable[[EpochMetrics, VAE], None] | None = None,
    stop: StopFlag | None = None,
    evaluate_each_epoch: bool = True,
) -> TrainResult:
    """Like `fit`: trains `model` in place (its weights follow the child's after every epoch and at the end)."""
    ctx = mp.get_context("spawn")  # fork would copy the parent's OpenMP and CUDA state, which is unsafe
    out = ctx.Queue()
    child_stop = ctx.Event()
    model.cpu()
    as_numpy = replace(dataset, **{f: getattr(dataset, f).numpy() for f in _TENSOR_FIELDS})
    proc = ctx.Process(target=_child, args=(model.config, _state(model), as_numpy, config, list(history or []),
                                            evaluate_each_epoch, out, child_stop), daemon=True, name="vae-fit")
    proc.start()
    try:
        while True:
            if stop is not None and stop.is_set():
                child_stop.set()
            try:
                message = out.get(timeout=POLL_S)
            except queue_module.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"the training process ended unexpectedly (exit code {proc.exitcode})")
                continue
            kind, *rest = message
            if kind == "step" and on_step is not None:
                on_step(rest[0])
            elif kind == "epoch":
                _load(model, rest[1])
                if on_epoch is not None:
                    on_epoch(rest[0], model)
            elif kind == "done":
                status, text, device, images_per_s, full_history, state = rest
                _load(model, state)
                return TrainResult(model=model.eval(), history=full_history, status=status, message=text,
                                   device=device, images_per_s=images_per_s)
            elif kind == "error":
                name, text = rest
                if name == "MemoryError":
                    raise MemoryError(text)
                raise RuntimeError(f"{name}: {text}" if name not in ("RuntimeError", "OutOfMemoryError") else text)
    finally:
        child_stop.set()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
        out.close()
