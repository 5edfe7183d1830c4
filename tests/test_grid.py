"""The grid sweep here, in this process (`python -m vae_core sweep`, vae_core.grid, the embedded backend): every
combination lands as a checkpoint with its history and a row of sweep.csv; same-shaped models train together; bad
arguments give one line and exit 2; Ctrl-C saves what was reached; a sweep.csv that is not ours is refused in one
line; nothing of this imports Ray."""
from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vae_core import backends, grid
from vae_core.checkpoint import load_checkpoint, load_trajectory, read_info
from vae_core.cli import main
from vae_core.config import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--hidden", "32", "--batch-size", "250", "--epochs", "1"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "VAE_OFFLINE": "1", "RAY_ADDRESS": "", **(env or {})})


def rows_of(folder: Path) -> list[dict[str, str]]:
    with open(folder / "sweep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_sweep_saves_every_combination_with_its_history_and_a_table(tmp_path):
    done = cli("sweep", "--dataset", "mnist-sample", "--beta", "0.5", "4", "--latent-dim", "2", "3", "--seeds", "2",
               "--seed", "3", "--iw-samples", "5", *TINY, "--out-dir", str(tmp_path / "sw"))
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "sw"
    rows = rows_of(folder)
    assert list(rows[0]) == list(grid.COLUMNS)
    # by latent size, then seed, then β; each latent size one group (all its models together, here)
    assert [(r["beta"], r["latent_dim"], r["seed"], r["group"]) for r in rows] == [
        (b, d, s, g) for d, g in (("2", "0"), ("3", "1")) for s in ("3", "4") for b in ("0.5", "4")]
    assert sorted(p.name for p in folder.iterdir()) == sorted([r["file"] for r in rows] + ["sweep.csv"])
    for row in rows:
        assert row["file"] == f"beta{row['beta']}_z{row['latent_dim']}_seed{row['seed']}.pt"
        model, info = load_checkpoint(folder / row["file"])
        assert (info.beta, info.model_config.latent_dim, info.train_config.seed) == (
            float(row["beta"]), int(row["latent_dim"]), int(row["seed"]))
        assert row["status"] == "finished" and info.extra["status"] == "finished" and row["ran_on"] == "here"
        assert len(info.history) == 1 and load_trajectory(folder / row["file"]).epochs[-1] == 1.0
        for column, key in (("test_elbo", "elbo"), ("recon", "recon"), ("kl", "kl"), ("iw_logpx", "iw_logpx")):
            assert float(row[column]) == pytest.approx(info.metrics[key], abs=1e-4)
        assert int(row["active_units"]) == info.metrics["active_units"] and info.metrics["iw_samples"] == 5
        assert float(row["seconds"]) > 0
    # the same β and d with another seed is another model
    a, b = (load_checkpoint(folder / f"beta4_z3_seed{s}.pt")[0] for s in (3, 4))
    assert not all(map(lambda t: bool((t[0] == t[1]).all()), zip(a.state_dict().values(), b.state_dict().values())))
    table = done.stdout.strip().splitlines()
    assert table[0].split()[:2] == ["model", "status"] and len(table) == 9
    assert f"wrote {folder / 'sweep.csv'}" in done.stderr
    assert grid.read_sweep(folder).saved == grid.read_sweep(folder).rows and len(grid.read_sweep(folder).rows) == 8


def test_models_of_one_shape_train_together_and_groups_are_cut_by_seed_then_beta(monkeypatch, tmp_path):
    spec = grid.GridSpec(ModelConfig(hidden=(32,)), TrainConfig(epochs=1, batch_size=500), betas=(0.5, 1.0, 4.0),
                         latent_dims=(2, 5), seeds=(0, 1))
    names = lambda groups: [[p.name for p in g] for g in groups]  # noqa: E731
    assert names(spec.groups()) == [[p.name for p in spec.points() if p.latent_dim == d] for d in (2, 5)]
    assert grid.default_group_size(spec, on_cluster=False) is None
    assert grid.default_group_size(spec, on_cluster=True) == 3  # one (d, seed) per task, its βs together
    assert names(spec.groups(3)) == [["beta0.5_z2_seed0", "beta1_z2_seed0", "beta4_z2_seed0"],
                                     ["beta0.5_z2_seed1", "beta1_z2_seed1", "beta4_z2_seed1"],
                                     ["beta0.5_z5_seed0", "beta1_z5_seed0", "beta4_z5_seed0"],
                                     ["beta0.5_z5_seed1", "beta1_z5_seed1", "beta4_z5_seed1"]]
    assert [len(g) for g in spec.groups(4)] == [4, 2, 4, 2] and [len(g) for g in spec.groups(1)] == [1] * 12
    calls = []
    real = backends.train_models
    monkeypatch.setattr(backends, "train_models", lambda models, *a, **k: calls.append(
        sorted({(m.latent_dim) for m in models}) + [len(models)]) or real(models, *a, **k))
    from vae_core.data import load_dataset
    rows = grid.run(spec, tmp_path, load_dataset("mnist-sample"), backends.EMBEDDED)
    assert calls == [[2, 6], [5, 6]]  # one engine run per latent size, its six models at once
    assert [r.group for r in rows] == [0] * 6 + [1] * 6 and {r.status for r in rows} == {"finished"}


@pytest.mark.parametrize("args, message", [
    (["--beta", "1", "1"], "a β is given twice: 1, 1"),
    (["--latent-dim", "2", "100"], "latent size must be at most 64"),
    (["--beta", "nan"], "beta must be a finite non-negative number, got nan"),
    (["--seeds", "0"], "argument --seeds: must be a positive integer, got 0"),
    (["--group-size", "0"], "argument --group-size: must be a positive integer, got 0"),
    (["--kind", "ae", "--beta", "4"], "--beta: --kind ae has no β; sweep its --latent-dim and --seeds"),
    (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    (["--latent-dim", *map(str, range(1, 65)), "--seeds", "5"], "320 models is more than a sweep may train (256)"),
    (["--out-dir", "{tmp}/file"], "--out-dir {tmp}/file is a file, not a folder"),
    (["--out-dir", "{tmp}/file/sweep"], "--out-dir {tmp}/file/sweep: {tmp}/file is a file, not a folder"),
    (["--out-dir", "/proc/sweep"], "--out-dir /proc/sweep: cannot create files in /proc"),
    (["--out-dir", "{tmp}/taken"], "already holds beta1_z2_seed0.pt; choose another folder or add --replace"),
])
def test_bad_sweep_arguments_exit_2_with_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAE_OFFLINE", "1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "file").write_text("x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "beta1_z2_seed0.pt").write_text("x")
    args = [a.format(tmp=tmp_path) for a in args]
    base = {"--dataset": "mnist-sample", "--out-dir": str(tmp_path / "out")}
    given = {a for a in args if a.startswith("--")}
    code = main(["sweep", *[x for k, v in base.items() if k not in given for x in (k, v)], *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message.format(tmp=tmp_path) in err[0], err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*"))  # nothing written, not even the folder
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["beta1_z2_seed0.pt"]


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    monkeypatch.setenv("VAE_OFFLINE", "1")
    code = main(["sweep", "--dataset", "mnist-sample", "--out-dir", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: the Ray cluster at 127.0.0.1:{port} is unreachable (")


def test_a_job_trains_here_saying_so_when_the_cluster_is_unreachable(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed")
    from vae_core import jobs

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens on port 1
    phases = []
    registry = jobs.JobRegistry()
    job = registry.submit(jobs.TrainingJob(jobs.training_spec(
        "fallback", tmp_path, ModelConfig(latent_dim=2, hidden=(32,)),
        TrainConfig(dataset="mnist-sample", epochs=3, batch_size=500), iw_samples=0)))
    while job.running:
        phases.append(job.view().phase)
    assert job.view().state == jobs.FINISHED, job.view().error
    assert any(p.startswith("training fallback here, as the Ray cluster at 127.0.0.1:1 is unreachable (") for p in phases)
    assert read_info(tmp_path / "fallback.pt").extra["status"] == "finished"


NO_RAY = """
import sys
from pathlib import Path
from vae_core.cli import main
from vae_core import jobs
from vae_core.config import ModelConfig, TrainConfig
out = Path(sys.argv[1])
assert main(["sweep", "--dataset", "mnist-sample", "--beta", "1", "4", "--hidden", "16", "--batch-size", "500",
             "--epochs", "1", "--iw-samples", "0", "--out-dir", str(out / "sweep")]) == 0
job = jobs.JobRegistry().submit(jobs.TrainingJob(jobs.training_spec(
    "job", out, ModelConfig(hidden=(16,)), TrainConfig(epochs=1, batch_size=500), iw_samples=0)))
assert job.join(120) and job.view().state == "finished", job.view().error
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""


def test_the_embedded_path_never_imports_ray(tmp_path):
    """Without RAY_ADDRESS a sweep and an app job train here, as before, and Ray is not even imported."""
    done = subprocess.run([sys.executable, "-c", NO_RAY, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "VAE_OFFLINE": "1", "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "job.pt").exists() and len(list((tmp_path / "sweep").glob("*.pt"))) == 2


def test_the_first_ctrl_c_saves_what_each_model_reached(tmp_path):
    folder = tmp_path / "sw"
    proc = subprocess.Popen([sys.executable, "-m", "vae_core", "sweep", "--dataset", "mnist-sample", "--beta", "1", "4",
                             "--epochs", "500", "--hidden", "32", "--iw-samples", "0", "--out-dir", str(folder)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "VAE_OFFLINE": "1", "RAY_ADDRESS": ""})
    while " epoch   1 " not in proc.stderr.readline():  # training is under way
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    rows = rows_of(folder)
    assert [r["status"] for r in rows] == ["stopped", "stopped"] and all(r["file"] for r in rows)
    for row in rows:
        info = read_info(folder / row["file"])
        assert info.extra["status"] == "stopped" and 1 <= len(info.history) < 500
        assert math.isfinite(float(row["test_elbo"])) and row["iw_logpx"] == ""


def write_table(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.csv").write_text(text)
    return folder


HEADER = ",".join(grid.COLUMNS)


@pytest.mark.parametrize("body, message", [
    ("beta,d\n1,2\n", "not a sweep table"),
    (f"{HEADER}\n1,2,0,1,1,1,,,finished,../../etc/passwd.pt,1,0,here,\n", "is not a checkpoint's name"),
    (f"{HEADER}\n1,2,0,1,1,1,,,finished,a/b.pt,1,0,here,\n", "is not a checkpoint's name"),
    (f"{HEADER}\n1,2,0,nan,1,1,,,finished,a.pt,1,0,here,\n", "test_elbo is not a finite number"),
    (f"{HEADER}\n1,2,0,1,1,1,,,exploded,a.pt,1,0,here,\n", "unknown status 'exploded'"),
    (f"{HEADER}\n1,two,0,1,1,1,,,finished,a.pt,1,0,here,\n", "invalid literal for int()"),
    (f"{HEADER}\n1,2,0\n", "3 values, expected 14"),
])
def test_a_sweep_table_that_is_not_ours_is_refused_in_one_line(body, message, tmp_path):
    folder = write_table(tmp_path / "bad", body)
    with pytest.raises(grid.GridError) as caught:
        grid.read_sweep(folder)
    assert message in str(caught.value) and str(caught.value).startswith(str(folder / "sweep.csv"))
    assert "\n" not in str(caught.value)
    found, errors = grid.find_sweeps(tmp_path)
    assert found == [] and len(errors) == 1


def test_an_oversized_sweep_table_is_refused_before_reading(tmp_path):
    folder = write_table(tmp_path / "big", HEADER + "\n" + "x" * (grid.MAX_CSV_BYTES + 1))
    with pytest.raises(grid.GridError, match="refused"):
        grid.read_sweep(folder)
