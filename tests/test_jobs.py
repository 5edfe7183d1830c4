"""Background training jobs: lifecycle, stop, error capture, the one-at-a-time registry, names, snapshots."""
from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core import backends, evaluate, inference, jobs
from vae_core.checkpoint import load_checkpoint, load_trajectory, read_info
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_dataset
from vae_core.models import VAE, build_model
from vae_core.projection import slice_plane
from vae_core.projection import decode_plane
from vae_core.snapshots import example_indices, map_indices

ROOT = Path(__file__).resolve().parent.parent
TINY = ModelConfig(latent_dim=2, hidden=(32,))


def tiny_train(**changes) -> TrainConfig:
    return TrainConfig(**{"dataset": "mnist-sample", "epochs": 1, "batch_size": 500, **changes})


@pytest.fixture
def registry():
    jobs_here = jobs.JobRegistry()
    yield jobs_here
    jobs_here.clear()


REGISTRY = jobs.JobRegistry()  # for the tests that run one job to its end


def start(job: jobs.TrainingJob) -> jobs.TrainingJob:
    return REGISTRY.submit(job)


def run_job(job: jobs.TrainingJob, timeout: float = 120) -> jobs.TrainingJob:
    assert start(job).join(timeout), "the job did not end in time"
    return job


def run(spec: jobs.JobSpec, timeout: float = 120) -> jobs.JobView:
    return run_job(jobs.TrainingJob(spec), timeout).view()


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.mark.parametrize("text, expected", [
    ("my model", "my_model"), ("../../etc/passwd", "etc_passwd"), ("a/b\\c", "a_b_c"), ("model.pt", "model"),
    (" beta-4.0 ", "beta-4.0"), (".hidden", "hidden"), ("mnist_z2", "mnist_z2"),
])
def test_sanitize_name_keeps_only_safe_characters(text, expected):
    assert jobs.sanitize_name(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "..", "/", "ü", "._-"])
def test_sanitize_name_rejects_names_with_nothing_usable(text):
    with pytest.raises(jobs.JobError, match="no usable characters"):
        jobs.sanitize_name(text)


def test_target_path_refuses_shipped_names_and_needs_confirmation_to_replace(tmp_path):
    assert {"mnist_z2", "mnist_z20", "fashion_z2", "mnist_z10_beta1"} <= jobs.shipped_names()
    for name in jobs.shipped_names():
        for replace in (False, True):  # the app saves elsewhere: the new file would shadow the shipped model
            with pytest.raises(jobs.JobError, match="shipped with the app; choose another name"):
                jobs.target_path(tmp_path, name, replace_existing=replace)
    (tmp_path / "mine.pt").write_bytes(b"x")
    with pytest.raises(jobs.JobError, match="already exists"):
        jobs.target_path(tmp_path, "mine")
    assert jobs.target_path(tmp_path, "mine", replace_existing=True) == tmp_path / "mine.pt"
    assert jobs.target_path(tmp_path, "other") == tmp_path / "other.pt"


def test_job_trains_saves_and_reports_metrics_and_snapshots(tmp_path):
    spec = jobs.training_spec("first try", tmp_path, TINY, tiny_train(epochs=2), iw_samples=5)
    view = run(spec)
    assert view.state == jobs.FINISHED and view.error is None
    assert view.progress == 1.0 and view.epoch == 2
    assert [h["epoch"] for h in view.history] == [1, 2]
    assert view.steps and all(map(math.isfinite, np.ravel(view.steps)))
    snap = view.snapshot
    assert snap.epoch == 2
    assert snap.points.shape == (1000, 2) and snap.labels.shape == (1000,)
    assert snap.originals.shape == snap.reconstructions.shape == (8, 28, 28)
    assert snap.samples.shape == (16, 28, 28)
    path = tmp_path / "first_try.pt"
    assert [s.path for s in view.saved] == [path]
    model, info = load_checkpoint(path)
    assert len(info.history) == 2 and info.extra["status"] == "finished"
    for key in ("elbo", "recon", "kl", "iw_logpx"):
        assert math.isfinite(info.metrics[key])
    assert info.metrics["iw_samples"] == 5 and 0 <= info.metrics["active_units"] <= 2
    assert info.test_elbo == pytest.approx(view.saved[0].metrics["elbo"])


