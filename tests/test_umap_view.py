"""UMAP views (vae_core.umap_view): exact neighbours, the child-process job, storage keyed by content, the
shipped embeddings, and the app's registry that loads before it computes."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vae_core import umap_view
from vae_core.umap_view import UmapJob, UmapParams, embedding_key, exact_knn, file_digest, load_embedding, save_embedding

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"


def clusters(n_per: int = 60, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6, size=(3, d))
    points = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return points, np.repeat(np.arange(3), n_per)


def neighbour_agreement(embedding: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours in the embedding that have its label."""
    idx, _ = exact_knn(embedding, k + 1)
    return float((labels[idx[:, 1:]] == labels[:, None]).mean())


def wait_running(job: UmapJob) -> None:
    """Until the child has reported (it lowers its priority before its first report)."""
    deadline = time.monotonic() + 120
    while job.status().message == "starting":
        assert time.monotonic() < deadline, "the UMAP child never reported"
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------------------------
# Neighbours
# --------------------------------------------------------------------------------------------------------------


def test_exact_knn_matches_brute_force_across_chunks():
    points = np.random.default_rng(1).normal(size=(230, 4)).astype(np.float32)
    reports = []
    idx, dist = exact_knn(points, 7, lambda done, n: reports.append((done, n)), chunk=64)
    full = np.linalg.norm(points[:, None].astype(np.float64) - points[None], axis=2)
    expected = np.sort(full, axis=1)[:, :7]
    np.testing.assert_allclose(dist, expected, atol=1e-4)
    assert (idx[:, 0] == np.arange(230)).all()
    np.testing.assert_allclose(full[np.arange(230)[:, None], idx], dist, atol=1e-4)
    assert reports == [(64, 230), (128, 230), (192, 230), (230, 230)]  # progress per chunk


def test_exact_knn_puts_each_point_first_among_its_duplicates():
    points = np.zeros((5, 3), np.float32)  # all at one spot: every distance is 0
    idx, dist = exact_knn(points, 3)
    assert (idx[:, 0] == np.arange(5)).all() and (dist == 0).all()


# --------------------------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------------------------


def test_fit_reports_each_phase_in_order_and_the_bar_moves_before_the_layout():
    points, labels = clusters(n_per=400)
    reports = []
    embedding = umap_view.fit_umap(points, UmapParams(n_epochs=50), lambda p, m: reports.append((p, m)))
    progress = [p for p, _ in reports]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] == 1.0
    phases = [m.split(":")[0].split(" (")[0] for _, m in reports]
    assert list(dict.fromkeys(phases)) == ["finding neighbours", "building the neighbour graph",
                                           "optimising the layout"]
    searching = [p for p, m in reports if m.startswith("finding neighbours: ")]
    assert searching and 0 < searching[-1] <= umap_view.KNN_SHARE  # no longer stuck at 0 while neighbours are found
    assert reports[-1][1] == "optimising the layout: epoch 50 of 50"
    assert neighbour_agreement(embedding, labels) > 0.95


def test_umap_job_fits_in_a_low_priority_child():
    points, labels = clusters()
    saved = []
    job = UmapJob(points, UmapParams(n_neighbors=10, n_epochs=30), on_done=saved.append)
    assert job.status().state == "pending"
    job.start()
    assert job.status().state == "running" and job.pid not in (None, os.getpid())  # start() returns at once
    wait_running(job)
    try:
        child_nice = os.getpriority(os.PRIO_PROCESS, job.pid)
    except ProcessLookupError:
        child_nice = None  # finished already: the phases below still show it ran
    if child_nice is not None:
        assert child_nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + umap_view.NICE)
    seen = []
    while not job.wait(timeout=0.05):
        seen.append(job.status())
    final = job.status()
    assert final.state == "done", final.message
    assert final.progress == 1.0 and job.embedding.shape == (180, 2) and np.isfinite(job.embedding).all()
    assert saved and saved[0] is job.embedding
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)
    assert neighbour_agreement(job.embedding, labels) > 0.95


def test_umap_job_reports_bad_points_as_a_message():
    job = UmapJob(np.full((50, 4), np.nan, np.float32)).start()
    assert job.wait(timeout=120)
    status = job.status()
    assert status.state == "failed" and status.message.startswith("UMAP failed") and "NaN" in status.message
    assert job.embedding is None


