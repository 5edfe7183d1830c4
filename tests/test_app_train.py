"""The Train page through Streamlit's AppTest: start, save, pick; stop; refuse a second start; remembered settings."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui import session_keys, shared, training
from vae_core.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "app_pages" / "4_Train.py")
APP = ROOT / "app.py"


@pytest.fixture
def checkpoint_dir(tmp_path, monkeypatch):
    """An empty checkpoint folder for the page, offline, and no job left over from another test; the page saves
    into its trained/ subfolder."""
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.delenv("VAE_TRAINED_DIR", raising=False)
    monkeypatch.setenv("VAE_OFFLINE", "1")
    training.registry().clear()
    st.cache_resource.clear()
    yield tmp_path / shared.TRAINED_SUBDIR
    training.registry().clear()
    st.cache_resource.clear()


def page(who: str | None = None, **settings) -> AppTest:
    """The page with a tiny model filled in (hidden 32, batch 500: a few seconds per run on a CPU). Each page is
    its own session, so its own owner; `who` is the name they give."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception
    values = {"hidden": "32", "epochs": 2, "batch": 500, "name": "tiny", **settings}
    for name, value in values.items():
        widget = at.text_input(key=f"_w.train.{name}") if isinstance(value, str) else at.number_input(key=f"_w.train.{name}")
        widget.set_value(value)
    if who is not None:
        at.text_input(key="_w.owner.name").set_value(who)
    at.run()
    assert not at.exception
    return at


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.main.error]  # the sidebar says "no checkpoints" until the first is saved


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_start_trains_saves_and_the_picker_offers_the_model(checkpoint_dir):
    at = page(name="my tiny model")
    assert "No training yet" in at.info[0].value
    assert any("my_tiny_model.pt" in c.value for c in at.caption)
    at.button(key="start").click().run()
    assert not at.exception and not errors(at)
    job = training.registry().latest()
    assert job is not None and job.spec.runs[0].path == checkpoint_dir / "my_tiny_model.pt"
    assert job.join(120)
    at.run()
    assert not at.exception and not errors(at)
    assert any("Finished; saved my_tiny_model.pt" in s.value for s in at.success)
    model, info = load_checkpoint(checkpoint_dir / "my_tiny_model.pt")
    assert info.model_config.hidden == (32,) and len(info.history) == 2
    assert all(math.isfinite(info.metrics[k]) for k in ("elbo", "recon", "kl"))
    picker = at.sidebar.selectbox(key="_model_picker")
    assert any(o.startswith("my_tiny_model") for o in picker.options)
    assert picker.value == "my_tiny_model"  # the new model becomes the current one
    assert at.session_state[session_keys.SELECTED_MODEL] == "my_tiny_model"
    assert f"{info.test_elbo:.1f} nats" in at.sidebar.caption[0].value


def test_stop_mid_run_keeps_a_usable_model(checkpoint_dir):
    at = page(epochs=500, name="halfway")
    at.button(key="start").click().run()
    job = training.registry().latest()
    wait_for(lambda: len(job.view().history) >= 1)
    assert not at.button(key="stop").disabled
    at.button(key="stop").click().run()
    # the click's own run waits for the save and redraws from the top: shown and selected without another poll
    assert not job.running
    assert not at.exception and not errors(at)
    assert any("Stopped; saved halfway.pt" in w.value for w in at.warning)
    assert at.sidebar.selectbox(key="_model_picker").value == "halfway"
    model, info = load_checkpoint(checkpoint_dir / "halfway.pt")
    assert 1 <= len(info.history) < 500 and info.extra["status"] == "stopped"
    assert all(math.isfinite(info.metrics[k]) for k in ("elbo", "recon", "kl"))
    assert any("IW log p(x) not measured (a stopped run is saved without it)" in c.value for c in at.caption)
    assert at.button(key="stop").disabled


def test_a_second_start_waits_in_the_queue_and_a_third_is_refused(checkpoint_dir):
    """One person has one job training and one waiting at most: the second waits for the first (whatever the
    server's limit), says where it stands, and can be cancelled."""
    at = page(epochs=500, name="first")
    at.button(key="start").click().run()
    first = training.registry().latest()
    assert first.running
    at.text_input(key="_w.train.name").set_value("second")
    at.button(key="start").click().run()
    second = training.registry().latest()
    assert second is not first and second.view().queued and not errors(at)
    assert any("second** waits for a free slot: **1 of 1** in the queue" in i.value for i in at.info)
    assert not at.button(key="stop").disabled  # Stop is the running job's
    at.text_input(key="_w.train.name").set_value("third")
    at.button(key="start").click().run()
    assert any("Not started: you already have a job waiting for a slot" in e for e in errors(at))
    at.button(key=f"cancel-{second.id}").click().run()
    assert second.view().state == "cancelled" and first.running
    first.stop()
    assert first.join(60)
    assert not (checkpoint_dir / "second.pt").exists() and not (checkpoint_dir / "third.pt").exists()


