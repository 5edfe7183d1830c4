"""Driving the live latent plane in Chromium: shared by tests/test_browser_latent_plane.py and bench/live_latency.py."""
from __future__ import annotations

import json
import re
import time

import numpy as np

PLANE = '[data-testid="latent-plane"]'
PROBE = '[data-testid="decoded-probe"]'
PAD = '[data-testid="draw-pad"]'
PINNED = re.compile(r"\(x, y\) = \((-?\d+\.\d+), (-?\d+\.\d+)\)")


def open_plane(page, url: str, path: str = "Latent_Map", timeout_ms: int = 120_000) -> None:
    page.goto(f"{url}/{path}")
    page.wait_for_selector(PLANE, timeout=timeout_ms)
    page.wait_for_function("() => document.querySelector('.lp-root')?.dataset.ready === '1' && "
                           "document.querySelector('.lp-root').dataset.gridN", timeout=timeout_ms)


def geometry(page, root: str = ".lp-root") -> dict:
    """The plane's view and its points in page pixels: `origin` is the overlay's top-left corner."""
    return page.evaluate("""(sel) => {
        const root = document.querySelector(sel), lp = root.__lp, box = lp.overlay.getBoundingClientRect();
        const {sx, sy} = lp.screenXY();
        return {left: box.left, top: box.top, view: lp.view, area: lp.area(), n: lp.labels.length,
                sx: Array.from(sx), sy: Array.from(sy)}; }""", root)


def to_page(page, x: float, y: float, root: str = ".lp-root") -> tuple[float, float]:
    return tuple(page.evaluate("""([sel, x, y]) => { const lp = document.querySelector(sel).__lp;
        const b = lp.overlay.getBoundingClientRect(), [sx, sy] = lp.toScreen(x, y); return [b.left + sx, b.top + sy]; }""",
                               [root, x, y]))


def to_plane(page, px: float, py: float, root: str = ".lp-root") -> tuple[float, float]:
    return tuple(page.evaluate("""([sel, px, py]) => { const lp = document.querySelector(sel).__lp;
        const b = lp.overlay.getBoundingClientRect(); return lp.toPlane(px - b.left, py - b.top); }""", [root, px, py]))


def probe(page) -> tuple[np.ndarray, np.ndarray]:
    """The probe's grey levels (H, W) in [0, 1] and the latent vector it says it painted."""
    out = page.evaluate("""(sel) => { const c = document.querySelector(sel), ctx = c.getContext('2d');
        return {z: c.dataset.z, w: c.width, h: c.height, px: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)}; }""",
                        PROBE)
    pixels = np.asarray(out["px"], np.float32).reshape(out["h"], out["w"], 4)[..., 0] / 255.0
    return pixels, np.asarray(json.loads(out["z"]), np.float32)


def isolated_points(geom: dict, count: int, gap_px: float = 12.0, margin: float = 10.0) -> list[tuple[int, float, float]]:
    """(index, page x, page y) of up to `count` points at least `gap_px` screen pixels from every other point and
    inside the plot area."""
    sx, sy = np.asarray(geom["sx"]), np.asarray(geom["sy"])
    a = geom["area"]
    inside = np.flatnonzero((sx > a["x"] + margin) & (sx < a["x"] + a["w"] - margin) &
                            (sy > a["y"] + margin) & (sy < a["y"] + a["h"] - margin))
    chosen = []
    for i in inside[np.random.default_rng(0).permutation(len(inside))]:
        d = np.hypot(sx - sx[i], sy - sy[i])
        d[i] = np.inf
        if d.min() >= gap_px:
            chosen.append((int(i), geom["left"] + float(sx[i]), geom["top"] + float(sy[i])))
        if len(chosen) == count:
            break
    return chosen


