"""Real browser: click empty spots of the Latent Map and check the decoded image and coordinates follow the clicks.

The helpers here are also used by bench/click_latency.py.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from ui.clicks import OVERLAY_NODES
from vae_core.inference import GRID_EXTENT

STEP = 2 * GRID_EXTENT / (OVERLAY_NODES - 1)  # one step of the click lattice in plane units
MAIN_CHART = ".st-key-lm_chart .js-plotly-plot"
COORDS = re.compile(r"clicked at \(x, y\) = \((-?\d+\.\d+), (-?\d+\.\d+)\)")


def open_latent_map(page, url: str, timeout_ms: int = 120_000) -> None:
    page.goto(f"{url}/Latent_Map")
    page.wait_for_selector(MAIN_CHART, timeout=timeout_ms)
    # the chart is drawn once its axes have a length
    page.wait_for_function(f"() => document.querySelector('{MAIN_CHART}')?._fullLayout?.xaxis?._length > 0",
                           timeout=timeout_ms)


def plot_geometry(page) -> dict:
    """Axis ranges and the plot area in page pixels, read from plotly's own layout, and the test points as
    (x, y, test-set index)."""
    return page.evaluate(f"""() => {{
        const gd = document.querySelector('{MAIN_CHART}');
        const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const points = [];
        gd._fullData.forEach(t => {{ if (t.customdata !== undefined && t.customdata !== null)
            for (let i = 0; i < t.x.length; i++) points.push([Number(t.x[i]), Number(t.y[i]), Number(t.customdata[i])]);
        }});
        return {{x_range: xa.range.map(Number), y_range: ya.range.map(Number),
                 left: box.left + xa._offset, width: xa._length, top: box.top + ya._offset, height: ya._length,
                 points: points}};
    }}""")


def to_pixels(geom: dict, x: float, y: float) -> tuple[float, float]:
    (x0, x1), (y0, y1) = geom["x_range"], geom["y_range"]
    return (geom["left"] + (x - x0) / (x1 - x0) * geom["width"],
            geom["top"] + (y1 - y) / (y1 - y0) * geom["height"])


def to_data(geom: dict, px: float, py: float) -> tuple[float, float]:
    (x0, x1), (y0, y1) = geom["x_range"], geom["y_range"]
    return (x0 + (px - geom["left"]) / geom["width"] * (x1 - x0),
            y1 - (py - geom["top"]) / geom["height"] * (y1 - y0))


def empty_spots(geom: dict, count: int, clearance: float = 0.4, spacing: float = 1.0) -> list[tuple[float, float]]:
    """Spots of [-2.8, 2.8]² at least `clearance` from every test point and `spacing` from each other, farthest
    from the data first (corners usually win)."""
    points = np.asarray(geom["points"], float).reshape(-1, 3)[:, :2]
    axis = np.linspace(-2.8, 2.8, 29)
    candidates = np.array([(x, y) for x in axis for y in axis])
    gaps = np.min(np.linalg.norm(candidates[:, None] - points[None], axis=2), axis=1) if len(points) else \
        np.full(len(candidates), np.inf)
    order = [i for i in np.argsort(-gaps) if gaps[i] >= clearance]
    chosen: list[tuple[float, float]] = []
    for i in order:  # spread the clicks out so every one lands somewhere new
        spot = tuple(candidates[i])
        if all(np.hypot(spot[0] - c[0], spot[1] - c[1]) > spacing for c in chosen):
            chosen.append(spot)
        if len(chosen) == count:
            break
    return chosen


def click_at(page, px: float, py: float) -> float:
    """Hover, then click; returns the perf_counter time of the click."""
    page.mouse.move(px, py)
    page.wait_for_timeout(100)  # let plotly register the hover: a click selects the hovered point
    clicked = time.perf_counter()
    page.mouse.click(px, py)
    return clicked


def decoded_src(page) -> str | None:
    """src of the image captioned "decoded", or None before the first click."""
    return page.evaluate("""() => {
        for (const fig of document.querySelectorAll('[data-testid="stImage"]')) {
            const cap = fig.querySelector('[data-testid="stImageCaption"]');
            if (cap && cap.textContent.trim() === 'decoded') return fig.querySelector('img').src;
        }
        return null;
    }""")


def shown_coords(page) -> tuple[float, float] | None:
    found = COORDS.search(page.inner_text("body"))
    return (float(found.group(1)), float(found.group(2))) if found else None


def click_and_wait(page, px: float, py: float, previous_src: str | None, timeout_ms: int = 30_000) -> tuple[str, float]:
    """Click a pixel and wait until the decoded image and the shown coordinates have both changed; returns the
    new src and the seconds from the click to that."""
    previous_coords = COORDS.search(page.inner_text("body"))
    clicked = click_at(page, px, py)
    page.wait_for_function(
        """([prev, prevCoords]) => {
            const coords = document.body.innerText.match(/clicked at \\(x, y\\) = \\([^)]*\\)/);
            if (!coords || coords[0] === prevCoords) return false;
            for (const fig of document.querySelectorAll('[data-testid="stImage"]')) {
                const cap = fig.querySelector('[data-testid="stImageCaption"]');
                if (cap && cap.textContent.trim() === 'decoded') return fig.querySelector('img').src !== prev;
            }
            return false; }""",
        arg=[previous_src, previous_coords.group(0) if previous_coords else None], timeout=timeout_ms, polling=10)
    return decoded_src(page), time.perf_counter() - clicked


def test_clicks_on_empty_space_decode_it_and_clicks_on_points_pick_them(app_checkpoints, streamlit_server_factory, browser_page):
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    page = browser_page
    open_latent_map(page, server.url)
    geom = plot_geometry(page)
    assert geom["x_range"] == pytest.approx([-3, 3]) and geom["y_range"] == pytest.approx([-3, 3])
    assert geom["width"] == pytest.approx(geom["height"], rel=0.02)  # equal axis scaling
    assert len(geom["points"]) > 0
    spots = empty_spots(geom, 2)
    assert len(spots) == 2, "no two empty spots on the plane"
    assert decoded_src(page) is None

    src = None
    for spot in spots:
        px, py = to_pixels(geom, *spot)
        expected = to_data(geom, px, py)
        new_src, _ = click_and_wait(page, px, py, src)
        assert new_src != src
        shown = shown_coords(page)
        assert shown is not None
        assert abs(shown[0] - expected[0]) <= STEP and abs(shown[1] - expected[1]) <= STEP, (shown, expected)
        # the clicked spot is marked on the plot: the overlay node under it is the chart's selection
        marked = page.evaluate(f"""() => {{ const t = document.querySelector('{MAIN_CHART}')._fullData[0];
            return (t.selectedpoints || []).map(i => [Number(t.x[i]), Number(t.y[i])]); }}""")
        assert len(marked) == 1 and marked[0] == pytest.approx(list(shown), abs=1e-4)
        src = new_src
        geom = plot_geometry(page)

    # a click right on a test point picks that image instead: take the most isolated point inside the square
    points = np.asarray(geom["points"], float)
    inside = points[(np.abs(points[:, :2]) < 2.7).all(axis=1)]
    gaps = np.linalg.norm(inside[:, None, :2] - points[None, :, :2], axis=2)
    gaps[gaps == 0] = np.inf
    x, y, index = inside[np.argmax(gaps.min(axis=1))]
    click_at(page, *to_pixels(geom, x, y))
    page.wait_for_function("i => document.body.innerText.includes('#' + i + ' · class')", arg=int(index),
                           timeout=30_000)
    assert "Picked point" in page.inner_text("body")
    assert decoded_src(page) == src  # the decoded spot stays the last click on empty space


def isolated_points(geom: dict, count: int, limit: float = 2.7) -> np.ndarray:
    """(x, y, index) of the `count` test points inside [-limit, limit]² farthest from their nearest neighbour."""
    points = np.asarray(geom["points"], float)
    inside = points[(np.abs(points[:, :2]) < limit).all(axis=1)]
    gaps = np.linalg.norm(inside[:, None, :2] - points[None, :, :2], axis=2)
    gaps[gaps == 0] = np.inf
    return inside[np.argsort(-gaps.min(axis=1))[:count]]


def hovered(page, near: tuple[float, float], within: float = 0.3) -> list[dict]:
    """What plotly would pick on a click now: curve and test index of each hovered point, once its hover has caught
    up with the pointer (its throttled handler lags on a busy machine: the first hovered point within `within`
    plane units of `near`, or what is hovered after 3 s)."""
    script = f"""([x, y, r]) => {{
        const h = document.querySelector('{MAIN_CHART}')._hoverdata || [];
        return h.length > 0 && Math.hypot(Number(h[0].x) - x, Number(h[0].y) - y) < r; }}"""
    try:
        page.wait_for_function(script, arg=[*near, within], timeout=3000, polling=20)
    except Exception:  # the assertion then reports what is hovered instead
        pass
    return page.evaluate(f"""() => (document.querySelector('{MAIN_CHART}')._hoverdata || []).map(
        p => ({{curve: p.curveNumber, index: p.customdata === undefined ? null : Number(p.customdata)}}))""")


def test_points_win_the_pointer_within_their_marker(app_checkpoints, streamlit_server_factory, browser_page):
    """Hovering within 1.5 px of an isolated point (30 points, each in a random direction) shows that point,
    never the click lattice; a click there picks it."""
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    page = browser_page
    open_latent_map(page, server.url)
    nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert [n.split("\n")[-1].strip() for n in nav][:2] == ["Home", "Latent Map"]  # not "app"
    geom = plot_geometry(page)
    targets = isolated_points(geom, 30)
    assert len(targets) == 30
    rng = np.random.default_rng(1)
    missed = []
    for x, y, index in targets:
        px, py = to_pixels(plot_geometry(page), x, y)  # read anew: the page may reflow while it settles
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1.5)
        page.mouse.move(px + radius * np.cos(angle), py + radius * np.sin(angle))
        hits = hovered(page, (x, y))
        if [h["index"] for h in hits] != [int(index)]:
            missed.append((int(index), hits))
    assert not missed, f"{len(missed)} of 30 hovers did not show the point: {missed[:5]}"

    for x, y, index in targets[:3]:
        click_at(page, *to_pixels(plot_geometry(page), x, y))
        page.wait_for_function("i => document.body.innerText.includes('#' + i + ' · class')", arg=int(index),
                               timeout=30_000)
    assert decoded_src(page) is None  # none of the clicks decoded empty space
