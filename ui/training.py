"""Streamlit side of background training: the process-wide job registry, remembered settings, and the live view.

The worker threads live in vae_core.jobs; this module only reads their `view()` and draws it.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from ui import history_view, shared
from ui import owner as owners
from ui.forms import parse_hidden, smooth
from ui.images import tile, to_png_bytes
from ui.plots import latent_map
from vae_core.config import (DEFAULT_HIDDEN, DEFAULT_NOISE, DEFAULT_PATCH_SIDE, MAX_IMAGE_SIDE, MAX_LATENT_DIM,
                             NOISE_KINDS, ConfigError, ModelConfig, TrainConfig, default_arch, parse_noise)
from vae_core.data import SAMPLE, DatasetUnavailable, ImageDataset, available_datasets, dataset_info, load_dataset
from vae_core.jobs import (
    OWNER_KEY, SNAPSHOT_INTERVAL_S, JobError, JobLimits, JobRegistry, JobSpec, JobView, Owner, QueuePlace, TrainingJob,
    delete_model,
)
from vae_core.models import TRAINABLE_KINDS, model_class
from vae_core.models.nets import conv_widths
from vae_core.train import pick_device

log = logging.getLogger(__name__)

POLL_S = 1.0
SWITCH_INTERVAL_S = 0.0005
QUEUE_POLL_S = 2.0  # a waiting job's place and estimate, and the others' progress, need no more
START_WAIT_S = 1.5
STOP_WAIT_S = 10.0
SNAPSHOT_POLL_S = SNAPSHOT_INTERVAL_S
HISTORY_POLL_S = 5.0  # the history gains a moment per epoch at most (after the first): no need to redraw it often
LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)
PIXEL_SCALE = 3  # images are upscaled with nearest-neighbour pixels so the browser does not blur them


def warm_up() -> None:
    """Pay, once per server and before anyone presses Start, what the first training would otherwise wait for:
    parsing the sample dataset (~2.5 s cold), the optimiser's first construction (it imports torch._dynamo, ~2 s)
    and the device's first use (CUDA's context)."""
    try:
        load_dataset(SAMPLE)
        torch.optim.Adam([torch.zeros(1, device=pick_device("auto"), requires_grad=True)])
    except Exception:  # a job meeting the same failure reports it to the user; a warm-up has no one to tell
        log.debug("training warm-up failed", exc_info=True)


@functools.cache
def warm_up_thread() -> threading.Thread:
    thread = threading.Thread(target=warm_up, name="vae-train-warm-up", daemon=True)
    thread.start()
    return thread


def load_when_warm(name: str) -> ImageDataset:
    """The jobs' loader: waits for a warm-up under way rather than parsing the same files beside it at half speed."""
    warm_up_thread().join()
    return load_dataset(name)


@st.cache_resource
def registry() -> JobRegistry:
    """One registry per server process: jobs outlive page switches, reloads and browser tabs. Its limits come from
    the environment ($VAE_MAX_JOBS, $VAE_MAX_QUEUE: JobLimits.from_env). Made when a page that trains is first
    shown, which starts the warm-up while the user chooses the settings."""
    warm_up_thread()
    # A training thread rarely lets go of the GIL; every other thread (the server's event loop, each session's
    # script) then waits up to the switch interval for it at each I/O step. 0.5 ms instead of Python's 5 ms: with a
    # job training, a new session's first paint 5.6 s instead of 7.0 s and the job 1.45× faster (medians of 9 and 3,
    # interleaved, load 12–21; bench/load.py), as the job's thread waits less for the GIL too.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    _log_jobs()
    # A server shut down (Ctrl-C, SIGTERM) stops its training at the next step and saves the weights reached, rather
    # than losing them; kill -9 runs nothing: the thread dies with the process (see JobRegistry).
    return JobRegistry(JobLimits.from_env())


def _log_jobs() -> None:
    """The server's output says when each job starts, is asked to stop and ends (and what it saved): whoever runs a
    class's server can tell a stuck job from a page that stopped redrawing."""
    jobs = logging.getLogger(TrainingJob.__module__)
    if not jobs.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        jobs.addHandler(handler)
        jobs.setLevel(logging.INFO)


