"""Shared fixtures: real data when present, a running app, and Debian's Chromium through Playwright."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from local_ray import RAY_CLI, RayCluster

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VAE_DATA_DIR") or ROOT.parent / "shared" / "data")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SHIPPED = ROOT / "checkpoints"
# No test may download anything (with a network, torchvision would fill ./data): the app and the CLI under
# test see the bundled test splits, the embedded sample, or the full data named by VAE_DATA_DIR.
os.environ["VAE_OFFLINE"] = "1"
# Nor may a test see the user's own imported datasets (<repo>/datasets/): the store starts empty, and tests that
# import or stand in for imported sets (the `imported_sets` fixture) fill one of their own.
os.environ["VAE_DATASETS_DIR"] = tempfile.mkdtemp(prefix="vae-test-datasets-")


BROWSER_FIXTURES = {"chromium", "browser_page", "streamlit_server_factory", "runtime_context", "server"}
RAY_FIXTURES = {"ray_cluster", "ray_cluster_factory"}
ORT_FILES = ROOT / "static" / "ort"


def pytest_collection_modifyitems(items) -> None:
    """Marks what needs Chromium (`browser`), the full data (`full_data`) or a local Ray cluster (`ray`), so
    `-m "not browser and not ray"` runs the fast subset; the marks follow the fixtures a test uses, so a new test is
    marked without anyone remembering to."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if "shared_data" in fixtures:
            item.add_marker(pytest.mark.full_data)
        if fixtures & RAY_FIXTURES:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full MNIST / Fashion-MNIST in torchvision's layout, or a skip saying why."""
    if not (SHARED_DATA / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        pytest.skip(f"full MNIST not found at {SHARED_DATA} (set VAE_DATA_DIR; .ci/run points it at ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def imported_sets(tmp_path, monkeypatch):
    """An empty store of imported datasets ($VAE_DATASETS_DIR) the test fills with generated sets
    (`colour_sets.Store.add`)."""
    from colour_sets import Store
    from vae_core.datasets import imported
    from vae_core.importer import DATASETS_DIR_ENV

    monkeypatch.setenv(DATASETS_DIR_ENV, str(tmp_path / "store"))
    imported._load.cache_clear()
    yield Store(tmp_path / "store")
    imported._load.cache_clear()


def shipped_checkpoint(name: str) -> Path:
    path = SHIPPED / f"{name}.pt"
    if not path.exists():
        pytest.skip(f"shipped checkpoint {path.name} is missing")
    return path


def _data_env() -> dict[str, str]:
    """The app under test reads the same full data as the tests, also when VAE_DATA_DIR is not set."""
    return {"VAE_DATA_DIR": str(SHARED_DATA)} if (SHARED_DATA / "MNIST" / "raw").is_dir() else {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `streamlit` as `python -m streamlit` runs it, after asking Python to write every thread's stack to stderr (the
# server's log) on SIGUSR1: a test that finds the server stuck can say where (StreamlitServer.threads).
_DUMPABLE_STREAMLIT = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
                       "sys.argv[0] = 'streamlit'; from streamlit.web.cli import main; main()")


class StreamlitServer:
    """`streamlit run app.py` of `root` (this checkout unless told) on a free loopback port, for real-browser tests."""

    def __init__(self, env: dict[str, str] | None = None, root: Path = ROOT) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"streamlit-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DUMPABLE_STREAMLIT, "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=root, env={**_data_env(), **os.environ, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    # Another process may have taken the port between _free_port and the bind, and answer the
                    # health check: the server is ours once its own output names the port.
                    if r.status == 200 and f"127.0.0.1:{self.port}" in self.output():
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"streamlit did not start: {self.output()}")

    def output(self, last: int | None = 3000) -> str:
        """The server's output so far (its `last` characters; None: all of it)."""
        # A reader of its own: seeking the server's stdout would move the offset the server writes at.
        text = Path(self.log.name).read_text(errors="replace")
        return text if last is None else text[-last:]

    def threads(self) -> str:
        """Every thread's stack in the server now, as Python's faulthandler writes it to the log."""
        before = len(self.output(None))
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        return self.output(None)[before:][-12_000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def streamlit_server_factory():
    servers: list[StreamlitServer] = []

    def start(env: dict[str, str] | None = None) -> StreamlitServer:
        servers.append(StreamlitServer(env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _ray_or_skip() -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
    if not RAY_CLI.exists():
        pytest.skip(f"Ray's command line is not at {RAY_CLI}")


@pytest.fixture(scope="session")
def ray_cluster():
    """A head (1 CPU) and one worker node (1 CPU) on 127.0.0.1 for the session, stopped at its end; or a skip
    saying why."""
    _ray_or_skip()
    cluster = RayCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ray_cluster_factory():
    """Start clusters of one's own (for a test that kills one); every one is stopped at the test's end."""
    _ray_or_skip()
    clusters: list[RayCluster] = []

    def start(**kwargs) -> RayCluster:
        clusters.append(RayCluster(**kwargs))
        return clusters[-1]

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium under Playwright, started once per session (Playwright's sync API allows one at a time),
    or a skip saying why."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def browser_runtime() -> Path:
    """static/ort/, where ./run.sh puts onnxruntime-web (npm ci from package-lock.json), or a skip saying why."""
    if not (ORT_FILES / "ort.wasm.bundle.min.mjs").exists():
        pytest.skip(f"onnxruntime-web is not installed in {ORT_FILES} (./run.sh installs it with npm ci)")
    return ORT_FILES


@pytest.fixture
def browser_page(chromium):
    """A page in a fresh browser context (its own storage and caches)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


@pytest.fixture
def disk_full_once(monkeypatch) -> list:
    """The app's next checkpoint save fails as on a full disk (ENOSPC), later ones succeed; returns the paths tried."""
    import errno

    from vae_core import jobs

    real_save, calls = jobs.save_checkpoint, []

    def full_once(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(jobs, "save_checkpoint", full_once)
    return calls


@pytest.fixture(scope="session")
def app_checkpoints(tmp_path_factory) -> SimpleNamespace:
    """A checkpoint folder for app tests with a d = 2 model (`z2`) and a d > 2 one (`wide`): the shipped
    mnist_z2 / mnist_z20 when present, else tiny models trained here on mnist-sample with the CLI."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for key, shipped, dim in (("z2", "mnist_z2", 2), ("wide", "mnist_z20", 3)):
        target = folder / f"{shipped if (SHIPPED / f'{shipped}.pt').exists() else f'tiny_z{dim}'}.pt"
        if (SHIPPED / f"{shipped}.pt").exists():
            target.symlink_to(SHIPPED / f"{shipped}.pt")
        else:
            subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "mnist-sample", "--epochs", "1",
                            "--latent-dim", str(dim), "--hidden", "64", "--out", str(target)],
                           cwd=ROOT, check=True, capture_output=True)
        paths[key] = target
    return SimpleNamespace(folder=folder, **paths)


@pytest.fixture
def page_app(monkeypatch, app_checkpoints):
    """AppTest of a page over the `app_checkpoints` folder, with a model picked: the d = 2 one unless told."""
    import ui.shared
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(app_checkpoints.folder))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", app_checkpoints.folder)

    def make(page: str, model: str | None = None, timeout: float = 90) -> AppTest:
        at = AppTest.from_file(page, default_timeout=timeout)
        at.session_state["selected_model"] = model or app_checkpoints.z2.stem
        return at

    return make


@pytest.fixture
def media(monkeypatch):
    """Bytes behind a media URL of the last run (st.image / st.download_button), from AppTest's in-memory store; a
    deferred download (a download button's `deferred_file_id`) is made as a click would make it."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.testing.v1 import app_test as app_test_module

    managers: list[MediaFileManager] = []

    class Recording(MediaFileManager):
        def __init__(self, storage, *args, **kwargs) -> None:
            super().__init__(storage, *args, **kwargs)
            self.storage = storage
            managers.append(self)

    monkeypatch.setattr(app_test_module, "MediaFileManager", Recording)

    def content(url_or_deferred_id: str) -> bytes:
        manager = managers[-1]
        url = url_or_deferred_id if "/" in url_or_deferred_id else manager.execute_deferred(url_or_deferred_id)
        return manager.storage.get_file(url.rsplit("/", 1)[1]).content

    return content


def served_file(url: str, timeout: float = 180.0) -> Path:
    """The file behind a live-plane URL (app/static/...), once the server's background writer has written it."""
    path = ROOT / "static" / url.removeprefix("app/static/")
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout:.0f} s"
        time.sleep(0.1)
    return path


def plane_points(data: dict) -> SimpleNamespace:
    """The points a plane was sent, read from the static file its data names (laid out as ui.latent_plane.points_file
    writes it): xy (n, 2), indices (n,) or None, labels (n,), highlight (n,) bool or None."""
    import numpy as np

    meta = data["points"]
    raw = (ROOT / "static" / meta["url"].removeprefix("app/static/")).read_bytes()
    n, at, out = meta["n"], 0, {}
    for name, dtype, count, present in (("xy", "<f4", 2 * meta["n"], True), ("indices", "<i4", n, meta["indices"]),
                                        ("labels", np.uint8, n, True), ("highlight", np.uint8, n, meta["highlight"])):
        if not present:
            out[name] = None
            continue
        a = np.frombuffer(raw, dtype, count, at)
        at += a.nbytes
        out[name] = a.reshape(-1, 2) if name == "xy" else a.astype(bool) if name == "highlight" else a
    assert at == len(raw), "the points file holds more than its data says"
    return SimpleNamespace(**out)


def plane_data(at, key: str = "lm_plane") -> dict:
    """What a page sent to the live latent-plane component mounted with `key` (AppTest cannot run its JavaScript)."""
    found = [e.proto for e in at.get("bidi_component") if e.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"no latent plane {key!r}"
    return json.loads(found[0].json)


@pytest.fixture()
def small_dsprites(monkeypatch, request):
    """dSprites served as a few images rendered when read (`request.param` or 50 to train, 30 to test), so a test
    neither makes nor unpacks the 377 MB grid."""
    import numpy as np

    from vae_core import dsprites
    from vae_core.datasets import dsprites as source

    class RenderedRows:
        def __getitem__(self, rows) -> np.ndarray:
            return dsprites._packed(dsprites.from_flat(np.asarray(rows)))

    train, test = getattr(request, "param", (50, 30))
    source._load.cache_clear()
    monkeypatch.setattr(source, "TRAIN_SIZE", {64: train, 32: train})
    monkeypatch.setattr(source, "TEST_SIZE", test)
    monkeypatch.setattr(dsprites, "full_grid", lambda check=16: RenderedRows())
    yield
    source._load.cache_clear()