def test_umap_job_fails_with_a_reason_when_its_child_dies():
    points, _ = clusters(n_per=2000)  # long enough to be killed mid-way
    job = UmapJob(points).start()
    wait_running(job)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(timeout=60)
    status = job.status()
    assert status.state == "failed" and "ended unexpectedly" in status.message and "-9" in status.message


def test_saving_failure_does_not_fail_the_job():
    def full_disk(embedding: np.ndarray) -> None:
        raise OSError("No space left on device")

    points, _ = clusters()
    job = UmapJob(points, UmapParams(n_neighbors=10, n_epochs=10), on_done=full_disk).start()
    assert job.wait(timeout=120)
    status = job.status()
    assert status.state == "done" and "not saved" in status.message and "No space left" in status.message
    assert job.embedding.shape == (180, 2)


_ORPHAN_SCRIPT = """
import sys, time
import numpy as np
from vae_core.umap_view import UmapJob
if __name__ == "__main__":
    rng = np.random.default_rng(0)
    job = UmapJob(rng.normal(size=(20000, 20)).astype(np.float32)).start()
    while job.status().message == "starting":
        time.sleep(0.05)
    print(job.pid, flush=True)
    time.sleep(600)
"""


def test_umap_child_exits_when_the_server_dies(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(_ORPHAN_SCRIPT)
    server = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int(server.stdout.readline())
        os.kill(child, 0)  # alive while its parent is
    finally:
        server.kill()  # SIGKILL: no atexit, no multiprocessing clean-up; only the child's own watch can help
        server.wait()
    deadline = time.monotonic() + 60
    while True:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the UMAP child outlived its parent"
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------------------


def test_key_changes_with_checkpoint_images_and_settings():
    images = np.zeros((4, 1, 28, 28), np.uint8)
    key = embedding_key("a" * 64, images)
    assert key == embedding_key("a" * 64, images.copy())
    other_images = images.copy()
    other_images[2, 0, 5, 5] = 1
    assert len({key, embedding_key("b" * 64, images), embedding_key("a" * 64, other_images),
                embedding_key("a" * 64, images[:3]), embedding_key("a" * 64, images, UmapParams(seed=1))}) == 5


def test_file_digest_follows_the_bytes(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"weights" * 1000)
    b.write_bytes(b"weights" * 999 + b"weightz")
    assert file_digest(a) == file_digest(tmp_path / "a.pt") != file_digest(b)


def test_saved_embedding_loads_only_for_its_key(tmp_path):
    embedding = np.random.default_rng(0).normal(scale=5, size=(300, 2)).astype(np.float32)
    path = tmp_path / "deep" / "e.npz"
    save_embedding(path, "k1", embedding, model="m.pt")
    assert [p.name for p in path.parent.iterdir()] == ["e.npz"]  # no temp file left behind
    loaded = load_embedding(path, "k1")
    np.testing.assert_allclose(loaded, embedding, atol=0.01)  # float16 on disk
    assert loaded.dtype == np.float32
    assert load_embedding(path, "k2") is None  # made for another checkpoint or data: never shown
    assert load_embedding(tmp_path / "missing.npz", "k1") is None
    path.write_bytes(path.read_bytes()[:100])
    assert load_embedding(path, "k1") is None  # a damaged file is recomputed, not a crash


def _shipped_wide_models() -> list[Path]:
    from vae_core.checkpoint import read_info

    return [p for p in sorted(SHIPPED.glob("*.pt")) if read_info(p).model_config.latent_dim > 2]


@pytest.mark.parametrize("checkpoint", _shipped_wide_models(), ids=lambda p: p.stem)
def test_every_shipped_model_with_d_over_2_ships_a_current_embedding(checkpoint):
    from vae_core import inference
    from vae_core.checkpoint import load_checkpoint
    from vae_core.data import DatasetUnavailable, load_test_set

    model, info = load_checkpoint(checkpoint)
    try:
        data = load_test_set(info.dataset)
    except DatasetUnavailable as exc:
        pytest.skip(str(exc))
    path = umap_view.shipped_path(checkpoint)
    assert path.parent == SHIPPED / "umap"
    # the key ties it to these checkpoint bytes and test images: retraining without rebuilding fails here
    embedding = load_embedding(path, embedding_key(file_digest(checkpoint), data.test_images.numpy()))
    assert embedding is not None, f"{path} is missing or stale: run python -m vae_core.umap_view checkpoints"
    assert embedding.shape == (len(data.test_images), 2)
    # a picture of the model's classes, not noise: neighbours in the plane share a class nearly as often as
    # neighbours in the latent space do, and far more often than random points (1 in the number of classes). On
    # MNIST the plane keeps over 90 % of it; dSprites' classes are its shapes, the factor a VAE holds least (the codes
    # of dsprites_beta4 and _beta16 hold little of it: 0.40-0.41 in the plane, chance 0.333), and the plane of
    # dsprites_beta1 keeps 84 % (0.447 against 0.535)
    labels = data.test_labels.numpy()
    mu = inference.encode(model, data.test_images)[0]
    in_plane, in_latent = neighbour_agreement(embedding, labels), neighbour_agreement(mu, labels)
    assert in_plane > (0.9 if info.dataset.startswith("mnist") else 0.8) * in_latent
    assert in_plane > 1 / len(data.class_names)


# --------------------------------------------------------------------------------------------------------------
# The app's registry
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def views(monkeypatch, tmp_path):
    from ui import latent_views

    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path / "trained"))
    latent_views._umap_registry.clear()
    latent_views._umap_key.clear()
    yield latent_views
    latent_views._umap_registry.clear()


