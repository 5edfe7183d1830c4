"""Models trained together (the engine's K > 1 path, through vae_core.sweep): one member is fit()'s run, β orders the
KL, a diverged member leaves the others alone, the members are ordinary checkpoints, and the loop reads the device
only every LOG_EVERY steps, alone or together."""
from __future__ import annotations

import math
import threading
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vae_core import inference
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.sweep import check_together, fit_together
from vae_core.train import LOG_EVERY, fit, prepare_model

SMALL = ModelConfig(latent_dim=2, hidden=(64,))


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


def fresh(configs: list[TrainConfig], model_config: ModelConfig = SMALL) -> list:
    return [prepare_model(model_config, c)[0] for c in configs]


@pytest.mark.parametrize("model_config, train_changes", [
    (SMALL, {}),
    (ModelConfig(kind="cvae", latent_dim=2, hidden=(64,), n_classes=10), {"kl_warmup": 1, "beta": 2.0}),
])
def test_one_member_trained_together_is_fits_run(sample, model_config, train_changes):
    """Same seed, same batches, same noise: the batched run is fit()'s within float tolerance (the batched matmuls
    round differently), for a plain VAE and for a conditional one with a KL warm-up and the cosine schedule."""
    cfg = TrainConfig(epochs=2, batch_size=256, seed=7, lr_schedule="cosine", **train_changes)
    alone = fit(prepare_model(model_config, cfg)[0], sample, cfg)
    [together] = fit_together(fresh([cfg], model_config), sample, [cfg])
    assert together.status == alone.status == "finished"
    for a, b in zip(alone.history, together.history):
        for key in ("train_elbo", "train_kl", "test_elbo", "test_recon", "test_kl", "kl_weight"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-4), key
    for (name, a), b in zip(alone.model.state_dict().items(), together.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4), name


def test_members_end_with_kl_ordered_by_beta(sample):
    betas = (0.5, 1.0, 4.0, 8.0)
    configs = [TrainConfig(epochs=1, batch_size=128, beta=b) for b in betas]
    steps: dict[int, list] = {k: [] for k in range(len(betas))}
    epochs: list[tuple[int, float]] = []
    results = fit_together(fresh(configs), sample, configs, on_step=lambda k, m: steps[k].append(m),
                           on_epoch=lambda k, m, model: epochs.append((k, m.kl_weight)))
    assert [r.status for r in results] == ["finished"] * 4
    kls = [r.history[-1]["test_kl"] for r in results]
    recons = [r.history[-1]["test_recon"] for r in results]
    assert kls == sorted(kls, reverse=True) and kls[0] > 1.5 * kls[-1]
    assert recons[0] < recons[-1]
    assert epochs == [(k, b) for k, b in enumerate(betas)]
    # every member reports at the same steps: they train in the same loop, not one after another
    assert len({tuple((m.epoch, m.step) for m in s) for s in steps.values()}) == 1
    assert steps[0][-1].progress == 1.0 and all(s[-1].kl_weight == b for s, b in zip(steps.values(), betas))


def test_members_are_ordinary_checkpoints(sample, tmp_path):
    configs = [TrainConfig(epochs=1, batch_size=500, beta=b) for b in (1.0, 4.0)]
    results = fit_together(fresh(configs), sample, configs)
    images = sample.test_images[:5]
    for r, cfg in zip(results, configs):
        path = save_checkpoint(tmp_path / f"b{cfg.beta:g}.pt", r.model, cfg, sample.name, r.history)
        loaded, info = load_checkpoint(path)
        assert info.beta == cfg.beta and len(info.history) == 1
        assert torch.equal(torch.as_tensor(inference.reconstruct(loaded, images)),
                           torch.as_tensor(inference.reconstruct(r.model, images)))
    assert not torch.equal(results[0].model.decoder[0].weight, results[1].model.decoder[0].weight)


def test_a_diverged_member_keeps_its_last_good_weights_and_the_others_train_on(sample):
    """β = 1e38 makes one member's loss infinite at once; it is frozen at its initial (last good) weights."""
    configs = [TrainConfig(epochs=1, batch_size=128, beta=b) for b in (1.0, 1e38)]
    models = fresh(configs)
    initial = {k: v.clone() for k, v in models[1].state_dict().items()}
    good, bad = fit_together(models, sample, configs)
    assert good.status == "finished" and math.isfinite(good.history[0]["test_elbo"]) and good.history[0]["test_elbo"] < 400  # untrained: ~540
    assert bad.status == "diverged" and "infinite" in bad.message and "last good weights" in bad.message
    assert bad.history == []
    assert all(torch.equal(initial[k], v) for k, v in bad.model.state_dict().items())


def test_stop_stops_every_member_with_the_weights_reached(sample):
    configs = [TrainConfig(epochs=5, batch_size=64, beta=b) for b in (1.0, 4.0)]
    stop = threading.Event()
    seen = []

    def on_step(k, m):
        seen.append((k, m.step))
        if m.step >= 2 * LOG_EVERY:
            stop.set()

    results = fit_together(fresh(configs), sample, configs, on_step=on_step, stop=stop)
    assert [r.status for r in results] == ["stopped", "stopped"]
    assert all(len(r.history) == 1 and "epoch 1" in r.message for r in results)
    assert seen[-2:] == [(0, 2 * LOG_EVERY), (1, 2 * LOG_EVERY)]


