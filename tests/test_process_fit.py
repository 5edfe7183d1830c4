import threading

import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.process_fit import fit_in_process
from vae_core.train import prepare_model

SMALL = ModelConfig(latent_dim=2, hidden=(32,))


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


def test_trains_in_a_child_with_the_same_callbacks_and_updates_the_model(sample):
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-3)
    model, _ = prepare_model(SMALL, cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps, epochs = [], []

    def on_epoch(m, trained):
        epochs.append((m.epoch, trained.encoder[1][0].weight.sum().item()))

    result = fit_in_process(model, sample, cfg, on_step=steps.append, on_epoch=on_epoch)
    assert result.status == "finished" and [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[1]["test_elbo"] < result.history[0]["test_elbo"] < 300
    assert steps and steps[-1].progress == 1.0
    assert [e for e, _ in epochs] == [1, 2] and epochs[0][1] != epochs[1][1]  # the parent's model followed the child
    assert result.model is model
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_stop_reaches_the_child_and_keeps_its_weights(sample):
    cfg = TrainConfig(epochs=200, batch_size=64)
    model, _ = prepare_model(SMALL, cfg)
    stop = threading.Event()

    def on_step(m):
        if m.epoch >= 2:
            stop.set()

    result = fit_in_process(model, sample, cfg, on_step=on_step, stop=stop)
    assert result.status == "stopped" and 2 <= len(result.history) < 200
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_errors_in_the_child_are_raised_in_the_parent(sample):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA to provoke the device error")
    model, _ = prepare_model(SMALL, TrainConfig())
    with pytest.raises(RuntimeError, match="ValueError: --device cuda was asked for"):
        fit_in_process(model, sample, TrainConfig(epochs=1, device="cuda"))
