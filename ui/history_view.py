"""A model's training history replayed in the browser (vae_core.trajectory): the latent map, reconstructions and
prior samples at each recorded moment under a time slider with play/pause, the points moving smoothly between
moments (Plotly animation frames: no rerun while it plays); and posterior collapse in view: KL per latent dimension
(bars while training, a dimension × time heat map after) and the active units over time."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from ui import shared
from ui.images import tile
from ui.plots import CLASS_COLORS, png_data_uri
from vae_core.checkpoint import CheckpointError, CheckpointInfo, load_trajectory
from vae_core.data import to_display
from vae_core.projection import LatentPlane, default_plane
from vae_core.trajectory import Trajectory

COLLAPSED_LINE = ("A **collapsed** unit is a latent dimension the encoder has stopped using: its posterior is the prior "
                  "N(0, 1) for every image (KL ≈ 0, μ the same for all), so it carries nothing about the input.")
FRAME_MS = 450  # per moment while playing
TRANSITION_MS = 350  # the points glide between moments for this long
ACTIVE_COLOR, COLLAPSED_COLOR = "#1f77b4", "#c7c7c7"
PIXEL_SCALE = 3


def epoch_label(epoch: float) -> str:
    """1 → "1", 0.0625 → "0.06": whole epochs as integers, moments inside an epoch with two decimals."""
    return f"{epoch:.0f}" if abs(epoch - round(epoch)) < 1e-6 else f"{epoch:.2f}"


def history_plane(traj: Trajectory) -> LatentPlane:
    """One plane for every frame, so points move only because the codes do: the latent axes for d = 2, else the
    PCA plane of the last frame's μ (the trained model's view)."""
    return default_plane(traj.mu.shape[2], traj.mu[-1].astype(np.float32))


def _pictures(traj: Trajectory, t: int, originals: np.ndarray | None) -> tuple[str, str]:
    recon = traj.recon[t].astype(np.float32) / 255.0
    rows = recon[None] if originals is None else np.stack([originals, recon])
    samples = traj.samples[t].astype(np.float32) / 255.0
    return (png_data_uri(_scaled(tile(rows, padding=2))),
            png_data_uri(_scaled(tile(samples.reshape(2, -1, *samples.shape[1:]), padding=2))))


def _scaled(image: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscaling: the browser would blur 28-pixel digits drawn large."""
    return image.repeat(PIXEL_SCALE, 0).repeat(PIXEL_SCALE, 1)


