"""The training history, posterior collapse and traversal sections through AppTest: the Latent Map's replay (slider
and frames, one per recorded moment), the Train page's after a run, and Compare's heat maps and traversals per model."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui import history_view, session_keys, shared, training
from ui.plots import png_data_uri
from ui.traversal_view import traversal_picture
from vae_core import jobs
from vae_core.checkpoint import load_checkpoint, load_trajectory, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_test_set
from vae_core.traversal import dimension_stats, traverse

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "app_pages"
TINY = ModelConfig(latent_dim=3, hidden=(32,))


@pytest.fixture(scope="module")
def histories(tmp_path_factory) -> Path:
    """Two tiny models that differ only in β, trained by the app's sweep job (so with histories), and one saved
    without a history, as files written before histories existed are."""
    folder = tmp_path_factory.mktemp("histories")
    spec = jobs.sweep_spec("tiny", folder, TINY, TrainConfig(epochs=2, batch_size=250), (0.5, 8.0), iw_samples=0)
    job = jobs.JobRegistry().submit(jobs.TrainingJob(spec))
    assert job.join(180) and job.view().state == jobs.FINISHED, job.view().error
    model, info = load_checkpoint(folder / "tiny_beta8.pt")
    save_checkpoint(folder / "old.pt", model, info.train_config, info.dataset, info.history, info.metrics)
    return folder


@pytest.fixture
def app(monkeypatch, histories):
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", histories)
    monkeypatch.setenv("VAE_OFFLINE", "1")

    def make(page: str, model: str) -> AppTest:
        at = AppTest.from_file(str(PAGES / page), default_timeout=180)
        at.session_state["selected_model"] = model
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def values(v) -> np.ndarray:
    """An array of a figure's JSON: plotly sends numpy arrays base64-encoded with their dtype and shape."""
    if isinstance(v, dict) and "bdata" in v:
        flat = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return flat.reshape([int(n) for n in str(v.get("shape", len(flat))).split(",")])
    return np.asarray(v)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def replay_of(at: AppTest) -> dict:
    found = [f for f in figures(at) if f.get("frames")]
    assert len(found) == 1, "one replay figure"
    return found[0]


def test_latent_map_replays_the_models_history_under_a_slider(app, histories):
    at = app("1_Latent_Map.py", "tiny_beta8")
    assert any("Training history" in e.label for e in at.expander)
    traj = load_trajectory(histories / "tiny_beta8.pt")
    fig = replay_of(at)
    assert len(fig["frames"]) == len(traj.epochs) >= 10
    steps = fig["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == [history_view.epoch_label(e) for e in traj.epochs]
    assert steps[-1]["label"] == "2" and steps[0]["label"] == "0"
    assert [b["label"] for b in fig["layout"]["updatemenus"][0]["buttons"]] == ["▶ Play", "❚❚ Pause", "From the start"]
    # each frame moves the points: its first class's x differ from the last frame's
    first, last = values(fig["frames"][0]["data"][0]["x"]), values(fig["frames"][-1]["data"][0]["x"])
    assert len(first) == len(last) and not np.allclose(first, last)
    # posterior collapse: the dimension × time heat map of the stored KL, and the active units
    heat = [f for f in figures(at) if f["data"] and f["data"][0]["type"] == "heatmap"]
    assert len(heat) == 1 and np.allclose(values(heat[0]["data"][0]["z"]), traj.kl.T, atol=1e-4)
    assert any(history_view.COLLAPSED_LINE == c.value for c in at.caption)


def test_latent_map_says_when_a_model_has_no_history(app):
    at = app("1_Latent_Map.py", "old")
    assert any("saved without a training history" in i.value for i in at.info)
    assert not [f for f in figures(at) if f.get("frames")]


def test_compare_shows_collapse_and_traversals_ordered_by_kl_per_model(app, histories):
    at = app("5_Compare.py", "tiny_beta8")
    assert any(history_view.COLLAPSED_LINE == c.value for c in at.caption)
    heat = [f for f in figures(at) if f["data"] and f["data"][0]["type"] == "heatmap"]
    assert len(heat) == 2  # one per model of the sweep; the model without a history is not chosen
    data = load_test_set("mnist-sample")
    traversals = [f for f in figures(at) if f["data"] and f["data"][0]["type"] == "image" and not f.get("frames")]
    assert len(traversals) == 2
    for name, fig in zip(("tiny_beta0.5", "tiny_beta8"), traversals):
        stats = dimension_stats(load_checkpoint(histories / f"{name}.pt")[0], data.test_images)
        rows = fig["layout"]["yaxis"]["ticktext"]
        assert [int(r.split(" ")[0][1:]) for r in rows] == list(stats.order())
        assert [r.endswith("collapsed") for r in rows] == list(stats.collapsed[stats.order()])
    at.radio(key="_w.compare.traverse_from").set_value("the origin z = 0").run()
    assert not at.exception
    assert len([f for f in figures(at) if f["data"] and f["data"][0]["type"] == "image" and not f.get("frames")]) == 2


def test_compare_traverses_from_the_position_pinned_on_the_latent_map(app, histories):
    at = AppTest.from_file(str(PAGES / "5_Compare.py"), default_timeout=180)
    at.session_state["selected_model"] = "tiny_beta8"
    at.session_state[session_keys.CLICKED_LATENTS] = [np.array([0.5, -1.0, 2.0], np.float32)]
    at.run()
    at.radio(key="_w.compare.traverse_from").set_value("the last position pinned on the Latent Map").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value == "z = [0.50, -1.00, 2.00]" for c in at.caption)
    traversals = [f for f in figures(at) if f["data"] and f["data"][0]["type"] == "image" and not f.get("frames")]
    assert len(traversals) == 2
    # each picture is the traversal from exactly that code
    data = load_test_set("mnist-sample")
    for name, fig in zip(("tiny_beta0.5", "tiny_beta8"), traversals):
        model = load_checkpoint(histories / f"{name}.pt")[0]
        expected = traverse(model, np.array([0.5, -1.0, 2.0]), dimension_stats(model, data.test_images))
        assert fig["data"][0]["source"] == png_data_uri(traversal_picture(expected))


def test_train_page_shows_the_history_after_a_run(monkeypatch, tmp_path):
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.delenv("VAE_TRAINED_DIR", raising=False)
    monkeypatch.setenv("VAE_OFFLINE", "1")
    training.registry().clear()
    st.cache_resource.clear()
    try:
        spec = jobs.training_spec("hist", shared.trained_dir(), TINY, TrainConfig(epochs=2, batch_size=250), iw_samples=0)
        job = training.registry().submit(jobs.TrainingJob(spec))
        assert job.join(180) and job.view().state == jobs.FINISHED
        at = AppTest.from_file(str(PAGES / "4_Train.py"), default_timeout=120)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        traj = load_trajectory(shared.trained_dir() / "hist.pt")
        assert len(replay_of(at)["frames"]) == len(traj.epochs)
        assert any(f["data"] and f["data"][0]["type"] == "heatmap" for f in figures(at))  # after the run: the heat map
    finally:
        training.registry().clear()
        st.cache_resource.clear()


def test_live_kl_bars_are_the_latest_moment_with_collapsed_units_in_grey(histories):
    traj = load_trajectory(histories / "tiny_beta8.pt")
    fig = history_view.kl_bars_figure(traj)
    bar = fig.data[0]
    assert np.allclose(bar.y, traj.kl[-1])
    active = traj.active()[-1]
    assert [c == history_view.COLLAPSED_COLOR for c in bar.marker.color] == list(~active)