@dataclass(frozen=True)
class MyJobs:
    """What one owner has on the server: the job running, the job waiting, the last one that ended."""

    running: TrainingJob | None = None
    waiting: TrainingJob | None = None
    ended: TrainingJob | None = None

    @classmethod
    def of(cls, me: Owner) -> "MyJobs":
        views = [(job, job.view()) for job in registry().of(me)]
        return cls(running=next((j for j, v in views if v.running), None),
                   waiting=next((j for j, v in views if v.queued), None),
                   ended=next((j for j, v in reversed(views) if not v.active), None))

    @property
    def shown(self) -> TrainingJob | None:
        """The job whose live view the owner sees: the one running, else the last that ended."""
        return self.running or self.ended

    @property
    def any_active(self) -> bool:
        return self.running is not None or self.waiting is not None

    def watch(self, job_key: str) -> None:
        """Remember, in this session, the job to announce when it ends (the one just started, or seen running or
        waiting after a reload): the page then selects the model it saved."""
        active = self.running or self.waiting
        if active is not None:
            st.session_state[job_key] = active.id


def name_field(column, me: Owner) -> Owner:
    """The name others see beside this owner's training, remembered across pages and reloads."""
    name = column.text_input("Your name (others see it)", key=remembered(owners.NAME_KEY, me.name),
                             max_chars=40, help="Shown beside your training to everyone on this server, and kept in "
                                                "the models you save; only you can stop your training, replace or "
                                                "delete your models.")
    return owners.named(me, name)


def limits_line() -> str:
    limits = registry().limits
    at_once = "one job at a time" if limits.running == 1 else f"up to {limits.running} jobs at once"
    longest = f" A job trains {limits.job_s / 60:g} min at most, then stops and is saved." if limits.job_s else ""
    return (f"This server trains {at_once}; others wait in a queue (at most {limits.waiting}), and each person has "
            f"one job running and one waiting at most.{longest}")


def start_button(column, label: str, key: str, job_key: str, settings_error: str | None,
                 make_spec: Callable[[], JobSpec]) -> str | None:
    """Start: submit the job built by `make_spec` (it starts, or waits in the queue) and redraw, or return why it
    was not submitted. Where sign-in is configured, a signed-out user is asked to sign in instead."""
    if owners.sign_in_configured() and not owners.signed_in():
        column.button("Sign in to train", type="primary", key=key, width="stretch", on_click=st.login,
                      help="This server asks who you are before training, so your runs and models stay yours.")
        return None
    if not column.button(label, type="primary", key=key, width="stretch"):
        return None
    try:
        if settings_error:
            raise JobError(f"fix the settings first ({settings_error})")
        job = registry().submit(TrainingJob(make_spec(), loader=load_when_warm))
    except (JobError, ConfigError) as exc:
        return f"Not started: {exc}"
    st.session_state[job_key] = job.id
    # The first progress usually comes within a second once warm: waiting for it here draws it in the redraw
    # below, rather than at the live view's next poll after that.
    deadline = time.monotonic() + START_WAIT_S
    while job.running and not job.view().epoch and time.monotonic() < deadline:
        time.sleep(0.05)
    st.rerun()  # redraw from the top: the settings fold away and the live view (or the queue's notice) moves up


def stop_button(column, key: str, help: str, job: TrainingJob | None) -> None:
    """Stop for the owner's running `job`, disabled when there is none (another person's training is never theirs
    to stop); drawn after Start is handled so it is enabled in the run that started one."""
    if column.button("Stop", key=key, disabled=job is None or not job.running, width="stretch", help=help):
        job.stop()
        # A stopped run is saved within seconds; waiting here and redrawing from the top shows it saved and
        # selected at once, rather than after the next poll and a second rerun. A slower end is left to the poll.
        if job.join(STOP_WAIT_S):
            st.rerun()


