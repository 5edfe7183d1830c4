"""The Latent Map's points in AppTest: every split of the full data, picks and what the browser is sent."""
from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import plane_data, plane_points
from vae_core import inference
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_test_set

PAGE = "../app_pages/1_Latent_Map.py"


@pytest.fixture
def full_map(monkeypatch, app_checkpoints, shared_data):
    """The Latent Map of the d = 2 model over the full data (both splits)."""
    import ui.shared

    monkeypatch.setenv("VAE_DATA_DIR", str(shared_data))
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(app_checkpoints.folder))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", app_checkpoints.folder)
    ui.shared.dataset.clear()  # another test may have cached the bundled test split under the same name
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["selected_model"] = app_checkpoints.z2.stem
    yield at
    ui.shared.dataset.clear()


def test_both_splits_are_every_code_in_order_and_a_train_pick_shows_its_image(full_map, app_checkpoints):
    at = full_map
    at.run()
    assert not at.exception
    assert plane_data(at)["points"]["n"] == 10_000  # the test split unless asked
    at.session_state["lm_points"] = "both"
    at.run()
    assert not at.exception
    data = plane_data(at)
    model, info = load_checkpoint(app_checkpoints.z2)
    full = load_test_set(info.dataset)
    assert [(s["split"], s["start"], s["count"]) for s in data["points"]["segments"]] == [
        ("test", 0, 10_000), ("train", 10_000, 60_000)]
    pts = plane_points(data)
    assert len(pts.xy) == 70_000 and pts.indices is None
    rows = np.random.default_rng(0).choice(60_000, 500, replace=False)
    train_mu = inference.encode(model, full.train_images[rows])[0]
    assert pts.xy[10_000 + rows] == pytest.approx(train_mu, abs=1e-5)
    assert (pts.labels[10_000:] == full.train_labels.numpy()).all()
    assert (pts.labels[:10_000] == full.test_labels.numpy()).all()

    at.session_state["latent_map_picked"] = {"split": "train", "index": int(rows[0])}
    at.run()
    assert plane_data(at)["picked"] == 10_000 + int(rows[0])
    label = int(full.train_labels[rows[0]])
    assert any(c == f"#{rows[0]} (train) · class {label}" for image in at.get("image") for c in image.captions)

    at.session_state["lm_points"] = "test"  # a train pick is kept but not drawn where there is no train point
    at.run()
    assert not at.exception and plane_data(at)["picked"] is None
