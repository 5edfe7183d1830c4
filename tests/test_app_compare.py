"""The Compare page through AppTest: table, rate–distortion plot and side-by-side views; metrics measured when
a checkpoint lacks them; a sweep trained from the page; the shipped sweep when it is there."""
from __future__ import annotations

import base64
import math
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import SHARED_DATA, shipped_checkpoint, plane_data
from ui import model_panels, shared, training
from vae_core import inference, jobs
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig

PAGE = str(Path(__file__).resolve().parent.parent / "app_pages" / "5_Compare.py")
TINY = ModelConfig(latent_dim=3, hidden=(32,))


@pytest.fixture(scope="module")
def beta_checkpoints(tmp_path_factory) -> Path:
    """Two tiny models that differ only in β (d = 3, so the PCA path is used), plus one saved without metrics."""
    folder = tmp_path_factory.mktemp("beta")
    spec = jobs.sweep_spec("tiny", folder, TINY, TrainConfig(epochs=2, batch_size=250), (0.5, 4.0), iw_samples=5)
    job = jobs.JobRegistry().submit(jobs.TrainingJob(spec))
    assert job.join(120) and job.view().state == jobs.FINISHED, job.view().error
    model, info = load_checkpoint(folder / "tiny_beta4.pt")
    save_checkpoint(folder / "bare.pt", model, info.train_config, info.dataset, info.history, metrics={})
    return folder


@pytest.fixture
def use_folder(monkeypatch):
    def use(folder: Path) -> None:
        monkeypatch.setattr(shared, "CHECKPOINT_DIR", folder)

    monkeypatch.setenv("VAE_OFFLINE", "1")
    training.registry().clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield use
    training.registry().clear()
    st.cache_resource.clear()


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.run()
    assert not at.exception
    return at


def table(at: AppTest):
    return at.dataframe[0].value


def test_compare_defaults_to_the_beta_group_and_draws_everything(beta_checkpoints, use_folder):
    use_folder(beta_checkpoints)
    at = run_page()
    assert at.multiselect(key="_w.compare.models").value == ["tiny_beta0.5", "tiny_beta4"]
    df = table(at)
    assert list(df["model"]) == ["tiny_beta0.5", "tiny_beta4"] and list(df["β"]) == [0.5, 4.0]
    for column in ("test −ELBO", "recon", "KL", "IW log p(x)"):
        assert all(map(math.isfinite, df[column]))
    assert np.allclose(df["test −ELBO"], df["recon"] + df["KL"], rtol=1e-4)
    assert df["KL"].iloc[1] < df["KL"].iloc[0], "a larger β must buy a smaller KL"
    assert any(c.value.startswith("Metrics: stored at training") for c in at.caption)
    assert all(u.endswith("of 3") for u in df["active units"])
    assert "rate-distortion" in [c.key for c in at.get("plotly_chart")]
    for name in ("tiny_beta0.5", "tiny_beta4"):  # one live map per model, compact, on its own PCA plane (d = 3)
        plane = plane_data(at, f"map-{name}")
        indices = np.frombuffer(base64.b64decode(plane["points"]["indices"]), "<i4")
        assert plane["compact"] and plane["group"] is None and plane["model"]["spec"]["latent_dim"] == 3
        assert len(indices) == len(set(indices.tolist())) > 0 and plane["plane"]["labels"][0].startswith("PC1")
    captions = [c for image in at.get("image") for c in image.captions]
    for kind in ("decoded 12×12 grid", "samples from the prior", "the same 8 test inputs"):  # per model
        assert sum(c.startswith(kind) for c in captions) == 2, (kind, captions)
    headers = [m.value for m in at.markdown if m.value.startswith("####")]
    assert headers[:2] == ["#### VAE · β = 0.5", "#### VAE · β = 4"]  # the columns (the traversals repeat them)
    assert not at.warning  # same dataset, architecture and size: nothing to warn about


def test_missing_metrics_are_measured_and_mismatches_flagged(beta_checkpoints, use_folder):
    use_folder(beta_checkpoints)
    at = run_page()
    at.multiselect(key="_w.compare.models").set_value(["tiny_beta0.5", "bare"]).run()
    assert not at.exception
    row = table(at).set_index("model").loc["bare"]
    assert any(f"bare measured here (k = {model_panels.IW_SAMPLES})" in c.value for c in at.caption)
    assert all(math.isfinite(row[c]) for c in ("test −ELBO", "recon", "KL", "IW log p(x)"))
    stored = load_checkpoint(beta_checkpoints / "tiny_beta4.pt")[1].metrics  # same weights as bare.pt
    assert row["test −ELBO"] == pytest.approx(stored["elbo"], rel=1e-4)
    at.multiselect(key="_w.compare.models").set_value(["tiny_beta4", "bare"]).run()
    assert any("share the same kind and β" in w.value for w in at.warning)
    at.multiselect(key="_w.compare.models").set_value(["bare"]).run()
    assert "Pick at least two models" in at.info[0].value and not at.dataframe


