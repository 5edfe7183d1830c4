"""Home and Latent Map pages in AppTest: d = 2 and d > 2 models, simulated clicks, views and the UMAP job."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from streamlit.testing.v1 import AppTest

from conftest import plane_data, plane_points, served_file

from ui.latent_plane import pinned_record
from vae_core import inference, umap_view
from vae_core.checkpoint import load_checkpoint, read_info
from vae_core.data import load_test_set
from vae_core.projection import fit_pca, pca_plane, slice_plane

ROOT = Path(__file__).resolve().parent.parent
HOME = "../app.py"
PAGE = "../app_pages/1_Latent_Map.py"
CLICK_KEY, PICKED_KEY = "latent_map_click", "latent_map_picked"


@pytest.fixture
def app(monkeypatch, app_checkpoints):
    import ui.shared

    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(app_checkpoints.folder))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", app_checkpoints.folder)

    def make(script: str, model: str) -> AppTest:
        at = AppTest.from_file(script, default_timeout=90)
        at.session_state["selected_model"] = model
        return at

    return make


@pytest.fixture(scope="module")
def wide_mu(app_checkpoints) -> np.ndarray:
    """The d > 2 model's test-set μ, computed here independently of the app."""
    model, info = load_checkpoint(app_checkpoints.wide)
    return inference.encode(model, load_test_set(info.dataset).test_images)[0]


def _xy(data: dict) -> np.ndarray:
    return plane_points(data).xy


def _images(at: AppTest) -> dict[str, str]:
    """caption -> media URL of every st.image (the URL names the bytes, so a changed image has a new URL)."""
    out = {}
    for element in at.get("image"):
        out.update(zip(element.captions, element.value))
    return out


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n" + "\n".join(c.value for c in at.caption)


def _click(at: AppTest, plane, x: float, y: float) -> None:
    """What the component's pin callback stores for a click on empty space at (x, y): the exact position."""
    at.session_state[CLICK_KEY] = pinned_record({"x": x, "y": y, "z": plane.to_latent(np.array([x, y])).tolist()},
                                                plane)


def test_home_shows_the_model_the_data_and_the_tour(app, app_checkpoints):
    at = app(HOME, app_checkpoints.z2.stem)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latent size d"] == "2" and metrics["β"] == "1"
    dataset = read_info(app_checkpoints.z2).dataset
    assert metrics["Dataset"] == dataset and "nats" in metrics["Test −ELBO"]
    assert any("[-3, 3]²" in caption for caption in _images(at))  # the decoded tour grid
    assert [link.label for link in at.get("page_link")] == ["Latent Map", "Interpolate", "Reconstruct", "Train",
                                                            "Compare"]
    # the data in use is the model's own test split (bundled when the full data is absent), said once
    n_test = len(load_test_set(dataset).test_images)
    assert [c.value.split(". ", 1)[1] for c in at.caption if "Data in use" in c.value] == [
        f"Data in use: {load_test_set(dataset).source} ({n_test:,} test images)."]
    assert not at.warning


def test_latent_map_d2_sends_the_plane_the_model_and_every_test_point(app, app_checkpoints):
    at = app(PAGE, app_checkpoints.z2.stem)
    at.run()
    assert not at.exception
    data = plane_data(at)
    model, info = load_checkpoint(app_checkpoints.z2)
    test = load_test_set(info.dataset)
    assert data["extent"] == 3.0 and data["decode"] and data["pad"] and not data["prior_box"]
    assert data["pad_title"] == "Draw a digit"
    assert data["plane"]["origin"] == [0.0, 0.0] and data["plane"]["axes"] == [[1.0, 0.0], [0.0, 1.0]]
    # every test image, at its μ, with its label
    mu = inference.encode(model, test.test_images)[0]
    assert _xy(data) == pytest.approx(mu[:10_000], abs=1e-5)
    labels = plane_points(data).labels
    assert (labels == test.test_labels.numpy()[:10_000]).all()
    # the decoder the browser fetches is this model's, as ONNX
    decoder = served_file(data["model"]["decoder"])
    z = np.array([[0.3, -1.1]], np.float32)
    logits = onnxruntime.InferenceSession(decoder.read_bytes()).run([data["model"]["spec"]["decoder"]["output"]],
                                                                  {data["model"]["spec"]["decoder"]["input"]: z})[0]
    assert (1 / (1 + np.exp(-logits))).reshape(28, 28) == pytest.approx(inference.decode(model, z)[0], abs=1e-5)
    assert [b.label for b in at.get("download_button")] == ["Latents as CSV"]

    _click(at, slice_plane(2), -2.71, 2.52)
    at.run()
    assert not at.exception
    first_images = _images(at)
    assert "decoded" in first_images
    assert "(x, y) = (-2.710, 2.520)" in _markdown(at)  # exactly where it was clicked: no lattice
    assert any(c.startswith("#") and "distance" in c for c in first_images)  # the nearest test image
    assert plane_data(at)["pinned"] == pytest.approx([-2.71, 2.52])  # the browser marks the pin

    _click(at, slice_plane(2), 1.0, -1.5)
    at.run()
    assert _images(at)["decoded"] != first_images["decoded"]
    assert "(x, y) = (1.000, -1.500)" in _markdown(at)

    at.session_state[PICKED_KEY] = {"split": "test", "index": 7}
    at.run()
    assert any(c.startswith("#7 · class") for c in _images(at))
    assert plane_data(at)["picked"] == 7


