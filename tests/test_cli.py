import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vae_core.checkpoint import load_checkpoint
from vae_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "cifar10"], "unknown dataset"),
        (["--dataset", "mnist-sample", "--latent-dim", "0"], "latent size must be at least 1"),
        (["--dataset", "mnist-sample", "--beta", "-1"], "beta must be non-negative"),
        (["--dataset", "mnist-sample", "--epochs", "0"], "epochs must be at least 1"),
        (["--dataset", "mnist-sample", "--arch", "transformer"], "unknown architecture"),
        (["--dataset", "mnist-sample", "--epochs", "two"], "invalid int value"),
        (["--dataset", "mnist", "--data-dir", "{tmp}/empty"], "Missing files: train-images-idx3-ubyte"),
    ],
)
def test_bad_train_arguments_exit_2_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAE_OFFLINE", "1")
    out = tmp_path / "m.pt"
    code = main(["train", *[a.format(tmp=tmp_path) for a in args], "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


@pytest.mark.parametrize("out", ["{tmp}/no/such/folder/m.pt", "{tmp}"])
def test_unwritable_out_exits_2(out, tmp_path, capsys):
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--out", out.format(tmp=tmp_path)])
    assert code == 2 and "--out" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


def test_evaluate_refuses_bad_files_and_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_text("hello")
    assert main(["evaluate", str(bad), "--dataset", "mnist-sample"]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.pt"), "--dataset", "mnist-sample"]) == 2
    assert main(["evaluate", str(bad), "--dataset", "mnist-sample", "--iw-samples", "0"]) == 2
    assert main(["list", str(tmp_path / "missing")]) == 2
    assert main([]) == 2


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_train_evaluate_list_offline_from_the_command_line(tmp_path):
    env = {"VAE_DATA_DIR": str(tmp_path / "none"), "VAE_OFFLINE": "1"}
    out = tmp_path / "tiny.pt"
    trained = _cli("train", "--dataset", "mnist-sample", "--epochs", "2", "--hidden", "64", "--latent-dim", "3",
                   "--beta", "2", "--out", str(out), env=env)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.count("epoch ") == 2 and "test -ELBO" in trained.stdout and out.exists()

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
