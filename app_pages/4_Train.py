"""Train: a VAE trained in the background while you watch its curves, reconstructions, samples and latent map form."""
from __future__ import annotations

import streamlit as st

from ui import image_import, owner, session_keys, shared, training
from vae_core.config import ConfigError
from vae_core.jobs import JobError, sanitize_name, target_path, training_spec
from vae_core.train import device_label, pick_device

st.set_page_config(page_title="Train · Latent Explorer", layout="wide")

ANNOUNCED_KEY = "train.announced"

registry = training.registry()
me = owner.current()
mine = training.MyJobs.of(me)
mine.watch(session_keys.TRAIN_JOB)

watched = registry.get(st.session_state.get(session_keys.TRAIN_JOB, ""))
if watched is not None and not watched.active:
    saved = watched.view().saved
    # Counted, not only the job: a model saved later by "Save again" (after a full disk) is announced too.
    if saved and st.session_state.get(ANNOUNCED_KEY) != (watched.id, len(saved)):
        st.session_state[ANNOUNCED_KEY] = (watched.id, len(saved))
        st.session_state[session_keys.SELECTED_MODEL] = saved[-1].path.stem  # shown on every page from now on

shared.model_picker()

st.title("Train a model")
st.caption(f"Training runs on **{device_label(pick_device('auto'))}** (a CUDA GPU is used automatically when present). "
           "It goes on in the background: switch pages or reload, and come back to watch. " + training.limits_line())

image_import.section()  # your own images, imported as a dataset the settings below can train on

with st.expander("Settings", expanded=not mine.any_active):
    try:
        model_config, train_config = training.settings_form("train", {"latent": 2, "hidden": "512, 256", "epochs": 10})
        settings_error = None
    except ConfigError as exc:
        model_config = train_config = None
        settings_error = str(exc)
        st.error(settings_error)

name_col, who_col, replace_col = st.columns([1, 1, 2], vertical_alignment="bottom")
name = name_col.text_input("Model name", key=training.remembered("train.name", "my_vae"),
                           help="Saved as <name>.pt in the checkpoint folder; letters, digits, '_', '-' and '.' only.")
me = training.name_field(who_col, me)
replace = replace_col.checkbox("Replace my model of that name", key=training.remembered("train.replace", False),
                               help="Only a model you trained here: one trained by someone else, or shipped with "
                                    "the app, is never taken.")
try:  # the refusal Start would give, said before it is pressed
    replace_col.caption(f"Will be saved as "
                        f"`{shared.shown_path(target_path(shared.trained_dir(), sanitize_name(name), replace, me))}`.")
except JobError as exc:
    replace_col.caption(str(exc))


start_col, stop_col, _ = st.columns([1, 1, 4])
refused = training.start_button(
    start_col, "Start training", "start", session_keys.TRAIN_JOB, settings_error,
    lambda: training_spec(name, shared.trained_dir(), model_config, train_config, replace_existing=replace, owner=me))
training.stop_button(stop_col, "stop", "Stops your training at the next step and saves the weights reached so far.",
                     mine.running)
if refused:
    st.error(refused)

if mine.waiting is not None:
    training.queue_notice(mine.waiting)
job, own = training.shown_job(mine)
if job is None:
    st.info("No training yet. Choose the settings and press **Start training**; "
            "a small model (hidden 64, d = 2) on the sample shows digits within a few epochs.")
else:
    training.live_view(job.id, job.running, mine=own)
training.others(me, job)
training.my_models(me)
