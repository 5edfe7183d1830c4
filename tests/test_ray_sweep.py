"""Training on a local Ray cluster (a head and a worker node on 127.0.0.1, started by the `ray_cluster` fixture): a
2 × 2 sweep lands as four checkpoints and a sweep.csv equal to the embedded run's; a worker killed mid-run fails only
its model; Stop cancels the remote work and saves what it reached; a cluster that goes away fails the job in one line
and the next job trains here, saying so. Marked `ray` (slow: every run starts Ray workers that import torch)."""
from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core import backends, grid, jobs
from vae_core.checkpoint import load_checkpoint, load_trajectory, read_info
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.engine import Listener
from vae_core.trajectory import schedule

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig(latent_dim=2, hidden=(32,))
ON_A_NODE = r" on \S+ node [0-9a-f]{8}$"  # the node's address (this machine's, for both nodes here) and its id
SWEEP = ["sweep", "--dataset", "mnist-sample", "--beta", "1", "4", "--latent-dim", "2", "3", "--seeds", "1",
         "--epochs", "1", "--hidden", "32", "--batch-size", "250", "--iw-samples", "5"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", "VAE_OFFLINE": "1", **(env or {})})


def table(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / grid.CSV_NAME, newline="") as f:
        return {f"{r['beta']}_{r['latent_dim']}_{r['seed']}": r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def sample():
    return load_dataset("mnist-sample")


def test_a_2x2_sweep_on_the_cluster_matches_the_embedded_one(ray_cluster, tmp_path):
    """β × d = 2 × 2: on the cluster each latent size is one task (its two βs together), as it is one group here, so
    both runs train the same groups from the same seeded weights with one thread each: the same four files, with
    histories, and the same metrics and weights within float tolerance."""
    remote = cli(*SWEEP, "--out-dir", str(tmp_path / "ray"), "--ray", ray_cluster.address)
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert f"on the Ray cluster at {ray_cluster.address}" in remote.stderr
    here = cli(*SWEEP, "--out-dir", str(tmp_path / "here"), env={"RAY_ADDRESS": ""})
    assert here.returncode == 0, here.stderr[-3000:]
    names = {"beta1_z2_seed0.pt", "beta4_z2_seed0.pt", "beta1_z3_seed0.pt", "beta4_z3_seed0.pt"}
    for folder in ("ray", "here"):
        assert {p.name for p in (tmp_path / folder).glob("*.pt")} == names
    on_ray, embedded = table(tmp_path / "ray"), table(tmp_path / "here")
    assert on_ray.keys() == embedded.keys() and len(on_ray) == 4
    assert {r["status"] for r in on_ray.values()} == {"finished"}
    assert {r["ran_on"] for r in embedded.values()} == {"here"} and "here" not in {r["ran_on"] for r in on_ray.values()}
    assert [r["group"] for r in on_ray.values()] == [r["group"] for r in embedded.values()] == ["0", "0", "1", "1"]
    for key, row in on_ray.items():
        for column in ("test_elbo", "recon", "kl", "iw_logpx"):
            assert float(row[column]) == pytest.approx(float(embedded[key][column]), rel=1e-4, abs=1e-3), (key, column)
        assert row["active_units"] == embedded[key]["active_units"]
    for name in names:
        a, info_a = load_checkpoint(tmp_path / "ray" / name)
        b, info_b = load_checkpoint(tmp_path / "here" / name)
        assert len(info_a.history) == 1 and info_a.extra["status"] == "finished"
        assert re.search(ON_A_NODE, info_a.extra["device"]) and " on " not in info_b.extra["device"]
        for (key, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(wa, wb, atol=1e-5), (name, key)
        history_a, history_b = load_trajectory(tmp_path / "ray" / name), load_trajectory(tmp_path / "here" / name)
        assert np.array_equal(history_a.epochs, history_b.epochs)
        # the schedule's moments that fall on distinct steps of mnist-sample's short epoch, its end included
        assert set(history_a.epochs.tolist()) <= set(schedule(1).tolist()) and history_a.epochs[-1] == 1 and len(history_a.epochs) >= 5
        assert np.allclose(history_a.mu.astype(np.float32), history_b.mu.astype(np.float32), atol=1e-2)


class KillGroupOnce(Listener):
    """Kills the Ray worker training group `group` (SIGKILL to its process) when member `member` first reports."""

    def __init__(self, backend, group: int, member: int) -> None:
        self.backend, self.group, self.member, self.killed = backend, group, member, None

    def step(self, member: int, metrics) -> None:
        if member == self.member and self.killed is None:
            self.killed = self.backend.workers[self.group]
            os.kill(self.killed.pid, signal.SIGKILL)


def small_grid(epochs: int) -> grid.GridSpec:
    return grid.GridSpec(TINY, TrainConfig(dataset="mnist-sample", epochs=epochs, batch_size=100), betas=(1.0, 4.0),
                         latent_dims=(2, 3), seeds=(0,))


def test_a_worker_killed_mid_run_fails_its_model_and_the_others_finish(ray_cluster, sample, tmp_path):
    """One model per task (--group-size 1): the worker of the first is killed at its first progress report; Ray does
    not retry it (max_retries=0), so that model fails with one line and no file, and the three others are saved."""
    from vae_core.ray_backend import RayBackend

    backend = RayBackend.connect(ray_cluster.address)
    killer = KillGroupOnce(backend, group=0, member=0)
    rows = grid.run(small_grid(epochs=3), tmp_path, sample, backend, group_size=1, iw_samples=0, listeners=[killer])
    assert killer.killed is not None
    failed, *others = rows
    assert failed.point.name == "beta1_z2_seed0" and failed.status == "failed" and failed.file == ""
    assert failed.message == (f"the Ray worker training it died (pid {killer.killed.pid} on {killer.killed.node}); "
                              "nothing of it was kept")
    assert "\n" not in failed.message
    assert [r.status for r in others] == ["finished"] * 3
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(r.file for r in others)
    assert {r.file for r in others} == {"beta4_z2_seed0.pt", "beta1_z3_seed0.pt", "beta4_z3_seed0.pt"}
    for row in others:
        assert len(read_info(tmp_path / row.file).history) == 3
    listed = grid.read_sweep(tmp_path)
    assert [(r.point.name, r.status, r.file) for r in listed.rows] == [(r.point.name, r.status, r.file) for r in rows]


class StopAtFirstReport(Listener):
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def step(self, member: int, metrics) -> None:
        self.stop.set()


def test_stop_cancels_the_remote_work_and_saves_what_was_reached(ray_cluster, sample, tmp_path):
    """Four one-model tasks of 200 epochs on two CPUs, stopped at the first report (within epoch 1): the running tasks
    stop at their next step and send back their weights (the one that reported, at least, saved as stopped with its
    part of epoch 1), and the waiting ones are cancelled and never start (no file). Nothing fails, nothing finishes.
    With `ray.cancel` on the running tasks this lost every model on a loaded machine (TaskCancelledError)."""
    from vae_core.ray_backend import RayBackend

    stop = threading.Event()
    rows = grid.run(small_grid(epochs=200), tmp_path, sample, RayBackend.connect(ray_cluster.address), group_size=1,
                    listeners=[StopAtFirstReport(stop)], stop=stop)
    saved = [r for r in rows if r.file]
    assert saved and {r.status for r in rows} == {"stopped"}
    for row in saved:
        info = read_info(tmp_path / row.file)
        assert info.extra["status"] == "stopped" and 1 <= len(info.history) < 200
        assert "iw_logpx" not in info.metrics  # a stopped run is saved without the IW bound, as here
    for row in rows:  # the others were cancelled before they started, or stopped before their first step
        if not row.file:
            assert row.message in ("stopped before it started", "stopped by the user during epoch 1")


def test_the_apps_stop_cancels_a_job_on_the_cluster(ray_cluster, tmp_path, monkeypatch):
    """RAY_ADDRESS sends the app's job to the cluster (its phase says so); Stop ends the remote run at its next step
    and the job saves the weights it reached, as it does here."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    registry = jobs.JobRegistry()
    job = registry.submit(jobs.TrainingJob(jobs.training_spec(
        "remote", tmp_path, TINY, TrainConfig(dataset="mnist-sample", epochs=500, batch_size=500), iw_samples=0)))
    try:
        deadline = time.monotonic() + 240
        while len(job.view().history) < 1:
            assert job.running and time.monotonic() < deadline, job.view().error
            time.sleep(0.1)
        assert job.view().phase == f"training remote on the Ray cluster at {ray_cluster.address}"
        job.stop()
        assert job.join(90)
    finally:
        registry.clear()
    view = job.view()
    assert view.state == jobs.STOPPED and view.error is None, view.error
    info = read_info(tmp_path / "remote.pt")
    assert info.extra["status"] == "stopped" and 1 <= len(info.history) < 500
    assert re.search(ON_A_NODE, info.extra["device"])
    assert view.trajectory() is not None  # the live history was fed from the remote weights


def test_a_cluster_that_goes_away_fails_the_job_in_one_line_and_the_next_trains_here(ray_cluster_factory, tmp_path,
                                                                                     monkeypatch):
    cluster = ray_cluster_factory(head_cpus=2, worker_node=False)
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    registry = jobs.JobRegistry()
    try:
        job = registry.submit(jobs.TrainingJob(jobs.training_spec(
            "lost", tmp_path, TINY, TrainConfig(dataset="mnist-sample", epochs=500, batch_size=500), iw_samples=0)))
        deadline = time.monotonic() + 240
        while len(job.view().history) < 1:
            assert job.running and time.monotonic() < deadline, job.view().error
            time.sleep(0.1)
        cluster.kill_head()
        assert job.join(90), "the job did not notice the cluster was gone"
        view = job.view()
        assert view.state == jobs.FAILED and "\n" not in view.error
        assert view.error.startswith(f"the Ray cluster at {cluster.address} went away (")
        assert view.error.endswith("); nothing of it was kept")
        assert not (tmp_path / "lost.pt").exists()

        choice = backends.for_jobs()
        assert choice.backend is backends.EMBEDDED
        assert choice.instead.startswith(f"the Ray cluster at {cluster.address} is unreachable")
        after = registry.submit(jobs.TrainingJob(jobs.training_spec(
            "after", tmp_path, TINY, TrainConfig(dataset="mnist-sample", epochs=2, batch_size=500), iw_samples=0)))
        phases = set()
        while after.running:
            phases.add(after.view().phase)
            time.sleep(0.01)
        assert after.view().state == jobs.FINISHED, after.view().error
        said = f"training after here, as the Ray cluster at {cluster.address} is unreachable ("
        assert any(p.startswith(said) for p in phases), phases
        assert " on " not in read_info(tmp_path / "after.pt").extra["device"]
    finally:
        registry.clear()