def test_bad_names_and_settings_are_refused_with_a_message(checkpoint_dir):
    at = page(name="mnist_z2")
    assert any("shipped with the app; choose another name" in c.value for c in at.main.caption)  # before Start
    at.checkbox(key="_w.train.replace").check().run()  # replacing only ever means a model trained here
    at.button(key="start").click().run()
    assert any("shipped with the app; choose another name" in e for e in errors(at))
    at.text_input(key="_w.train.name").set_value("../..").run()
    at.button(key="start").click().run()
    assert any("no usable characters" in e for e in errors(at))
    at.text_input(key="_w.train.name").set_value("fine").run()
    at.text_input(key="_w.train.hidden").set_value("wide").run()
    assert any("hidden sizes must be whole numbers" in e for e in errors(at))
    at.button(key="start").click().run()
    assert any("fix the settings first" in e for e in errors(at))
    assert training.registry().latest() is None and not at.exception


def test_a_full_disk_is_said_and_the_model_saved_again(checkpoint_dir, disk_full_once):
    at = page(name="full")
    at.button(key="start").click().run()
    assert training.registry().latest().join(120)
    at.run()
    assert not at.exception
    assert any(e.startswith("The disk is full: full.pt could not be saved.") for e in errors(at))
    assert not (checkpoint_dir / "full.pt").exists()
    at.button(key=f"save-again-{training.registry().latest().id}").click().run()
    assert not at.exception and not errors(at)
    assert any("Finished; saved full.pt." in s.value for s in at.success)
    assert load_checkpoint(checkpoint_dir / "full.pt")[1].extra["status"] == "finished"
    assert at.sidebar.selectbox(key="_model_picker").value == "full"  # announced once it is saved


def test_settings_survive_a_page_switch(checkpoint_dir):
    if not APP.exists():
        pytest.skip("app.py (the multipage entry point) is not there yet")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("app_pages/4_Train.py").run()
    at.number_input(key="_w.train.latent").set_value(5)
    at.text_input(key="_w.train.hidden").set_value("48, 24")
    at.text_input(key="_w.train.name").set_value("kept").run()
    at.switch_page("app_pages/5_Compare.py").run()
    assert not at.exception and at.title[0].value == "Compare models"
    assert "_w.train.latent" not in at.session_state  # Streamlit dropped the Train page's widget state
    at.switch_page("app_pages/4_Train.py").run()
    assert not at.exception
    assert at.number_input(key="_w.train.latent").value == 5
    assert at.text_input(key="_w.train.hidden").value == "48, 24"
    assert at.text_input(key="_w.train.name").value == "kept"


def test_another_person_sees_the_training_but_cannot_stop_it_nor_replace_or_delete_its_model(checkpoint_dir):
    alice = page(who="Alice", epochs=500, name="hers")
    alice.button(key="start").click().run()
    job = training.registry().latest()
    assert job.running and job.view().owner_name == "Alice"
    bob = page(who="Bob", name="hers")
    assert bob.button(key="stop").disabled and not alice.button(key="stop").disabled
    assert any("Started by **Alice**: only they can stop it" in c.value for c in bob.caption)
    assert not any("Started by" in c.value for c in alice.caption)
    bob.button(key="start").click().run()  # the same file, not written yet
    assert any("Not started: 'hers' is being trained by a job of Alice" in e for e in errors(bob))
    alice.button(key="stop").click().run()
    assert not job.running and (checkpoint_dir / "hers.pt").exists()

    bob.checkbox(key="_w.train.replace").check().run()
    refusal = "'hers' belongs to Alice; only they can replace or delete it."
    assert any(refusal in c.value for c in bob.main.caption)  # said before Start
    bob.button(key="start").click().run()
    assert any(refusal in e for e in errors(bob)) and training.registry().latest() is job
    assert "Your models on this server (0)" in [e.label for e in bob.expander]
    assert "Your models on this server (1)" in [e.label for e in alice.run().expander]
    assert alice.sidebar.selectbox(key="_model_picker").value == "hers"  # her page selected what she saved
    assert alice.sidebar.caption[0].value.endswith("· trained by Alice")  # as everyone's picker describes it

    alice.checkbox(key="_w.train.replace").check().run()
    assert any("Will be saved as" in c.value and "hers.pt" in c.value for c in alice.main.caption)
    assert alice.button(key="train.delete").disabled  # until confirmed
    alice.checkbox(key="train.delete_sure.hers").check().run()
    alice.button(key="train.delete").click().run()
    assert not alice.exception and not (checkpoint_dir / "hers.pt").exists()
    assert "Your models on this server (0)" in [e.label for e in alice.expander]


def test_where_sign_in_is_configured_start_asks_to_sign_in_first(checkpoint_dir):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.user = {"is_logged_in": False}  # what st.user says to a signed-out visitor where [auth] is configured
    at.run()
    assert not at.exception
    assert at.button(key="start").label == "Sign in to train" and training.registry().latest() is None


