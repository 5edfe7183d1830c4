"""The live plane's points at scale, in headless Chromium (WebGL is SwiftShader here: software on the CPU).

Frame time while panning and zooming, p50 / p95, at 10,000, 70,000 and 1,000,000 points, for
  (a) raw WebGL: one gl.POINTS draw of every point (4-px squares, one colour each), the floor for drawing every
      point every frame;
  (b) the 2-D canvas points of the live plane as it was at BASELINE_COMMIT (read from git), grid and ticks included;
  (c) the live plane now: its WebGL points layer (ui/components/points_gl.js: points in view drawn one by one up to
      PL_BUDGET, their binned density beyond), grid and ticks included, sent what ui/latent_plane.py sends;
all in one run, interleaved a b c a b c. Then, through the app (a Streamlit server, the Latent Map with both splits of
the full MNIST, 70,000 points), a lasso drawn with the mouse → the server's panel: from the mouse button's release to
the panel naming the new count, to its new mean image, and to its new typicality strip (the panel's last part),
alternating two lassos (the first, which scores every image once, is a warm-up and not counted). Each runs in a plain HTML page served by a local http.server (no Streamlit):
the component's own module is mounted on a div, the view is stepped (a pan around a circle, then a zoom in and
out), the component draws, and a 1-pixel read (gl.readPixels / getImageData) waits until the frame is done; the
time from the view change to that read is the frame. "zoomed" and "deep" are the same pan at 1/8 and 1/40 of the
span over the densest spot.

Points: mnist_z2's posterior means of the MNIST test split (10,000) and test + train (70,000, needs the full data
in $VAE_DATA_DIR, else the test codes tiled with jitter), and 1,000,000 synthetic codes (the 70,000 tiled with
N(0, 0.05²) jitter, so they cluster like the real ones).

Usage: VAE_DATA_DIR=../shared/data python bench/plane_scale.py [--counts 10000 70000 1000000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_plane import drag_path, open_plane, show_points  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

BASELINE_COMMIT = "c135f1767a5a69e5ef6705fc2e32b9e18b0ddda0"  # the last commit whose plane drew its points in 2-D
COMPONENTS = ROOT / "ui" / "components"
FRAME_BUDGET_S = 12.0  # per measurement: a 2-D canvas of 1,000,000 points takes seconds a frame
SEED = 0

RAW_PAGE = """
const VS = `attribute vec2 p; attribute vec3 c; uniform vec4 t; varying vec3 v;
  void main() { gl_Position = vec4(p * t.xy + t.zw, 0.0, 1.0); gl_PointSize = 4.0; v = c; }`;
