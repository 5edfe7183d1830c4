"""Sweep folders (written by `python -m vae_core sweep` into the trained-models folder) as Compare presets: their
models named by the grid's axes, their table, and a rate–distortion plot over the whole grid."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ui import shared
from ui.plots import CLASS_COLORS
from vae_core.checkpoint import CheckpointError, CheckpointInfo, read_info
from vae_core.grid import CSV_NAME, Sweep, find_sweeps

PRESET_PREFIX = "sweep "


def _stamp(folder: Path) -> tuple:
    """Changes when a sweep folder or anything in one changes, so the cached listing refreshes."""
    if not folder.is_dir():
        return ()
    return tuple(sorted((str(p.relative_to(folder)), shared.stamp(p)) for p in folder.glob(f"*/{CSV_NAME}")))


@st.cache_data(show_spinner=False)
def _find(folder: str, stamp: tuple) -> tuple[list[Sweep], list[CheckpointInfo], list[str]]:
    sweeps, errors = find_sweeps(Path(folder))
    members = []
    for sweep in sweeps:
        for row in sweep.saved:
            try:
                info = read_info(sweep.folder / row.file)
            except CheckpointError as exc:
                errors.append(str(exc))
                continue
            members.append(replace(info, name=member_name(sweep, row.file)))
    return sweeps, members, errors


def member_name(sweep: Sweep, file: str) -> str:
    return f"{sweep.name}/{Path(file).stem}"


def sweeps() -> tuple[list[Sweep], list[CheckpointInfo], list[str]]:
    """The sweep folders in the trained-models folder (newest first), their usable models (named
    `<sweep>/<model>`), and one line per table or checkpoint that could not be used."""
    folder = shared.trained_dir()
    return _find(str(folder), _stamp(folder))


def presets(found: list[Sweep], members: list[CheckpointInfo], most: int) -> dict[str, list[str]]:
    """A preset per sweep: its first seed's models, by latent size then β, at most `most` of them."""
    usable = {i.name for i in members}
    offered = {}
    for sweep in found:
        first = min((r.point.seed for r in sweep.saved), default=None)
        names = [member_name(sweep, r.file) for r in sweep.saved if r.point.seed == first]
        names = [n for n in names if n in usable][:most]
        if len(names) >= 2:
            offered[f"{PRESET_PREFIX}{sweep.name}"] = names
    return offered


def chosen(found: list[Sweep], preset: str | None) -> Sweep | None:
    """The sweep a preset names, if it is one."""
    if not preset or not preset.startswith(PRESET_PREFIX):
        return None
    return next((s for s in found if s.name == preset.removeprefix(PRESET_PREFIX)), None)


def axes(info: CheckpointInfo) -> str:
    """A model's place in its sweep's grid, read from the checkpoint: "β = 4 · d = 10 · seed 1"."""
    return f"β = {info.beta:g} · d = {info.model_config.latent_dim} · seed {info.train_config.seed}"


def in_sweep(info: CheckpointInfo) -> bool:
    return info.extra.get("trained_in") == "sweep"


def grid_figure(sweep: Sweep) -> go.Figure:
    """Recon (distortion) against KL (rate) for every model of the sweep with both: one line per latent size and
    seed joining its βs, coloured by latent size."""
    fig = go.Figure()
    sizes = sorted({r.point.latent_dim for r in sweep.rows})
    for (d, seed) in sorted({(r.point.latent_dim, r.point.seed) for r in sweep.rows}):
        rows = sorted((r for r in sweep.rows if (r.point.latent_dim, r.point.seed) == (d, seed)
                       and r.kl is not None and r.recon is not None), key=lambda r: r.point.beta)
        if not rows:
            continue
        color = CLASS_COLORS[sizes.index(d) % len(CLASS_COLORS)]
        fig.add_trace(go.Scatter(
            x=[r.kl for r in rows], y=[r.recon for r in rows], mode="lines+markers+text", name=f"d = {d}, seed {seed}",
            text=[f"β = {r.point.beta:g}" for r in rows], textposition="top center", cliponaxis=False,
            marker=dict(size=9, color=color), line=dict(color=color, dash="dot" if seed % 2 else "solid"),
            customdata=[r.point.name for r in rows],
            hovertemplate="%{customdata}<br>KL %{x:.1f} nats<br>recon %{y:.1f} nats<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=40, t=40, b=10), title=f"Rate–distortion over {sweep.name}",
                      xaxis_title="rate: KL(q(z|x) ‖ p(z)) in nats", yaxis_title="distortion: −log p(x|z) in nats")
    return fig


def show(sweep: Sweep) -> None:
    """The sweep's table (as sweep.csv has it) and its rate–distortion plot over the grid."""
    betas = sorted({r.point.beta for r in sweep.rows})
    sizes = sorted({r.point.latent_dim for r in sweep.rows})
    seeds = sorted({r.point.seed for r in sweep.rows})
    st.markdown(f"**Sweep `{sweep.name}`**: {len(sweep.rows)} models, β {', '.join(f'{b:g}' for b in betas)} × "
                f"d {', '.join(map(str, sizes))} × {len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
                f"({len(sweep.saved)} saved). The models below are its first seed's; pick others from the list.")
    table = pd.DataFrame([{"model": r.point.name, "β": r.point.beta, "d": r.point.latent_dim, "seed": r.point.seed,
                           "status": r.status, "test −ELBO": r.test_elbo, "recon": r.recon, "KL": r.kl,
                           "IW log p(x)": r.iw_logpx, "active units": r.active_units, "s": r.seconds,
                           "ran on": r.ran_on, "note": r.message} for r in sweep.rows])
    left, right = st.columns([3, 2], gap="large")
    left.dataframe(table, hide_index=True, width="stretch", key=f"sweep-table-{sweep.name}", column_config={
        "β": st.column_config.NumberColumn(format="%g", width="small"),
        **{c: st.column_config.NumberColumn(format="%.1f", width="small")
           for c in ("test −ELBO", "recon", "KL", "IW log p(x)", "s")}})
    if sum(r.kl is not None for r in sweep.rows) >= 2:
        right.plotly_chart(grid_figure(sweep), key=f"sweep-rd-{sweep.name}")
