"""Import a model trained elsewhere in the app: two uploaded ONNX files, checked exactly as `python -m vae_core import`
checks them (vae_core.imported), saved beside the models trained in the app and selected."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import shared, training
from ui.session_keys import SELECTED_MODEL
from vae_core.checkpoint import CheckpointError
from vae_core.config import LIKELIHOODS, ConfigError
from vae_core.data import DatasetUnavailable, known_datasets
from vae_core.imported import build, save_imported
from vae_core.jobs import JobError, Owner, owner_extra, sanitize_name, target_path
from vae_core.models.onnx_model import DECODER_OUTPUTS

OUTPUT_LABELS = {"probs": "probabilities in [0, 1]", "logits": "logits"}


def save_upload(encoder: bytes, decoder: bytes, *, encoder_name: str, decoder_name: str, dataset: str,
                decoder_output: str = "probs", likelihood: str = "bernoulli", name: str = "",
                owner: Owner = Owner()) -> Path:
    """Check the two files, measure the model on `dataset`'s test split and save it in the trained folder under `name`
    (default: the encoder file's name) as `owner`'s; raises CheckpointError (a refused file, one line naming it),
    JobError (a bad or taken name), DatasetUnavailable or ConfigError."""
    data, notice = shared.dataset(dataset)
    if data is None:
        raise DatasetUnavailable(notice)
    stem = sanitize_name(name or Path(encoder_name).stem)

    def free_path() -> Path:
        # Neither a model saved under that name nor a run under way that will save under it (on a shared server).
        path = target_path(shared.trained_dir(), stem)
        training.registry().check_unclaimed(path, owner)
        return path

    free_path()  # before the seconds of checking and measuring, so a taken name is said at once
    model = build(encoder, decoder, data, decoder_output=decoder_output, likelihood=likelihood,
                  encoder_name=encoder_name, decoder_name=decoder_name)
    # Held from its last check to its write: no job, nor another import, can take the name in between.
    with training.registry().claim(free_path(), owner) as path:
        target_path(shared.trained_dir(), stem)  # a file another import finished meanwhile
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_imported(path, model, encoder, decoder, data, title=name, sources=(encoder_name, decoder_name),
                             recorded=owner_extra(owner))


def import_form(owner: Owner) -> None:
    """The upload form; a model that passes is saved as `owner`'s and selected on every page."""
    st.caption("Two ONNX files: the encoder takes images (N, C, H, W) or (N, C·H·W), float32 in [0, 1], and outputs "
               "μ, or μ and log σ² (N, d); the decoder takes z (N, d) and outputs the images. Nothing in them is run "
               "before they pass the checks (see the README, \"Your own model\").")
    with st.form("onnx_import"):
        left, right = st.columns(2)
        encoder = left.file_uploader("Encoder (.onnx)", type=["onnx"])
        decoder = right.file_uploader("Decoder (.onnx)", type=["onnx"])
        names = known_datasets()
        dataset = left.selectbox("Trained on", names, index=names.index("mnist"))
        name = right.text_input("Name", placeholder="the encoder file's name")
        output = left.radio("The decoder outputs", DECODER_OUTPUTS, format_func=OUTPUT_LABELS.get, horizontal=True)
        likelihood = right.radio("Likelihood", LIKELIHOODS, horizontal=True,
                                 help="Gaussian: a fixed per-pixel variance of 0.1")
        submitted = st.form_submit_button("Import")
    if not submitted:
        return
    if encoder is None or decoder is None:
        st.error("Choose both files, the encoder and the decoder.")
        return
    try:
        with st.spinner("Checking the files, then measuring the model on the test set…"):
            path = save_upload(encoder.getvalue(), decoder.getvalue(), encoder_name=encoder.name,
                               decoder_name=decoder.name, dataset=dataset, decoder_output=output,
                               likelihood=likelihood, name=name, owner=owner)
    except (CheckpointError, JobError, DatasetUnavailable, ConfigError) as exc:
        st.error(str(exc))
        return
    st.session_state[SELECTED_MODEL] = path.stem
    st.rerun()