def my_models(me: Owner) -> None:
    """The models this owner trained here (as recorded in them), and Delete for one of them."""
    infos = [i for i in shared.checkpoints()[0] if i.extra.get(OWNER_KEY) == me.key]
    with st.expander(f"Your models on this server ({len(infos)})"):
        if not infos:
            st.caption("The models you train here will be listed here. Everyone can look at them; only you can "
                       "replace or delete them.")
            return
        st.caption("Everyone can look at these; only you can replace or delete them.")
        by_name = {i.name: i for i in infos}
        c_model, c_confirm, c_delete = st.columns([2, 2, 1], vertical_alignment="bottom")
        name = c_model.selectbox("Model", list(by_name), key="train.delete_model",
                                 format_func=lambda n: f"{n} ({shared.describe(by_name[n])})")
        sure = c_confirm.checkbox(f"Yes, delete {name} for good", key=f"train.delete_sure.{name}")
        if c_delete.button("Delete", key="train.delete", disabled=not sure, width="stretch"):
            try:
                delete_model(by_name[name].path, me)
            except JobError as exc:
                st.error(str(exc))
                return
            st.toast(f"Deleted {name}.")
            st.rerun()  # every list of models drops it (the picker falls back to another)


def when(place: QueuePlace) -> str:
    if place.start_in is None:
        return "once the job ahead of it has an estimate"
    if place.start_in < 1:
        return "as soon as a job ahead of it has started" if place.at_least else "any moment now"
    return f"in {'at least' if place.at_least else 'about'} {format_duration(place.start_in)}"


def _queue_notice(job_id: str) -> None:
    jobs = registry()
    job = jobs.get(job_id)
    place = None if job is None else jobs.place(job)
    if place is None:
        st.rerun()  # it started (or was cancelled): the whole page changes
    st.info(f"**{job.spec.title}** waits for a free slot: **{place.position} of {place.waiting}** in the queue; it "
            f"should start {when(place)}. You can leave this page or reload: it keeps its place.")
    if st.button("Cancel it", key=f"cancel-{job_id}", help="Leave the queue; nothing is trained or saved."):
        job.stop()
        st.rerun()


def queue_notice(job: TrainingJob) -> None:
    """The owner's waiting job: its place in the queue and estimated start, redrawn every QUEUE_POLL_S, and Cancel."""
    st.fragment(_queue_notice, run_every=QUEUE_POLL_S)(job.id)


def _job_line(view: JobView) -> str:
    epoch = f"epoch {view.epoch} of {view.epochs}" if view.epoch else view.phase
    eta = f" · ETA {format_duration(view.eta)}" if view.eta is not None else ""
    return f"{view.title} · by {view.owner_name} · {view.progress:.0%} · {epoch}{eta}"


def _others(me_key: str, shown_id: str | None) -> None:
    views = [j.view() for j in registry().jobs() if j.active and j.owner.key != me_key and j.id != shown_id]
    running, waiting = [v for v in views if v.running], [v for v in views if v.queued]
    if not views:
        return
    st.markdown("**Also on this server**")
    for view in running:
        st.progress(min(max(view.progress, 0.0), 1.0), text=_job_line(view))
    if waiting:
        st.caption("Waiting: " + "; ".join(f"{v.title} by {v.owner_name}" for v in waiting))


def others(me: Owner, shown: TrainingJob | None) -> None:
    """Everyone else's training that the live view does not show, with their names and progress (never a Stop),
    redrawn every QUEUE_POLL_S (so a job started meanwhile appears too)."""
    st.fragment(_others, run_every=QUEUE_POLL_S)(me.key, None if shown is None else shown.id)


def shown_job(mine: MyJobs) -> tuple[TrainingJob | None, bool]:
    """The job whose live view a page shows, and whether it is the viewer's: their own running or last job, else
    the newest one training on the server, else the newest that ended (anyone's: models trained here are everyone's
    to look at)."""
    if mine.shown is not None:
        return mine.shown, True
    jobs = registry().jobs()
    job = next((j for j in reversed(jobs) if j.running), None) or next(
        (j for j in reversed(jobs) if not j.active), None)
    return job, False


def widget_key(name: str) -> str:
    return f"_w.{name}"


def remembered(name: str, default: Any, options: Sequence[Any] | None = None) -> str:
    """Widget key for a setting whose value is kept in the plain session key `name`.

    Streamlit drops a widget's state when its page is left; the plain key survives, and seeds the widget on return.
    With `options`, a remembered value (or, for a list, each item) that is no longer offered falls back to `default`.
    """
    key = widget_key(name)
    if key not in st.session_state:
        value = st.session_state.get(name, default)
        if options is not None:
            if isinstance(value, list):
                value = [v for v in value if v in options]
            elif value not in options:
                value = default
        st.session_state[key] = value
    st.session_state[name] = st.session_state[key]
    return key


