"""Compare β: models that differ only in the weight of the KL term, side by side, and the rate–distortion trade-off."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import shared, training
from ui.plots import CLASS_COLORS, latent_map
from vae_core import evaluate
from vae_core.checkpoint import CheckpointInfo
from vae_core.config import ConfigError
from vae_core.jobs import IW_SAMPLES, parse_betas, sweep_spec
from vae_core.snapshots import Snapshot, decode_plane, example_indices, map_indices, take_snapshot

st.set_page_config(page_title="Compare β · Latent Explorer", layout="wide")

MODE_COMPARE, MODE_SWEEP = "Compare trained models", "Train a β sweep"
MODELS_KEY = "compare.models"
JOB_KEY = "compare.job_id"
ANNOUNCED_KEY = "compare.announced"
SHIPPED_SWEEP = "mnist_z10"  # mnist_z10_beta{0.5,1,4,8}.pt
GRID_N = 12
MIN_COLUMNS = 4
METRIC_KEYS = ("elbo", "recon", "kl", "iw_logpx", "active_units")
SAME = ("dataset", "architecture", "latent size", "hidden sizes", "likelihood")

registry = training.registry()


def _stamp(info: CheckpointInfo) -> int:
    return info.path.stat().st_mtime_ns


def default_models(infos: list[CheckpointInfo], selected: str | None = None) -> list[str]:
    """The sweep the model chosen in the sidebar belongs to, else the shipped sweep, else the newest group of
    checkpoints named <prefix>_beta<B> (as the sweep saves them)."""
    groups: dict[str, list[CheckpointInfo]] = {}
    for info in infos:
        if found := re.fullmatch(r"(.+)_beta[0-9.eE+-]+", info.name):
            groups.setdefault(found.group(1), []).append(info)
    groups = {prefix: members for prefix, members in groups.items() if len(members) >= 2}
    if not groups:
        return []
    mine = [p for p, members in groups.items() if selected in {i.name for i in members}]
    prefix = (mine[0] if mine else SHIPPED_SWEEP if SHIPPED_SWEEP in groups
              else max(groups, key=lambda p: max(map(_stamp, groups[p]))))
    return [i.name for i in sorted(groups[prefix], key=lambda i: i.beta)]


def _shape(info: CheckpointInfo) -> tuple:
    c = info.model_config
    return info.dataset, c.arch, c.latent_dim, tuple(c.hidden), c.likelihood


@st.cache_data(show_spinner="Measuring test metrics…", max_entries=64)
def _metrics(path: str, stamp: int, dataset_name: str, _info: CheckpointInfo) -> tuple[dict[str, float] | None, str]:
    """Stored metrics when the checkpoint has them all, else measured here on the model's own test split
    (None when that is not to be had). Both come from the same 10,000 test images the pictures use."""
    stored = _info.metrics
    if all(isinstance(stored.get(k), (int, float)) and math.isfinite(stored[k]) for k in METRIC_KEYS):
        k = stored.get("iw_samples")
        return dict(stored), f"stored at training (k = {k})" if k else "stored at training"
    data = shared.dataset(dataset_name)[0]
    if data is None:
        return None, "not measured: no test images"
    measured = evaluate.evaluate(shared.load_model(_info), data.test_images, iw_samples=IW_SAMPLES)
    return measured, f"measured here (k = {IW_SAMPLES})"


@st.cache_data(show_spinner="Drawing the latent space…", max_entries=64)
def _panel(path: str, stamp: int, dataset_name: str, _info: CheckpointInfo) -> tuple[Snapshot, np.ndarray | None]:
    """The model's latent map, reconstructions and prior samples, and its decoded grid on the same plane."""
    model = shared.load_model(_info)
    data = shared.dataset(dataset_name)[0]
    snap = take_snapshot(model, data, len(_info.history), map_indices(len(data.test_images)),
                         example_indices(data.test_labels))
    grid = decode_plane(model, snap.plane, GRID_N) if model.latent_dim >= 2 else None
    return snap, grid


def rate_distortion_figure(rows: list[dict]) -> go.Figure:
    """Recon (distortion) against KL (rate), one labelled point per model, joined in β order."""
    rows = sorted(rows, key=lambda r: r["β"])
    fig = go.Figure(go.Scatter(
        x=[r["KL"] for r in rows], y=[r["recon"] for r in rows], mode="lines+markers+text",
        text=[f"β = {r['β']:g}" for r in rows], textposition="top center", cliponaxis=False,
        marker=dict(size=10, color="#1f77b4"),
        line=dict(color="#9ecae1", dash="dot"), customdata=[r["model"] for r in rows],
        hovertemplate="%{customdata}<br>KL %{x:.1f} nats<br>recon %{y:.1f} nats<extra></extra>",
    ))
    fig.update_layout(height=360, margin=dict(l=10, r=40, t=40, b=10), title="Rate–distortion",
                      xaxis_title="rate: KL(q(z|x) ‖ p(z)) in nats", yaxis_title="distortion: −log p(x|z) in nats")
    return fig


