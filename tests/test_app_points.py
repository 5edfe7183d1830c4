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
    ui.shared.clear_datasets()  # another test may have cached the bundled test split under the same name
    at = AppTest.from_file(PAGE, default_timeout=300)
    at.session_state["selected_model"] = app_checkpoints.z2.stem
    yield at
    ui.shared.clear_datasets()


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


def test_a_selection_is_counted_on_the_coordinates_sent_and_summed_up(page_app):
    """A box selection as the browser reports it: the panel counts the points inside (compared here with plain
    coordinate tests), and its mean code goes to Interpolate as an end."""
    at = page_app(PAGE)
    at.run()
    data = plane_data(at)
    assert data["select"] and data["selection"] is None
    xy = plane_points(data).xy
    x0, y0, x1, y1 = -1.2, -0.4, 0.3, 0.9
    chosen = np.flatnonzero((xy[:, 0] > x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] < y1))
    shapes = [{"kind": "box", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}]
    at.session_state["latent_map_selection"] = {"key": data["plane_id"], "shapes": shapes}
    at.run()
    assert not at.exception
    assert plane_data(at)["selection"] == {"key": data["plane_id"], "shapes": shapes}  # the browser draws it again
    assert any(m.value.startswith(f"**Selection: {len(chosen):,} images** ({len(chosen):,} test)") for m in at.markdown)
    captions = [c for image in at.get("image") for c in image.captions]
    assert "mean input image" in captions and "decoded mean code" in captions
    assert sum(c.startswith("#") and " · " in c for c in captions) >= 16  # the typicality strip
    assert [b.label for b in at.get("download_button")][:1] == ["Selection as CSV"]

    at.button(key="lm_send_selection_interp").click().run()
    sent = at.session_state["clicked_latents"][-1]
    assert sent.shape == (2,) and np.allclose(sent, xy[chosen].mean(axis=0), atol=1e-5)  # d = 2: μ is the plane


def test_a_selection_of_another_plane_or_a_malformed_one_is_not_shown(page_app):
    at = page_app(PAGE)
    at.session_state["latent_map_selection"] = {"key": "another model|z0/z1|0", "shapes": [
        {"kind": "box", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}
    at.run()
    assert not at.exception and plane_data(at)["selection"] is None
    assert not any(m.value.startswith("**Selection") for m in at.markdown)


def test_a_picked_point_shows_its_nearest_neighbours_in_latent_and_pixel_space(page_app):
    at = page_app(PAGE)
    at.session_state["latent_map_picked"] = {"split": "test", "index": 17}
    at.run()
    assert not at.exception
    data = plane_data(at)
    strips = [e for e in at.get("image") if len(e.captions) == 8 and all(c.count(" · ") == 2 for c in e.captions)]
    assert len(strips) == 2, [e.captions for e in at.get("image")]
    shown = [[int(c.split(" · ")[0].lstrip("#")) for c in e.captions] for e in strips]
    xy = plane_points(data).xy.astype(np.float64)  # d = 2: the plane's coordinates are μ
    by_code = np.argsort(np.linalg.norm(xy - xy[17], axis=1), kind="stable")
    assert shown[0] == [int(i) for i in by_code[by_code != 17][:8]]
    images = load_test_set("mnist").test_images.numpy().reshape(-1, 784).astype(np.float64)
    by_pixels = np.argsort(np.linalg.norm(images - images[17], axis=1), kind="stable")
    assert shown[1] == [int(i) for i in by_pixels[by_pixels != 17][:8]]
