import math
import threading

import pytest
import torch

from vae_core.checkpoint import save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.train import LR_WARMUP_SHARE, fit, pick_device, prepare_model, warmup_cosine

SMALL = ModelConfig(latent_dim=2, hidden=(64,))


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


def test_one_epoch_on_the_embedded_sample_offline(tmp_path, monkeypatch):
    """No ../shared, no network: the sample alone trains a model that beats the untrained one."""
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    data = load_dataset("mnist-sample")
    cfg = TrainConfig(epochs=1, batch_size=64, lr=2e-3)
    model, _ = prepare_model(SMALL, cfg)
    steps, epochs = [], []
    result = fit(model, data, cfg, on_step=steps.append, on_epoch=lambda m, _: epochs.append(m))
    assert result.status == "finished" and len(result.history) == 1
    first, last = steps[0], steps[-1]
    assert last.loss < first.loss and last.progress == 1.0 and last.eta == 0.0
    assert all(s.images_per_s > 0 for s in steps)
    m = epochs[0]
    assert math.isclose(m.test_elbo, m.test_recon + m.test_kl, rel_tol=1e-6)
    assert m.test_elbo < 250  # an untrained decoder costs ~540 nats


def test_training_is_seeded(sample):
    cfg = TrainConfig(epochs=1, batch_size=256, seed=5)
    runs = []
    for _ in range(2):
        model, _ = prepare_model(SMALL, cfg)
        runs.append(fit(model, sample, cfg).history[0]["test_elbo"])
    assert runs[0] == runs[1]


def test_stop_flag_keeps_the_weights_reached(sample):
    cfg = TrainConfig(epochs=5, batch_size=64)
    model, _ = prepare_model(SMALL, cfg)
    stop = threading.Event()
    steps = []

    def on_step(m):
        steps.append(m)
        if m.epoch == 1 and m.step >= 30:
            stop.set()

    result = fit(model, sample, cfg, on_step=on_step, stop=stop)
    assert result.status == "stopped" and "epoch 1" in result.message
    assert len(result.history) == 1  # the partial epoch is still recorded
    assert steps[-1].step == 30
    assert math.isfinite(result.history[0]["test_elbo"]) and result.history[0]["test_elbo"] < 400


def test_nan_guard_stops_with_a_clear_error_and_keeps_good_weights(sample):
    cfg = TrainConfig(epochs=2, batch_size=64)
    model, _ = prepare_model(SMALL, cfg)

    def poison(m):
        if m.step == 20:
            with torch.no_grad():
                model.encoder[1][0].weight[0, 0] = float("nan")

    result = fit(model, sample, cfg, on_step=poison)
    assert result.status == "diverged" and "NaN" in result.message and "last good weights" in result.message
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_resume_continues_the_history(sample, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=128)
    model, _ = prepare_model(SMALL, cfg)
    result = fit(model, sample, cfg)
    path = save_checkpoint(tmp_path / "m.pt", result.model, cfg, sample.name, result.history)
    model2, history = prepare_model(ModelConfig(latent_dim=9), cfg, resume_from=str(path))
    assert model2.config == SMALL  # the checkpoint's architecture wins
    resumed = fit(model2, sample, cfg, history=history)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.history[1]["test_elbo"] < resumed.history[0]["test_elbo"]


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    """What is there is faked, so every branch is checked on any machine, with or without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"


def test_device_cuda_without_a_gpu_and_unknown_devices_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        pick_device("tpu")


def test_short_run_on_full_mnist_drops_below_200_nats(shared_data):
    data = load_dataset("mnist", shared_data, download=False)
    cfg = TrainConfig(dataset="mnist", epochs=1, batch_size=128)
    model, _ = prepare_model(ModelConfig(latent_dim=20, hidden=(256,)), cfg)
    result = fit(model, data, cfg)
    assert result.history[0]["test_elbo"] < 200


def test_cosine_schedule_anneals_to_zero_and_still_learns(sample, monkeypatch):
    rates = []
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    cfg = TrainConfig(epochs=2, batch_size=256, lr=3e-3, lr_schedule="cosine")
    model, _ = prepare_model(SMALL, cfg)
    result = fit(model, sample, cfg)
    assert rates[0] == pytest.approx(3e-3) and rates[-1] < 3e-5
    assert rates[len(rates) // 2] == pytest.approx(1.5e-3, rel=0.05)  # half-way down the cosine
    assert result.history[1]["test_elbo"] < result.history[0]["test_elbo"]


def test_warmup_cosine_rises_over_the_first_tenth_then_anneals_to_zero():
    total = 200
    shares = [warmup_cosine(step, warmup=20, total=total) for step in range(total + 1)]
    assert shares[0] == pytest.approx(1 / 20) and shares[9] == pytest.approx(0.5) and shares[19] == 1.0
    assert shares[20] == 1.0 and shares[110] == pytest.approx(0.5) and shares[total] == pytest.approx(0.0)
    assert all(a < b for a, b in zip(shares[:20], shares[1:20])) and all(a > b for a, b in zip(shares[20:], shares[21:]))
    assert warmup_cosine(0, warmup=0, total=10) == 1.0  # a run too short for a warm-up starts at the peak


def test_warmup_cosine_schedule_and_beta2_reach_the_optimiser_and_it_learns(sample, monkeypatch):
    rates, betas = [], set()
    real_step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        betas.add(self.param_groups[0]["betas"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    cfg = TrainConfig(epochs=2, batch_size=256, lr=1e-2, lr_schedule="warmup_cosine", adam_beta2=0.99)
    model, _ = prepare_model(SMALL, cfg)
    result = fit(model, sample, cfg)
    steps = len(rates)  # 4,000 images at 256: 16 steps an epoch
    warmup = round(LR_WARMUP_SHARE * steps)
    assert steps == 32 and betas == {(0.9, 0.99)}
    assert rates[0] == pytest.approx(1e-2 / warmup) and max(rates) == pytest.approx(1e-2)
    assert rates.index(max(rates)) == warmup - 1 and rates[-1] < 1e-4
    assert result.history[1]["test_elbo"] < result.history[0]["test_elbo"] < 400