def show_column(info: CheckpointInfo, snap: Snapshot, grid: np.ndarray | None, class_names: tuple[str, ...]) -> None:
    st.markdown(f"#### β = {info.beta:g}")
    st.caption(f"`{info.name}` · {info.dataset} · d = {info.model_config.latent_dim}")
    fig, _ = latent_map(snap.points, snap.labels, class_names, axis_titles=snap.plane.labels, clickable=False, height=330)
    fig.update_layout(showlegend=False, margin=dict(l=40, r=5, t=5, b=35))
    st.plotly_chart(fig, key=f"map-{info.name}")
    if grid is not None:
        st.image(training.pixels(grid, scale=1), width="stretch",
                 caption=f"decoded {GRID_N}×{GRID_N} grid over [-3, 3]² of the same plane")
    st.image(training.pixels(snap.samples.reshape(2, -1, *snap.samples.shape[1:]), scale=2), width="stretch",
             caption="samples from the prior (the same z for every β)")
    st.image(training.pixels(np.stack([snap.originals, snap.reconstructions]), scale=2), width="stretch",
             caption="the same 8 test inputs (top) and their reconstructions")


def compare_section(selected: str | None) -> None:
    infos, _ = shared.checkpoints()  # the sidebar picker already reports unusable files
    if not infos:
        st.info(f"No checkpoints in {shared.CHECKPOINT_DIR}: train a β sweep with **{MODE_SWEEP}** above.")
        return
    by_name = {i.name: i for i in infos}
    names = list(by_name)
    chosen = st.multiselect(
        "Models to compare", names, key=training.remembered(MODELS_KEY, default_models(infos, selected), names),
        format_func=lambda n: f"{n} (β = {by_name[n].beta:g}, d = {by_name[n].model_config.latent_dim}, {by_name[n].dataset})",
        help="By default the β sweep of the model chosen in the sidebar, else the shipped mnist_z10_beta* sweep: "
             "the same model trained with β = 0.5, 1, 4 and 8.",
    )
    if len(chosen) < 2:
        st.info("Pick at least two models that differ in β (for example the shipped mnist_z10_beta* sweep, "
                f"or train one with **{MODE_SWEEP}**).")
        return
    models = sorted((by_name[n] for n in chosen), key=lambda i: i.beta)
    differ = [label for k, label in enumerate(SAME) if len({_shape(i)[k] for i in models}) > 1]
    if differ:
        st.warning(f"These models differ in more than β ({', '.join(differ)}), so the comparison mixes several effects.")
    if len({i.beta for i in models}) < len(models):
        st.warning("Some of the chosen models share the same β.")

    rows, panels, missing = [], [], {}
    for info in models:
        data, notice = shared.dataset(info.dataset)
        if data is None:
            missing.setdefault(info.dataset, (notice, []))[1].append(info.name)
        metrics, source = _metrics(str(info.path), _stamp(info), info.dataset, info)
        if metrics is not None:
            rows.append({"model": info.name, "β": info.beta, "test −ELBO": metrics["elbo"], "recon": metrics["recon"],
                         "KL": metrics["kl"], "IW log p(x)": metrics["iw_logpx"],
                         "active units": f"{int(metrics['active_units'])} of {info.model_config.latent_dim}",
                         "metrics": source})
        if data is not None:
            panels.append((info, *_panel(str(info.path), _stamp(info), data.name, info), data.class_names))
    for name, (notice, members) in missing.items():  # one notice per missing dataset, not one per model
        st.warning(f"The test images of **{name}** are not available here, so {', '.join(members)} "
                   "cannot be drawn side by side.")
        with st.expander("How to get the data"):
            st.markdown(notice)

    st.markdown("**Test metrics** (nats per image; −ELBO at β = 1 whatever β the model was trained with). "
                "Measured on each model's own test split, the same images the pictures below use.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "β": st.column_config.NumberColumn(format="%g"),
        **{c: st.column_config.NumberColumn(format="%.1f") for c in ("test −ELBO", "recon", "KL", "IW log p(x)")},
    })
    text_col, plot_col = st.columns([2, 3], gap="large")
    with text_col:
        st.caption("Active units: latent dims whose posterior mean varies across test images (variance > "
                   f"{evaluate.ACTIVE_UNIT_THRESHOLD}); the others carry no information about the input.")
    with plot_col:
        st.plotly_chart(rate_distortion_figure(rows), key="rate-distortion")
    if not panels:
        return

    d = {i.model_config.latent_dim for i in models}
    st.markdown("**Side by side.** Each column is one model. " + (
        "Maps and grids use the latent axes z0, z1." if d == {2} else
        "For d > 2 each model is drawn on the plane of its own top two principal components (its latent space is its "
        "own), always on the same axes [-3, 3]², so spread and holes compare directly."))
    class_names = panels[0][3]
    st.html(" ".join(f'<span style="color:{CLASS_COLORS[k % len(CLASS_COLORS)]}">&#9679;</span>&nbsp;{name}'
                     for k, name in enumerate(class_names)))
    # at least MIN_COLUMNS slots, so two models do not get half the page each and huge grids
    for col, (info, snap, grid, names) in zip(st.columns(max(len(panels), MIN_COLUMNS)), panels):
        with col:
            show_column(info, snap, grid, names)


