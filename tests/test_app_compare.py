"""The Compare page through AppTest: table, rate–distortion plot and side-by-side views; metrics measured when
a checkpoint lacks them; a sweep trained from the page; the shipped sweep when it is there."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from conftest import SHARED_DATA, plane_data, plane_points, shipped_checkpoint
from ui import model_panels, shared, training
from vae_core import inference, jobs
from vae_core.data import load_dataset
from vae_core.projection import LatentPlane
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


def test_a_selection_sent_from_the_latent_map_is_on_every_map(beta_checkpoints, use_folder):
    """Each model encodes the sent images itself and puts them after the map's own points, highlighted."""
    use_folder(beta_checkpoints)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state["compared_selection"] = {"dataset": "mnist-sample", "test": [4, 9, 700], "train": [0, 3999]}
    at.run()
    assert not at.exception
    assert any(i.value.startswith("5 images selected on the Latent Map") for i in at.info)
    data = load_dataset("mnist-sample")
    for name in ("tiny_beta0.5", "tiny_beta4"):
        plane = plane_data(at, f"map-{name}")
        pts = plane_points(plane)
        n = len(pts.xy) - 5
        assert pts.highlight.tolist() == [False] * n + [True] * 5
        assert pts.indices[n:].tolist() == [4, 9, 700, 0, 3999]
        assert [(s["split"], s["count"]) for s in plane["points"]["segments"]] == [("test", n + 3), ("train", 2)]
        model = shared.load_model(next(i for i in shared.checkpoints()[0] if i.name == name))
        images = torch.cat([data.test_images[[4, 9, 700]], data.train_images[[0, 3999]]])
        mu = inference.encode(model, images)[0]
        plane_obj = LatentPlane(np.asarray(plane["plane"]["origin"]), np.asarray(plane["plane"]["axes"]),
                                tuple(plane["plane"]["labels"]))
        assert pts.xy[n:] == pytest.approx(plane_obj.project(mu), abs=1e-4)
    at.button(key="compare.clear_sent").click().run()
    assert "compared_selection" not in at.session_state and plane_points(plane_data(at, "map-tiny_beta4")).highlight is None


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
        indices = plane_points(plane).indices
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
    low = shipped_checkpoint("mnist_z10_beta0.5")
    shipped_checkpoint("mnist_z10_beta8")  # skips without it
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


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    """A checkpoint folder whose trained/ holds a sweep written by `grid.run` (β 0.5, 4 × d 3 × seeds 0, 1)."""
    from vae_core import backends, grid
    from vae_core.data import load_dataset

    root = tmp_path_factory.mktemp("with_sweep")
    spec = grid.GridSpec(TINY, TrainConfig(epochs=1, batch_size=250), betas=(0.5, 4.0), latent_dims=(3,), seeds=(0, 1))
    rows = grid.run(spec, root / "trained" / "study", load_dataset("mnist-sample"), backends.EMBEDDED, iw_samples=3)
    assert {r.status for r in rows} == {"finished"}
    return root


def test_a_sweep_folder_is_a_preset_with_its_grid(sweep_folder, use_folder):
    """A folder written by `python -m vae_core sweep` inside trained/ is offered as a preset of its first seed's
    models, labelled by the grid's axes; chosen, it shows the sweep's table and a rate–distortion plot over the grid."""
    use_folder(sweep_folder)
    at = run_page()
    pills = [e.proto for e in at.get("button_group") if e.proto.id.endswith("compare.preset")]
    assert pills and "sweep study" in [o.content for o in pills[0].options]
    at.session_state["compare.preset"] = "sweep study"
    at.multiselect(key="_w.compare.models").set_value(["study/beta0.5_z3_seed0", "study/beta4_z3_seed0"])
    at.run()
    assert not at.exception
    sweep_table = next(d.value for d in at.dataframe if "seed" in d.value.columns)
    assert list(sweep_table["model"]) == ["beta0.5_z3_seed0", "beta4_z3_seed0", "beta0.5_z3_seed1", "beta4_z3_seed1"]
    assert set(sweep_table["status"]) == {"finished"} and set(sweep_table["ran on"]) == {"here"}
    assert "sweep-rd-study" in [c.key for c in at.get("plotly_chart")]
    assert {"#### VAE · β = 0.5 · d = 3 · seed 0", "#### VAE · β = 4 · d = 3 · seed 0"} <= {m.value for m in at.markdown}
    metrics = next(d.value for d in at.dataframe if "kind" in d.value.columns).set_index("model")
    assert metrics.loc["study/beta4_z3_seed0", "KL"] < metrics.loc["study/beta0.5_z3_seed0", "KL"]


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
    share, inside = df["prior samples read as a class"], df["test codes in [-3, 3]ᵈ"]
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