ARCH_HELP = ("MLP: dense layers on the flattened pixels (MNIST's classic VAE). Conv: stride-2 convolutions, as many "
             "as the side allows, then the dense layers; it knows which pixels are neighbours, so it suits colour "
             "images and sides from 32 px. The default follows the dataset.")
LIKELIHOOD_HELP = ("How the decoder scores each pixel's value in each channel (R, G and B separately for colour). "
                   "Bernoulli reads a value in [0, 1] as the probability of a lit pixel (cross-entropy, as in the "
                   "PyTorch example): right for MNIST's near-binary strokes, and it works for any image. Gaussian gives "
                   "each pixel and channel a mean and a learned variance: closer to photos' continuous colours. Their "
                   "−ELBOs are on different scales, so compare models of the same likelihood.")


def dataset_label(name: str) -> str:
    """'shapes' -> 'shapes · 32×32 RGB' for the dataset pickers."""
    try:
        return f"{name} · {shared.shape_text(dataset_info(name).image_shape)}"
    except DatasetUnavailable:  # removed between listing and drawing
        return name


def network_words(arch: str, image_shape: tuple[int, int, int], hidden: Sequence[int], latent: int) -> str:
    """The network the settings build, in words: the convnet's depth follows the side."""
    c, h, w = image_shape
    if arch == "mlp":
        return f"MLP: {c * h * w:,} inputs → {' → '.join(map(str, hidden))} → d = {latent}; the decoder mirrors it."
    widths = conv_widths(h)
    if not widths or h != w:
        return "The convolutional model needs square images with an even side of at least 8."
    maps = " → ".join(f"{h >> k}×{h >> k}×{width}" for k, width in enumerate(widths, start=1))
    n = len(widths)
    return (f"Convnet: {h}×{w}×{c} → {maps} ({n} stride-2 convolution{'s' if n > 1 else ''}, as deep as a side of "
            f"{h} allows), then a dense layer of {hidden[0]} and d = {latent}; the decoder mirrors it.")


def _follow_default(name: str, default: Any) -> None:
    """Let the remembered setting `name` follow its default, which depends on another setting (the architecture's on
    the dataset, the hidden sizes' on the architecture): when the default changes, a setting still at the old default
    takes the new one; one the user chose otherwise is kept. Called before the setting's widget is drawn."""
    seen = f"{name}.default"
    old = st.session_state.get(seen, default)
    st.session_state[seen] = default
    if old != default and st.session_state.get(name, old) == old:
        st.session_state[name] = st.session_state[widget_key(name)] = default


