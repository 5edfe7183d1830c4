"""A training step replayed from one recorded CUDA graph, for the training loop (vae_core.engine) on a GPU.

A step of the small MLPs here is ~100 tiny kernels (forward, backward, fused Adam); on a GPU each costs more host time
to launch than the device spends running it, so an eager epoch is bound by Python and the launcher. Recorded once
as a CUDA graph (PyTorch's "whole-network capture": warm-up steps on a side stream, then one capture), a step is one
launch. The loop hands each batch over by index into static buffers, and the KL weight and learning rate into
device scalars, so nothing is baked into the graph and nothing waits for the device.

The step itself is the loop's own eager function (the same code runs on the CPU); only the backend that warms up,
captures and replays is CUDA's, chosen by device (`graph_backend`). tests/test_sweep.py drives this wrapper on the
CPU with a stand-in backend and checks that training gives the same weights as without it.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

import torch

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps before the capture: cuBLAS handles, autograd's streams and Adam's state exist by then

Step = Callable[[torch.Tensor, "float | torch.Tensor"], torch.Tensor]  # (batch indices, KL weight) -> metrics


class GraphBackend(Protocol):
    def warm(self, run: Callable[[], torch.Tensor]) -> torch.Tensor: ...

    def capture(self, run: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]: ...


class CudaGraphs:
    """Warm-up on a side stream, then a capture whose replay returns the recorded step's (static) output."""

    def warm(self, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = run()
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def capture(self, run: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: the app trains in a worker thread; the server's other threads may use CUDA meanwhile
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = run()

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay


def graph_backend(device: torch.device) -> GraphBackend | None:
    """CUDA graphs on a CUDA device; None (plain eager steps) elsewhere."""
    return CudaGraphs() if device.type == "cuda" else None


class GraphedStep:
    """`step(idx, weight)` for every full-size batch replayed from one graph; a shorter batch (an epoch's last) runs
    eagerly. `batch_shape` is a full batch's index shape: (B,), or (K, B) for K members with a batch each. The
    optimiser must have been made with `capturable=True` on CUDA (engine.make_optimizer does)."""

    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, batch_shape: tuple[int, ...],
                 device: torch.device, backend: GraphBackend) -> None:
        self.step, self.optimizer, self.backend = step, optimizer, backend
        self.idx = torch.zeros(batch_shape, dtype=torch.long, device=device)
        self.weight = torch.zeros((), device=device)
        # The schedulers keep float rates (a tensor rate would make them read it back every step); the graph reads
        # these device copies, refreshed before every replay.
        self.lrs = [torch.tensor(float(g["lr"]), device=device) for g in optimizer.param_groups]
        self.warm_steps = 0
        self.replay: Callable[[], torch.Tensor] | None = None
        self.eager = False  # set when the capture failed: the run goes on with plain steps

    def __call__(self, idx: torch.Tensor, weight: float) -> torch.Tensor:
        if self.eager or idx.shape != self.idx.shape:
            return self.step(idx, weight)
        self.idx.copy_(idx)
        self.weight.fill_(weight)
        for lr, group in zip(self.lrs, self.optimizer.param_groups):
            lr.fill_(group["lr"])
        if self.replay is None:
            if self.warm_steps < WARMUP_STEPS:
                self.warm_steps += 1
                return self.backend.warm(lambda: self.step(self.idx, self.weight))
            try:
                self.replay = self._capture()
            except RuntimeError as exc:  # a driver or op that cannot be captured: slower, never wrong
                log.warning("CUDA graph capture failed, training without it: %s", exc)
                self.eager = True
                return self.step(idx, weight)
        return self.replay()

    def _capture(self) -> Callable[[], torch.Tensor]:
        """Record one step with the optimiser reading its rates from `self.lrs` (the capture runs nothing)."""
        floats = [g["lr"] for g in self.optimizer.param_groups]
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            group["lr"] = lr
        try:
            return self.backend.capture(lambda: self.step(self.idx, self.weight))
        finally:
            for group, lr in zip(self.optimizer.param_groups, floats):
                group["lr"] = lr


def step_runner(step: Step, optimizer: torch.optim.Optimizer, batch_shape: tuple[int, ...],
                device: torch.device) -> Step:
    """`step` itself, or on a device with graphs the same step replayed from one (see GraphedStep)."""
    backend = graph_backend(device)
    return step if backend is None else GraphedStep(step, optimizer, batch_shape, device, backend)
