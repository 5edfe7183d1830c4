"""The replayable training history: its schedule, what a recorded frame holds, its size bound, the round trip through
a checkpoint, the loader's refusal of hostile values, and that recording changes nothing training computes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shipped_checkpoint
from vae_core import inference, jobs
from vae_core.checkpoint import CheckpointError, load_checkpoint, load_trajectory, read_info, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset, load_test_set
from vae_core.models import build_model
from vae_core.snapshots import example_indices, map_indices
from vae_core.train import fit, prepare_model
from vae_core.trajectory import (FIRST_EPOCH_FRACTIONS, MAX_BYTES, TRAJECTORY_POINTS, TrajectoryRecorder, frame_bytes,
                                 schedule)

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig(latent_dim=3, hidden=(32,))
SHORT = TrainConfig(dataset="mnist-sample", epochs=2, batch_size=100)


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


@pytest.fixture(scope="module")
def recorded(sample):
    """A tiny VAE trained 2 epochs on the sample with a recorder, and the recorder."""
    model, _ = prepare_model(TINY, SHORT)
    recorder = TrajectoryRecorder(sample, SHORT.epochs, TINY.latent_dim)
    result = fit(model, sample, SHORT, recorder=recorder)
    return result, recorder


def test_schedule_has_about_ten_moments_in_the_first_epoch_then_every_epoch():
    moments = schedule(5)
    first = moments[moments < 1]
    assert 8 <= len(first) <= 12 and first[0] == 0.0
    assert list(moments[moments >= 1]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.all(np.diff(moments) > 0)


def test_a_long_run_of_a_wide_model_thins_its_epochs_to_stay_under_the_bound():
    moments = schedule(50, latent_dim=20)  # mnist_z20: 50 epochs, d = 20
    assert moments[-1] == 50.0 and len(moments[moments < 1]) == len(FIRST_EPOCH_FRACTIONS)
    assert len(moments) * frame_bytes(20, 784) <= MAX_BYTES < 5_000_000
    assert len(moments) * frame_bytes(20, 784) > MAX_BYTES / 2  # thinned no more than needed
    assert list(schedule(40, latent_dim=2)[len(FIRST_EPOCH_FRACTIONS):]) == [float(e) for e in range(1, 41)]


def test_a_resumed_run_starts_where_the_model_stopped():
    assert list(schedule(3, first_epoch=10)) == [10.0, 11.0, 12.0, 13.0]


def test_recorder_is_due_once_per_moment_and_a_late_record_covers_the_moments_passed():
    class Data:  # the recorder needs only the test split
        test_images = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
        test_labels = torch.arange(50) % 10

    model = build_model(ModelConfig(latent_dim=2, hidden=(8,)))
    recorder = TrajectoryRecorder(Data(), 2, 2)
    assert recorder.due(0.0)
    recorder.record(model, 0.0)
    assert not recorder.due(0.0) and not recorder.due(recorder.moments[1] - 1e-3) and recorder.due(recorder.moments[1])
    recorder.record(model, 0.6)  # the moments up to 0.6 were passed between two steps: one frame stands for them
    assert not recorder.due(0.7) and recorder.due(0.75)
    recorder.record(model, 0.6)  # never twice at one moment
    assert [f.epoch for f in recorder.frames] == [0.0, 0.6]


def test_a_recorded_history_has_its_shapes_dtypes_and_moments(recorded, sample):
    result, recorder = recorded
    t = recorder.to_payload()
    epochs = t["epochs"].numpy()
    assert epochs[0] == 0.0 and epochs[-1] == 2.0 and 1.0 in epochs and np.all(np.diff(epochs) > 0)
    assert 8 <= int((epochs < 1).sum()) <= 10  # moments closer than a step share one
    n, T = len(sample.test_images), len(epochs)  # the sample's test split has fewer than 2,000 images: all of them
    assert t["indices"].tolist() == map_indices(n, TRAJECTORY_POINTS).tolist()
    assert t["recon_indices"].tolist() == example_indices(sample.test_labels).tolist()
    assert t["labels"].tolist() == sample.test_labels[t["indices"]].tolist()
    assert t["mu"].dtype == torch.float16 and t["mu"].shape == (T, len(t["indices"]), 3)
    assert t["recon"].dtype == t["samples"].dtype == torch.uint8
    assert t["recon"].shape == (T, 8, 28, 28) and t["samples"].shape == (T, 16, 28, 28)
    assert t["kl"].dtype == torch.float32 and t["kl"].shape == (T, 3) and bool((t["kl"] >= 0).all())
    # the last frame is the trained model: its μ are the model's own (to float16 precision)
    mu = result.model.encode(sample.test_images[t["indices"]].float() / 255).mean.detach()
    assert torch.allclose(t["mu"][-1].float(), mu, atol=1e-2, rtol=1e-2)
    # structure forms: the codes spread out and the KL grows from ~0 at initialisation
    assert float(t["kl"][-1].sum()) > 5 * float(t["kl"][0].sum())
    assert float(t["mu"][-1].float().var(0).sum()) > float(t["mu"][0].float().var(0).sum())


def test_a_full_size_history_stays_under_five_megabytes():
    """2,000 MNIST test points of a d = 20 model over 50 epochs (mnist_z20), by the stored dtypes."""
    class Data:
        test_images = torch.zeros(10_000, 1, 28, 28, dtype=torch.uint8)
        test_labels = torch.arange(10_000) % 10

    recorder = TrajectoryRecorder(Data(), 50, 20)
    assert len(recorder.indices) == TRAJECTORY_POINTS
    assert len(recorder.moments) * frame_bytes(20, 784) < 5_000_000


@pytest.mark.parametrize("latent_dim", [2, 20, 64])
@pytest.mark.parametrize("epochs", [1, 10, 200])
def test_a_64_px_colour_history_keeps_the_bound_and_its_first_and_last_moments(latent_dim, epochs):
    """A 64×64 RGB frame is 12,288 bytes an image: with d = 64 even the ~10 early moments would pass 4.5 MB."""
    pixels = 3 * 64 * 64
    moments = schedule(epochs, latent_dim=latent_dim, image_pixels=pixels)
    assert len(moments) * frame_bytes(latent_dim, pixels) <= MAX_BYTES
    assert moments[0] == 0.0 and moments[-1] == float(epochs) and np.all(np.diff(moments) > 0)
    assert len(moments[moments < 1]) >= 4  # the first epoch, where the structure forms, is still seen


def test_recording_does_not_change_what_training_computes(recorded, sample):
    model, _ = prepare_model(TINY, SHORT)
    plain = fit(model, sample, SHORT).model.state_dict()
    with_recorder = recorded[0].model.state_dict()
    assert all(torch.equal(plain[k], with_recorder[k]) for k in plain)


def test_a_stopped_run_ends_its_history_where_it_stopped(sample):
    class StopAfter:
        def __init__(self, n: int) -> None:
            self.calls, self.n = 0, n

        def is_set(self) -> bool:
            self.calls += 1
            return self.calls > self.n

    recorder = TrajectoryRecorder(sample, SHORT.epochs, TINY.latent_dim)
    model, _ = prepare_model(TINY, SHORT)
    steps = len(sample.train_images) // SHORT.batch_size
    result = fit(model, sample, SHORT, stop=StopAfter(steps + 14), recorder=recorder)  # stops 14 steps into epoch 2
    assert result.status == "stopped"
    assert recorder.frames[-1].epoch == pytest.approx(1 + 14 / steps)
    assert all(f.epoch < 2 for f in recorder.frames)


def test_round_trip_through_a_checkpoint(recorded, tmp_path):
    result, recorder = recorded
    path = save_checkpoint(tmp_path / "m.pt", result.model, SHORT, "mnist-sample", result.history,
                           trajectory=recorder.to_payload())
    raw = torch.load(path, weights_only=True)["trajectory"]
    for key, value in recorder.to_payload().items():
        assert torch.equal(raw[key], value), key
    loaded = load_trajectory(path)
    assert np.array_equal(loaded.mu, recorder.to_payload()["mu"].numpy())
    assert loaded.active_units()[-1] >= 1 and len(loaded.active_units()) == len(loaded.epochs)
    load_checkpoint(path)  # the model loads beside its history


def test_a_checkpoint_without_a_history_still_loads(recorded, tmp_path):
    path = save_checkpoint(tmp_path / "old.pt", recorded[0].model, SHORT, "mnist-sample")
    assert "trajectory" not in torch.load(path, weights_only=True)
    assert load_trajectory(path) is None
    load_checkpoint(path)


def _nan_mu(t):
    t["mu"][1, 0, 0] = float("nan")


def _inf_kl(t):
    t["kl"][0, 0] = float("inf")


def _backwards(t):
    t["epochs"] = t["epochs"].flip(0).contiguous()


@pytest.mark.parametrize("change, says", [
    (_nan_mu, "mu holds NaN"),
    (_inf_kl, "kl holds NaN or infinite"),
    (_backwards, "increasing"),
    (lambda t: t.update(mu=t["mu"].float()), "mu is torch.float32"),
    (lambda t: t.update(mu=t["mu"][:, :, :2].contiguous()), "mu is torch.float16"),  # the wrong latent size
    (lambda t: t.update(recon=t["recon"][:, :, :20].contiguous()), "recon is"),
    (lambda t: t.pop("kl"), "missing ['kl']"),
    (lambda t: t.update(code=torch.zeros(1)), "unexpected ['code']"),
    (lambda t: t.update(labels=t["labels"] + 1000), "labels are not classes"),
    (lambda t: t.update(indices=-t["indices"]), "indices holds negative"),
    (lambda t: t.update(mu=t["mu"][:1].expand(5000, -1, -1)), "not stored densely"),
    (lambda t: t.update(epochs="soon"), "other than tensors"),
])
def test_hostile_histories_are_refused_with_one_line(recorded, tmp_path, change, says):
    result, recorder = recorded
    path = save_checkpoint(tmp_path / "bad.pt", result.model, SHORT, "mnist-sample", trajectory=recorder.to_payload())
    payload = torch.load(path, weights_only=True)
    change(payload["trajectory"])
    torch.save(payload, path)
    for load in (read_info, load_checkpoint, load_trajectory):
        with pytest.raises(CheckpointError, match="training history is malformed") as caught:
            load(path)
        assert says in str(caught.value) and "\n" not in str(caught.value)


def test_a_job_records_the_history_it_shows_and_saves(tmp_path):
    spec = jobs.training_spec("hist", tmp_path, ModelConfig(latent_dim=2, hidden=(32,)), SHORT, iw_samples=0)
    job = jobs.JobRegistry().submit(jobs.TrainingJob(spec))
    assert job.join(120)
    view = job.view()
    live = view.trajectory()
    assert live is not None and live.epochs[-1] == 2.0 and live.mu.shape[1:] == (len(live.indices), 2)
    stored = load_trajectory(tmp_path / "hist.pt")
    assert np.array_equal(stored.epochs, live.epochs.astype(np.float32)) and np.array_equal(stored.mu, live.mu)


def test_the_cli_records_the_history_and_continues_it_on_resume(tmp_path):
    out = tmp_path / "cli.pt"
    args = [sys.executable, "-m", "vae_core", "train", "--dataset", "mnist-sample", "--hidden", "32",
            "--batch-size", "500", "--latent-dim", "2"]
    subprocess.run([*args, "--epochs", "1", "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    first = load_trajectory(out)
    assert first.epochs[0] == 0.0 and first.epochs[-1] == 1.0
    subprocess.run([*args, "--epochs", "1", "--resume", str(out), "--out", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    resumed = load_trajectory(out)
    assert list(resumed.epochs[:len(first.epochs)]) == list(first.epochs) and resumed.epochs[-1] == 2.0
    assert np.array_equal(resumed.mu[:len(first.epochs)], first.mu)


SHIPPED_WITH_HISTORY = ("mnist_z2", "mnist_z20", "mnist_z10_beta0.5", "mnist_z10_beta1", "mnist_z10_beta4",
                        "mnist_z10_beta8", "fashion_z2", "mnist_ae_z2", "mnist_cvae_z2", "mnist_dae_z2")


@pytest.mark.parametrize("name", SHIPPED_WITH_HISTORY)
def test_shipped_models_carry_their_own_training_history(name):
    path = shipped_checkpoint(name)
    model, info = load_checkpoint(path)
    traj = load_trajectory(path)
    assert traj is not None, f"{name} was shipped without a training history"
    assert traj.epochs[0] == 0.0 and traj.epochs[-1] == len(info.history) == info.train_config.epochs
    assert int((traj.epochs < 1).sum()) >= 8
    assert traj.nbytes < 5_000_000
    data = load_test_set(info.dataset)
    assert traj.indices.tolist() == map_indices(len(data.test_images)).tolist()  # one subset for the whole dataset
    # the last moment is the shipped weights: their μ of the followed images, to float16 precision
    mu = inference.encode(model, data.test_images[traj.indices], data.test_labels[traj.indices])[0]
    assert np.allclose(traj.mu[-1].astype(np.float32), mu, atol=2e-2, rtol=1e-2)


def test_a_diverged_run_keeps_a_loadable_history(sample, tmp_path):
    config = TrainConfig(dataset="mnist-sample", epochs=2, batch_size=100, lr=1e12)  # diverges within the run
    model, _ = prepare_model(TINY, config)
    recorder = TrajectoryRecorder(sample, config.epochs, TINY.latent_dim)
    result = fit(model, sample, config, recorder=recorder)
    assert result.status == "diverged"
    path = save_checkpoint(tmp_path / "d.pt", result.model, config, "mnist-sample", trajectory=recorder.to_payload())
    traj = load_trajectory(path)
    assert traj is not None and traj.epochs[0] == 0.0  # the moments before it went wrong
    assert np.isfinite(traj.mu.astype(np.float32)).all() and np.isfinite(traj.kl).all()