class FakeRecorder:
    """Records when it is due at the moments given, keeping a copy of the model's first weight each time."""

    def __init__(self, moments: tuple[float, ...]) -> None:
        self.moments, self.frames = list(moments), []

    def due(self, epoch: float) -> bool:
        return bool(self.moments) and epoch >= self.moments[0]

    def record(self, model, epoch: float) -> None:
        while self.moments and self.moments[0] <= epoch:
            self.moments.pop(0)
        self.frames.append((epoch, model.encoder[1][0].weight.detach().clone()))


def test_each_member_has_its_own_recorder_fed_its_own_weights(sample):
    configs = [TrainConfig(epochs=2, batch_size=256, beta=b) for b in (0.5, 8.0)]
    models = fresh(configs)
    starts = [m.encoder[1][0].weight.detach().clone() for m in models]
    recorders = [FakeRecorder((0.0, 0.5, 2.0)), None]
    results = fit_together(models, sample, configs, recorders=recorders)
    frames = recorders[0].frames
    assert [round(e, 2) for e, _ in frames] == [0.0, 0.5, 2.0]
    assert torch.equal(frames[0][1], starts[0]) and not torch.equal(frames[1][1], starts[0])
    assert torch.equal(frames[-1][1], results[0].model.encoder[1][0].weight)


def test_only_settings_other_than_beta_and_seed_must_match(sample):
    configs = [TrainConfig(beta=1.0), TrainConfig(beta=4.0, seed=3, lr=5e-3)]
    with pytest.raises(ValueError, match="differ only in β and seed, not in lr"):
        check_together(fresh(configs), configs)
    with pytest.raises(ValueError, match="one architecture"):
        check_together([prepare_model(SMALL, configs[0])[0], prepare_model(ModelConfig(latent_dim=3), configs[0])[0]],
                       [configs[0], configs[0]])
    with pytest.raises(ValueError, match="one training configuration per model"):
        check_together(fresh(configs[:1]), configs)


class HostReads(TorchDispatchMode):
    """Counts what makes a GPU wait for the host: scalar reads (float(t), t.item(), `if t`) and data-dependent
    shapes (nonzero, boolean-mask indexing). The same code runs on a GPU, so counting them on the CPU counts syncs."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if ("_local_scalar_dense" in name or "nonzero" in name or "masked_select" in name
                or (name.startswith("aten.index.") and any(getattr(i, "dtype", None) == torch.bool
                                                           for i in (args[1] if len(args) > 1 else []) if i is not None))):
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("others", [None, {}, {"seed": 1}])
def test_no_host_sync_between_metric_reads(sample, monkeypatch, others):
    """The training loop reads the device only every LOG_EVERY steps and once per epoch (`tolist`), never per step:
    one model, two together, two with their own seeds (a batch each)."""
    lists = []
    real_tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: lists.append(self.shape) or real_tolist(self))
    cfg = TrainConfig(epochs=1, batch_size=64, kl_warmup=1, lr_schedule="cosine")
    steps = math.ceil(len(sample.train_images) / cfg.batch_size)
    with HostReads() as mode:
        if others is not None:
            configs = [cfg, replace(cfg, **others)]
            fit_together(fresh(configs), sample, configs, evaluate_each_epoch=False)
        else:
            fit(prepare_model(SMALL, cfg)[0], sample, cfg, evaluate_each_epoch=False)
    assert mode.reads == []
    assert len(lists) == math.ceil(steps / LOG_EVERY) + 1  # the reports, then the epoch's means


class StandInGraphs:
    """CUDA graphs' part played on the CPU: `capture` records the step without running it and `replay` runs it on
    whatever the static buffers hold, as a graph does; counts what was asked of it."""

    def __init__(self) -> None:
        self.warmed = self.captured = self.replayed = 0

    def warm(self, run):
        self.warmed += 1
        return run()

    def capture(self, run):
        self.captured += 1

        def replay():
            self.replayed += 1
            return run()

        return replay


def untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k not in ("images_per_s", "elapsed", "eta")} for h in history]


@pytest.mark.parametrize("others", [{}, {"beta": 4.0}, {"beta": 4.0, "seed": 1}])
def test_the_graphed_step_trains_exactly_as_the_plain_one(sample, monkeypatch, others):
    """The GPU path's wrapper (static index and weight buffers, warm-up, one capture, replays, an eager last batch),
    driven on the CPU: the same weights and histories as the plain steps, with a KL warm-up and a cosine schedule, for
    one model, two together, and two with their own seeds (a batch each)."""
    from vae_core import graph_step

    cfg = TrainConfig(epochs=2, batch_size=192, kl_warmup=1, lr_schedule="cosine", lr=3e-3)  # 20 full batches + 160
    configs = [cfg, replace(cfg, **others)] if others else [cfg]

    def train() -> list:
        models = fresh(configs)
        if others:
            return fit_together(models, sample, configs)
        return [fit(models[0], sample, cfg)]

    plain = train()
    backend = StandInGraphs()
    monkeypatch.setattr(graph_step, "graph_backend", lambda device: backend)
    graphed = train()
    full_batches = len(sample.train_images) // cfg.batch_size
    assert (backend.warmed, backend.captured) == (graph_step.WARMUP_STEPS, 1)
    assert backend.replayed == cfg.epochs * full_batches - graph_step.WARMUP_STEPS
    for a, b in zip(plain, graphed):
        assert untimed(a.history) == untimed(b.history) and len(a.history) == 2
        for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(wa, wb), name