def test_sweep_from_the_page_trains_saves_and_is_preselected(tmp_path, use_folder):
    use_folder(tmp_path)
    at = run_page()
    assert "No checkpoints" in at.info[0].value
    at.radio(key="_w.compare.mode").set_value("Train a β sweep").run()
    for key, value in (("hidden", "32"), ("betas", "0.5, 8"), ("name", "mine")):
        at.text_input(key=f"_w.sweep.{key}").set_value(value)
    at.number_input(key="_w.sweep.epochs").set_value(1)
    at.number_input(key="_w.sweep.batch").set_value(500)
    at.run()
    at.button(key="start-sweep").click().run()
    assert not at.exception and not at.main.error
    job = training.registry().latest()
    assert job.join(120)
    at.run()
    assert any("saved mine_beta0.5.pt, mine_beta8.pt" in s.value for s in at.success)
    at.radio(key="_w.compare.mode").set_value("Compare trained models").run()
    assert not at.exception
    assert list(table(at)["model"]) == ["mine_beta0.5", "mine_beta8"]


def test_shipped_beta_sweep_compares_without_training(use_folder, monkeypatch):
    low, high = shipped_checkpoint("mnist_z10_beta0.5"), shipped_checkpoint("mnist_z10_beta8")
    if (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        monkeypatch.setenv("VAE_DATA_DIR", str(SHARED_DATA))
    use_folder(low.parent)
    at = run_page()
    chosen = at.multiselect(key="_w.compare.models").value
    assert chosen[0] == "mnist_z10_beta0.5" and chosen[-1] == "mnist_z10_beta8"
    assert all(name.startswith("mnist_z10_beta") for name in chosen)
    df = table(at).set_index("model")
    assert df.loc["mnist_z10_beta8", "KL"] < df.loc["mnist_z10_beta0.5", "KL"]
    assert df.loc["mnist_z10_beta8", "recon"] > df.loc["mnist_z10_beta0.5", "recon"]
    keys = [c.key for c in at.get("plotly_chart")]
    assert "rate-distortion" in keys
    # per model: the KL heat map and active units of its training history, and its traversal
    for name in chosen:
        assert {f"collapse-kl-{name}", f"collapse-active-{name}", f"traversal-{name}"} <= set(keys), (name, keys)


def test_the_ae_vs_vae_preset_compares_at_d_20_where_the_holes_show(use_folder):
    models = ("mnist_ae_z20", "mnist_dae_z20", "mnist_z20")
    folder = shipped_checkpoint(models[0]).parent
    for name in models:
        shipped_checkpoint(name)
    use_folder(folder)
    at = run_page()
    presets = at.button_group(key="compare.preset")
    assert {"AE vs VAE (d = 20)", "AE vs VAE on the plane (d = 2)"} <= set(presets.options)
    presets.set_value("AE vs VAE (d = 20)").run()
    assert not at.exception
    assert at.multiselect(key="_w.compare.models").value == list(models)
    df = table(at).set_index("model")
    share, inside = df["prior samples read as digits"], df["test codes in [-3, 3]ᵈ"]
    # measured on these draws (1,000 from N(0, I), seed 1): 0.064, 0.111 and 0.590; codes inside 0.001, 0.000, 0.987
    assert share["mnist_ae_z20"] < 0.2 and share["mnist_dae_z20"] < 0.2 and share["mnist_z20"] > 0.5, share
    assert inside["mnist_ae_z20"] < 0.05 and inside["mnist_z20"] > 0.95, inside
    assert any(c.value.startswith("Why AE vs VAE compares at d = 20") for c in at.caption)
    at.button_group(key="compare.preset").set_value("AE vs VAE on the plane (d = 2)").run()
    assert at.multiselect(key="_w.compare.models").value == ["mnist_ae_z2", "mnist_z2"]


def test_a_linear_autoencoder_s_angle_to_pca_is_in_the_table(tmp_path, use_folder):
    """A linear AE beside a deep one: the table gains the angle column, filled for the linear model only."""
    settings = {"linear": ModelConfig(kind="linear_ae", latent_dim=3, hidden=(), likelihood="gaussian"),
                "deep": ModelConfig(kind="ae", latent_dim=3, hidden=(32,))}
    for name, config in settings.items():
        job = jobs.JobRegistry().submit(jobs.TrainingJob(jobs.training_spec(
            name, tmp_path, config, TrainConfig(epochs=2, batch_size=250, lr=0.01))))
        assert job.join(120) and job.view().state == jobs.FINISHED, job.view().error
    use_folder(tmp_path)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["_w.compare.models"] = ["linear", "deep"]
    at.session_state["selected_model"] = "linear"
    at.run()
    assert not at.exception and not at.main.error
    df = table(at).set_index("model")
    stored = load_checkpoint(tmp_path / "linear.pt")[1].metrics["pca_angle"]
    assert df.loc["linear", "angle to PCA"] == pytest.approx(stored) and 0 <= stored <= 90
    assert math.isnan(df.loc["deep", "angle to PCA"])
    assert all(math.isfinite(v) for v in df["recon"])
    # the squared error compares the two where their nats (Gaussian against Bernoulli) do not
    model, info = load_checkpoint(tmp_path / "linear.pt")
    data = shared.dataset(info.dataset)[0]
    x = data.test_images.float().div(255).flatten(1).numpy()
    by_hand = ((inference.reconstruct(model, data.test_images).reshape(len(x), -1) - x) ** 2).sum(1).mean()
    assert df.loc["linear", "squared error"] == pytest.approx(by_hand, rel=1e-4)
    assert 0 < df.loc["deep", "squared error"] < 784
    assert f"{stored:.1f}° from PCA" in at.sidebar.caption[0].value  # the picker's line on the linear model
