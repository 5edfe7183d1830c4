"""Disentanglement against a dataset's known factors (dSprites) on the page: the five metrics per model as bars, and
per model the share of each factor's entropy each latent dimension holds as a heat map.

The metrics take seconds to half a minute per model (vae_core.disentanglement), so they are measured only when asked
for, one model at a time in a background thread of the server, and kept per checkpoint file and modification time:
the page draws what is ready and polls for the rest, and is never held up by them."""
from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import Queue

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui import shared
from vae_core import evaluate
from vae_core.checkpoint import CheckpointInfo
from vae_core.data import ImageDataset

POLL_S = 1.0
METRIC_LABELS = {  # vae_core.disentanglement.METRIC_KEYS, as the chart names them
    "mig": "MIG", "beta_vae_score": "β-VAE score", "factor_vae_score": "FactorVAE score",
    "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness", "sap": "SAP",
}
MODEL_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass
class Measurements:
    """The server's measurements: each checkpoint's future by (path, modification time), worked through in order by
    one thread (the metrics use every core they are given; two at once would only halve each). The thread is a
    daemon, so a server shut down mid-measurement does not wait for it."""

    futures: dict[tuple[str, float], Future] = field(default_factory=dict)
    queue: Queue = field(default_factory=Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._work, name="factor-metrics", daemon=True).start()

    def _work(self) -> None:
        while True:
            future, model, data = self.queue.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(evaluate.factor_metrics(model, data))
                except Exception as exc:  # shown on the page as one line, by the model it belongs to
                    future.set_exception(exc)

    def submit(self, model, data: ImageDataset) -> Future:
        future: Future = Future()
        self.queue.put((future, model, data))
        return future


@st.cache_resource
def measurements() -> Measurements:
    return Measurements()


def _key(info: CheckpointInfo) -> tuple[str, float]:
    return str(info.path), shared.stamp(info.path)


def measured(info: CheckpointInfo) -> Future | None:
    """The model's measurement, asked for before (running, done or failed), else None."""
    return measurements().futures.get(_key(info))


def captured(info: CheckpointInfo) -> list[str | None] | None:
    """Per latent dimension, the factor it holds most of (None where it holds little of any), once measured."""
    future = measured(info)
    if future is None or not future.done() or future.exception() is not None:
        return None
    return future.result()["best_factor"]


def request(info: CheckpointInfo, data: ImageDataset) -> Future:
    """Start measuring the model's posterior means of `data`'s test images against their factors, unless it was."""
    jobs = measurements()
    key = _key(info)
    if key not in jobs.futures:
        # the model is loaded here, in the script's thread, where Streamlit's cache is at home; the thread only reads it
        jobs.futures[key] = jobs.submit(shared.load_model(info), data)
    return jobs.futures[key]


def metrics_figure(results: dict[str, dict]) -> go.Figure:
    """The seven figures of each model (name → factor_metrics' result) as grouped bars on a [0, 1] axis."""
    fig = go.Figure()
    for (name, result), color in zip(results.items(), MODEL_COLORS * 2):
        fig.add_trace(go.Bar(x=list(METRIC_LABELS.values()), y=[result[k] for k in METRIC_LABELS], name=name,
                             marker_color=color, hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=40, b=10),
                      title="Disentanglement (1 is best, about 0 is none)", yaxis=dict(range=[0, 1]),
                      legend=dict(orientation="h", yanchor="top", y=-0.15, x=0))
    return fig


def mutual_info_figure(result: dict) -> go.Figure:
    """Latent dimension × factor: the share of the factor's entropy the dimension holds, I(z_j; f_k) / H(f_k)."""
    share = np.asarray(result["mutual_info"])
    rows = [f"z{j}" + (f" · {name}" if name else "") for j, name in enumerate(result["best_factor"])]
    fig = go.Figure(go.Heatmap(
        z=share, x=list(result["factor_names"]), y=rows, zmin=0, zmax=1, colorscale="Blues",
        text=np.round(share, 2), texttemplate="%{text}", showscale=False,
        hovertemplate="%{y} holds %{z:.0%} of %{x}'s entropy<extra></extra>"))
    fig.update_layout(height=60 + 24 * len(rows), margin=dict(l=10, r=10, t=10, b=10),
                      yaxis=dict(autorange="reversed"), xaxis=dict(side="top"))
    return fig


def section(models: list[tuple[CheckpointInfo, ImageDataset]], columns: int) -> None:
    """For the chosen models whose test images have known factors: a button that starts their measurements, then
    the bars and one heat map per model as they come."""
    models = [(info, data) for info, data in models if data.factors is not None]
    if not models:
        return
    st.markdown(f"**Disentanglement against the known factors** of {', '.join(sorted({d.name for _, d in models}))}: "
                "how far each factor of the images is held by a latent dimension of its own.")
    pending = [(info, data) for info, data in models if measured(info) is None]
    if pending and st.button(f"Measure {len(pending)} model{'s' if len(pending) > 1 else ''}", key="factors-measure",
                             help="MIG, the β-VAE and FactorVAE scores, DCI and SAP of each model's posterior means "
                                  "of its test images: seconds to half a minute per model, in the background."):
        for info, data in pending:
            request(info, data)
        st.rerun()  # without the button, and polling
    infos = [info for info, _ in models]
    running = any(f is not None and not f.done() for f in map(measured, infos))
    st.fragment(_results, run_every=POLL_S if running else None)(infos, columns, running)


def _results(infos: list[CheckpointInfo], columns: int, polling: bool) -> None:
    futures = {info.name: measured(info) for info in infos}
    if polling and all(f is None or f.done() for f in futures.values()):
        st.rerun()  # the whole page, which stops the polling
    done = {name: f.result() for name, f in futures.items() if f is not None and f.done() and f.exception() is None}
    for name, f in futures.items():
        if f is not None and f.done() and f.exception() is not None:
            st.error(f"{name}: the metrics could not be measured ({f.exception()}).")
    waiting = [name for name, f in futures.items() if f is not None and not f.done()]
    if waiting:
        st.caption(f"Measuring {', '.join(waiting)}…")
    if not done:
        if not waiting:
            st.caption("Not measured yet.")
        return
    st.plotly_chart(metrics_figure(done), key="factor-metrics")
    seconds = {name: sum(r["seconds"].values()) for name, r in done.items()}
    st.caption("Each on its model's test images (posterior means), split 2/3 to fit and 1/3 to score, seeded: "
               + "; ".join(f"{name} {s:.1f} s" for name, s in seconds.items()) + ". The β-VAE score's chance level "
               "is 1 / the number of factors; MIG and SAP stay below 1 even for the factors themselves (see "
               "vae_core.disentanglement).")
    st.markdown("**Latent dimension × factor**: the share of each factor's entropy a dimension holds (mutual "
                "information over the factor's entropy); a row is labelled with the factor it holds most of, when "
                "that is at least a tenth. A disentangled code has one bright cell per column, in rows of their own.")
    for col, (name, result) in zip(st.columns(max(len(done), columns)), done.items()):
        with col:
            st.markdown(f"`{name}`")
            st.plotly_chart(mutual_info_figure(result), key=f"factor-mi-{name}", config={"displayModeBar": False})
