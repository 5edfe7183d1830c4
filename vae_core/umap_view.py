"""UMAP views of a latent space: fitted in a low-priority child process, stored on disk keyed by content.

UMAP has no cheap inverse, so it is only a view (clicks are decoded on a plane, see `projection`).

Cold, a UMAP fit of 10,000 points spent ~90 % of its time compiling numba kernels (nn_descent alone took
45–80 s of the 2-core development machine, and numba cannot cache it), all while holding the GIL, so the app
stalled when it ran in a server thread. Here the neighbours are found exactly by scikit-learn (10,000 × 20
takes about a second, asked in chunks, so progress moves), UMAP is handed them as `precomputed_knn`, its
remaining kernels are cached on disk by numba, and the fit runs in a child process at a low priority with one
thread, which exits when the server does.

Embeddings are stored as compressed .npz files whose `key` names what they were made from: the checkpoint
file's bytes, the test images' bytes and the UMAP settings (`embedding_key`), so a retrained model or other
data never gets a stale picture. `python -m vae_core.umap_view FOLDER` builds the embeddings that ship next
to the checkpoints of FOLDER (in FOLDER/umap/<model>.npz).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .atomic import write_atomic

_ROOT = Path(__file__).resolve().parent.parent
KEY_FORMAT = "umap-exact-knn-1"  # part of every key: changing how embeddings are made invalidates the stored ones
SHIPPED_SUBDIR = "umap"
NICE = 10  # the server's threads win the CPU whenever both want it
PARENT_POLL_S = 1.0
KNN_CHUNK = 1024  # rows of the distance matrix at a time: 1024 × 10,000 float64 is 80 MB
# Shares of the progress bar: the layout epochs are most of a warm run's time.
KNN_SHARE, GRAPH_SHARE = 0.15, 0.1
# UMAP's numba kernels that it leaves uncached (module, name): compiled in every new process otherwise (~10 s).
_UNCACHED_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)


@dataclass(frozen=True)
class UmapParams:
    n_neighbors: int = 15
    min_dist: float = 0.1
    n_epochs: int = 200
    seed: int = 0


def exact_knn(points: np.ndarray, k: int, report: Callable[[int, int], None] | None = None,
              chunk: int = KNN_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k) int32, Euclidean distances (N, k) float32) of each point's k nearest points, itself
    first, nearest first: scikit-learn's exact (brute-force) search, asked by chunks of rows so that
    `report(rows done, N)` can follow it."""
    from sklearn.neighbors import NearestNeighbors  # slow to import: only paid when neighbours are asked for

    x = np.asarray(points, np.float64)
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    search = NearestNeighbors(algorithm="brute").fit(x)
    indices = np.empty((n, k), np.int32)
    distances = np.empty((n, k), np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dist, near = search.kneighbors(x[start:stop], n_neighbors=k)
        rows = np.arange(start, stop)
        # A point is its own first neighbour even among duplicates (which may come before it): drop it where it
        # came (or, not found, the farthest), then put it first at distance 0.
        others = near != rows[:, None]
        others[others.all(axis=1), -1] = False
        indices[start:stop, 0], distances[start:stop, 0] = rows, 0.0
        indices[start:stop, 1:] = near[others].reshape(-1, k - 1)
        distances[start:stop, 1:] = dist[others].reshape(-1, k - 1)
        if report is not None:
            report(stop, n)
    return indices, distances


def _cache_umap_kernels() -> None:
    for module, name in _UNCACHED_KERNELS:
        kernel = getattr(importlib.import_module(module), name, None)
        try:
            kernel.enable_caching()
        except (AttributeError, RuntimeError):  # renamed in another UMAP, or nowhere writable: only slower
            pass


class _EpochSink(io.TextIOBase):
    """Stands in for tqdm's output file: UMAP reports its layout epochs only through a tqdm bar."""

    _COUNT = re.compile(r"(\d+)/(\d+)")

    def __init__(self, report: Callable[[int, int], None]) -> None:
        super().__init__()
        self._report = report

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        found = self._COUNT.findall(text)
        if found:
            self._report(int(found[-1][0]), int(found[-1][1]))
        return len(text)


def fit_umap(points: np.ndarray, params: UmapParams = UmapParams(),
             report: Callable[[float, str], None] = lambda progress, message: None) -> np.ndarray:
    """(N, 2) float32 UMAP of `points`, reporting (progress 0..1, phase) as it goes. Runs wherever it is
    called; `UmapJob` calls it in a child process."""
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or len(points) < 3:
        raise ValueError(f"UMAP needs at least 3 points in an (N, d) array, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("the points contain NaN or infinite values")
    k = min(params.n_neighbors, len(points) - 1)
    report(0.0, "finding neighbours")
    knn = exact_knn(points, k, lambda done, n: report(KNN_SHARE * done / n, f"finding neighbours: {done:,} of {n:,}"))
    report(KNN_SHARE, "building the neighbour graph (the first run also compiles UMAP)")

    import umap  # slow to import (numba, scikit-learn): only paid when a UMAP is asked for

    _cache_umap_kernels()
    layout_start = KNN_SHARE + GRAPH_SHARE

    def epoch(n: int, total: int) -> None:
        report(layout_start + (1.0 - layout_start) * n / max(total, 1), f"optimising the layout: epoch {n} of {total}")

    reducer = umap.UMAP(
        n_components=2, n_neighbors=k, min_dist=params.min_dist, n_epochs=params.n_epochs,
        random_state=params.seed, precomputed_knn=(*knn, None),
        tqdm_kwds={"file": _EpochSink(epoch), "disable": False, "bar_format": "{n}/{total}", "mininterval": 0.2},
    )
    with warnings.catch_warnings():
        # "n_jobs overridden by random_state" (the seed is wanted) and "no search index" (no transform is needed)
        warnings.simplefilter("ignore")
        return reducer.fit_transform(points).astype(np.float32)


def _exit_with_parent(parent: int) -> None:
    # An orphan is re-parented, so its parent id changes. (PR_SET_PDEATHSIG would fire when the thread that
    # started the child ends, and a Streamlit script thread ends after every rerun.)
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _npy(array: np.ndarray) -> bytes:
    """.npy bytes, for a pipe: np.save itself would ask a pipe for its file position."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _child_main() -> None:
    """The child's side of `UmapJob`: points as .npy on stdin; JSON lines on stdout, then the embedding as .npy."""
    try:
        os.nice(NICE)
    except OSError:
        pass
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes to stderr, not into the protocol

    def send(**message) -> None:
        channel.write(json.dumps(message).encode() + b"\n")
        channel.flush()

    try:
        points = np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False)  # np.load seeks
        params = UmapParams(**json.loads(sys.argv[2]))
        embedding = fit_umap(points, params, lambda progress, message: send(kind="progress", progress=progress,
                                                                            message=message))
    except Exception as exc:  # the parent shows it instead of the map
        send(kind="error", message=f"{type(exc).__name__}: {exc}")
        return
    send(kind="done")
    channel.write(_npy(embedding))
    channel.flush()


@dataclass(frozen=True)
class JobStatus:
    state: str  # "pending" | "running" | "done" | "failed"
    progress: float  # 0..1
    message: str
    elapsed: float


class UmapJob:
    """A 2-D UMAP of `points` fitted once in a child process (`python -m vae_core.umap_view --fit`); poll
    `status()`, read `embedding` when done.

    `on_done(embedding)` runs in the job's relay thread once the fit succeeds (the app stores it there);
    if it raises OSError the job still succeeds and says what could not be saved.
    """

    def __init__(self, points: np.ndarray, params: UmapParams = UmapParams(),
                 on_done: Callable[[np.ndarray], None] | None = None) -> None:
        self.points = np.asarray(points, np.float32)
        self.params = params
        self.embedding: np.ndarray | None = None
        self.error: str | None = None
        self._on_done = on_done
        self._lock = threading.Lock()
        self._relay: threading.Thread | None = None
        self._process = None
        self._state, self._progress, self._message = "pending", 0.0, "not started"
        self._started = self._finished = 0.0

    @classmethod
    def loaded(cls, embedding: np.ndarray, source: str) -> "UmapJob":
        """A finished job holding an embedding read from `source`."""
        job = cls(np.empty((0, 2), np.float32))
        job.embedding = np.asarray(embedding, np.float32)
        job._state, job._progress, job._message = "done", 1.0, f"loaded from {source}"
        return job

    def start(self) -> "UmapJob":
        with self._lock:
            if self._state == "pending":
                # A fresh interpreter, not multiprocessing (nor concurrent.futures' process pool, built on it): under
                # Streamlit, sys.modules["__main__"] is the page script while it runs, which a spawned child would run
                # again, and fork is unsafe in a threaded server. The thread limits are read when the libraries load,
                # so they go in the child's environment. The relay is a daemon thread, so that a server's exit never
                # waits for a fit (the child notices its parent is gone and exits).
                env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                       "MKL_NUM_THREADS": "1",
                       "PYTHONPATH": os.pathsep.join(filter(None, (str(_ROOT), os.environ.get("PYTHONPATH"))))}
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "vae_core.umap_view", "--fit", json.dumps(asdict(self.params))],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                self._state, self._started, self._message = "running", time.monotonic(), "starting"
                self._relay = threading.Thread(target=self._listen, name="umap-relay", daemon=True)
                self._relay.start()
        return self

    @property
    def pid(self) -> int | None:
        """The child process's id while it has one."""
        return self._process.pid if self._process is not None else None

    def status(self) -> JobStatus:
        with self._lock:
            end = self._finished or time.monotonic()
            return JobStatus(self._state, self._progress, self._message, end - self._started if self._started else 0.0)

    def wait(self, timeout: float | None = None) -> bool:
        """True when the job has finished (done or failed) within `timeout` seconds."""
        if self._relay is not None:
            self._relay.join(timeout)
        return self.status().state in ("done", "failed")

    def _set(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, f"_{name}", value)

    def _listen(self) -> None:
        process = self._process
        try:
            process.stdin.write(_npy(self.points))
            process.stdin.close()
            while line := process.stdout.readline():
                message = json.loads(line)
                if message["kind"] == "progress":
                    self._set(progress=message["progress"], message=message["message"])
                elif message["kind"] == "done":
                    self._succeed(np.load(io.BytesIO(process.stdout.read()), allow_pickle=False))
                    return
                else:
                    self._fail(message["message"])
                    return
            self._fail(f"the UMAP process ended unexpectedly (exit code {process.wait()})")
        except (OSError, ValueError) as exc:  # a broken pipe or a garbled message: that child is of no more use
            process.kill()
            self._fail(f"the UMAP process ended unexpectedly ({type(exc).__name__}: {exc})")
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()
            process.stdout.close()
            process.wait()

    def _fail(self, error: str) -> None:
        self.error = error
        self._set(state="failed", message=f"UMAP failed: {error}", finished=time.monotonic())

    def _succeed(self, embedding: np.ndarray) -> None:
        self.embedding = embedding
        message = f"done in {time.monotonic() - self._started:.1f} s"
        if self._on_done is not None:
            try:
                self._on_done(embedding)
            except OSError as exc:
                message += f" (not saved for next time: {exc})"
        self._set(state="done", progress=1.0, message=message, finished=time.monotonic())


