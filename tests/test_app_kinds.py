"""Every page with every kind of model selected: the shipped mnist_{ae,dae,cvae}_z2 when present, else tiny ones
trained here by the CLI on mnist-sample."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, SHIPPED, plane_data, plane_points

PAGES = ("app.py", "app_pages/1_Latent_Map.py", "app_pages/2_Interpolate.py", "app_pages/3_Reconstruct.py", "app_pages/4_Train.py",
         "app_pages/5_Compare.py")
KINDS = {"ae": ["--hidden", "64"], "dae": ["--noise", "mask:0.5", "--hidden", "64"], "cvae": ["--hidden", "64"],
         "linear_ae": []}  # the linear autoencoder has no hidden layers, and no shipped model


@pytest.fixture(scope="module")
def kind_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kinds")
    for name in ("mnist_z2",):
        if (SHIPPED / f"{name}.pt").exists():
            (folder / f"{name}.pt").symlink_to(SHIPPED / f"{name}.pt")
    for kind, extra in KINDS.items():
        shipped = SHIPPED / f"mnist_{kind}_z2.pt"
        if shipped.exists():
            (folder / shipped.name).symlink_to(shipped)
        else:
            subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "mnist-sample", "--kind", kind,
                            *extra, "--epochs", "1", "--out", str(folder / f"tiny_{kind}_z2.pt")],
                           cwd=ROOT, check=True, capture_output=True, env={"VAE_OFFLINE": "1", "PATH": "/usr/bin"})
    return folder


@pytest.fixture
def run(kind_folder, monkeypatch):
    import ui.shared

    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", kind_folder)

    def run_page(page: str, kind: str) -> AppTest:
        model = next(p.stem for p in kind_folder.iterdir() if p.stem in (f"mnist_{kind}_z2", f"tiny_{kind}_z2"))
        at = AppTest.from_file(str(ROOT / page), default_timeout=180)
        at.session_state["selected_model"] = model
        return at.run()

    return run_page


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_with_every_kind(run, page, kind):
    at = run(page, kind)
    assert not at.exception, at.exception
    assert not at.error


@pytest.mark.parametrize("kind", ["ae", "dae"])
def test_an_autoencoders_map_spans_its_codes_and_shows_the_prior_box(run, kind):
    at = run("app_pages/1_Latent_Map.py", kind)
    data = plane_data(at)
    xy = plane_points(data).xy
    assert data["extent"] >= 3 and data["extent"] >= np.abs(xy).max()  # every code is on the map
    assert data["prior_box"]
    assert not data["model"]["spec"]["probabilistic"]  # the browser's encoder gives μ only
    assert any("not pulled toward N(0, I)" in c.value for c in at.caption)


def test_a_cvae_draws_the_class_picked_and_a_clicked_style_in_every_class(run):
    at = run("app_pages/1_Latent_Map.py", "cvae")
    data = plane_data(at)
    assert data["class_picker"] and data["klass"] == 0 and data["model"]["spec"]["n_classes"] == 10
    at.session_state["latent_map_class"] = 7  # what the component reports when its class picker changes
    at.session_state["latent_map_click"] = {"x": 0.5, "y": -0.5, "z": [0.5, -0.5], "plane": ("z0", "z1")}
    at.run()
    assert not at.exception and plane_data(at)["klass"] == 7
    decoded = {c: v for element in at.get("image") for c, v in zip(element.captions, element.value)}
    assert "every class in this style" in decoded and "decoded" in decoded
    at.session_state["latent_map_class"] = 1
    at.run()
    again = {c: v for element in at.get("image") for c, v in zip(element.captions, element.value)}
    assert again["decoded"] != decoded["decoded"]  # the pinned style drawn as the other class


def test_reconstruct_corrupts_once_and_shows_every_models_reconstruction(run, kind_folder):
    at = run("app_pages/3_Reconstruct.py", "dae")
    at.button(key="recon_try").click().run()
    others = at.multiselect(key="recon_others")
    others.set_value([o for o in others.options if o.split("_")[1:2] == ["ae"] or o == "mnist_z2"]).run()
    at.radio(key="recon_noise").set_value("mask ν").run()
    assert not at.exception
    captions = [c for element in at.get("image") for c in element.captions]
    assert captions.count("corrupted (mask:0.5)") == 3  # three example digits
    assert captions.count("denoising AE (mask:0.5)") == 3 and captions.count("AE") == 3


def test_reconstruct_hides_patches_for_the_masked_autoencoder_and_every_model_fills_them_in(run):
    at = run("app_pages/3_Reconstruct.py", "dae")
    at.button(key="recon_try").click().run()
    others = at.multiselect(key="recon_others")
    others.set_value([o for o in others.options if o.split("_")[1:2] == ["ae"]]).run()
    at.radio(key="recon_noise").set_value("patches ρ").run()
    at.number_input(key="recon_patch").set_value(4).run()
    assert not at.exception and not at.main.error
    captions = [c for element in at.get("image") for c in element.captions]
    assert captions.count("hidden patches, blue (patch:0.75:4)") == 3  # three example digits
    assert captions.count("denoising AE (mask:0.5)") == 3 and captions.count("AE") == 3


def test_reconstruct_scores_an_autoencoder_by_its_reconstruction_loss_and_draws_no_sigma(run):
    """An AE has no posterior: its examples are scored by reconstruction loss (not −ELBO), its code is a point (no σ
    in the caption, no ellipse to choose), and the histogram's axis says so."""
    at = run("app_pages/3_Reconstruct.py", "ae")
    at.button(key="recon_try").click().run()
    assert not at.exception and not at.error
    verdicts = [m.value for m in (*at.success, *at.warning, *at.info) if "nats**" in m.value]
    assert len(verdicts) == 3 and all(v.startswith("reconstruction loss") for v in verdicts), verdicts
    codes = [c.value for c in at.caption if c.value.startswith(("z = ", "μ = "))]
    assert len(codes) == 3 and all(c.startswith("z = ") and "σ" not in c for c in codes), codes
    assert not any(r.key == "recon_ellipse" for r in at.radio)
    assert any("median reconstruction loss" in c.value for c in at.caption)
