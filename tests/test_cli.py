import csv
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import vae_core.atomic as atomic
from vae_core import cli
from vae_core.checkpoint import load_checkpoint, read_info, save_checkpoint
from vae_core.cli import main
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import build_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "cifar10"], "unknown dataset"),
        (["--dataset", "mnist-sample", "--latent-dim", "0"], "latent size must be at least 1"),
        (["--dataset", "mnist-sample", "--beta", "-1"], "beta must be a finite non-negative number"),
        (["--dataset", "mnist-sample", "--epochs", "0"], "epochs must be at least 1"),
        (["--dataset", "mnist-sample", "--arch", "transformer"], "unknown architecture"),
        (["--dataset", "mnist-sample", "--epochs", "two"], "invalid int value"),
        (["--dataset", "mnist", "--data-dir", "{tmp}"], "Missing files: train-images-idx3-ubyte"),
        (["--dataset", "mnist-sample", "--lr", "inf"], "learning rate must be a finite positive number, got inf"),
        (["--dataset", "mnist-sample", "--lr", "nan"], "learning rate must be a finite positive number, got nan"),
        (["--dataset", "mnist-sample", "--beta", "inf"], "beta must be a finite non-negative number, got inf"),
        (["--dataset", "mnist-sample", "--iw-samples", "-5"], "must be 0 or a positive integer, got -5"),
        (["--dataset", "mnist-sample", "--hidden", "100000", "100000"], "at most 8192 units each"),
        (["--dataset", "mnist-sample", "--latent-dim", "100000000"], "latent size must be at most 64"),
        (["--dataset", "mnist", "--data-dir", "{tmp}/nonexistent"], "--data-dir {tmp}/nonexistent is not a folder"),
        (["--dataset", "mnist-sample", "--kind", "gan"], "argument --kind: invalid choice: 'gan'"),
        (["--dataset", "mnist-sample", "--noise", "mask:0.5"], "a VAE takes no noise, got 'mask:0.5'"),
        (["--dataset", "mnist-sample", "--kind", "dae", "--noise", "salt:3"], "noise must be mask:ν"),
        (["--dataset", "mnist-sample", "--sparsity", "0.1"], "a VAE takes no L1 sparsity penalty"),
        (["--dataset", "mnist-sample", "--lr-schedule", "onecycle"], "choose one of constant, cosine, warmup_cosine"),
        (["--dataset", "mnist-sample", "--adam-beta2", "1"], "Adam's beta2 must be a number in [0, 1), got 1.0"),
        (["--dataset", "mnist-sample", "--kind", "linear_ae", "--hidden", "64"], "a linear autoencoder has no hidden"),
        (["--dataset", "mnist-sample", "--kind", "linear_ae", "--likelihood", "bernoulli"], "takes the likelihood gaussian"),
    ],
)
def test_bad_train_arguments_exit_2_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAE_OFFLINE", "1")
    out = tmp_path / "m.pt"
    code = main(["train", *[a.format(tmp=tmp_path) for a in args], "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message.format(tmp=tmp_path) in err[0]
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["{tmp}/no/such/folder/m.pt", "{tmp}"])
def test_unwritable_out_exits_2(out, tmp_path, capsys):
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--out", out.format(tmp=tmp_path)])
    assert code == 2 and "--out" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_where_no_file_can_be_created_exits_2_before_training(capsys, monkeypatch):
    # os.access() calls /proc writable for root; only creating a file tells the truth
    monkeypatch.setattr(cli, "load_dataset", lambda *a: pytest.fail("training started"))
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--out", "/proc/m.pt"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --out /proc/m.pt: cannot create files in /proc")