def empty_spots(geom: dict, count: int, clearance_px: float = 14.0) -> list[tuple[float, float]]:
    """Page pixels inside the plot at least `clearance_px` from every point, spread out."""
    sx, sy = np.asarray(geom["sx"]), np.asarray(geom["sy"])
    a = geom["area"]
    rng = np.random.default_rng(2)
    spots: list[tuple[float, float]] = []
    for _ in range(5000):
        x, y = a["x"] + rng.uniform(10, a["w"] - 10), a["y"] + rng.uniform(10, a["h"] - 10)
        if (len(sx) == 0 or np.hypot(sx - x, sy - y).min() >= clearance_px) and \
                all(np.hypot(x - u, y - v) > 40 for u, v in spots):
            spots.append((x, y))
        if len(spots) == count:
            break
    return [(geom["left"] + x, geom["top"] + y) for x, y in spots]


def pin(page, px: float, py: float, timeout_ms: int = 30_000) -> tuple[tuple[float, float], float]:
    """Clicks empty space at page pixel (px, py) and waits until the server's side panel shows that position
    (to 3 decimals); returns the plane coordinates the click was at and the seconds from the click to that."""
    expected = to_plane(page, px, py)
    clicked = time.perf_counter()
    page.mouse.click(px, py)
    page.wait_for_function("""([x, y]) => { const m = document.body.innerText.match(
        /\\(x, y\\) = \\((-?[\\d.]+), (-?[\\d.]+)\\)/); return m && Math.abs(+m[1] - x) < 0.002 &&
        Math.abs(+m[2] - y) < 0.002; }""", arg=list(expected), timeout=timeout_ms, polling=5)
    return expected, time.perf_counter() - clicked


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draws strokes given in pad fractions (0..1) with the mouse."""
    pad = page.locator(f"{PAD} >> visible=true")
    pad.wait_for(timeout=60_000)  # after a page switch the old page's (padless) plane may linger a moment
    box = pad.bounding_box()
    for stroke in strokes:
        points = [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for p in points[1:]:
            page.mouse.move(*p, steps=4)
        page.mouse.up()


SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]


def show_points(page, choice: str, n: int, timeout_ms: int = 180_000) -> None:
    """Clicks the Points control's `choice` ("test", "train", "both") and waits until the plane holds n points."""
    page.get_by_text(re.compile(f"^{choice} \\([0-9,]+\\)$")).click()
    page.wait_for_function("n => { const r = document.querySelector('.lp-root');"
                           " return r.dataset.ready === '1' && r.__lp.labels.length === n; }", arg=n, timeout=timeout_ms)


def plane_points(page, root: str = ".lp-root") -> tuple[np.ndarray, np.ndarray]:
    """The plane coordinates (float32, (n, 2)) and labels of the points the browser holds."""
    out = page.evaluate("(sel) => { const lp = document.querySelector(sel).__lp;"
                        " return [Array.from(lp.xy), Array.from(lp.labels)]; }", root)
    return np.asarray(out[0], np.float32).reshape(-1, 2), np.asarray(out[1], np.uint8)


def selected(page, root: str = ".lp-root") -> np.ndarray:
    """Positions of the points the browser shows as selected."""
    return np.asarray(page.evaluate("""(sel) => { const s = document.querySelector(sel).__lp.selected, out = [];
        if (s) for (let i = 0; i < s.length; i++) if (s[i]) out.push(i); return out; }""", root), np.int64)


def drag_path(page, path: list[tuple[float, float]], shift: bool = False) -> None:
    """Presses the mouse at the first plane point of `path`, moves through the rest and lets go (with Shift held)."""
    pixels = [to_page(page, float(x), float(y)) for x, y in path]
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for p in pixels[1:]:
        page.mouse.move(*p, steps=3)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def wait_for_selection_panel(page, count: int, timeout_ms: int = 300_000) -> None:
    """Waits until the server's panel names a selection of `count` images."""
    page.wait_for_function("n => document.body.innerText.includes('Selection: ' + n.toLocaleString('en') + ' image')",
                           arg=count, timeout=timeout_ms, polling=20)