def test_a_signed_in_person_owns_their_run_from_any_browser(checkpoint_dir):
    ada = {"is_logged_in": True, "iss": "https://idp.example", "sub": "42", "name": "Ada L.", "email": "ada@example.org"}

    def browser(user: dict) -> AppTest:
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.user = user
        return at

    first = browser(ada)
    first.run()
    assert first.text_input(key="_w.owner.name").value == "Ada L."  # the account's name to start with
    first.text_input(key="_w.owner.name").set_value("Countess")  # as she wants to be seen
    for key, value in (("hidden", "32"), ("name", "adas")):
        first.text_input(key=f"_w.train.{key}").set_value(value)
    first.number_input(key="_w.train.epochs").set_value(500)
    first.run()
    first.button(key="start").click().run()
    job = training.registry().latest()
    assert job.running and job.view().owner_name == "Countess"
    other_browser, someone_else = browser(ada), browser({**ada, "sub": "43", "name": "Bo"})
    assert not other_browser.run().button(key="stop").disabled
    assert other_browser.text_input(key="_w.owner.name").value == "Countess"  # the name she gave, not the account's
    assert someone_else.run().text_input(key="_w.owner.name").value == "Bo"
    assert someone_else.button(key="stop").disabled
    other_browser.button(key="stop").click().run()
    assert not job.running and (checkpoint_dir / "adas.pt").exists()


def test_an_owner_is_the_signed_in_account_on_any_browser_else_the_browser():
    from ui.owner import owner_key

    ada = {"is_logged_in": True, "iss": "https://idp.example", "sub": "42", "email": "ada@example.org"}
    assert owner_key(ada, "0" * 32) == owner_key(ada, "f" * 32)  # the account, whatever the browser
    assert owner_key(ada, "0" * 32) != owner_key({**ada, "sub": "43"}, "0" * 32)
    assert owner_key({**ada, "sub": None}, "0" * 32) == owner_key({**ada, "sub": None}, "1" * 32)  # else the e-mail
    signed_out = {"is_logged_in": False}
    assert owner_key(signed_out, "0" * 32) != owner_key(signed_out, "1" * 32) == owner_key({}, "1" * 32)
    assert owner_key(signed_out, "0" * 32) != owner_key(ada, "0" * 32)
    assert "0" * 32 not in owner_key(signed_out, "0" * 32) and len(owner_key(ada, "")) == 64  # a hash, never the token


def test_the_linear_autoencoder_and_the_masked_one_are_offered_with_their_own_settings(checkpoint_dir):
    at = page(latent=4, name="linear")
    at.radio(key="_w.train.kind").set_value("linear_ae").run()
    assert not at.exception and not errors(at)
    # no hidden sizes, one architecture and one likelihood: said, not offered
    assert not any(t.key == "_w.train.hidden" for t in at.text_input)
    assert not any(r.key in ("_w.train.arch", "_w.train.likelihood") for r in at.radio)
    assert any(c.value.startswith("Likelihood") and ": gaussian (fixed variance 0.1" in c.value for c in at.caption)
    at.button(key="start").click().run()
    job = training.registry().latest()
    assert job.join(120)
    at.run()
    assert not at.exception and not errors(at)
    _, info = load_checkpoint(checkpoint_dir / "linear.pt")
    config = info.model_config
    assert (config.kind, config.hidden, config.likelihood, config.latent_dim) == ("linear_ae", (), "gaussian", 4)
    angle = info.metrics["pca_angle"]
    assert 0 <= angle <= 90
    assert any(f"{angle:.1f}° from PCA's subspace" in c.value for c in at.caption)

    at.radio(key="_w.train.kind").set_value("dae").run()
    assert at.text_input(key="_w.train.hidden").value == "32"  # the other kinds' settings come back
    at.radio(key="_w.train.noise_kind").set_value("patch").run()
    at.slider(key="_w.train.noise_level").set_value(0.75)
    at.number_input(key="_w.train.patch_side").set_value(4)
    at.text_input(key="_w.train.name").set_value("masked").run()
    at.button(key="start").click().run()
    assert training.registry().latest().join(120)
    _, info = load_checkpoint(checkpoint_dir / "masked.pt")
    assert (info.model_config.kind, info.model_config.noise) == ("dae", "patch:0.75:4")


def test_a_linear_models_test_curve_says_its_means_are_clamped_and_the_others_do_not():
    """The shipped linear AE's history: trained on unclamped x̂, scored on x̂ clamped into [0, 1], so its test points lie
    below its train curve; the legend says why. A deep model's legend is the plain one."""
    from conftest import shipped_checkpoint
    from vae_core.checkpoint import read_info
    from vae_core.jobs import JobView, MemberView

    def legend(name: str) -> dict[str, list[float]]:
        info = read_info(shipped_checkpoint(name))
        view = JobView(id=name, title=name, kind=info.model_config.kind, epochs=len(info.history),
                       members=(MemberView(name, history=tuple(info.history)),))
        return {trace.name: list(trace.y) for trace in training.curves_figure(view).data if trace.name}

    linear = legend("mnist_linear_z20")
    assert set(linear) == {"train (per epoch)", "test (per epoch, x̂ clamped to [0, 1])"}
    assert linear["test (per epoch, x̂ clamped to [0, 1])"][-1] < linear["train (per epoch)"][-1]
    assert set(legend("mnist_ae_z20")) == {"train (per epoch)", "test (per epoch)"}