def replay_figure(traj: Trajectory, class_names: tuple[str, ...], originals: np.ndarray | None = None,
                  height: int = 640) -> go.Figure:
    """The map (left) with the reconstructions and prior samples (right) at each recorded moment; a slider picks the
    moment, Play runs through them from where the slider is, the points gliding from one moment to the next.
    `originals` (R, H, W) in [0, 1], the inputs of the stored reconstructions, are drawn above them when given."""
    plane = history_plane(traj)
    xy = np.stack([plane.project(m.astype(np.float32)) for m in traj.mu])  # (T, N, 2)
    lo, hi = np.percentile(xy.reshape(-1, 2), [0.5, 99.5], axis=0)  # one box for all moments: the camera stays put
    pad = 0.05 * (hi - lo) + 1e-3
    last = len(traj.epochs) - 1

    # One trace for all points, coloured per point: a frame then holds 3 traces, not one per class (building the
    # figure's objects is most of its cost: 35 frames of mnist_z20 took 11 s with a trace per class on busy cores).
    def map_trace(t: int) -> go.Scatter:
        return go.Scatter(x=np.round(xy[t, :, 0], 3), y=np.round(xy[t, :, 1], 3))

    def image_traces(t: int) -> list[go.Image]:
        recon, samples = _pictures(traj, t, originals)
        return [go.Image(source=recon, hoverinfo="skip"), go.Image(source=samples, hoverinfo="skip")]

    fig = make_subplots(rows=2, cols=2, column_widths=[0.58, 0.42], specs=[[{"rowspan": 2}, {}], [None, {}]],
                        horizontal_spacing=0.06, vertical_spacing=0.12,
                        subplot_titles=("",
                                        "reconstructions" + (" (inputs above)" if originals is not None else ""),
                                        "prior samples (the same z at every moment)"))
    colors = np.array(CLASS_COLORS)[traj.labels % len(CLASS_COLORS)]
    fig.add_trace(map_trace(last).update(mode="markers", showlegend=False, hoverinfo="skip",
                                         marker=dict(size=4, color=colors, opacity=0.75)), row=1, col=1)
    recon, samples = image_traces(last)
    fig.add_trace(recon, row=1, col=2)
    fig.add_trace(samples, row=2, col=2)
    for c in np.unique(traj.labels):  # legend entries only: no points of their own
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=class_names[c] if c < len(class_names) else str(c),
                                 marker=dict(size=8, color=CLASS_COLORS[c % len(CLASS_COLORS)])), row=1, col=1)
    fig.frames = [go.Frame(name=str(t), data=[map_trace(t), *image_traces(t)], traces=[0, 1, 2])
                  for t in range(len(traj.epochs))]
    play = dict(frame=dict(duration=FRAME_MS, redraw=True), transition=dict(duration=TRANSITION_MS, easing="linear"),
                fromcurrent=True, mode="immediate")
    fig.update_layout(
        height=height, margin=dict(l=50, r=10, t=40, b=130), plot_bgcolor="white", hovermode=False,
        legend=dict(itemsizing="constant", orientation="h", x=0, y=1.01, yanchor="bottom",
                    title=dict(text="test points (posterior means)")),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top",
                          showactive=False, pad=dict(r=6, t=80), buttons=[
                              dict(label="▶ Play", method="animate", args=[None, play]),
                              dict(label="❚❚ Pause", method="animate",
                                   args=[[None], dict(frame=dict(duration=0, redraw=False), mode="immediate",
                                                      transition=dict(duration=0))]),
                              dict(label="From the start", method="animate",
                                   args=[[str(t) for t in range(len(traj.epochs))], {**play, "fromcurrent": False}]),
                          ])],
        sliders=[dict(active=last, x=0.3, len=0.7, y=0, yanchor="top", pad=dict(t=58, b=0),
                      currentvalue=dict(prefix="epoch ", xanchor="left"),
                      transition=dict(duration=TRANSITION_MS, easing="linear"),
                      steps=[dict(method="animate", label=epoch_label(e),
                                  args=[[str(t)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                       transition=dict(duration=TRANSITION_MS))])
                             for t, e in enumerate(traj.epochs)])],
    )
    fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]], title_text=plane.labels[0], zeroline=False,
                     gridcolor="#eeeeee", row=1, col=1)
    fig.update_yaxes(range=[lo[1] - pad[1], hi[1] + pad[1]], title_text=plane.labels[1], zeroline=False,
                     gridcolor="#eeeeee", row=1, col=1)
    for row in (1, 2):
        fig.update_xaxes(visible=False, row=row, col=2)
        fig.update_yaxes(visible=False, row=row, col=2)
    fig.update_annotations(font_size=13, yshift=2)
    return fig


def dimension_names(traj: Trajectory) -> list[str]:
    """z0, z1, … with the units collapsed at the last moment marked."""
    collapsed = ~traj.active()[-1]
    return [f"z{j}" + (" · collapsed" if c else "") for j, c in enumerate(collapsed)]