def _selection(checkpoint: Path, data_name: str):
    from ui.shared import Selection
    from vae_core import inference
    from vae_core.checkpoint import load_checkpoint
    from vae_core.data import DatasetUnavailable, load_test_set

    model, info = load_checkpoint(checkpoint)
    try:
        data = load_test_set(data_name)
    except DatasetUnavailable as exc:
        pytest.skip(str(exc))
    mu, sigma = inference.encode(model, data.test_images)
    return Selection(info=info, model=model, data=data, data_notice=None, mu=mu, sigma=sigma)


def test_app_loads_a_shipped_embedding_without_computing(views):
    shipped = [p for p in _shipped_wide_models() if p.stem == "mnist_z20"]
    if not shipped:
        pytest.skip("mnist_z20 is not shipped")
    job = views.umap_job(_selection(shipped[0], "mnist"))
    status = job.status()
    assert status.state == "done" and job.pid is None and "checkpoints/umap/mnist_z20.npz" in status.message
    assert job.embedding.shape == (10_000, 2)


def test_app_computes_a_user_model_once_and_reloads_it_after_a_restart(views, tmp_path):
    source = [p for p in _shipped_wide_models() if p.stem == "mnist_z10_beta1"]
    if not source:
        pytest.skip("mnist_z10_beta1 is not shipped")
    user_model = tmp_path / "trained" / "my_model.pt"
    user_model.parent.mkdir()
    shutil.copy(source[0], user_model)
    sel = _selection(user_model, "mnist-sample")  # 1,000 test images keep the fit short
    job = views.umap_job(sel)
    assert job.pid is not None  # nothing stored for this model and data: computed
    assert views.umap_job(sel) is job  # one job per content, shared
    assert job.wait(timeout=300) and job.status().state == "done", job.status().message
    stored = list(views.umap_cache_dir().glob("*.npz"))
    assert len(stored) == 1

    views._umap_registry.clear()  # a restarted server
    again = views.umap_job(sel)
    assert again.pid is None and again.status().state == "done" and "loaded from" in again.status().message
    np.testing.assert_allclose(again.embedding, job.embedding, atol=0.02)

    # retrained under the same name: other bytes, so the stored picture is not reused
    shutil.copy(SHIPPED / "mnist_z10_beta4.pt", user_model)
    os.utime(user_model, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse clocks
    views._umap_registry.clear()
    retrained = views.umap_job(_selection(user_model, "mnist-sample"))
    assert retrained.pid is not None
    assert retrained.wait(timeout=300) and retrained.status().state == "done"
    assert len(list(views.umap_cache_dir().glob("*.npz"))) == 2
