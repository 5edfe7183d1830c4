"""The app's frame: pages in the sidebar with Home first, one model picker everywhere, app-trained models kept
out of git."""
from __future__ import annotations

import subprocess

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, SHIPPED, shipped_checkpoint
from ui import session_keys, shared
from ui.navigation import HOME, PAGES


def test_home_is_the_first_page_and_every_page_file_is_registered():
    # a folder named pages/ beside app.py would make Streamlit run a page opened at its address without app.py
    assert not (ROOT / "pages").exists()
    assert PAGES[0] is HOME and HOME.title == "Home"
    registered = {p.file for p in PAGES}
    assert registered == {f"app_pages/{p.name}" for p in (ROOT / "app_pages").glob("*.py")}
    assert all(p.blurb for p in PAGES if p is not HOME)  # the tour has a line for each


@pytest.fixture
def shipped_folder(monkeypatch):
    if not (SHIPPED / "mnist_z10_beta1.pt").exists():
        pytest.skip("the shipped β sweep is missing")
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", SHIPPED)
    monkeypatch.setenv("VAE_TRAINED_DIR", str(ROOT / "nonexistent-trained-folder"))


def test_the_picker_shows_whole_model_names(shipped_folder):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception
    picker = at.sidebar.selectbox[0]
    names = sorted(p.stem for p in SHIPPED.glob("*.pt"))
    assert list(picker.options) == names  # bare names: the details are in the caption below, not cut off
    assert picker.value == shared.DEFAULT_MODEL


def test_compare_has_the_picker_and_starts_from_the_chosen_models_sweep(shipped_folder):
    shipped_checkpoint("mnist_z10_beta4")
    at = AppTest.from_file(str(ROOT / "app_pages/5_Compare.py"), default_timeout=180)
    at.session_state[session_keys.SELECTED_MODEL] = "mnist_z10_beta4"
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "mnist_z10_beta4"
    assert at.multiselect(key="_w.compare.models").value == [
        "mnist_z10_beta0.5", "mnist_z10_beta1", "mnist_z10_beta4", "mnist_z10_beta8"]


@pytest.mark.parametrize("page", ["1_Latent_Map", "2_Interpolate", "3_Reconstruct"])
def test_a_page_with_no_model_to_show_says_so_and_stops(page, tmp_path, monkeypatch):
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path / "trained"))
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{page}.py"), default_timeout=90).run()
    assert not at.exception
    assert len(at.title) == 1 and "No model to show yet" in at.info[0].value
    assert "No checkpoints" in at.sidebar.error[0].value


def test_models_trained_in_the_app_are_ignored_by_git(monkeypatch):
    monkeypatch.delenv("VAE_TRAINED_DIR", raising=False)
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", ROOT / "checkpoints")
    target = shared.trained_dir() / "my_vae.pt"
    assert target.parent != ROOT / "checkpoints"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=ROOT)
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0, f"{target} would make git status dirty"
    shipped = subprocess.run(["git", "check-ignore", "-q", str(ROOT / "checkpoints" / "mnist_z2.pt")], cwd=ROOT)
    assert shipped.returncode == 1  # the shipped models stay tracked
