"""Home and Latent Map pages in AppTest: d = 2 and d > 2 models, simulated clicks, views and the UMAP job."""
from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ui.clicks import click_from_selection, overlay_nodes
from vae_core import inference, umap_view
from vae_core.checkpoint import load_checkpoint, read_info
from vae_core.data import load_test_set
from vae_core.projection import fit_pca, pca_plane, slice_plane

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


def _spec(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def _array(value) -> np.ndarray:
    if isinstance(value, dict):  # plotly ≥ 6 sends numpy data as base64 typed arrays
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, float)


def _images(at: AppTest) -> dict[str, str]:
    """caption -> media URL of every st.image (the URL names the bytes, so a changed image has a new URL)."""
    out = {}
    for element in at.get("image"):
        out.update(zip(element.captions, element.value))
    return out


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n" + "\n".join(c.value for c in at.caption)


def _click(at: AppTest, plane, x: float, y: float) -> None:
    """What the chart's on_select callback stores for a click on the overlay node nearest (x, y)."""
    xs, ys = overlay_nodes()
    node = int(np.argmin(np.hypot(xs - x, ys - y)))
    event_point = {"curve_number": 0, "point_index": node, "x": float(xs[node]), "y": float(ys[node])}
    click = click_from_selection([event_point], 0)
    z = plane.to_latent(np.array([click.x, click.y]))
    at.session_state[CLICK_KEY] = {"x": click.x, "y": click.y, "z": z.tolist(), "plane": plane.labels}


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
    assert [c.value for c in at.caption if c.value.startswith("Data in use")] == [
        f"Data in use: {load_test_set(dataset).source} ({n_test:,} test images)."]
    assert not at.warning


def test_latent_map_d2_shows_the_map_grid_and_decodes_a_click(app, app_checkpoints):
    at = app(PAGE, app_checkpoints.z2.stem)
    at.run()
    assert not at.exception
    spec = _spec(at)
    assert spec["layout"]["xaxis"]["range"] == [-3, 3] and spec["layout"]["yaxis"]["scaleanchor"] == "x"
    assert spec["data"][0]["marker"]["opacity"] == 0  # the invisible click overlay
    n_points = sum(len(_array(t["customdata"])) for t in spec["data"] if "customdata" in t)
    test_images = load_test_set(read_info(app_checkpoints.z2).dataset).test_images
    assert n_points == min(len(test_images), 10_000)  # the whole test set
    assert spec["layout"]["images"], "the decoded grid is the plot's background"
    images = _images(at)
    assert any(caption == "" for caption in images) and "decoded" not in images
    assert [b.label for b in at.get("download_button")] == ["Grid as PNG", "Latents as CSV"]

    _click(at, slice_plane(2), -2.71, 2.52)
    at.run()
    assert not at.exception
    first = _images(at)
    assert "decoded" in first
    assert "clicked at (x, y) = (-2.700, 2.500)" in _markdown(at)
    assert any(c.startswith("#") and "distance" in c for c in first)  # the nearest test image
    # the clicked spot is marked: its overlay node starts selected
    xs, ys = overlay_nodes()
    (node,) = _spec(at)["data"][0]["selectedpoints"]
    assert (xs[node], ys[node]) == pytest.approx((-2.7, 2.5), abs=1e-5)

    _click(at, slice_plane(2), 1.0, -1.5)
    at.run()
    assert _images(at)["decoded"] != first["decoded"]
    assert "clicked at (x, y) = (1.000, -1.500)" in _markdown(at)

    at.session_state[PICKED_KEY] = 7
    at.run()
    assert any(c.startswith("#7 · class") for c in _images(at))
    picked = [t for t in _spec(at)["data"][1:] if t.get("selectedpoints")]
    assert len(picked) == 1 and _array(picked[0]["customdata"])[picked[0]["selectedpoints"][0]] == 7

    at.slider(key="lm_n").set_value(5).run()
    assert "5 × 5" in _markdown(at)


def test_latent_map_d_above_2_with_pca_and_dims(app, app_checkpoints, wide_mu):
    at = app(PAGE, app_checkpoints.wide.stem)
    at.run()
    assert not at.exception
    d = wide_mu.shape[1]
    assert at.radio(key="lm_view").value == "PCA"
    spec = _spec(at)
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    pca = fit_pca(wide_mu)
    xy = pca.transform(wide_mu)
    shown = np.concatenate([_array(t["x"]) for t in spec["data"] if "customdata" in t])
    assert np.sort(shown) == pytest.approx(np.sort(xy[:, 0]), abs=1e-3)

    # a click on the PCA plane decodes mean + x·PC1 + y·PC2
    _click(at, pca_plane(pca), 0.5, -0.5)
    at.run()
    assert not at.exception and "decoded" in _images(at)
    z_text = next(c.value for c in at.caption if c.value.startswith("z = ["))
    z_shown = np.array([float(v) for v in z_text[5:-1].split(",")])
    assert z_shown == pytest.approx(pca.inverse_transform(np.array([[0.5, -0.5]]))[0], abs=0.01)

    at.radio(key="lm_view").set_value("Two dims").run()
    assert not at.exception
    # the slice starts on the two dims whose μ varies most (collapsed dims make a flat view)
    order = np.argsort(-wide_mu.var(axis=0))
    titles = _spec(at)["layout"]
    assert (titles["xaxis"]["title"]["text"], titles["yaxis"]["title"]["text"]) == (f"z{order[0]}", f"z{order[1]}")
    at.selectbox(key="lm_dx").set_value(d - 1).run()
    at.selectbox(key="lm_dy").set_value(0).run()
    assert not at.exception
    spec = _spec(at)
    assert spec["layout"]["xaxis"]["title"]["text"] == f"z{d - 1}"
    assert spec["layout"]["yaxis"]["title"]["text"] == "z0"
    grid_zero = _images(at)[""]

    # slicing through a picked point's μ changes the grid; other dims come from that μ
    at.session_state[PICKED_KEY] = 3
    at.run()
    at.radio(key="lm_base").set_value("picked point's μ").run()
    assert not at.exception
    assert "other dims at the picked μ" in _markdown(at)
    assert _images(at)[""] != grid_zero
    plane = slice_plane(d, (d - 1, 0), wide_mu[3])
    _click(at, plane, -2.0, 2.0)
    at.run()
    z_text = next(c.value for c in at.caption if c.value.startswith("z = ["))
    z_shown = np.array([float(v) for v in z_text[5:-1].split(",")])
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
    if shipped:  # a shipped model's embedding ships with it: shown at once, nothing computed
        assert _spec(at)["layout"]["xaxis"]["title"]["text"] == "UMAP 1" and not at.get("progress")
    else:  # computed in the background: meanwhile a progress bar and the PCA plane, still clickable
        assert at.get("progress") and _spec(at)["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    deadline = time.monotonic() + 180
    while _spec(at)["layout"]["xaxis"]["title"]["text"] != "UMAP 1":
        assert time.monotonic() < deadline, "UMAP did not finish in 180 s"
        assert _spec(at)["layout"]["xaxis"]["title"]["text"].startswith("PC1")
        time.sleep(1)
        at.run()
        assert not at.exception
    assert not at.get("progress")
    # the UMAP view is for looking; clicks are decoded on the plane beside it
    assert len(at.get("plotly_chart")) == 2
    assert _spec(at, 1)["data"][0]["marker"]["opacity"] == 0
    assert any("no fast inverse" in c.value for c in at.caption)
