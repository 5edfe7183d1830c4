"""Every page shows a model its own dataset's test images, and only what the decoder draws when those are missing."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, plane_data, plane_points, served_file, shipped_checkpoint
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.data import TORCHVISION_DATASETS, load_test_set

PAGES = ("app.py", "app_pages/1_Latent_Map.py", "app_pages/2_Interpolate.py", "app_pages/3_Reconstruct.py",
         "app_pages/5_Compare.py")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A checkpoint folder with the shipped fashion_z2 and a copy of mnist_z2 that claims to be a KMNIST model
    (no KMNIST files anywhere: VAE_DATA_DIR is an empty folder)."""
    import ui.shared

    (tmp_path / "fashion_z2.pt").symlink_to(shipped_checkpoint("fashion_z2"))
    model, info = load_checkpoint(shipped_checkpoint("mnist_z2"))
    save_checkpoint(tmp_path / "kmnist_z2.pt", model, info.train_config, "kmnist", info.history, info.metrics)
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("VAE_DATA_DIR", str(empty))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", tmp_path)
    ui.shared.clear_datasets()  # the cache may hold datasets found under another VAE_DATA_DIR
    return tmp_path


def run(page: str, model: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / page), default_timeout=120)
    at.session_state["selected_model"] = model
    return at.run()


def test_a_clothing_model_is_shown_clothes_offline(folder):
    at = run("app_pages/1_Latent_Map.py", "fashion_z2")
    assert not at.exception and not at.warning
    data = plane_data(at)
    assert data["classes"] == list(TORCHVISION_DATASETS["fashion-mnist"][2])  # the legend is clothing, not digits
    assert len(plane_points(data).labels) == 10_000
    # hover tooltips show the model's own test images: the tiles are made of fashion-mnist's (written meanwhile)
    tile = served_file(data["points"]["tiles"]["test"][0])
    first = load_test_set("fashion-mnist").test_images[0].numpy()
    assert (np.frombuffer(gzip.decompress(tile.read_bytes()), np.uint8)[:784].reshape(first.shape) == first).all()
    assert any("10,000 test images of bundled fashion-mnist test split" in c.value for c in at.caption)


@pytest.mark.parametrize("page", PAGES)
def test_without_its_data_a_model_gets_decoder_only_views_and_one_notice(folder, page):
    at = run(page, "kmnist_z2")
    assert not at.exception
    if page == "app_pages/5_Compare.py":  # compares the models chosen on the page
        at.multiselect(key="_w.compare.models").set_value(["fashion_z2", "kmnist_z2"]).run()
        assert not at.exception
        headers = {m.value for m in at.markdown if m.value.startswith("####")}  # columns, and traversals again
        assert headers == {"#### VAE · β = 1"}  # fashion only
    notices = [w.value for w in at.warning if "kmnist" in w.value]
    assert len(notices) == 1 and "not available" in notices[0]
    assert len([w for w in at.warning if "not available" in w.value]) == 1  # said once, not once per use
    if page != "app_pages/5_Compare.py":  # (Compare also says that these two models differ in more than β)
        assert len(at.warning) == 1, [w.value for w in at.warning]
    if page == "app_pages/1_Latent_Map.py":
        data = plane_data(at)
        assert data["points"] is None  # no test points of another dataset
        assert data["decode"] and data["model"]["decoder"]  # but the decoder runs under the pointer
    if page == "app_pages/2_Interpolate.py":
        assert "Test images" not in at.radio(key="interp_source").options