# --------------------------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------------------------


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedding_key(checkpoint_digest: str, test_images: np.ndarray, params: UmapParams = UmapParams()) -> str:
    """What an embedding of a model's test-set μ depends on, as one hex string: the checkpoint file's digest,
    the test images themselves (uint8 (N, C, H, W), so machine-independent, unlike μ's last bits) and the UMAP
    settings. The images are keyed in display layout, as greyscale ones were before images had a channel axis, so
    the shipped embeddings' keys still match."""
    from .data import to_display  # here: the UMAP child process imports this module and needs no torch

    images = np.ascontiguousarray(to_display(np.asarray(test_images, np.uint8)))
    spec = {"format": KEY_FORMAT, "checkpoint": checkpoint_digest, "images_shape": list(images.shape),
            "images": hashlib.sha256(images.tobytes()).hexdigest(), "params": asdict(params)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def save_embedding(path: str | os.PathLike, key: str, embedding: np.ndarray, **meta: str) -> None:
    """Write compressed (float16: ~0.01 units on a layout ~20 units wide, finer than a pixel) and atomically,
    so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, key=np.array(key), embedding=np.asarray(embedding, np.float16),
                        **{k: np.array(v) for k, v in meta.items()})
    write_atomic(path, buffer.getbuffer())


def load_embedding(path: str | os.PathLike, key: str) -> np.ndarray | None:
    """The (N, 2) float32 embedding stored at `path` for `key`; None when there is none, it was made for
    something else (another key) or the file is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            embedding = stored["embedding"].astype(np.float32)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    return embedding if embedding.ndim == 2 and embedding.shape[1] == 2 and np.isfinite(embedding).all() else None


def shipped_path(checkpoint: str | os.PathLike) -> Path:
    """Where the embedding shipped with a checkpoint lives: beside it, in umap/<model name>.npz (beside the file
    a link points to: the key tells whether it fits)."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent / SHIPPED_SUBDIR / f"{checkpoint.stem}.npz"


def build_shipped(folder: str | os.PathLike, data_dir: str | None = None, log=print) -> list[Path]:
    """Fit and store the embedding of every checkpoint in `folder` (not its subfolders) with d > 2, on its
    dataset's full test split. Returns the files written."""
    from .checkpoint import load_checkpoint
    from .data import load_test_set
    from .inference import encode

    written = []
    for checkpoint in sorted(Path(folder).glob("*.pt")):
        model, info = load_checkpoint(checkpoint)
        if info.model_config.latent_dim <= 2:
            continue
        data = load_test_set(info.dataset, data_dir, download=False, sha=info.dataset_sha)
        images = data.test_images.numpy()
        started = time.monotonic()
        embedding = fit_umap(encode(model, data.test_images)[0])
        out = shipped_path(checkpoint)
        save_embedding(out, embedding_key(file_digest(checkpoint), images), embedding, model=checkpoint.name,
                       dataset=info.dataset, test_images=str(len(images)))
        log(f"{out}: {len(images):,} test images of {info.dataset} ({data.source}), "
            f"fitted in {time.monotonic() - started:.1f} s")
        written.append(out)
    return written


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fit"]:
        _child_main()
    elif len(sys.argv) in (2, 3):
        build_shipped(*sys.argv[1:])
    else:
        sys.exit("usage: python -m vae_core.umap_view CHECKPOINT_FOLDER [DATA_DIR]")
