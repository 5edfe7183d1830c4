"""Compare on a dataset with known factors (a small dSprites 32×32): the five disentanglement metrics measured on
request in the background, drawn as bars per model, the latent × factor heat maps, and traversal rows named by the
factor each dimension holds."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui import factor_view, shared, training
from vae_core import evaluate, jobs
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import dataset_info, load_test_set
from vae_core.disentanglement import METRIC_KEYS

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "5_Compare.py")


@pytest.fixture
def sweep(small_dsprites, tmp_path, monkeypatch):
    """β = 1 and 4 on 1,500 rendered dSprites images (one epoch, d = 4), shown by the Compare page."""
    config = ModelConfig(latent_dim=4, hidden=(64,), image_shape=dataset_info("dsprites-32").image_shape)
    spec = jobs.sweep_spec("sprites", tmp_path, config, TrainConfig(dataset="dsprites-32", epochs=1, batch_size=100),
                           (1.0, 4.0), iw_samples=0)
    job = jobs.JobRegistry().submit(jobs.TrainingJob(spec))
    assert job.join(180) and job.view().state == jobs.FINISHED, job.view().error
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setenv("VAE_OFFLINE", "1")
    for cache in (st.cache_resource, st.cache_data):
        cache.clear()
    training.registry().clear()
    yield tmp_path
    for future in factor_view.measurements().futures.values():
        future.result(timeout=180)  # no measurement outlives its test
    st.cache_resource.clear()


def charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id.split("-", 1)[-1] if not c.key else c.key: json.loads(c.proto.spec)
            for c in at.get("plotly_chart")}


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes as plotly.py writes them ({"dtype", "bdata", "shape"})."""
    if not isinstance(value, dict):
        return np.asarray(value)
    shape = tuple(int(n) for n in str(value.get("shape", "-1")).split(","))
    return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).reshape(shape)


@pytest.mark.parametrize("small_dsprites", [(1500, 600)], indirect=True)
def test_the_metrics_are_measured_on_request_without_holding_the_page(sweep):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception and not at.main.error
    assert at.multiselect(key="_w.compare.models").value == ["sprites_beta1", "sprites_beta4"]
    assert "factor-metrics" not in charts(at)  # nothing is measured until asked for
    assert any("Disentanglement against the known factors" in m.value for m in at.markdown)
    at.button(key="factors-measure").click().run()
    assert not at.exception
    futures = [factor_view.measured(info) for info in shared.checkpoints()[0]]
    assert all(f is not None for f in futures)
    for f in futures:
        f.result(timeout=180)
    at.run()
    assert not at.exception and not at.main.error
    drawn = charts(at)
    bars = drawn["factor-metrics"]["data"]
    assert [b["name"] for b in bars] == ["sprites_beta1", "sprites_beta4"]
    # the very figures vae_core measures for the model on its test images
    data = load_test_set("dsprites-32")
    model, _ = load_checkpoint(sweep / "sprites_beta4.pt")
    expected = evaluate.factor_metrics(model, data)
    assert bars[1]["y"] == pytest.approx([expected[k] for k in METRIC_KEYS])
    assert all(0 <= v <= 1 for b in bars for v in b["y"])
    heat = drawn["factor-mi-sprites_beta4"]["data"][0]
    assert heat["x"] == list(data.factor_names) and len(heat["y"]) == 4
    assert np.allclose(_array(heat["z"]), expected["mutual_info"])
    # traversal rows carry the factor each dimension holds most of, where it holds any
    labelled = [name for name in expected["best_factor"] if name]
    assert labelled, expected["best_factor"]  # one epoch already puts the positions in dimensions of their own
    ticks = drawn["traversal-sprites_beta4"]["layout"]["yaxis"]["ticktext"]
    assert sum(any(f" · {name}" in t for t in ticks) for name in labelled) == len(labelled)
    assert "factors-measure" not in [b.key for b in at.button]  # measured once per file


@pytest.mark.parametrize("small_dsprites", [(1500, 600)], indirect=True)
def test_the_latent_map_colours_the_points_by_any_factor(sweep):
    from conftest import plane_data, plane_points

    at = AppTest.from_file(str(Path(PAGE).parent / "1_Latent_Map.py"), default_timeout=120)
    at.session_state["selected_model"] = "sprites_beta4"
    at.run()
    assert not at.exception and not at.main.error
    colour = at.selectbox(key="lm_color")
    factors = ["factor: shape", "factor: scale", "factor: orientation", "factor: posX", "factor: posY"]
    assert colour.options[:6] == ["class", *factors]  # then the model's per-image figures
    data = load_test_set("dsprites-32")
    by_class = plane_data(at)
    assert by_class["classes"] == list(data.class_names)
    assert by_class["pad"] and by_class["pad_title"] == "Draw an image"  # a grey set of shapes, not digits
    assert any(c.value.endswith("or draw an image on the pad.") for c in at.caption)
    for name, n in (("scale", 6), ("posX", 8)):  # six values each their own colour; 32 positions in 8 ranges
        colour.set_value(f"factor:{name}").run()
        assert not at.exception
        drawn = plane_data(at)
        labels = plane_points(drawn).labels
        values = data.factors[:, data.factor_names.index(name)]
        assert len(drawn["classes"]) == len(drawn["colors"]) == n
        assert all(len(c) == 7 and c[0] == "#" and int(c[1:], 16) >= 0 for c in drawn["colors"])  # what the plane reads
        assert len(set(drawn["colors"])) == n
        # in the factor's order: a larger value never gets an earlier colour
        order = np.argsort(values, kind="stable")
        assert np.all(np.diff(labels[order].astype(int)) >= 0) and set(labels.tolist()) == set(range(n))
        assert drawn["classes"][0].startswith(name)