def test_stop_keeps_the_weights_reached_so_far(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=jobs.__name__)
    job = start(jobs.TrainingJob(jobs.training_spec("stopped", tmp_path, TINY, tiny_train(epochs=500), iw_samples=5)))
    wait_for(lambda: len(job.view().history) >= 1)
    job.stop()
    assert job.join(60)
    view = job.view()
    assert view.state == jobs.STOPPED and view.error is None
    assert view.message == "Stopped; saved stopped.pt."
    # The server's log tells a job stuck after Stop from a page that stopped redrawing.
    said = [r.getMessage() for r in caplog.records if job.id in r.getMessage()]
    assert said[0].startswith(f"job {job.id} started: ") and "stop asked" in said[1]
    assert said[-1].startswith(f"job {job.id} ended stopped after ") and said[-1].endswith("saved: stopped.pt")
    model, info = load_checkpoint(tmp_path / "stopped.pt")
    assert 1 <= len(info.history) < 500 and info.extra["status"] == "stopped"
    assert all(math.isfinite(info.metrics[k]) for k in ("elbo", "recon", "kl"))
    recon = inference.reconstruct(model, load_dataset("mnist-sample").test_images[:4])
    assert np.isfinite(recon).all()


def test_stop_trains_no_further_step_and_saves_without_the_iw_bound(tmp_path, monkeypatch):
    """Stop → saved is quick: the step after the stop is not run and the k-sample IW bound is not measured, so the
    stored metrics say so (no iw_logpx, iw_samples 0) rather than pretending."""
    losses, iw_calls = 0, []
    real_loss, real_iw = VAE.objective, evaluate.iw_log_px
    job = jobs.TrainingJob(jobs.training_spec("quick", tmp_path, TINY, tiny_train(epochs=500, batch_size=50),
                                              iw_samples=50))

    def counted_loss(self, *args, **kwargs):
        nonlocal losses
        losses += 1
        if losses == 25:  # mid-epoch: 80 steps per epoch here
            job.stop()
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(VAE, "objective", counted_loss)
    monkeypatch.setattr(evaluate, "iw_log_px", lambda *a, **k: iw_calls.append(k) or real_iw(*a, **k))
    assert start(job).join(60)
    assert losses == 25  # the worker trains in this process and checks the stop before every step
    assert iw_calls == []
    view = job.view()
    assert view.state == jobs.STOPPED and view.saved[0].metrics["iw_samples"] == 0
    info = read_info(tmp_path / "quick.pt")
    assert "iw_logpx" not in info.metrics and info.metrics["iw_samples"] == 0
    assert len(info.history) == 1 and math.isfinite(info.history[0]["test_elbo"])


def test_a_finished_run_stores_the_iw_bound(tmp_path, monkeypatch):
    iw_calls = []
    real_iw = evaluate.iw_log_px
    monkeypatch.setattr(evaluate, "iw_log_px", lambda *a, **k: iw_calls.append(k["k"]) or real_iw(*a, **k))
    view = run(jobs.training_spec("done", tmp_path, TINY, tiny_train(), iw_samples=7))
    assert view.state == jobs.FINISHED and iw_calls == [7]
    assert read_info(tmp_path / "done.pt").metrics["iw_samples"] == 7