const FS = `precision mediump float; varying vec3 v; void main() { gl_FragColor = vec4(v, 1.0); }`;
export async function mount(host, pts) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = SIZE;
  host.append(canvas);
  const gl = canvas.getContext("webgl", { antialias: false });
  const prog = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, VS], [gl.FRAGMENT_SHADER, FS]]) {
    const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); gl.attachShader(prog, s);
  }
  gl.linkProgram(prog);
  gl.useProgram(prog);
  const colors = new Uint8Array(3 * pts.n);
  for (let i = 0; i < pts.n; i++) colors.set(PALETTE[pts.labels[i] % 10], 3 * i);
  for (const [name, data, size, type, norm] of [["p", pts.xy, 2, gl.FLOAT, false], ["c", colors, 3, gl.UNSIGNED_BYTE, true]]) {
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, name);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, type, norm, 0, 0);
  }
  const t = gl.getUniformLocation(prog, "t"), px = new Uint8Array(4);
  return {
    view: { ...pts.view },
    draw(v) {
      gl.clearColor(1, 1, 1, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.uniform4f(t, 2 / v.span, 2 / v.span, -2 * v.cx / v.span, -2 * v.cy / v.span);
      gl.drawArrays(gl.POINTS, 0, pts.n);
      gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
      return "points";
    },
  };
}
"""

COMPONENT_PAGE = """
import component from "./@MODULE@";
export async function mount(host, pts) {
  host.innerHTML = await (await fetch("./@HTML@")).text();
  const data = await (await fetch("./@DATA@-" + pts.n + ".json")).json();
  component({ data, parentElement: host, setStateValue() {}, setTriggerValue() {} });
  const root = host.querySelector(".lp-root");
  while (!(root.dataset.ready === "1" && root.dataset.gridN)) await new Promise((r) => setTimeout(r, 50));
  const lp = root.__lp;
  return {
    view: { ...lp.view },
    draw(v) { Object.assign(lp.view, v); @DRAW@; return root.dataset.mode || "points"; },
  };
}
"""

HARNESS = """<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="./@CSS@"></head>
<body style="margin:0"><div id="host" style="width:900px"></div>
<script type="module">
import { mount } from "./@PAGE@";
const q = new URLSearchParams(location.search);
async function points(n) {
  const buf = await (await fetch("./points-" + n + ".bin")).arrayBuffer();
  const xy = new Float32Array(buf, 0, 2 * n), labels = new Uint8Array(buf, 8 * n, n);
  return { n, xy, labels, view: JSON.parse(q.get("view")) };
}
window.bench = (async () => {
  const pts = await points(+q.get("n"));
  const target = await mount(document.getElementById("host"), pts);
  return async (views, budgetMs) => {
    const times = [], modes = {}, start = performance.now();
    for (const v of views) {
      await new Promise((r) => requestAnimationFrame(r));
      const t0 = performance.now();
      const mode = target.draw(v);
      times.push(performance.now() - t0);
      modes[mode] = (modes[mode] || 0) + 1;
      if (performance.now() - start > budgetMs) break;
    }
    return { times, modes };
  };
})();
</script></body></html>
"""


def codes(counts: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(xy float32 (n, 2), labels uint8 (n,)) for each count: mnist_z2's μ of the test split, then the train split,
    then tiled with jitter."""
    from vae_core import inference
    from vae_core.checkpoint import load_checkpoint
    from vae_core.data import load_test_set

    model, _ = load_checkpoint(ROOT / "checkpoints" / "mnist_z2.pt")
    data = load_test_set("mnist")
    images = np.concatenate([data.test_images.numpy(), data.train_images.numpy()])
    labels = np.concatenate([data.test_labels.numpy(), data.train_labels.numpy()]).astype(np.uint8)
    mu = inference.encode(model, images)[0]
    rng = np.random.default_rng(SEED)
    out = {}
    for n in counts:
        reps = -(-n // len(mu))
        xy = np.concatenate([mu] + [mu + rng.normal(0, 0.05, mu.shape) for _ in range(reps - 1)])[:n]
        out[n] = (xy.astype(np.float32), np.tile(labels, reps)[:n])
    print(f"codes: {len(data.test_images):,} test + {len(data.train_images):,} train images of mnist "
          f"({data.source}); larger counts tiled with jitter")
    return out


def views(xy: np.ndarray, extent: float = 3.0, frames: int = 40) -> dict[str, list[dict]]:
    """The view sequences: at full view a pan around a circle then a zoom in to 1/3 and out, and the same pan at 1/8
    and at 1/40 of the span over the densest spot."""
    span = 2 * extent * 1.04
    t = np.linspace(0, 2 * np.pi, frames, endpoint=False)
    pan = [{"cx": 0.15 * span * np.cos(a), "cy": 0.15 * span * np.sin(a), "span": span} for a in t]
    zoom_in = [{"cx": 0.0, "cy": 0.0, "span": span * 3 ** (-k / (frames // 2))} for k in range(frames // 2)]
    hist, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=24, range=[[-extent, extent]] * 2)
    i, j = np.unravel_index(hist.argmax(), hist.shape)
    cx, cy = (xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2
    around = lambda k: [{"cx": cx + 0.15 * span / k * np.cos(a), "cy": cy + 0.15 * span / k * np.sin(a),  # noqa: E731
                         "span": span / k} for a in t]
    return {"full": pan + zoom_in + zoom_in[::-1], "zoomed": around(8), "deep": around(40)}


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def canvas_variant(folder: Path, model: dict, counts: list[int], pts: dict) -> str | None:
    """The 2-D canvas component of BASELINE_COMMIT with its data for each count; None when git cannot show it."""
    try:
        old = {name: subprocess.run(["git", "show", f"{BASELINE_COMMIT}:ui/components/{name}"], cwd=ROOT,
                                    check=True, capture_output=True, text=True).stdout
               for name in ("forward.js", "latent_plane.js", "latent_plane.html", "latent_plane.css")}
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"(b) skipped: the baseline's files are not in this checkout's history ({exc})")
        return None
    (folder / "old.js").write_text(old["forward.js"] + "\n" + old["latent_plane.js"])
    (folder / "old.html").write_text(old["latent_plane.html"])
    (folder / "old.css").write_text(old["latent_plane.css"])
    for n in counts:
        xy, labels = pts[n]
        data = {**model, "points": {"xy": b64(xy), "labels": b64(labels), "key": f"bench-{n}", "indices": None,
                                    "atlas": None, "atlas_cols": 100, "image_shape": [1, 28, 28]}}
        (folder / f"old-{n}.json").write_text(json.dumps(data))
    page = COMPONENT_PAGE.replace("@MODULE@", "old.js").replace("@HTML@", "old.html").replace("@DATA@", "old").replace(
        "@DRAW@", "lp.drawBase(); lp.base.getContext('2d').getImageData(0, 0, 1, 1)")
    (folder / "canvas.js").write_text(page)
    return "canvas"


LAYER_DRAW = """lp.render(); lp.base.getContext('2d').getImageData(0, 0, 1, 1);
      const gl = lp.layer.gl; if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4))"""


def layer_variant(folder: Path, counts: list[int], pts: dict) -> str:
    """The plane as it is now, sent what ui/latent_plane.py sends (its files published under static/cache/)."""
    from ui import latent_plane, shared
    from vae_core.checkpoint import load_checkpoint
    from vae_core.projection import slice_plane

    model, info = load_checkpoint(ROOT / "checkpoints" / "mnist_z2.pt")
    sel = shared.Selection(info=info, model=model, data=None, data_notice=None, mu=None, sigma=None)
    (folder / "app").mkdir()
    (folder / "app" / "static").symlink_to(latent_plane.STATIC_DIR)
    for n in counts:
        xy, labels = pts[n]
        data = latent_plane.plane_data(sel, slice_plane(2), 3.0, xy=xy, labels=labels, select=True)
        (folder / f"layer-{n}.json").write_text(json.dumps(data))
    (folder / "layer-module.js").write_text("\n".join((COMPONENTS / f).read_text() for f in latent_plane.SCRIPTS))
    (folder / "layer.html.part").write_text((COMPONENTS / "latent_plane.html").read_text())
    (folder / "layer.css").write_text((COMPONENTS / "latent_plane.css").read_text())
    page = COMPONENT_PAGE.replace("@MODULE@", "layer-module.js").replace("@HTML@", "layer.html.part").replace(
        "@DATA@", "layer").replace("@DRAW@", LAYER_DRAW)
    (folder / "layer.js").write_text(page)
    return "layer"


def model_data() -> tuple[dict, bytes]:
    """What BASELINE_COMMIT's plane component is sent about mnist_z2, with the weights' bytes: that commit's
    forward.js ran its own export of the model (its vae_core/export.py, read from git like its JavaScript; the live
    plane now runs ONNX files instead)."""
    import types

    from vae_core.checkpoint import load_checkpoint

    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:vae_core/export.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    export = types.ModuleType("vae_core.baseline_export")
    export.__package__ = "vae_core"
    sys.modules[export.__name__] = export  # its dataclasses look their module up there
    exec(compile(source, f"{BASELINE_COMMIT[:7]}:vae_core/export.py", "exec"), export.__dict__)
    exported = export.browser_model(load_checkpoint(ROOT / "checkpoints" / "mnist_z2.pt")[0])
    data = {
        "name": "mnist_z2", "model": {"url": "./weights.bin", "sha": exported.sha, "spec": exported.spec},
        "plane": {"origin": [0.0, 0.0], "axes": [[1.0, 0.0], [0.0, 1.0]], "labels": ["z0", "z1"]},
        "view_key": "bench", "extent": 3.0, "center": [0.0, 0.0], "axis_titles": None, "prior_box": False,
        "classes": [str(i) for i in range(10)], "colors": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                                             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"],
        "decode": True, "pad": False, "grid_n": 15, "show_grid": True, "class_picker": False, "klass": 0,
        "pinned": None, "picked": None, "marks": [], "compact": False, "group": None,
    }
    return data, exported.weights


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def write_pages(folder: Path, counts: list[int], pts: dict) -> list[str]:
    model, weights = model_data()
    (folder / "weights.bin").write_bytes(weights)
    palette = [[int(c[k:k + 2], 16) for k in (1, 3, 5)] for c in model["colors"]]
    (folder / "raw.js").write_text(f"const SIZE = 640, PALETTE = {json.dumps(palette)};\n" + RAW_PAGE)
    for n in counts:
        xy, labels = pts[n]
        (folder / f"points-{n}.bin").write_bytes(xy.tobytes() + labels.tobytes())
    variants = ["raw"]
    if canvas_variant(folder, model, counts, pts):
        variants.append("canvas")
    variants.append(layer_variant(folder, counts, pts))
    for v in variants:
        css = {"canvas": "old.css", "layer": "layer.css"}.get(v, "none.css")
        (folder / f"{v}.html").write_text(HARNESS.replace("@PAGE@", f"{v}.js").replace("@CSS@", css))
    return variants


PANEL_IMAGES = """() => { const srcs = (text) => [...document.querySelectorAll('[data-testid="stImage"]')]
    .filter((e) => e.innerText.includes(text)).map((e) => e.querySelector('img')?.src).join(' ');
    return [srcs('mean input image'), srcs('·')]; }"""


def lasso_to_panel(lassos: int) -> list[tuple[float, float, float]]:
    """(count, mean image, strip) ms after the mouse is released, for `lassos` lassos drawn in the app."""
    import math
    import time

    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="plane-scale-app-"))
    (folder / "mnist_z2.pt").symlink_to(ROOT / "checkpoints" / "mnist_z2.pt")
    server = StreamlitServer({"VAE_CHECKPOINT_DIR": str(folder)})
    out = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_plane(page, server.url)
            show_points(page, "both", 70_000)
            page.click('[data-lp="tool-lasso"]')
            rings = [[(c[0] + r * math.cos(a), c[1] + 0.7 * r * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 40)]
                     for c, r in (((-1.5, 1.0), 0.5), ((1.2, 0.4), 0.6))]
            for k in range(lassos + 1):
                before = page.evaluate(PANEL_IMAGES)
                path = rings[k % 2]
                drag_path(page, path[:-1])
                released = time.perf_counter()  # drag_path has just let go of the button
                count = int(page.evaluate("() => document.querySelector('.lp-root').dataset.selected"))
                page.wait_for_function("n => document.body.innerText.includes('Selection: ' + n.toLocaleString('en') + ' image')",
                                       arg=count, timeout=600_000, polling="raf")
                t_count = time.perf_counter()
                page.wait_for_function(f"b => ({PANEL_IMAGES})()[0] !== b", arg=before[0], timeout=600_000, polling="raf")
                t_mean = time.perf_counter()
                page.wait_for_function(f"b => ({PANEL_IMAGES})()[1] !== b && ({PANEL_IMAGES})()[1]", arg=before[1],
                                       timeout=600_000, polling="raf")
                t_strip = time.perf_counter()
                if k:  # the first lasso scores every image once: a warm-up
                    out.append(((t_count - released) * 1e3, (t_mean - released) * 1e3, (t_strip - released) * 1e3))
                    print(f"lasso {k}: {count:,} points  count {out[-1][0]:.0f} ms  mean image {out[-1][1]:.0f} ms  "
                          f"strip {out[-1][2]:.0f} ms", flush=True)
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def stats(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", nargs="+", type=int, default=[10_000, 70_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every variant and count")
    parser.add_argument("--lassos", type=int, default=8, help="lassos timed through the app (0: none)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    pts = codes(args.counts)
    folder = Path(tempfile.mkdtemp(prefix="plane-scale-"))
    server = None
    try:
        variants = write_pages(folder, args.counts, pts)
        server, url = serve(folder)
        times: dict[tuple[str, int, str], list[float]] = {}
        modes: dict[tuple[str, int, str], set[str]] = {}
        load = [os.getloadavg()[0]]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for r in range(args.rounds):
                for n in args.counts:
                    seq = views(pts[n][0])
                    for v in variants:
                        page = browser.new_page(viewport={"width": 1000, "height": 800})
                        page.goto(f"{url}/{v}.html?n={n}&view=" + json.dumps(seq["full"][0]))
                        page.evaluate("() => window.bench", None)
                        for phase, frames in seq.items():
                            out = page.evaluate("([v, b]) => window.bench.then((run) => run(v, b))",
                                                [frames, FRAME_BUDGET_S * 1e3])
                            ms = out["times"]
                            times.setdefault((v, n, phase), []).extend(ms)
                            modes.setdefault((v, n, phase), set()).update(out["modes"])
                            print(f"round {r + 1}  {v:7s} {n:>9,}  {phase:6s}  p50 {stats(ms)[0]:8.1f} ms  "
                                  f"p95 {stats(ms)[1]:8.1f} ms  ({len(ms)} frames: "
                                  f"{', '.join(f'{k} {c}' for k, c in out['modes'].items())})", flush=True)
                        page.close()
                        load.append(os.getloadavg()[0])
            browser.close()
    finally:
        if server is not None:
            server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)

    if args.rounds:
        print(f"\nframe time, ms (p50 / p95), load average {min(load):.1f}–{max(load):.1f} on {os.cpu_count()} CPUs")
        print(f"{'points':>10s} {'view':7s}" + "".join(f"{v:>20s}" for v in variants)
              + "   layer drew   raw/layer  canvas/layer (p50)")
        for n in args.counts:
            for phase in ("full", "zoomed", "deep"):
                cells = {v: stats(times[(v, n, phase)]) for v in variants}
                ratios = "".join(f"{cells[v][0] / cells['layer'][0]:12.2f}" for v in ("raw", "canvas") if v in cells)
                print(f"{n:>10,} {phase:7s}" + "".join(f"{a:11.1f} / {b:6.1f}" for a, b in cells.values())
                      + f"   {'+'.join(sorted(modes[('layer', n, phase)])):10s}" + ratios)
    if args.lassos:
        if not (Path(os.environ.get("VAE_DATA_DIR", "")) / "MNIST" / "raw").is_dir():
            raise SystemExit("the lasso through the app needs the full MNIST: set VAE_DATA_DIR")
        timed = np.asarray(lasso_to_panel(args.lassos))
        print(f"\nlasso over 70,000 points → panel, ms after release (median / max of {len(timed)}; "
              f"load average {os.getloadavg()[0]:.1f}):")
        for k, what in enumerate(("count shown", "mean image shown", "strip shown (panel done)")):
            print(f"  {what:26s} {np.median(timed[:, k]):7.0f} / {timed[:, k].max():7.0f}   (goal ≤ 300 ms)")


if __name__ == "__main__":
    main()