def test_latent_map_d_above_2_with_pca_and_dims(app, app_checkpoints, wide_mu):
    at = app(PAGE, app_checkpoints.wide.stem)
    at.run()
    assert not at.exception
    d = wide_mu.shape[1]
    assert at.radio(key="lm_view").value == "PCA"
    data = plane_data(at)
    assert data["plane"]["labels"][0].startswith("PC1")
    pca = fit_pca(wide_mu)
    assert _xy(data)[:, 0] == pytest.approx(pca.transform(wide_mu)[:, 0], abs=1e-3)
    # the browser maps (x, y) to mean + x·PC1 + y·PC2
    plane = pca_plane(pca)
    assert np.asarray(data["plane"]["origin"]) == pytest.approx(plane.origin, abs=1e-6)
    assert np.asarray(data["plane"]["axes"]) == pytest.approx(plane.axes, abs=1e-6)

    _click(at, plane, 0.5, -0.5)
    at.run()
    assert not at.exception and "decoded" in _images(at)
    z_text = next(m.value for m in at.markdown if "z = [" in m.value).split("z = [")[1].rstrip("]")
    z_shown = np.array([float(v) for v in z_text.split(",")])
    assert z_shown == pytest.approx(pca.inverse_transform(np.array([[0.5, -0.5]]))[0], abs=0.01)

    at.radio(key="lm_view").set_value("Two dims").run()
    assert not at.exception
    # the slice starts on the two dims whose μ varies most (collapsed dims make a flat view)
    order = np.argsort(-wide_mu.var(axis=0))
    assert plane_data(at)["plane"]["labels"] == [f"z{order[0]}", f"z{order[1]}"]
    at.selectbox(key="lm_dx").set_value(d - 1).run()
    at.selectbox(key="lm_dy").set_value(0).run()
    assert not at.exception
    assert plane_data(at)["plane"]["labels"] == [f"z{d - 1}", "z0"]
    assert plane_data(at)["plane"]["origin"] == [0.0] * d

    # slicing through a picked point's μ: the other dims come from that μ
    at.session_state[PICKED_KEY] = {"split": "test", "index": 3}
    at.run()
    at.radio(key="lm_base").set_value("picked point's μ").run()
    assert not at.exception
    expected_origin = wide_mu[3].astype(float).copy()
    expected_origin[[d - 1, 0]] = 0.0
    assert np.asarray(plane_data(at)["plane"]["origin"]) == pytest.approx(expected_origin, abs=1e-5)
    plane = slice_plane(d, (d - 1, 0), wide_mu[3])
    _click(at, plane, -2.0, 2.0)
    at.run()
    z_text = next(m.value for m in at.markdown if "z = [" in m.value).split("z = [")[1].rstrip("]")
    z_shown = np.array([float(v) for v in z_text.split(",")])
    expected = wide_mu[3].copy()
    expected[[d - 1, 0]] = [-2.0, 2.0]
    assert z_shown == pytest.approx(expected, abs=0.01)


def test_umap_runs_in_the_background_while_the_page_stays_usable(app, app_checkpoints):
    at = app(PAGE, app_checkpoints.wide.stem)
    at.run()
    at.radio(key="lm_view").set_value("UMAP").run()
    assert not at.exception
    shipped = umap_view.load_embedding(umap_view.shipped_path(app_checkpoints.wide), umap_view.embedding_key(
        umap_view.file_digest(app_checkpoints.wide), load_test_set(read_info(app_checkpoints.wide).dataset)
        .test_images.numpy())) is not None

    def umap_shown() -> bool:
        return any(e.proto.id.endswith("-lm_umap") for e in at.get("bidi_component"))

    if shipped:  # a shipped model's embedding ships with it: shown at once, nothing computed
        assert umap_shown() and not at.get("progress")
    else:  # computed in the background: meanwhile a progress bar and the PCA plane, still live
        assert at.get("progress") and plane_data(at)["plane"]["labels"][0].startswith("PC1")
    deadline = time.monotonic() + 180
    while not umap_shown():
        assert time.monotonic() < deadline, "UMAP did not finish in 180 s"
        assert plane_data(at)["plane"]["labels"][0].startswith("PC1")
        time.sleep(1)
        at.run()
        assert not at.exception
    assert not at.get("progress")
    # the UMAP view is for looking (hover, pick); decoding happens on the plane beside it
    umap, plane = plane_data(at, "lm_umap"), plane_data(at)
    assert not umap["decode"] and len(_xy(umap)) == 10_000 and umap["axis_titles"] == ["UMAP 1", "UMAP 2"]
    lo, hi = _xy(umap).min(axis=0), _xy(umap).max(axis=0)
    assert umap["center"] == pytest.approx((lo + hi) / 2, abs=1e-4)  # UMAP coordinates are not centred on 0
    assert plane["decode"] and plane["points"] is None