def _child_processes() -> list[str]:
    """Processes started by this one, from /proc: a training child would outlive a server killed with SIGKILL."""
    pids = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended since the listing: it has no children to report
            continue
    return pids


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc to list child processes")
def test_training_runs_in_a_worker_thread_of_this_process_with_no_child(tmp_path):
    """A thread ends with its process however that process ends (kill -9 included); a child would not."""
    before = set(_child_processes())
    job = start(jobs.TrainingJob(jobs.training_spec("inproc", tmp_path, TINY, tiny_train(epochs=500), iw_samples=0)))
    try:
        wait_for(lambda: job.view().epoch >= 1)
        worker = next(t for t in threading.enumerate() if t.name == f"vae-train-{job.id}")
        assert worker.is_alive() and worker is not threading.main_thread()
        assert set(_child_processes()) == before
    finally:
        job.stop()
        assert job.join(60)


ENDS_MID_TRAINING = """
import sys, time
from vae_core import jobs
from vae_core.config import ModelConfig, TrainConfig
registry = jobs.JobRegistry()
spec = jobs.training_spec("ended", sys.argv[1], ModelConfig(latent_dim=2, hidden=(32,)),
                          TrainConfig(epochs=500, batch_size=500), iw_samples=0)
job = registry.submit(jobs.TrainingJob(spec))
while job.view().epoch < 1:
    time.sleep(0.05)
print("training", flush=True)
"""  # and the script ends: the interpreter exits with the job still training


def test_a_process_that_ends_mid_training_stops_the_job_saves_it_and_exits(tmp_path):
    """What a server shut down by Ctrl-C or SIGTERM does once its main thread returns: the pool's threads are joined at
    exit, so without the registry's stop this would train all 500 epochs first."""
    done = subprocess.run([sys.executable, "-c", ENDS_MID_TRAINING, str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "VAE_OFFLINE": "1"})
    assert done.returncode == 0 and done.stdout == "training\n", done.stderr
    info = read_info(tmp_path / "ended.pt")
    assert info.extra["status"] == "stopped" and 1 <= len(info.history) < 500


def test_a_full_disk_keeps_the_model_in_memory_until_saved_again(tmp_path, disk_full_once):
    job = run_job(jobs.TrainingJob(jobs.training_spec("full", tmp_path, TINY, tiny_train(epochs=2), iw_samples=0)))
    view = job.view()
    assert view.state == jobs.FINISHED and view.error is None and not view.saved
    assert [u.path.name for u in view.unsaved] == ["full.pt"]
    assert view.unsaved[0].reason.startswith("The disk is full: full.pt could not be saved.")
    assert "kept in memory" in view.unsaved[0].reason and "Save again" in view.unsaved[0].reason
    assert view.message == "Finished; saved nothing; not saved yet: full.pt."
    assert not (tmp_path / "full.pt").exists()

    assert job.save_again()
    view = job.view()
    assert not view.unsaved and [s.path.name for s in view.saved] == ["full.pt"]
    assert view.message == "Finished; saved full.pt."
    _, info = load_checkpoint(tmp_path / "full.pt")
    assert len(info.history) == 2 and info.extra["status"] == "finished"
    assert len(disk_full_once) == 2