def settings_form(prefix: str, defaults: dict[str, Any], kinds: Sequence[str] = TRAINABLE_KINDS,
                  with_beta: bool = True) -> tuple[ModelConfig, TrainConfig]:
    """Dataset, model and optimiser settings, remembered under `prefix`; raises ConfigError for bad values. The
    objective's settings are those the chosen kind has (`settings` of its class); the architecture's default follows
    the dataset (config.default_arch), the hidden sizes' default the architecture.

    Defaults come from the config dataclasses (the one source the CLI reads too); `defaults` holds the few a page
    sets otherwise (latent, the MLP's hidden sizes, epochs)."""
    m, tc = ModelConfig, TrainConfig
    datasets = available_datasets()
    hidden_defaults = {"mlp": defaults.get("hidden", ", ".join(map(str, DEFAULT_HIDDEN["mlp"]))),
                       "conv": ", ".join(map(str, DEFAULT_HIDDEN["conv"]))}
    c1, c2, c3 = st.columns(3)
    with c2:  # first: the kind decides which of the model's settings the first column offers
        st.markdown("**Objective**")
        kind = model_class(
            st.radio("Kind of model", kinds, format_func=lambda k: model_class(k).short_title, horizontal=True,
                     key=remembered(f"{prefix}.kind", m.kind, kinds),
                     help="The same networks, other objectives: an autoencoder (reconstruction only), a denoising "
                          "one (trained on corrupted inputs; hiding patches makes it a masked autoencoder), a VAE "
                          "(+ β·KL), a conditional VAE (told the class), or a linear autoencoder (no hidden layer, "
                          "squared error: PCA reached by gradient descent).")
            if len(kinds) > 1 else kinds[0])
        beta, warmup, noise, sparsity = tc.beta, tc.kl_warmup, m.noise, m.sparsity
        if "beta" in kind.settings and with_beta:
            beta = st.number_input("β (weight of the KL term)", 0.0, 100.0, step=0.5, format="%.2f",
                                   key=remembered(f"{prefix}.beta", defaults.get("beta", tc.beta)))
        if "kl_warmup" in kind.settings:
            warmup = st.number_input("KL warm-up (epochs)", 0, 100, step=1,
                                     key=remembered(f"{prefix}.warmup", tc.kl_warmup),
                                     help="The KL weight rises linearly from 0 to β over these epochs.")
        if "noise" in kind.settings:
            noise = noise_setting(prefix)
        if "sparsity" in kind.settings:
            sparsity = st.number_input("L1 penalty λ on the code", 0.0, 10.0, step=0.01, format="%.3f",
                                       key=remembered(f"{prefix}.sparsity", m.sparsity),
                                       help="A sparse autoencoder: λ·Σ|z_j| is added to the loss.")
        likelihood = one_of("Likelihood (per pixel and channel)", kind.likelihoods, f"{prefix}.likelihood",
                            kind.default("likelihood", m.likelihood),
                            "fixed variance 0.1: the squared error" if kind.fixed_variance else "", help=LIKELIHOOD_HELP)
    with c1:
        st.markdown("**Data and model**")
        dataset = st.selectbox("Dataset", datasets, key=remembered(f"{prefix}.dataset", SAMPLE, datasets),
                               format_func=dataset_label,
                               help="Full datasets appear when their files are on disk, your own once imported "
                                    "(Add your images, on the Train page); the 5,000-digit sample always works.")
        info = dataset_info(dataset)
        arch_default = kind.default("arch", default_arch(info.image_shape))
        _follow_default(f"{prefix}.arch", arch_default)
        arch = one_of("Architecture", kind.architectures, f"{prefix}.arch", arch_default, "", str.upper, help=ARCH_HELP)
        latent = st.number_input("Latent size d", 1, MAX_LATENT_DIM, step=1,
                                 key=remembered(f"{prefix}.latent", defaults.get("latent", m.latent_dim)))
        hidden_text = ""
        if kind.hidden_layers:
            _follow_default(f"{prefix}.hidden", hidden_defaults[arch])
            hidden_text = st.text_input("Hidden sizes", key=remembered(f"{prefix}.hidden", hidden_defaults[arch]),
                                        help="Comma-separated layer widths of the MLP; the conv model uses the first "
                                             "as its dense layer.")
        try:  # a bad value is refused below, once every widget is drawn (a widget not drawn loses its state)
            st.caption(network_words(arch, info.image_shape, parse_hidden(hidden_text), int(latent))
                       if kind.hidden_layers else
                       f"Hidden sizes: none; a {kind.title} maps the pixels to z and back by one affine map each.")
        except ConfigError:
            pass
    with c3:
        st.markdown("**Optimisation**")
        epochs = st.number_input("Epochs", 1, 500, step=1,
                                 key=remembered(f"{prefix}.epochs", defaults.get("epochs", tc.epochs)))
        batch = st.number_input("Batch size", 8, 4096, step=32, key=remembered(f"{prefix}.batch", tc.batch_size))
        lr = st.select_slider("Learning rate", LEARNING_RATES, format_func=lambda v: f"{v:g}",
                              key=remembered(f"{prefix}.lr", tc.lr, LEARNING_RATES))
        seed = st.number_input("Seed", 0, 2**31 - 1, step=1, key=remembered(f"{prefix}.seed", tc.seed))
    model_config = ModelConfig(kind=kind.kind, arch=arch, latent_dim=int(latent),
                               hidden=parse_hidden(hidden_text) if kind.hidden_layers else (),
                               likelihood=likelihood, noise=noise, sparsity=float(sparsity), image_shape=info.image_shape,
                               n_classes=len(info.class_names) if kind.conditional else 0)
    train_config = TrainConfig(dataset=dataset, epochs=int(epochs), batch_size=int(batch), lr=float(lr), beta=float(beta),
                               kl_warmup=int(warmup), seed=int(seed))
    return model_config, train_config


