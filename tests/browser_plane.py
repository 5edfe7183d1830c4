"""Driving the live latent plane in Chromium: shared by tests/test_browser_latent_plane.py and bench/live_latency.py."""
from __future__ import annotations

import http.server
import json
import mimetypes
import re
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_JS = ROOT / "ui" / "components" / "runtime.js"
ORT_FILES = ROOT / "static" / "ort"

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


def probe(page, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The probe's pixels in [0, 1] in display layout ((H, W) grey, (H, W, 3) colour) and the latent vector it says it
    painted, once no decode is running for it."""
    page.wait_for_function("() => !document.querySelector('.lp-root').__lp.probeBusy", timeout=10_000, polling=5)
    out = page.evaluate("""(sel) => { const c = document.querySelector(sel), ctx = c.getContext('2d');
        return {z: c.dataset.z, w: c.width, h: c.height, px: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)}; }""",
                        PROBE)
    pixels = np.asarray(out["px"], np.float32).reshape(out["h"], out["w"], 4)[..., :channels] / 255.0
    return (pixels[..., 0] if channels == 1 else pixels), np.asarray(json.loads(out["z"]), np.float32)


class RuntimeServer:
    """A plain HTTP server on a free loopback port (a secure context, like the app's: Cache Storage and
    pointerrawupdate exist) for pages of the runtime alone: "/" is a blank page, /app/static/ort/ the installed
    onnxruntime-web, and `files` (path -> bytes, e.g. a model's ONNX files; add more at any time) are answered from
    memory. The runtime keeps what it fetched in Cache Storage by URL, so a path must name its content (a hash in
    it), as the app's do."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {"/": b"<html><body></body></html>"}
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                local = ORT_FILES / path.removeprefix("/app/static/ort/")
                if path in files:
                    body, kind = files[path], "text/html" if path == "/" else "application/octet-stream"
                elif path.startswith("/app/static/ort/") and local.is_file() and local.parent == ORT_FILES:
                    body, kind = local.read_bytes(), mimetypes.guess_type(local.name)[0] or "application/octet-stream"
                else:
                    return self.send_error(404)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def page(self, context, backend: str | None = None):
        """A new page at "/" with runtime.js loaded; `backend` ("wasm", "webgpu") overrides the runtime's choice."""
        page = context.new_page()
        if backend:
            page.add_init_script(f"globalThis.latentExplorerBackend = {json.dumps(backend)};")
        page.goto(self.url + "/")
        page.add_script_tag(content=RUNTIME_JS.read_text())
        return page

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_model(page, spec: dict, name: str, zs: np.ndarray, labels: list[int], images: np.ndarray) -> dict:
    """Model files /name-encoder.onnx and /name-decoder.onnx (served by a RuntimeServer; `name` holds their hash) run
    in the page: each z decoded with its label (pixel means, C·H·W each) and each image (C·H·W values) encoded
    ({mu, logvar})."""
    return page.evaluate("""async ([spec, name, zs, labels, images]) => {
        const m = await LpModel.load({sha: name, spec, encoder: '/' + name + '-encoder.onnx',
                                      decoder: '/' + name + '-decoder.onnx'});
        const decoded = [], encoded = [];
        for (let i = 0; i < zs.length; i++) decoded.push(Array.from(await m.decode(Float32Array.from(zs[i]), 1, labels[i])));
        for (let i = 0; i < images.length; i++) encoded.push(await m.encode(Float32Array.from(images[i]), labels[i]));
        return {decoded, encoded, backend: m.backend}; }""",
                         [spec, name, np.asarray(zs).tolist(), labels, np.asarray(images).reshape(len(images), -1).tolist()])


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


def draw(page, strokes: list[list[tuple[float, float]]], model_loaded: bool = True) -> None:
    """Draws strokes given in pad fractions (0..1) with the mouse, once the plane's model is loaded unless told."""
    pad = page.locator(f"{PAD} >> visible=true")
    pad.wait_for(timeout=60_000)  # after a page switch the old page's (padless) plane may linger a moment
    # The pad shows before the component's script has bound its listeners: a stroke then would be lost.
    if model_loaded:
        page.wait_for_function("() => [...document.querySelectorAll('.lp-root')].some(r => r.dataset.ready === '1' && "
                               "!r.classList.contains('lp-no-pad') && r.offsetParent)", timeout=60_000)
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