def test_a_disk_without_room_for_the_model_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    monkeypatch.setattr(cli, "load_dataset", lambda *a: pytest.fail("training started"))
    code = main(["train", "--dataset", "mnist-sample", "--hidden", "32", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: disk full: --out {tmp_path / 'm.pt'} needs about 1.") and "0.0 MB free" in err[0]
    assert list(tmp_path.iterdir()) == []


def _write_fails_in(folder: Path, monkeypatch) -> None:
    """Writes of checkpoints into `folder` fail as on a full disk; elsewhere they work."""
    real = atomic._write_all

    def write(fd, data):
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == folder:
            os.write(fd, bytes(data[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(atomic, "_write_all", write)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_disk_full_at_the_end_says_so_in_one_line_and_rescues_the_weights(tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rescue_root = tmp_path / "tmp"
    rescue_root.mkdir()
    monkeypatch.setattr(cli.tempfile, "tempdir", str(rescue_root))
    _write_fails_in(out_dir, monkeypatch)
    out = out_dir / "m.pt"
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--hidden", "16", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    rescued = list(rescue_root.glob("vae_core-rescued-*/m.pt"))
    assert code == 1 and len(err) == 1 and len(rescued) == 1
    assert err[0].startswith(f"error: disk full: cannot save {out} (needs ")
    assert err[0].endswith(f"the trained weights were saved to {rescued[0]} instead: move them once there is room")
    assert list(out_dir.iterdir()) == []
    model, info = load_checkpoint(rescued[0])
    assert len(info.history) == 1 and info.dataset == "mnist-sample"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc")
def test_when_the_rescue_fails_too_the_line_says_the_weights_are_lost(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(atomic, "_write_all", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--hidden", "16", "--out", str(tmp_path / "m.pt")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(err) == 1 and err[0].endswith("so the trained weights are lost")
    assert list(tmp_path.iterdir()) == []  # neither the rescue folder nor a temp file is left


def test_a_diverged_run_never_replaces_an_existing_model(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--hidden", "16", "--out", str(out)]) == 0
    good = out.read_bytes()
    capsys.readouterr()
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--hidden", "16", "--lr", "1e9",
                 "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(err) == 1 and "training diverged" in err[0]
    assert err[0].endswith(f"Not saved: {out} already exists and a diverged run never replaces it.")
    assert out.read_bytes() == good


def test_an_unexpected_value_error_is_not_reported_as_a_usage_error(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model(ModelConfig(latent_dim=2, hidden=(8,))), TrainConfig(), "mnist-sample")

    def deep(*args, **kwargs):
        raise ValueError("something inside torch")

    monkeypatch.setattr(cli, "evaluate", deep)
    with pytest.raises(ValueError, match="something inside torch"):  # a bug gets its traceback, not "error:" and 2
        main(["evaluate", str(path), "--dataset", "mnist-sample"])


def test_evaluate_never_prints_non_finite_json(tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model(ModelConfig(latent_dim=2, hidden=(8,))), TrainConfig(), "mnist-sample")
    monkeypatch.setattr(cli, "evaluate", lambda *a, **k: {"elbo": math.inf, "recon": math.inf, "kl": 1.0,
                                                           "iw_logpx": math.nan, "active_units": 2})
    code = main(["evaluate", str(path), "--dataset", "mnist-sample", "--iw-samples", "2"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and captured.out == "" and len(err) == 1
    assert err[0].startswith(f"error: {path}: the model's test metrics on mnist-sample are not finite")


def test_evaluate_refuses_bad_files_and_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    assert main(["evaluate", str(bad), "--dataset", "mnist-sample"]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.pt"), "--dataset", "mnist-sample"]) == 2
    assert main(["evaluate", str(bad), "--dataset", "mnist-sample", "--iw-samples", "0"]) == 2
    assert main(["evaluate", str(bad), "--dataset", "mnist", "--data-dir", str(tmp_path / "nonexistent")]) == 2
    assert not (tmp_path / "nonexistent").exists()
    assert main(["list", str(tmp_path / "missing")]) == 2
    assert main([]) == 2


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_train_evaluate_list_offline_from_the_command_line(tmp_path):
    env = {"VAE_DATA_DIR": str(tmp_path / "none"), "VAE_OFFLINE": "1"}
    out = tmp_path / "tiny.pt"
    trained = _cli("train", "--dataset", "mnist-sample", "--epochs", "2", "--hidden", "64", "--latent-dim", "3",
                   "--beta", "2", "--lr-schedule", "warmup_cosine", "--adam-beta2", "0.99", "--out", str(out), env=env)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.count("epoch ") == 2 and "test -ELBO" in trained.stdout and out.exists()
    recipe = read_info(out).train_config
    assert (recipe.beta, recipe.lr_schedule, recipe.adam_beta2) == (2.0, "warmup_cosine", 0.99)

    evaluated = _cli("evaluate", str(out), "--dataset", "mnist-sample", "--iw-samples", "20", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert {"elbo", "recon", "kl", "iw_logpx", "active_units"} <= metrics.keys()
    assert metrics["elbo"] == pytest.approx(metrics["recon"] + metrics["kl"])
    # the importance-weighted bound is tighter than the ELBO: log p(x) ≥ ELBO, i.e. -iw_logpx ≤ -ELBO (noise aside)
    assert -metrics["iw_logpx"] <= metrics["elbo"] + 0.5
    assert 1 <= metrics["active_units"] <= 3

    listed = _cli("list", str(tmp_path))
    assert listed.returncode == 0 and "tiny" in listed.stdout and "mnist-sample" in listed.stdout


def test_ctrl_c_stops_training_and_saves_the_weights_reached(tmp_path):
    out = tmp_path / "interrupted.pt"
    proc = subprocess.Popen([sys.executable, "-m", "vae_core", "train", "--dataset", "mnist-sample", "--epochs", "500",
                             "--hidden", "32", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("epoch   1")  # training is under way
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by the user" in err
    model, info = load_checkpoint(out)
    assert 1 <= len(info.history) < 500 and info.extra["status"] == "stopped"


def test_ctrl_c_stops_a_sweep_and_saves_every_model_it_trained(tmp_path):
    folder = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "vae_core", "sweep", "--dataset", "mnist-sample", "--beta", "1", "4",
                             "--latent-dim", "2", "--epochs", "500", "--hidden", "32", "--out-dir", str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_ADDRESS": ""})
    while " epoch   1 " not in proc.stderr.readline():  # both models trained together are under way
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopping every model after its current step and saving" in err
    rows = list(csv.DictReader(open(folder / "sweep.csv")))
    assert [(float(r["beta"]), r["status"]) for r in rows] == [(1.0, "stopped"), (4.0, "stopped")]
    for r in rows:
        assert 1 <= len(read_info(folder / r["file"]).history) < 500


@pytest.mark.parametrize("kind, extra", [("ae", ["--sparsity", "0.01"]), ("dae", ["--noise", "gauss:0.3"]),
                                         ("vae", []), ("cvae", [])])
def test_every_kind_trains_and_evaluates_offline(kind, extra, tmp_path):
    env = {"VAE_DATA_DIR": str(tmp_path / "none"), "VAE_OFFLINE": "1"}
    out = tmp_path / f"{kind}.pt"
    trained = _cli("train", "--dataset", "mnist-sample", "--kind", kind, *extra, "--epochs", "1", "--hidden", "64",
                   "--out", str(out), env=env)
    assert trained.returncode == 0, trained.stderr
    info = read_info(out)
    assert info.model_config.kind == kind and info.model_config.n_classes == (10 if kind == "cvae" else 0)
    evaluated = _cli("evaluate", str(out), "--dataset", "mnist-sample", "--iw-samples", "5", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics["kind"] == kind and metrics["n_images"] == 1000
    assert 0 < metrics["recon"] < 400  # nats per image: one epoch already beats 784·log 2 ≈ 543
    posterior = {"elbo", "kl", "iw_logpx", "active_units"}
    if kind in ("vae", "cvae"):
        assert posterior <= metrics.keys() and metrics["elbo"] == pytest.approx(metrics["recon"] + metrics["kl"])
        assert metrics["iw_logpx"] >= -metrics["elbo"] - 1.0  # the IW bound is at least as tight, up to MC noise
    else:
        assert not posterior & metrics.keys()


def test_a_linear_autoencoder_trained_from_the_command_line_spans_pca_s_subspace(tmp_path):
    """Baldi & Hornik's claim on real digits (the bundled sample's 4,000 training images): 40 epochs of Adam at
    lr 0.01 reach 2.6° from the top-6 principal subspace; an angle near 90° would be a random subspace."""
    env = {"VAE_DATA_DIR": str(tmp_path / "none"), "VAE_OFFLINE": "1"}
    out = tmp_path / "linear.pt"
    trained = _cli("train", "--dataset", "mnist-sample", "--kind", "linear_ae", "--latent-dim", "6", "--epochs", "40",
                   "--lr", "0.01", "--iw-samples", "0", "--out", str(out), env=env)
    assert trained.returncode == 0, trained.stderr
    info = read_info(out)
    config = info.model_config
    assert (config.kind, config.hidden, config.likelihood, config.arch) == ("linear_ae", (), "gaussian", "mlp")
    stored = info.metrics["pca_angle"]
    assert stored < 5.0, stored
    evaluated = _cli("evaluate", str(out), "--dataset", "mnist-sample", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics["pca_angle"] == pytest.approx(stored, abs=1e-6)
    assert f"{stored:.1f}° from PCA's top-6 subspace" in evaluated.stderr