def kl_bars_figure(traj: Trajectory, t: int = -1, height: int = 260) -> go.Figure:
    """KL per latent dimension at moment t (the latest by default), collapsed units in grey."""
    active = traj.active()[t]
    fig = go.Figure(go.Bar(x=[f"z{j}" for j in range(len(active))], y=traj.kl[t],
                           marker_color=[ACTIVE_COLOR if a else COLLAPSED_COLOR for a in active],
                           hovertemplate="%{x}: %{y:.2f} nats<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=36, b=10), plot_bgcolor="white",
                      title=dict(text=f"KL per dimension at epoch {epoch_label(traj.epochs[t])} "
                                      f"({int(active.sum())} of {len(active)} active)", font_size=13),
                      yaxis_title="nats", bargap=0.25)
    return fig


def kl_heatmap_figure(traj: Trajectory, height: int | None = None, n_ticks: int = 8) -> go.Figure:
    """KL of each dimension (rows) at each recorded moment (columns, evenly spaced: the first epoch's moments are as
    wide as later epochs)."""
    d = traj.kl.shape[1]
    labels = [epoch_label(e) for e in traj.epochs]
    fig = go.Figure(go.Heatmap(z=traj.kl.T, x=list(range(len(labels))), y=dimension_names(traj), colorscale="Viridis",
                               colorbar=dict(title="nats", thickness=10, nticks=4), zmin=0,
                               customdata=np.broadcast_to(np.array(labels), (d, len(labels))),
                               hovertemplate="%{y} at epoch %{customdata}: %{z:.2f} nats<extra></extra>"))
    ticks = np.unique(np.linspace(0, len(labels) - 1, min(len(labels), n_ticks)).round().astype(int))
    fig.update_layout(height=height or max(180, 90 + 16 * d), margin=dict(l=10, r=10, t=36, b=10),
                      title=dict(text="KL per dimension over training", font_size=13),
                      xaxis=dict(title="epoch", tickvals=ticks, ticktext=[labels[i] for i in ticks]),
                      yaxis=dict(autorange="reversed"))
    return fig


def active_units_figure(traj: Trajectory, height: int = 220) -> go.Figure:
    d = traj.mu.shape[2]
    fig = go.Figure(go.Scatter(x=traj.epochs, y=traj.active_units(), mode="lines+markers", line_shape="hv",
                               marker=dict(size=5), hovertemplate="epoch %{x:.2f}: %{y} active<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=36, b=10), plot_bgcolor="white",
                      title=dict(text="Active units over training", font_size=13),
                      xaxis=dict(title="epoch", gridcolor="#eeeeee"),
                      yaxis=dict(range=[-0.3, d + 0.3], dtick=max(1, d // 5), gridcolor="#eeeeee", title=f"of {d}"))
    return fig


def originals_of(traj: Trajectory, test_images) -> np.ndarray | None:
    """The stored reconstructions' inputs from the test split, when it is that of the history (same size)."""
    if test_images is None or int(traj.recon_indices.max()) >= len(test_images):
        return None
    return to_display(test_images[traj.recon_indices]).astype(np.float32) / 255.0


def render_history(traj: Trajectory, class_names: tuple[str, ...], originals: np.ndarray | None, key: str,
                   live: bool = False) -> None:
    """The replay, then posterior collapse: the latest KL bars while training (`live`), the heat map after, and the
    active units over time. A model without a posterior has no KL: only the replay."""
    st.plotly_chart(_cached_replay(key, len(traj.epochs), traj, class_names, originals), key=f"{key}-replay",
                    config={"displayModeBar": False})
    st.caption(f"{len(traj.epochs)} recorded moments, {len(traj.indices):,} test images followed; about 10 moments "
               "inside the first epoch, where most of the structure forms. Drag the slider or press Play.")
    if traj.kl is None:
        return
    st.markdown("**Posterior collapse**")
    st.caption(COLLAPSED_LINE)
    left, right = st.columns([3, 2])
    with left:
        figure = kl_bars_figure(traj) if live else kl_heatmap_figure(traj)
        st.plotly_chart(figure, key=f"{key}-kl", config={"displayModeBar": False})
    with right:
        st.plotly_chart(active_units_figure(traj), key=f"{key}-active", config={"displayModeBar": False})


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_replay(key: str, n_frames: int, _traj: Trajectory, class_names: tuple[str, ...],
                   _originals: np.ndarray | None) -> go.Figure:
    """Built once per history and length: an identical figure is not sent to the browser again on a rerun."""
    return replay_figure(_traj, class_names, _originals)


@st.cache_resource(max_entries=16, show_spinner="Loading the training history…")
def _stored(path: str, stamp: float) -> Trajectory | str | None:
    try:
        return load_trajectory(path)
    except CheckpointError as exc:
        return str(exc)


def stored_history(info: CheckpointInfo) -> Trajectory | str | None:
    """The checkpoint's history, None when it was saved without one, or the reason it cannot be read."""
    return _stored(str(info.path), shared.stamp(info.path))


def model_history(sel: shared.Selection) -> None:
    """The chosen model's training history, for the Latent Map page."""
    traj = stored_history(sel.info)
    if traj is None:
        st.info(f"`{sel.info.name}` was saved without a training history (before histories were recorded); "
                "a model trained now on the Train page or with `python -m vae_core train` has one.")
        return
    if isinstance(traj, str):
        st.warning(traj)
        return
    test_images = None if sel.data is None else sel.data.test_images
    render_history(traj, sel.class_names, originals_of(traj, test_images), key=f"history-{sel.info.name}-{shared.stamp(sel.info.path)}")


def model_collapse(info: CheckpointInfo) -> None:
    """For Compare, one model's column: its KL heat map and active units over training, compact."""
    if not info.model_class.probabilistic:
        st.caption("no posterior, so no KL: nothing to collapse")
        return
    traj = stored_history(info)
    if traj is None:
        st.caption("saved without a training history")
        return
    if isinstance(traj, str):
        st.warning(traj)
        return
    st.plotly_chart(kl_heatmap_figure(traj, height=max(170, 80 + 14 * traj.kl.shape[1]), n_ticks=4),
                    key=f"collapse-kl-{info.name}",
                    config={"displayModeBar": False})
    st.plotly_chart(active_units_figure(traj, height=190), key=f"collapse-active-{info.name}",
                    config={"displayModeBar": False})