def test_missing_data_is_reported_not_raised(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    view = run(jobs.training_spec("nodata", tmp_path, TINY, tiny_train(dataset="fashion-mnist")))
    assert view.state == jobs.FAILED
    assert "fashion-mnist is not available" in view.error
    assert not view.saved and not (tmp_path / "nodata.pt").exists()


def test_divergence_is_reported_and_nothing_saved(tmp_path):
    view = run(jobs.training_spec("boom", tmp_path, TINY, tiny_train(lr=1e12)))
    assert view.state == jobs.FAILED
    assert "diverged" in view.error and "learning rate" in view.error
    assert not (tmp_path / "boom.pt").exists()


def test_out_of_memory_gets_a_helpful_message(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(backends, "train_models", out_of_memory)  # where a job trains here
    view = run(jobs.training_spec("oom", tmp_path, TINY, tiny_train()))
    assert view.state == jobs.FAILED
    assert "ran out of memory" in view.error and "smaller batch size" in view.error


def test_unexpected_errors_are_captured(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(backends, "train_models", broken)
    view = run(jobs.training_spec("broken", tmp_path, TINY, tiny_train()))
    assert view.state == jobs.FAILED and "KeyError" in view.error and "surprise" in view.error


ALICE, BOB, CAROL = jobs.Owner("a" * 64, "Alice"), jobs.Owner("b" * 64, "Bob"), jobs.Owner("c" * 64, "Carol")


def long_job(tmp_path, name: str, owner: jobs.Owner = jobs.Owner()) -> jobs.TrainingJob:
    """A job that trains until it is stopped (500 epochs)."""
    return jobs.TrainingJob(jobs.training_spec(name, tmp_path, TINY, tiny_train(epochs=500), iw_samples=0, owner=owner))


def test_registry_trains_one_job_at_a_time_on_a_cpu_and_queues_the_next(tmp_path, registry):
    first = registry.submit(long_job(tmp_path, "long", ALICE))
    assert registry.running() == [first] and registry.latest() is first
    second = registry.submit(long_job(tmp_path, "next", BOB))
    assert second.view().queued and registry.waiting() == [second] and registry.running() == [first]
    wait_for(lambda: first.view().eta is not None)
    place = registry.place(second)
    assert (place.position, place.waiting, place.at_least) == (1, 1, False)
    assert place.start_in == pytest.approx(first.view().eta, rel=0.5)  # the running job's ETA (it moves meanwhile)
    first.stop()
    assert first.join(60) and first.view().state == jobs.STOPPED
    # the slot went to the waiting job before join returned
    assert second.view().running and registry.waiting() == [] and registry.place(second) is None
    second.stop()
    assert second.join(60)
    registry.clear()
    assert registry.latest() is None


def test_the_queue_keeps_its_order_and_each_waiting_job_its_position(tmp_path, registry):
    first = registry.submit(long_job(tmp_path, "one", ALICE))
    second = registry.submit(long_job(tmp_path, "two", BOB))
    third = registry.submit(long_job(tmp_path, "three", CAROL))
    assert [registry.place(j).position for j in (second, third)] == [1, 2]
    wait_for(lambda: first.view().eta is not None)
    assert registry.place(third).at_least  # the job ahead of it has no length yet
    first.stop()
    assert first.join(60)
    assert second.view().running and registry.place(third).position == 1
    second.stop()
    assert second.join(60)
    assert third.view().running
    third.stop()
    assert third.join(60)


def test_an_owner_has_one_job_running_and_one_waiting_at_most(tmp_path):
    registry = jobs.JobRegistry(jobs.JobLimits(running=2))
    try:
        mine = registry.submit(long_job(tmp_path, "mine", ALICE))
        my_next = registry.submit(long_job(tmp_path, "my_next", ALICE))
        assert my_next.view().queued  # a slot is free, but its owner has a job running
        with pytest.raises(jobs.JobBusy, match="already have a job waiting"):
            registry.submit(long_job(tmp_path, "my_third", ALICE))
        bobs = registry.submit(long_job(tmp_path, "bobs", BOB))
        assert bobs.view().running and my_next.view().queued  # Bob's later job takes the free slot
        assert registry.place(my_next).position == 1
        mine.stop()
        assert mine.join(60) and my_next.view().running
    finally:
        registry.clear()


def test_a_full_queue_refuses_and_a_waiting_job_can_be_cancelled(tmp_path):
    registry = jobs.JobRegistry(jobs.JobLimits(running=1, waiting=1))
    try:
        first = registry.submit(long_job(tmp_path, "first", ALICE))
        waiting = registry.submit(long_job(tmp_path, "waiting", BOB))
        with pytest.raises(jobs.JobBusy, match=r"the queue is full \(1 job waiting\)"):
            registry.submit(long_job(tmp_path, "refused", CAROL))
        waiting.stop()
        assert waiting.join(0) and waiting.view().state == jobs.CANCELLED and not waiting.active
        assert waiting.view().message == "Cancelled while it waited for a free slot; nothing was trained."
        assert registry.waiting() == [] and registry.running() == [first]
        later = registry.submit(long_job(tmp_path, "later", CAROL))  # the cancelled job freed its place
        first.stop()
        assert first.join(60) and later.view().running
        later.stop()
        assert later.join(60)
        assert not (tmp_path / "waiting.pt").exists() and waiting.view().saved == ()
    finally:
        registry.clear()


def test_two_jobs_never_write_the_same_file(tmp_path, registry):
    first = registry.submit(long_job(tmp_path, "same", ALICE))
    spec = jobs.training_spec("same", tmp_path, TINY, tiny_train(), iw_samples=0, owner=BOB)  # not saved yet: no file
    with pytest.raises(jobs.JobError, match="'same' is being trained by a job of Alice"):
        registry.submit(jobs.TrainingJob(spec))
    with pytest.raises(jobs.JobError, match="'same' is being trained by a job of Alice"):  # an import's question
        registry.check_unclaimed(tmp_path / "same.pt", BOB)
    with pytest.raises(jobs.JobError, match="'same' is being trained by your other job"):
        registry.check_unclaimed(tmp_path / "." / "same.pt", ALICE)  # the same file, however spelled
    registry.check_unclaimed(tmp_path / "other.pt", BOB)
    first.stop()
    assert first.join(60)
    registry.check_unclaimed(tmp_path / "same.pt", BOB)  # its job ended: the file (hers) now says whose it is


def test_a_name_an_import_is_writing_is_refused_to_jobs_and_other_imports_until_it_is_written(tmp_path, registry):
    spec = jobs.training_spec("imported", tmp_path, TINY, tiny_train(), iw_samples=0, owner=BOB)
    with registry.claim(tmp_path / "imported.pt", ALICE) as path:
        assert path == tmp_path / "imported.pt"
        with pytest.raises(jobs.JobError, match="'imported' is being saved by an import right now"):
            registry.submit(jobs.TrainingJob(spec))
        with pytest.raises(jobs.JobError, match="'imported' is being saved by an import right now"):
            with registry.claim(tmp_path / "." / "imported.pt", BOB):
                pass
    job = registry.submit(jobs.TrainingJob(spec))  # released: the name is free again (no file was written)
    job.stop()
    assert job.join(60)
    with pytest.raises(jobs.JobError, match="'same' is being trained by a job of Alice"):
        first = registry.submit(long_job(tmp_path, "same", ALICE))
        try:
            with registry.claim(tmp_path / "same.pt", BOB):
                pass
        finally:
            first.stop()
            first.join(60)


def test_stopping_the_registry_cancels_the_waiting_and_stops_the_running(tmp_path):
    registry = jobs.JobRegistry()
    running = registry.submit(long_job(tmp_path, "running", ALICE))
    waiting = registry.submit(long_job(tmp_path, "waiting", BOB))
    wait_for(lambda: running.view().epoch >= 1)
    registry.clear()
    assert running.view().state == jobs.STOPPED and waiting.view().state == jobs.CANCELLED
    assert (tmp_path / "running.pt").exists() and not (tmp_path / "waiting.pt").exists()


@pytest.mark.parametrize("running, waiting, limit, expected", [
    ([], ["a"], 1, (0.0, False)),  # a free slot
    ([("a", 60.0)], ["b"], 1, (60.0, False)),  # when the running job ends
    ([("a", 60.0)], ["b", "c"], 1, (60.0, True)),  # and after b, whose length is not known yet: at least
    ([("a", 60.0), ("b", 30.0)], ["c"], 2, (30.0, False)),  # the first of two slots to free
    ([("a", 60.0)], ["a"], 2, (60.0, False)),  # a slot is free, but a's own job must end first
    ([("a", 60.0)], ["a", "b"], 2, (0.0, False)),  # b is not held up by a's waiting job
    ([("a", None)], ["b"], 1, (None, False)),  # no ETA yet
    ([("a", None), ("b", 20.0)], ["c"], 2, (20.0, False)),
])
def test_estimated_start_replays_the_queue(running, waiting, limit, expected):
    assert jobs.estimate_start(running, waiting, limit) == expected


def test_a_job_past_the_servers_time_limit_is_stopped_and_saved_and_the_next_one_starts(tmp_path):
    registry = jobs.JobRegistry(jobs.JobLimits(running=1, waiting=1, job_s=12.0))
    try:
        first = registry.submit(long_job(tmp_path, "long", ALICE))
        second = registry.submit(long_job(tmp_path, "next", BOB))
        wait_for(lambda: first.view().eta is not None)
        assert first.view().eta <= 12  # the limit, not the 500 epochs asked for: the queue's estimates use it
        assert first.join(120) and first.view().state == jobs.STOPPED
        assert first.view().message == "Stopped at the server's limit of 12 s per job; saved long.pt."
        assert read_info(tmp_path / "long.pt").extra["status"] == "stopped"
        wait_for(lambda: second.view().running)
        second.stop()
        assert second.join(60) and "limit" not in second.view().message  # stopped by its owner
    finally:
        registry.clear()


def test_limits_come_from_the_environment_with_a_default_per_device(caplog):
    assert jobs.JobLimits.from_env({}, gpu=False) == jobs.JobLimits(running=1, waiting=20)
    assert jobs.JobLimits.from_env({"VAE_MAX_JOB_MINUTES": "30"}, gpu=False).job_s == 1800
    assert jobs.JobLimits.from_env({}, gpu=True).running == jobs.JobLimits.GPU_RUNNING
    assert jobs.JobLimits.from_env({"VAE_MAX_JOBS": "3", "VAE_MAX_QUEUE": "0"}, gpu=False) == jobs.JobLimits(3, 0)
    assert jobs.JobLimits.from_env({"VAE_MAX_JOBS": "0", "VAE_MAX_QUEUE": "lots"}, gpu=False) == jobs.JobLimits(1, 20)
    assert "VAE_MAX_JOBS='0' is not a whole number ≥ 1; using 1" in caplog.text
    assert "VAE_MAX_QUEUE='lots'" in caplog.text


def test_only_its_owner_may_replace_or_delete_a_saved_model(tmp_path):
    view = run(jobs.training_spec("alices", tmp_path, TINY, tiny_train(), iw_samples=0, owner=ALICE))
    path = tmp_path / "alices.pt"
    assert view.state == jobs.FINISHED and view.owner_name == "Alice"
    extra = read_info(path).extra
    assert extra[jobs.OWNER_KEY] == ALICE.key and extra[jobs.OWNER_NAME_KEY] == "Alice"
    assert jobs.model_owner(path) == ALICE
    for owner in (BOB, jobs.Owner()):  # another owner, or none (the CLI's scripts)
        with pytest.raises(jobs.JobError, match="'alices' belongs to Alice; only they can replace or delete it"):
            jobs.training_spec("alices", tmp_path, TINY, tiny_train(), replace_existing=True, owner=owner)
        with pytest.raises(jobs.JobError, match="only they can replace or delete it"):
            jobs.delete_model(path, owner)
    assert path.exists()
    assert jobs.training_spec("alices", tmp_path, TINY, tiny_train(), replace_existing=True, owner=ALICE).runs[0].path == path
    jobs.delete_model(path, ALICE)
    assert not path.exists()
    with pytest.raises(jobs.JobError, match="not there any more"):
        jobs.delete_model(path, ALICE)


def test_a_model_that_records_no_owner_is_anyones(tmp_path):
    view = run(jobs.training_spec("nobodys", tmp_path, TINY, tiny_train(), iw_samples=0))
    assert jobs.OWNER_KEY not in read_info(view.saved[0].path).extra and jobs.model_owner(view.saved[0].path) is None
    jobs.training_spec("nobodys", tmp_path, TINY, tiny_train(), replace_existing=True, owner=BOB)
    jobs.delete_model(tmp_path / "nobodys.pt", BOB)
    assert not (tmp_path / "nobodys.pt").exists()


def test_owner_names_are_one_short_line():
    assert jobs.Owner("k", "  Ada\n  Lovelace ").name == "Ada Lovelace"
    assert jobs.Owner("k", "").name == "someone" and len(jobs.Owner("k", "x" * 500).name) == jobs.MAX_OWNER_NAME


def test_registry_clear_stops_running_jobs(tmp_path, registry):
    job = registry.submit(jobs.TrainingJob(jobs.training_spec("x", tmp_path, TINY, tiny_train(epochs=500), iw_samples=0)))
    registry.clear(timeout=60)
    assert not job.running and job.stop_requested


def test_sweep_trains_its_models_together_and_saves_one_per_beta(tmp_path, monkeypatch):
    calls = []
    real_train = backends.train_models
    monkeypatch.setattr(backends, "train_models", lambda models, *a, **k: calls.append(len(models)) or real_train(models, *a, **k))
    spec = jobs.sweep_spec("sw", tmp_path, TINY, tiny_train(beta=1.0, epochs=2), (0.5, 4.0), iw_samples=0)
    view = run(spec)
    assert calls == [2]
    assert view.state == jobs.FINISHED and view.n_runs == 2 and view.progress == 1.0
    assert [s.path.name for s in view.saved] == ["sw_beta0.5.pt", "sw_beta4.pt"]
    infos = [read_info(s.path) for s in view.saved]
    assert [i.beta for i in infos] == [0.5, 4.0] and [len(i.history) for i in infos] == [2, 2]
    assert infos[0].metrics["kl"] > infos[1].metrics["kl"]
    # the view ends on the last member: its curves, its history and its last snapshot
    assert view.run_index == 1 and [h["epoch"] for h in view.history] == [1, 2] and view.snapshot.epoch == 2
    assert view.history[-1]["test_elbo"] == infos[1].history[-1]["test_elbo"] and view.steps
    # each member recorded its own history: the same moments, its own codes
    first, last = (load_trajectory(s.path) for s in view.saved)
    assert first.epochs[-1] == last.epochs[-1] == 2.0 and np.array_equal(first.epochs, last.epochs)
    assert not np.array_equal(first.mu[-1], last.mu[-1])
    assert np.array_equal(view.trajectory().mu, last.mu)
    with pytest.raises(jobs.JobError, match="already exists"):
        jobs.sweep_spec("sw", tmp_path, TINY, tiny_train(), (4.0,))


def test_a_diverged_sweep_member_fails_the_job_and_the_others_are_saved(tmp_path):
    view = run(jobs.sweep_spec("sw", tmp_path, TINY, tiny_train(), (1.0, 1e38), iw_samples=0))
    assert view.state == jobs.FAILED
    assert view.error.startswith("β = 1e+38: training diverged") and view.error.endswith(
        "; 1 other model(s) of the sweep were saved")
    assert [s.path.name for s in view.saved] == ["sw_beta1.pt"] and not (tmp_path / "sw_beta1e+38.pt").exists()


def test_stopping_a_sweep_saves_every_member_where_it_stopped(tmp_path):
    job = start(jobs.TrainingJob(jobs.sweep_spec("st", tmp_path, TINY, tiny_train(epochs=500), (0.5, 4.0), iw_samples=5)))
    wait_for(lambda: len(job.view().history) >= 1)
    job.stop()
    assert job.join(60)
    view = job.view()
    assert view.state == jobs.STOPPED and [s.status for s in view.saved] == ["stopped", "stopped"]
    lengths = {len(read_info(s.path).history) for s in view.saved}
    assert len(lengths) == 1 and 1 <= lengths.pop() < 500  # trained together: both stopped at the same step


def test_decoded_plane_is_the_decode_grid_on_the_latent_axes():
    flat = slice_plane(2)
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=2, hidden=(16,))).eval()
    assert np.allclose(decode_plane(model, flat, 5).reshape(25, 28, 28),
                       inference.decode(model, inference.grid_latents(5, model.latent_dim)), atol=1e-6)


def test_fixed_examples_and_map_subset():
    labels = np.array([3, 3, 1, 0, 1, 2, 0, 9])
    assert list(example_indices(labels, 5)) == [3, 2, 5, 0, 7]
    assert list(example_indices(labels, 7)) == [3, 2, 5, 0, 7, 1, 4]
    idx = map_indices(10_000, 2000)
    assert len(idx) == 2000 and len(set(idx)) == 2000 and (np.diff(idx) > 0).all()
    assert np.array_equal(idx, map_indices(10_000, 2000))
    assert np.array_equal(map_indices(500, 2000), np.arange(500))


@pytest.mark.parametrize("kind, extra", [("ae", {"sparsity": 0.01}), ("dae", {"noise": "gauss:0.3"}),
                                         ("cvae", {"n_classes": 10})])
def test_every_kind_trains_and_saves_through_a_job(tmp_path, kind, extra):
    config = ModelConfig(kind=kind, latent_dim=2, hidden=(32,), **extra)
    view = run(jobs.training_spec(f"my_{kind}", tmp_path, config, tiny_train(), iw_samples=3))
    assert view.state == jobs.FINISHED and view.error is None, view.error
    assert view.kind == kind and view.snapshot is not None and len(view.snapshot.samples) == 16
    info = read_info(tmp_path / f"my_{kind}.pt")
    assert info.model_config == config and math.isfinite(info.metrics["recon"])
    assert ("elbo" in info.metrics) == (kind == "cvae")  # only a kind with a posterior has an ELBO


def test_the_progress_record_is_fed_by_events_and_a_view_never_changes():
    """What the job's listener makes of a run's events, without a thread: member 1's step goes to its own curve, the
    job's figures follow member 0, and a view taken earlier stays as it was."""
    from vae_core.engine import EpochMetrics, StepMetrics
    from vae_core.trajectory import TrajectoryRecorder

    data = load_dataset("mnist-sample")
    spec = jobs.JobSpec("two", tuple(jobs.RunSpec(TINY, tiny_train(beta=b), Path(f"/nowhere/{b}.pt"), f"β = {b:g}")
                                     for b in (1.0, 4.0)))
    record = jobs.ProgressRecord(jobs.JobView(id="x", title=spec.title, kind="vae", epochs=1,
                                              members=tuple(jobs.MemberView(r.label) for r in spec.runs)))
    before = record.view()
    listener = jobs.ProgressListener(record, data, [TrajectoryRecorder(data, 1, 2) for _ in spec.runs])

    def step(progress: float) -> StepMetrics:
        return StepMetrics(epoch=1, step=4, steps_per_epoch=8, loss=3.0, recon=2.0, kl=1.0, kl_weight=1.0,
                           images_per_s=100.0, elapsed=1.0, eta=1.0, progress=progress)

    listener.step(1, step(0.25))
    view = record.view()
    assert view.members[1].steps == ((0.5, 3.0, 2.0, 1.0),) and view.members[0].steps == () and view.progress == 0.0
    listener.step(0, step(0.5))
    listener.epoch(1, EpochMetrics(1, *[1.0] * 10), build_model(TINY))
    model = build_model(TINY)
    assert listener.frame_due(0, 0.0)
    listener.frame(0, 0.0, model)
    view = record.view()
    assert view.progress == 0.5 and view.epoch == 1 and len(view.members[1].history) == 1
    assert view.members[0].n_frames == 1 and view.trajectory() is not None and view.class_names == data.class_names
    assert before.progress == 0.0 and before.members[1].steps == () and before.members[0].recorder is None
    assert before.class_names == ()