def one_of(label: str, options: Sequence[str], name: str, default: str, note: str = "",
           format_func: Callable[[str], str] = str, help: str | None = None) -> str:
    """A radio over what the chosen kind takes, or a caption naming its one value (with `note`)."""
    if len(options) == 1:
        st.caption(f"{label}: {format_func(options[0])}{f' ({note})' if note else ''}.", help=help)
        return options[0]
    return st.radio(label, options, horizontal=True, format_func=format_func, help=help,
                    key=remembered(name, default, options))


NOISE_LABELS = {"mask": "mask ν (zero pixels)", "gauss": "Gaussian σ", "patch": "patches ρ (a masked AE)"}


def noise_setting(prefix: str) -> str:
    """The corruption a denoising kind is trained on, as vae_core.corruption reads it: pixels zeroed, Gaussian noise
    or a share ρ of k×k patches hidden (the masked autoencoder's)."""
    default_kind, default_level = parse_noise(DEFAULT_NOISE)
    families = (*NOISE_KINDS, "patch")
    family = st.radio("Corruption", families, horizontal=True, format_func=NOISE_LABELS.get,
                      key=remembered(f"{prefix}.noise_kind", default_kind, families))
    level = st.slider("ν, σ or ρ", 0.05, 0.95, step=0.05, key=remembered(f"{prefix}.noise_level", default_level))
    if family != "patch":
        return f"{family}:{level:g}"
    side = st.number_input("Patch side k (px)", 1, MAX_IMAGE_SIDE, step=1,
                           key=remembered(f"{prefix}.patch_side", DEFAULT_PATCH_SIDE),
                           help="The image is cut into k×k squares and a share ρ of them, drawn anew for each image "
                                "and step, is zeroed: the masked autoencoder (He et al. 2022) learns to fill them in.")
    return f"patch:{level:g}:{int(side)}"


# --- figures ----------------------------------------------------------------------------------------------------

CURVE_TITLES = {"elbo": "−ELBO (β = 1)", "recon": "reconstruction −log p(x|z)", "kl": "KL(q(z|x) ‖ p(z))"}


@functools.cache
def _subplots(keys: tuple[str, ...]) -> dict:
    """The empty side-by-side axes of the curves, as a layout dict: make_subplots is most of a figure's build time
    (~60 ms), and the live view redraws the curves every POLL_S."""
    return make_subplots(rows=1, cols=len(keys), subplot_titles=[CURVE_TITLES[k] for k in keys],
                         horizontal_spacing=0.07).to_dict()["layout"]


