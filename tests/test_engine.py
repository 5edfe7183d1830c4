"""The one training loop (vae_core.engine): what listeners hear and when, and a grid's members with their own seeds."""
from __future__ import annotations

import math
import threading

import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.engine import LOG_EVERY, Listener, train_models
from vae_core.train import fit, prepare_model

SMALL = ModelConfig(latent_dim=2, hidden=(64,))


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


class Log(Listener):
    """Every event heard, in order; wants a frame of member 1 at the moments given."""

    def __init__(self, moments: tuple[float, ...] = ()) -> None:
        self.events: list[tuple] = []
        self.moments = list(moments)

    def step(self, member, metrics):
        self.events.append(("step", member, metrics.epoch, metrics.step))

    def epoch(self, member, metrics, model):
        self.events.append(("epoch", member, metrics.epoch))

    def frame_due(self, member, at):
        return member == 1 and bool(self.moments) and at >= self.moments[0]

    def frame(self, member, at, model):
        while self.moments and self.moments[0] <= at:
            self.moments.pop(0)
        self.events.append(("frame", member, round(at, 3), model.encoder[1][0].weight.detach().clone()))


def test_listeners_hear_steps_epochs_and_the_frames_they_asked_for_in_order(sample):
    configs = [TrainConfig(epochs=2, batch_size=200, beta=b) for b in (1.0, 4.0)]  # 20 steps an epoch
    first, second = Log((0.0, 0.5, 2.0)), Log()
    models = [prepare_model(SMALL, c)[0] for c in configs]
    start = models[1].encoder[1][0].weight.detach().clone()
    results = train_models(models, sample, configs, listeners=[first, second])
    assert [r.status for r in results] == ["finished", "finished"]
    frames = [e for e in first.events if e[0] == "frame"]
    assert [e[1:3] for e in frames] == [(1, 0.0), (1, 0.5), (1, 2.0)]  # member 1 only, at the moments it asked for
    assert torch.equal(frames[0][3], start) and torch.equal(frames[-1][3], results[1].model.encoder[1][0].weight)
    plain = [e for e in first.events if e[0] != "frame"]
    assert plain == second.events  # every listener hears every step and epoch, in the same order
    reports = [(1, s) for s in (10, 20)] + [(2, s) for s in (10, 20)]
    expected = []
    for epoch, step in reports:
        expected += [("step", 0, epoch, step), ("step", 1, epoch, step)]
        if step == 20:
            expected += [("epoch", 0, epoch), ("epoch", 1, epoch)]
    assert plain == expected and LOG_EVERY == 10


def test_a_stopped_run_gives_every_listener_the_frame_where_it_stopped(sample):
    cfg = TrainConfig(epochs=3, batch_size=100)
    stop = threading.Event()

    class StopAt(Log):
        def step(self, member, metrics):
            super().step(member, metrics)
            if metrics.step == 2 * LOG_EVERY:
                stop.set()

    log = StopAt()
    [result] = train_models([prepare_model(SMALL, cfg)[0]], sample, [cfg], listeners=[log], stop=stop)
    assert result.status == "stopped" and len(result.history) == 1
    assert [e[:3] for e in log.events[-2:]] == [("frame", 0, 0.5), ("epoch", 0, 1)]


def test_grid_members_with_their_own_seeds_follow_their_own_batches(sample):
    """An autoencoder's objective draws no noise, so each member of a grid over seeds trains as its lone run with that
    seed (its own initialisation and batch order) does, to float tolerance."""
    model_config = ModelConfig(kind="ae", latent_dim=2, hidden=(64,))
    configs = [TrainConfig(epochs=2, batch_size=256, seed=s) for s in (3, 5)]
    together = train_models([prepare_model(model_config, c)[0] for c in configs], sample, configs)
    for cfg, member in zip(configs, together):
        alone = fit(prepare_model(model_config, cfg)[0], sample, cfg)
        assert member.history[-1]["test_recon"] == pytest.approx(alone.history[-1]["test_recon"], rel=1e-4)
        for (name, a), b in zip(alone.model.state_dict().items(), member.model.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-4), name
    assert not torch.equal(together[0].model.decoder[0].weight, together[1].model.decoder[0].weight)
    assert math.isfinite(together[0].history[-1]["test_elbo"])


def test_members_must_have_trained_equally_long_before(sample):
    cfg = TrainConfig(epochs=1)
    with pytest.raises(ValueError, match="the same number of epochs"):
        train_models([prepare_model(SMALL, cfg)[0] for _ in range(2)], sample, [cfg, cfg], histories=[[], [{"epoch": 1}]])


def test_a_kind_that_cannot_be_trained_is_refused(sample):
    cfg = TrainConfig(epochs=1)
    model = prepare_model(SMALL, cfg)[0]
    model.trainable = False  # as an imported model's class says
    with pytest.raises(ValueError, match="a VAE cannot be trained"):
        train_models([model], sample, [cfg])
