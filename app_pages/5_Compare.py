"""Compare: two to six models side by side on the same axes (AE vs VAE, denoising, a β sweep) and what each can measure."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import (classifier_request, factor_view, history_view, model_panels, owner, session_keys, shared, sweep_view,
                training, traversal_view)
from ui.images import tile, to_png_bytes
from ui.plots import CLASS_COLORS
from vae_core import evaluate
from vae_core.checkpoint import CheckpointInfo
from vae_core.classifier import CONFIDENT
from vae_core.config import ConfigError
from ui.forms import parse_betas
from vae_core.data import ImageDataset, to_display
from vae_core.jobs import Owner, sweep_spec
from vae_core.models import TRAINABLE_KINDS, model_class

st.set_page_config(page_title="Compare · Latent Explorer", layout="wide")

MODE_COMPARE, MODE_SWEEP = "Compare trained models", "Train a β sweep"
MODELS_KEY = "compare.models"
ANNOUNCED_KEY = "compare.announced"
SHIPPED_SWEEP = "mnist_z10"  # mnist_z10_beta{0.5,1,4,8}.pt
PRESETS = {  # the contrasts that explain the VAE, with the shipped models that show them
    # at d = 20, where the autoencoders' holes show; d = 2 is the picture of the plane (see D2_HIDES_HOLES)
    "AE vs VAE (d = 20)": ("mnist_ae_z20", "mnist_dae_z20", "mnist_z20"),
    "AE vs VAE on the plane (d = 2)": ("mnist_ae_z2", "mnist_z2"),
    "Denoising": ("mnist_ae_z2", "mnist_dae_z2", "mnist_z2"),
    "Conditional": ("mnist_z2", "mnist_cvae_z2"),
}
BETA_PRESET = "β sweep"
D2_HIDES_HOLES = (
    "Why AE vs VAE compares at d = 20: a 2-D decoder is smooth and fills its whole plane with digit-like strokes, so "
    "the d = 2 autoencoder's prior samples read as digits about as often as the VAE's; an autoencoder's holes are in "
    "the volume of a higher-dimensional code, which samples of N(0, I) land in but no code occupies.")
MAX_MODELS = 6
MIN_COLUMNS = 4
SAME = ("dataset", "architecture", "latent size", "hidden sizes", "likelihood")
READ_AS = "prior samples read as a class"
PCA_ANGLE = "angle to PCA"
SQUARED = "squared error"
BETA_KINDS = tuple(k for k in TRAINABLE_KINDS if "beta" in model_class(k).settings)  # what a β sweep can train

registry = training.registry()


def beta_groups(infos: list[CheckpointInfo]) -> dict[str, list[CheckpointInfo]]:
    """Checkpoints named <prefix>_beta<B> (as a sweep saves them), by prefix, in β order; groups of two or more."""
    groups: dict[str, list[CheckpointInfo]] = {}
    for info in infos:
        if found := re.fullmatch(r"(.+)_beta[0-9.eE+-]+", info.name):
            groups.setdefault(found.group(1), []).append(info)
    return {p: sorted(m, key=lambda i: i.beta) for p, m in groups.items() if len(m) >= 2}


def default_models(infos: list[CheckpointInfo], selected: str | None = None) -> list[str]:
    """The sweep the model chosen in the sidebar belongs to, else the shipped sweep, else the newest group of
    checkpoints named <prefix>_beta<B>, else the first preset whose models are all there."""
    groups = beta_groups(infos)
    mine = [p for p, members in groups.items() if selected in {i.name for i in members}]
    if mine or groups:
        prefix = (mine[0] if mine else SHIPPED_SWEEP if SHIPPED_SWEEP in groups
                  else max(groups, key=lambda p: max(shared.stamp(i.path) for i in groups[p])))
        return [i.name for i in groups[prefix]]
    names = {i.name for i in infos}
    return next((list(m) for m in PRESETS.values() if set(m) <= names), [])


def presets(infos: list[CheckpointInfo]) -> dict[str, list[str]]:
    """The presets whose models are all there, and the shipped β sweep."""
    names = {i.name for i in infos}
    found = {label: list(models) for label, models in PRESETS.items() if set(models) <= names}
    sweep = beta_groups(infos).get(SHIPPED_SWEEP)
    if sweep:
        found[BETA_PRESET] = [i.name for i in sweep]
    return found


def _shape(info: CheckpointInfo) -> tuple:
    c = info.model_config
    return info.dataset, c.arch, c.latent_dim, tuple(c.hidden), c.likelihood


def header(info: CheckpointInfo) -> str:
    if sweep_view.in_sweep(info):
        return f"#### {info.model_class.label(info.model_config)} · {sweep_view.axes(info)}"
    beta = f" · β = {info.beta:g}" if "beta" in info.model_class.settings else ""
    return f"#### {info.model_class.label(info.model_config)}{beta}"


def rate_distortion_figure(rows: list[dict]) -> go.Figure:
    """Recon (distortion) against KL (rate), one labelled point per model with a posterior, joined in β order."""
    rows = sorted((r for r in rows if r["KL"] is not None), key=lambda r: r["β"])
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


def show_column(info: CheckpointInfo, panel: model_panels.Panel, data: ImageDataset, tint: bool, label: int | None,
                same_axes: bool, sent: dict | None) -> None:
    st.markdown(header(info))
    extent = (" · codes on their own extent, the dashed square is [-3, 3]²"
              if not info.model_class.probabilistic else "")
    st.caption(f"`{info.name}` · {shared.kind_label(info)} · {info.dataset} · d = {info.model_config.latent_dim}"
               f"{extent}")
    snap = panel.snapshot
    model_panels.live_map(info, snap, data, label, key=f"map-{info.name}", group="compare" if same_axes else None,
                          sent=sent if sent and sent["dataset"] == info.dataset else None)
    if panel.grid is not None:
        st.image(model_panels.grid_picture(panel.grid, panel.grid_confidence if tint else None), width="stretch",
                 caption=f"decoded {model_panels.GRID_N}×{model_panels.GRID_N} grid over [-3, 3]² of the same plane",
                 output_format="PNG")
    share = ("" if panel.confident_share is None else
             f"; {panel.confident_share:.0%} of 1,000 read as one class by {info.dataset}'s classifier")
    st.image(to_png_bytes(tile(snap.samples.reshape(2, -1, *snap.samples.shape[1:]), padding=2), 2), width="stretch",
             caption=f"samples from the prior N(0, I) (the same z for every model){share}", output_format="PNG")
    st.image(to_png_bytes(tile(np.stack([snap.originals, snap.reconstructions]), padding=2), 2), width="stretch",
             caption="the same 8 test inputs (top) and their reconstructions", output_format="PNG")


def compare_section(selected: str | None) -> None:
    infos, _ = shared.checkpoints()  # the sidebar picker already reports unusable files
    sweeps, members, sweep_errors = sweep_view.sweeps()  # folders written by `python -m vae_core sweep`
    infos = infos + members
    if not infos:
        st.info(f"No checkpoints in {shared.CHECKPOINT_DIR}: train a β sweep with **{MODE_SWEEP}** above.")
        return
    by_name = {i.name: i for i in infos}
    names = list(by_name)
    widget = training.remembered(MODELS_KEY, default_models(infos, selected), names)
    offered = presets(infos) | sweep_view.presets(sweeps, members, MAX_MODELS)
    if offered:
        def use_preset() -> None:
            choice = st.session_state.get("compare.preset")
            if choice:
                st.session_state[widget] = offered[choice]

        st.pills("Presets", list(offered), key="compare.preset", on_change=use_preset,
                 help="AE vs VAE: the same network with and without the KL term, at d = 20 where the autoencoders' "
                      "holes show and at d = 2 as a picture of the plane. Denoising: trained on corrupted "
                      "inputs. Conditional: the label as an input. β sweep: the same VAE with β = 0.5, 1, 4, 8. "
                      f"sweep <name>: a folder of {shared.trained_dir().name}/ written by `python -m vae_core sweep`.")
    for line in sweep_errors:
        st.warning(f"Skipped: {line}")
    if (sweep := sweep_view.chosen(sweeps, st.session_state.get("compare.preset"))) is not None:
        sweep_view.show(sweep)
    chosen = st.multiselect(
        "Models to compare", names, key=widget, max_selections=MAX_MODELS,
        format_func=lambda n: f"{n} ({shared.kind_label(by_name[n])}, d = {by_name[n].model_config.latent_dim}, "
                              f"{by_name[n].dataset})",
        help="Two to six models. By default the β sweep of the model chosen in the sidebar, else the shipped one.",
    )
    if len(chosen) < 2:
        st.info("Pick at least two models (for example a preset above, or train a β sweep with "
                f"**{MODE_SWEEP}**).")
        return
    models = [by_name[n] for n in chosen]
    if len({i.model_config.kind for i in models}) == 1:
        models.sort(key=lambda i: i.beta)
    differ = [label for k, label in enumerate(SAME) if len({_shape(i)[k] for i in models}) > 1]
    if differ:
        st.warning(f"These models differ in more than their objective ({', '.join(differ)}), so the comparison "
                   "mixes several effects.")
    probabilistic = [i for i in models if i.model_class.probabilistic]
    if len({(i.model_config.kind, i.beta) for i in probabilistic}) < len(probabilistic):
        st.warning("Some of the chosen models share the same kind and β.")

    datasets = list(dict.fromkeys(i.dataset for i in models))
    judged = [name for name in datasets if shared.classifier_file(name) is not None]
    c_tint, c_label = st.columns([2, 2])
    with c_tint:
        tint = bool(judged) and st.toggle(
            "Colour the grids by the classifier's confidence", key="compare.tint",
            help=f"Cells that {' and '.join(judged)}'s classifier does not read as one class with probability ≥ "
                 f"{CONFIDENT:g} are tinted red: the holes of the latent space.")
        for name in datasets:  # a labelled set without a classifier: one trained on request
            classifier_request.offer(name)
    conditional = next((i for i in models if i.model_class.conditional), None)
    drawn_names = shared.model_class_names(conditional) if conditional is not None else ()
    label = (c_label.selectbox("Class the conditional VAE draws", range(len(drawn_names)), key="compare.label",
                               format_func=drawn_names.__getitem__)
             if conditional is not None else None)

    rows, panels, missing, sources = [], [], {}, {}
    for info in models:
        data, notice = shared.dataset(info.dataset, info.dataset_sha)
        if data is None:
            missing.setdefault(info.dataset, (notice, []))[1].append(info.name)
        metrics, source = model_panels.metrics(info, data)
        panel = model_panels.panel(info, data, label) if data is not None else None
        if metrics is not None:
            posterior = info.model_class.probabilistic
            rows.append({
                "model": info.name, "kind": shared.kind_label(info), "β": info.beta if posterior else None,
                "test −ELBO": metrics["elbo"] if posterior else None, "recon": metrics["recon"],
                SQUARED: None if panel is None else panel.squared_error,
                "KL": metrics["kl"] if posterior else None, "IW log p(x)": metrics.get("iw_logpx") if posterior else None,
                "active units": f"{int(metrics['active_units'])} of {info.model_config.latent_dim}" if posterior else "",
                "test codes in [-3, 3]ᵈ": None if panel is None else panel.in_prior_box,
                READ_AS: None if panel is None else panel.confident_share,
                **({PCA_ANGLE: metrics.get("pca_angle")} if any(i.model_class.linear for i in models) else {})})
            sources[info.name] = source
        if panel is not None:
            panels.append((info, panel, data))
    for name, (notice, members) in missing.items():  # one notice per missing dataset, not one per model
        st.warning(f"The test images of **{name}** are not available here, so {', '.join(members)} "
                   "cannot be drawn side by side.")
        with st.expander("How to get the data"):
            st.markdown(notice)

    st.markdown("**Test metrics** (nats per image; −ELBO at β = 1 whatever β the model was trained with; an "
                "autoencoder has no posterior, so only its reconstruction). Measured on each model's own test split, "
                "the same images the pictures below use.")
    table = pd.DataFrame(rows)
    if READ_AS in table and table[READ_AS].isna().all():  # no classifier judges these datasets: nothing to show
        table = table.drop(columns=READ_AS)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "kind": st.column_config.TextColumn(width="small"),
        "β": st.column_config.NumberColumn(format="%g", width="small"),
        "active units": st.column_config.TextColumn(width="small"),
        **{c: st.column_config.NumberColumn(format="%.1f", width="small")
           for c in ("test −ELBO", "recon", "KL", "IW log p(x)")},
        SQUARED: st.column_config.NumberColumn(
            format="%.1f", width="small",
            help="Σ over pixels of (x − x̂)² per test image, x̂ the decoded mean: unlike the nats of a Bernoulli and "
                 "a Gaussian likelihood, comparable between any two models (a linear AE's and a deep one's)."),
        "test codes in [-3, 3]ᵈ": st.column_config.ProgressColumn(
            format="percent", min_value=0.0, max_value=1.0,
            help="Share of the test images whose code has every coordinate within ±3, where the prior N(0, I) puts "
                 "nearly all its mass: the VAE's KL term keeps its codes there, an autoencoder's spread far out."),
        PCA_ANGLE: st.column_config.NumberColumn(
            format="%.1f°", width="small",
            help="For a linear autoencoder: the largest principal angle between its decoder's column space and the "
                 "top-d principal subspace of its training images. A linear autoencoder trained on squared error "
                 "spans PCA's subspace (Baldi & Hornik 1989): 0° is PCA exactly, 90° a direction PCA does not have."),
        READ_AS: st.column_config.ProgressColumn(
            format="percent", min_value=0.0, max_value=1.0,
            help=f"Share of 1,000 samples from N(0, I), decoded, that the dataset's classifier reads as one class "
                 f"with probability ≥ {CONFIDENT:g}: how much of the prior's mass decodes to something like the "
                 "dataset's images."),
    })
    text_col, plot_col = st.columns([2, 3], gap="large")
    with text_col:
        st.caption("Metrics: " + (next(iter(sources.values())) if len(set(sources.values())) == 1 else
                                  "; ".join(f"{name} {source}" for name, source in sources.items())) + ".")
        st.caption("Active units: latent dims whose posterior mean varies across test images (variance > "
                   f"{evaluate.ACTIVE_UNIT_THRESHOLD}); the others carry no information about the input.")
        st.caption("An autoencoder puts its codes wherever reconstruction is easiest: nothing keeps them in N(0, I), "
                   "so the prior says little about where its images' codes are (see the share of test codes in [-3, 3]ᵈ). "
                   "The VAE's KL term pulls the codes into the prior's mass, which is what makes sampling N(0, I) a "
                   "way to generate.")
        st.caption(D2_HIDES_HOLES)
    with plot_col:
        if sum(r["KL"] is not None for r in rows) >= 2:
            st.plotly_chart(rate_distortion_figure(rows), key="rate-distortion")
    if not panels:
        return
    factor_view.section([(info, data) for info, _, data in panels], MIN_COLUMNS)

    d = {i.model_config.latent_dim for i, _, _ in panels}
    st.markdown("**Side by side.** Each column is one model. " + (
        "Maps and grids use the latent axes z0, z1; moving over one map decodes the same spot in every model."
        if d == {2} else
        "For d > 2 each model is drawn on the plane of its own top two principal components (its latent space is its "
        "own); grids always span [-3, 3]², so spread and holes compare directly."))
    class_names = panels[0][2].class_names
    sent = st.session_state.get(session_keys.COMPARED_SELECTION)
    if sent:
        count = sum(len(sent.get(s, [])) for s in shared.SPLITS)
        c_sent, c_clear = st.columns([5, 1], vertical_alignment="center")
        c_sent.info(f"{count:,} images selected on the Latent Map ({sent['dataset']}) are placed on every map of "
                    "that dataset, each model encoding them itself; the other points fade.")
        if c_clear.button("Clear", key="compare.clear_sent"):
            del st.session_state[session_keys.COMPARED_SELECTION]
            st.rerun()
    st.html(" ".join(f'<span style="color:{CLASS_COLORS[k % len(CLASS_COLORS)]}">&#9679;</span>&nbsp;{name}'
                     for k, name in enumerate(class_names)))
    # at least MIN_COLUMNS slots, so two models do not get half the page each and huge grids
    for col, (info, panel, data) in zip(st.columns(max(len(panels), MIN_COLUMNS)), panels):
        with col:
            show_column(info, panel, data, tint, label, same_axes=d == {2}, sent=sent)
    collapse_and_traversals([info for info, _, _ in panels], label)


def collapse_and_traversals(models: list[CheckpointInfo], label: int | None) -> None:
    """Per model, in the same columns: KL per dimension over training with the active units, then the latent
    traversals from one shared start (a test image, or the origin)."""
    slots = max(len(models), MIN_COLUMNS)
    st.markdown("**Posterior collapse over training.** The KL of each latent dimension at each recorded moment "
                "(rows z0, z1, …), and how many dimensions stay active.")
    st.caption(history_view.COLLAPSED_LINE)
    for col, info in zip(st.columns(slots), models):
        with col:
            history_view.model_collapse(info)

    datasets = {info.name: shared.dataset(info.dataset, info.dataset_sha)[0] for info in models}
    st.markdown("**Latent traversals.** Each row sweeps one latent dimension from −3 to 3 with the others held at "
                "the start's code; rows are ordered by KL, collapsed ones faded. Across β, a large β leaves fewer, "
                "more separate factors (MNIST's: stroke width, slant, digit shape), and the rest collapse.")
    c_from, c_index, c_image = st.columns([2, 1, 1], vertical_alignment="bottom")
    pinned = st.session_state.get(session_keys.CLICKED_LATENTS) or []
    starts = ("a test image", *(("the last position pinned on the Latent Map",) if pinned else ()), "the origin z = 0")
    origin = c_from.radio("Start from", starts, horizontal=True, key=training.remembered("compare.traverse_from",
                                                                                        starts[0], starts))
    start = None
    if origin == starts[1] and pinned:
        start = tuple(float(v) for v in pinned[-1])
        c_index.caption("z = [" + ", ".join(f"{v:.2f}" for v in start) + "]")
    elif origin == "a test image":
        n = min(len(data.test_images) for data in datasets.values())
        start = int(c_index.number_input("Test image #", 0, n - 1, step=1, key="compare.traverse_index"))
        first = next(iter(datasets.values()))
        c_image.image(to_png_bytes(to_display(first.test_images[start]), 2), caption=f"#{start}", output_format="PNG")
    for col, info in zip(st.columns(slots), models):
        data = datasets[info.name]
        # a conditional model keeps the class of the start image, or draws the class picked above from the origin
        drawn = int(data.test_labels[start]) if isinstance(start, int) else (label if label is not None else 0)
        with col:
            st.markdown(header(info))
            traversal_view.show(info, data, start, drawn, factor_view.captured(info))


def sweep_section(me: Owner, mine: training.MyJobs) -> None:
    st.markdown("Train one model per β with otherwise equal settings, all at once (one batched network, the same "
                "batches), as one background job. Each is saved as `<name>_beta<β>.pt` and appears in **Compare "
                "trained models** (and every model picker). " + training.limits_line())
    with st.expander("Sweep settings", expanded=not mine.any_active):
        try:
            model_config, train_config = training.settings_form(
                "sweep", {"latent": 10, "hidden": "256, 128", "epochs": 10}, kinds=BETA_KINDS, with_beta=False)
            settings_error = None
        except ConfigError as exc:
            model_config = train_config = None
            settings_error = str(exc)
            st.error(settings_error)
    c1, c2, c3, c4 = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
    betas_text = c1.text_input("β values", key=training.remembered("sweep.betas", "0.5, 1, 2, 4, 8"),
                               help="Comma-separated; each one trains a model.")
    name = c2.text_input("Name", key=training.remembered("sweep.name", "sweep"))
    me = training.name_field(c3, me)
    replace = c4.checkbox("Replace my models of these names", key=training.remembered("sweep.replace", False))

    start_col, stop_col, _ = st.columns([1, 1, 4])
    refused = training.start_button(
        start_col, "Start sweep", "start-sweep", session_keys.SWEEP_JOB, settings_error,
        lambda: sweep_spec(name, shared.trained_dir(), model_config, train_config, parse_betas(betas_text),
                           replace_existing=replace, owner=me))
    training.stop_button(stop_col, "stop-sweep",
                         "Stops the model being trained (it is saved as it is) and skips the rest.", mine.running)
    if refused:
        st.error(refused)
    if mine.waiting is not None:
        training.queue_notice(mine.waiting)
    job = mine.shown
    if job is not None:
        training.live_view(job.id, job.running)
    training.others(me, job)


me = owner.current()
mine_now = training.MyJobs.of(me)
mine_now.watch(session_keys.SWEEP_JOB)
watched = registry.get(st.session_state.get(session_keys.SWEEP_JOB, ""))
if watched is not None and not watched.active and st.session_state.get(ANNOUNCED_KEY) != watched.id:
    st.session_state[ANNOUNCED_KEY] = watched.id
    saved = [m.path.stem for m in watched.view().saved]
    if len(saved) >= 2:  # preselect the new sweep for comparison
        st.session_state[MODELS_KEY] = saved
        st.session_state.pop(training.widget_key(MODELS_KEY), None)

chosen_info = shared.model_picker()
st.title("Compare models")
st.markdown(
    "The same networks trained with different objectives. A plain **autoencoder** learns a code per image and "
    "nothing else: nothing shapes the space between its codes, so the prior N(0, I) says nothing about where they "
    "are. A **denoising** "
    "autoencoder learns to undo corruption. The **VAE** adds a KL term that fills the space, so any point of "
    "N(0, I) decodes to something plausible; a **conditional VAE** is also given the class, so z keeps only the "
    "style.\n\n"
    "The β-VAE objective is reconstruction + **β**·KL. β sets the price of information in the latent code. "
    "**Small β** (< 1) lets the encoder spend many nats: reconstructions are sharp, but the clusters spread out "
    "and leave holes between them, so prior samples that land in a hole decode to blur, nothing like the data. "
    "**Large β** squeezes every posterior toward N(0, I): the map becomes smooth and prior-like and samples look "
    "typical, but reconstructions blur and, past a point, whole latent dims stop carrying information "
    "(posterior collapse: the number of active units drops). The rate–distortion plot shows the trade: "
    "moving along it, the KL (rate) falls as the reconstruction error (distortion) rises."
)
mode = st.radio("Mode", (MODE_COMPARE, MODE_SWEEP), horizontal=True, label_visibility="collapsed",
                key=training.remembered("compare.mode", MODE_COMPARE, (MODE_COMPARE, MODE_SWEEP)))
if mode == MODE_SWEEP:
    sweep_section(me, mine_now)
else:
    if (active := mine_now.running) is not None:
        st.info(f"Training in the background: {active.view().title}. Follow it under **{MODE_SWEEP}** or on the Train page.")
    compare_section(chosen_info.name if chosen_info else None)