def sweep_section() -> None:
    st.markdown("Train one model per β with otherwise equal settings, one after the other, as one background job. "
                "Each is saved as `<name>_beta<β>.pt` and appears in **Compare trained models** (and every model picker).")
    with st.expander("Sweep settings", expanded=registry.active() is None):
        try:
            model_config, train_config = training.settings_form(
                "sweep", {"latent": 10, "hidden": "256, 128", "epochs": 10}, with_beta=False)
            settings_error = None
        except ConfigError as exc:
            model_config = train_config = None
            settings_error = str(exc)
            st.error(settings_error)
    c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
    betas_text = c1.text_input("β values", key=training.remembered("sweep.betas", "0.5, 1, 2, 4, 8"),
                               help="Comma-separated; each one trains a model.")
    name = c2.text_input("Name", key=training.remembered("sweep.name", "sweep"))
    replace = c3.checkbox("Replace existing models of these names", key=training.remembered("sweep.replace", False))

    start_col, stop_col, _ = st.columns([1, 1, 4])
    refused = training.start_button(
        start_col, "Start sweep", "start-sweep", JOB_KEY, settings_error,
        lambda: sweep_spec(name, shared.trained_dir(), model_config, train_config, parse_betas(betas_text),
                           replace_existing=replace))
    training.stop_button(stop_col, "stop-sweep",
                         "Stops the model being trained (it is saved as it is) and skips the rest.")
    if refused:
        st.error(refused)
    job = registry.active() or registry.get(st.session_state.get(JOB_KEY, ""))
    if job is not None:
        training.live_view(job.id, job.running)


mine = registry.get(st.session_state.get(JOB_KEY, ""))
if mine is not None and not mine.running and st.session_state.get(ANNOUNCED_KEY) != mine.id:
    st.session_state[ANNOUNCED_KEY] = mine.id
    saved = [m.path.stem for m in mine.view().saved]
    if len(saved) >= 2:  # preselect the new sweep for comparison
        st.session_state[MODELS_KEY] = saved
        st.session_state.pop(training.widget_key(MODELS_KEY), None)

chosen_info = shared.model_picker()
st.title("Compare β")
st.markdown(
    "The β-VAE objective is reconstruction + **β**·KL. β sets the price of information in the latent code. "
    "**Small β** (< 1) lets the encoder spend many nats: reconstructions are sharp, but the clusters spread out "
    "and leave holes between them, so prior samples that land in a hole decode to blur or non-digits. "
    "**Large β** squeezes every posterior toward N(0, I): the map becomes smooth and prior-like and samples look "
    "typical, but reconstructions blur and, past a point, whole latent dims stop carrying information "
    "(posterior collapse: the number of active units drops). The rate–distortion plot shows the trade: "
    "moving along it, the KL (rate) falls as the reconstruction error (distortion) rises."
)
mode = st.radio("Mode", (MODE_COMPARE, MODE_SWEEP), horizontal=True, label_visibility="collapsed",
                key=training.remembered("compare.mode", MODE_COMPARE, (MODE_COMPARE, MODE_SWEEP)))
if mode == MODE_SWEEP:
    sweep_section()
else:
    if (active := registry.active()) is not None:
        st.info(f"Training in the background: {active.view().title}. Follow it under **{MODE_SWEEP}** or on the Train page.")
    compare_section(chosen_info.name if chosen_info else None)