def curves_figure(view: JobView, height: int = 300) -> go.Figure:
    """The curves this kind of model has, in nats (−ELBO, reconstruction and KL; an autoencoder's reconstruction
    alone): smoothed per-step train curve, and per-epoch train and test points. Built from plain dicts on cached
    axes (1 ms, where adding traces to a make_subplots figure took 60–70 ms under load)."""
    kind = model_class(view.kind)
    keys = tuple(kind.curves)
    # A linear model trains on its unclamped x̂ (clamping would cut the gradients) and is scored, as every page shows
    # it, on x̂ clamped into [0, 1]: its test points lie below the train curve for that reason, not by overfitting less.
    names = {"train": "train (per epoch)",
             "test": "test (per epoch, x̂ clamped to [0, 1])" if kind.linear else "test (per epoch)"}
    layout = copy.deepcopy(_subplots(keys))
    steps = np.asarray(view.steps, dtype=np.float64).reshape(-1, 4)
    epochs = [h["epoch"] for h in view.history]
    data = []
    for col, key in enumerate(keys, start=1):
        axis, first = "" if col == 1 else str(col), col == 1
        on_axes = dict(xaxis=f"x{axis}", yaxis=f"y{axis}")
        column = ("elbo", "recon", "kl").index(key) + 1  # of the (epoch, −ELBO, recon, KL) step records
        if len(steps):
            data.append(dict(type="scatter", x=steps[:, 0], y=smooth(steps[:, column]), mode="lines",
                             name="train (per step, smoothed)", line=dict(color="#9ecae1", width=1.5),
                             legendgroup="step", showlegend=first, **on_axes))
        for split, color in (("train", "#1f77b4"), ("test", "#ff7f0e")):
            data.append(dict(type="scatter", x=epochs, y=[h[f"{split}_{key}"] for h in view.history],
                             mode="lines+markers", name=names[split], line=dict(color=color),
                             legendgroup=split, showlegend=first, **on_axes))
        layout[f"xaxis{axis}"].update(title=dict(text="epoch"), rangemode="tozero")
        focus = _focus(steps, view.history, key)
        if focus is not None:
            layout[f"yaxis{axis}"]["range"] = focus
    layout["yaxis"]["title"] = dict(text="nats")
    layout.update(height=height, margin=dict(l=10, r=10, t=40, b=10),
                  legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
    return go.Figure(dict(data=data, layout=layout))


@st.cache_resource(max_entries=8, show_spinner=False)
def _shared_curves(job_id: str, run_index: int, n_steps: int, n_history: int, _view: JobView) -> go.Figure:
    return curves_figure(_view)


def shared_curves(view: JobView) -> go.Figure:
    """The curves of a job as they stand, built once for everyone watching it until its next report."""
    return _shared_curves(view.id, view.run_index, len(view.steps), len(view.history), view)


def _focus(steps: np.ndarray, history: Sequence[dict[str, float]], key: str) -> list[float] | None:
    """A y range that leaves out the first epoch's steep fall once there is more to see, so later progress is not
    flattened against the axis; None (autorange) before that."""
    column = ("elbo", "recon", "kl").index(key) + 1
    later = [v for x, v in zip(steps[:, 0], steps[:, column]) if x >= 1.0]
    later += [h[f"{split}_{key}"] for h in history[1:] for split in ("train", "test")]
    later = [v for v in later if math.isfinite(v)]
    if len(history) < 3 or not later:
        return None
    low, high = min(later), max(later)
    pad = 0.1 * (high - low) + 1e-6
    return [low - pad, high + pad]


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


# --- the live view ------------------------------------------------------------------------------------------------

def render_progress(view: JobView, mine: bool = True) -> None:
    """Progress with ETA, the outcome, the saved models' test metrics and the curves; Save again for its owner."""
    run = f" · model {view.run_index + 1} of {view.n_runs} ({view.run_label})" if view.n_runs > 1 else ""
    st.markdown(f"#### {view.title}")
    if not mine:
        st.caption(f"Started by **{view.owner_name}**: only they can stop it or replace what it saves.")
    epoch = f"epoch {view.epoch} of {view.epochs}" if view.epoch else view.phase
    speed = f" · {view.images_per_s:,.0f} images/s" if view.images_per_s else ""
    eta = f" · ETA {format_duration(view.eta)}" if view.running else ""
    st.progress(min(max(view.progress, 0.0), 1.0), text=f"{view.progress:.0%} · {epoch}{run}{eta}{speed}")
    if view.running:
        st.caption(f"Now: {view.phase}.")
    if view.error:
        st.error(view.error)
    elif view.state == "finished":
        st.success(view.message)
    elif view.state == "stopped":
        st.warning(view.message)
    for saved in view.saved:
        label = f"{saved.label}, " if view.n_runs > 1 else ""
        st.caption(f"**{saved.path.stem}** ({label}{saved.status}): {metrics_line(saved.metrics)}.")
    for unsaved in view.unsaved:
        st.error(unsaved.reason)
    if mine and view.unsaved and st.button("Save again", key=f"save-again-{view.id}", type="primary"):
        if (job := registry().get(view.id)) is not None:
            job.save_again()
        st.rerun()  # the whole page: the picker lists what was saved, the Train page selects it
    if view.steps or view.history:
        st.plotly_chart(shared_curves(view), key=f"curves-{view.id}")


def metrics_line(m: dict) -> str:
    """A saved model's test metrics in words: those its kind has (evaluate.evaluate's keys)."""
    if "elbo" not in m:  # no posterior: the reconstruction, and a linear model's angle to PCA
        angle = (f", {m['pca_angle']:.1f}° from PCA's subspace of the training images (largest principal angle)"
                 if "pca_angle" in m else "")
        return f"test reconstruction {m['recon']:.1f} nats{angle}"
    iw = (f"IW log p(x) {m['iw_logpx']:.1f} (k = {m['iw_samples']})" if m["iw_samples"]
          else "IW log p(x) not measured (a stopped run is saved without it)")
    return (f"test −ELBO {m['elbo']:.1f} nats (recon {m['recon']:.1f}, KL {m['kl']:.1f}), {iw}, "
            f"active units {m['active_units']}")


@st.cache_resource(max_entries=4, show_spinner=False)
def _map_figure(job_id: str, run_index: int, epoch: int, _view: JobView) -> go.Figure:
    snap = _view.snapshot
    return latent_map(snap.points, snap.labels, _view.class_names, axis_titles=snap.plane.labels, height=480)


def map_figure(view: JobView) -> go.Figure:
    """The snapshot's latent map, built once per snapshot rather than once per poll (the build is the costly part)."""
    return _map_figure(view.id, view.run_index, view.snapshot.epoch, view)


def render_snapshot(view: JobView) -> None:
    """The latest snapshot: latent map, reconstructions of the fixed inputs, samples from the fixed z."""
    snap = view.snapshot
    if snap is None:
        return
    left, right = st.columns([3, 2], gap="large")
    what = f"epoch {snap.epoch}" if snap.epoch else "before training"
    with left:
        st.markdown(f"**Latent map of the test set** ({what}; {len(snap.points):,} points, posterior means)")
        st.plotly_chart(map_figure(view), key=f"map-{view.id}")
    with right:
        st.markdown(f"**Reconstructions** ({what}): inputs above, decoded below")
        st.image(to_png_bytes(tile(np.stack([snap.originals, snap.reconstructions]), padding=2), PIXEL_SCALE),
                 width="stretch", output_format="PNG")
        st.markdown("**Samples from the prior** (the same z every epoch)")
        st.image(to_png_bytes(tile(snap.samples.reshape(2, -1, *snap.samples.shape[1:]), padding=2), PIXEL_SCALE),
                 width="stretch", output_format="PNG")


def render_history(view: JobView) -> None:
    """The current model's recorded history: replay under a time slider, KL per dimension, active units."""
    traj = view.trajectory()
    if traj is None:
        return
    st.markdown(f"**Training history**{f' of {view.run_label}' if view.n_runs > 1 else ''}: every recorded moment so far")
    originals = None if view.snapshot is None else view.snapshot.originals  # the same fixed inputs
    history_view.render_history(traj, view.class_names, originals, key=f"history-{view.id}-{view.run_index}",
                                live=view.running)


def _live(render, job_id: str, polling: bool) -> None:
    job = registry().get(job_id)
    if job is None:
        return
    view = job.view()
    if polling and not view.running:
        st.rerun()  # a full rerun stops the polling and refreshes the model lists with the new checkpoint
    render(view)


def _live_progress(job_id: str, polling: bool, mine: bool) -> None:
    _live(functools.partial(render_progress, mine=mine), job_id, polling)


def _live_snapshot(job_id: str, polling: bool) -> None:
    _live(render_snapshot, job_id, polling)


def _live_history(job_id: str, polling: bool) -> None:
    _live(render_history, job_id, polling)


HIDE_SCRIPT_STOP = "<style>[data-testid='stStatusWidget'] {display: none}</style>"


def live_view(job_id: str, running: bool, mine: bool = True) -> None:
    """The job's live view while it runs, and its final state after (`mine`: the viewer started it). Progress and
    curves are redrawn every POLL_S seconds, the snapshot (which changes at most every SNAPSHOT_INTERVAL_S) every
    SNAPSHOT_POLL_S: the redraws run in this server process, so they are kept from taking CPU time from the training
    thread."""
    if running:
        # Each redraw is a script run, so Streamlit's header offers its own Stop whenever one lasts 0.5 s; that Stop
        # ends only the redraw, never the training. Hidden while polling: the page's Stop button stops the job.
        st.html(HIDE_SCRIPT_STOP)
    st.fragment(_live_progress, run_every=POLL_S if running else None)(job_id, running, mine)
    st.fragment(_live_snapshot, run_every=SNAPSHOT_POLL_S if running else None)(job_id, running)
    st.fragment(_live_history, run_every=HISTORY_POLL_S if running else None)(job_id, running)
