"""The live latent plane in headless Chromium: pointer → decoded probe, pad stroke → μ on the map, first paint, the
server round trip every click cost before, and the browser runtime (onnxruntime-web) beside the hand-written
forward pass it replaced, in the same run.

App (for each checkpoint in --models; default mnist_z2, then mnist_z20 on its PCA plane): opens the Latent Map on a
fresh server, moves the pointer to --moves random spots and reads, inside the page (performance.now()), the time from
each pointer event to the probe's repaint (a position superseded while a decode ran is timed to the repaint that
replaced it); draws 10 digits on the pad (stroke end → μ drawn on the map); pins 10 empty spots and times, from
Python, the click → the server's "Pinned" image and coordinates. First paint: when the plane was ready (runtime and
model loaded) and its first grid fully decoded, counted from navigation start, on a cold browser cache and again
after a reload (the model from the browser's Cache Storage).

Runtime (--runtime-models): each decoder in a plain page (no Streamlit), the pointer moved over a canvas and each
move decoded and painted, by onnxruntime-web (ui/components/runtime.js, as the plane runs it) and by the plain-JS
forward pass of commit BASELINE (its forward.js and vae_core/export.py, read from git), blocks interleaved A B A B.
The models: mnist_z2, mnist_z20, the PyTorch example's VAE (784-400-20, sigmoid output; random weights, exported
with export_modules; the old pass runs our VAE of the same sizes) and a 64×64 RGB conv VAE (random weights).
Goals: pointer → repaint p95 ≤ 16 ms for every one, first paint after a reload ≤ 1.5 s, stroke → μ ≤ 50 ms.

The app as of BASELINE (unpacked from git into a temporary folder) is measured the same way, each model's two apps in
alternating order.

Usage: VAE_DATA_DIR=../shared/data python bench/live_latency.py [--models mnist_z2 mnist_z20] [--moves 300]
           [--runtime-models z2 z20 example conv64] [--rounds 3] [--no-baseline]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from browser_plane import (PINNED, PLANE, SEVEN, RuntimeServer, draw, empty_spots, geometry, open_plane,  # noqa: E402
                           pin)
from conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402
from vae_core.checkpoint import load_checkpoint  # noqa: E402
from vae_core.config import ModelConfig  # noqa: E402
from vae_core.export import browser_model  # noqa: E402
from vae_core.models import build_model  # noqa: E402
from vae_core.onnx_export import export_modules  # noqa: E402

BASELINE = "c135f17"  # the last commit whose live plane ran its own forward pass (ui/components/forward.js)


def percentiles(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"p50 {np.percentile(a, 50):.2f} ms  p95 {np.percentile(a, 95):.2f} ms  max {a.max():.2f} ms  (n = {len(a)})"


def first_paint(page) -> tuple[float, float]:
    return tuple(page.evaluate("() => [window.__latentPlane.firstReady, window.__latentPlane.firstGrid]"))


def measure_app(page, url: str, moves: int, strokes: int, pins: int) -> dict:
    open_plane(page, url)
    cold = first_paint(page)
    page.reload()
    open_plane(page, url)
    warm = first_paint(page)
    backend = page.evaluate("() => document.querySelector('.lp-root').dataset.backend")

    box = page.locator(PLANE).bounding_box()
    page.evaluate("() => { window.__latentPlane.timings.length = 0; }")
    rng = np.random.default_rng(0)
    for u, v in rng.uniform(0.05, 0.95, (moves, 2)):
        page.mouse.move(box["x"] + u * box["width"], box["y"] + v * box["height"])
    page.wait_for_function("() => !document.querySelector('.lp-root').__lp.probeBusy")
    move_ms = page.evaluate("() => window.__latentPlane.timings.slice()")

    page.evaluate("() => { window.__latentPlane.padTimings.length = 0; }")
    for _ in range(strokes):
        draw(page, SEVEN)
        page.wait_for_function("() => document.querySelector('[data-testid=draw-pad]').dataset.mu")
        page.get_by_role("button", name="clear").click()
    pad_ms = page.evaluate("() => window.__latentPlane.padTimings.slice()")

    round_trips = []
    for px, py in empty_spots(geometry(page), pins):
        _, seconds = pin(page, px, py, timeout_ms=60_000)
        round_trips.append(seconds * 1e3)
        assert PINNED.search(page.inner_text("body"))
    return {"cold": cold, "warm": warm, "backend": backend, "moves": move_ms, "pad": pad_ms, "round_trips": round_trips}


def baseline_app() -> Path:
    """The app as of BASELINE (its own forward pass), unpacked from git into a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="live-latency-baseline-"))
    archive = subprocess.run(["git", "archive", BASELINE], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def report_app(name: str, label: str, out: dict) -> None:
    live, trip = statistics.median(out["moves"]), statistics.median(out["round_trips"])
    p95 = float(np.percentile(out["moves"], 95))
    print(f"\napp: {name}, {label} ({out['backend'] or 'plain-JS forward pass'}; load average {os.getloadavg()[0]:.1f})")
    print(f"  first paint, cold cache: plane ready {out['cold'][0]:.0f} ms, grid decoded {out['cold'][1]:.0f} ms "
          f"after navigation start; after a reload: {out['warm'][0]:.0f} ms, {out['warm'][1]:.0f} ms  (goal "
          f"≤ 1500 ms: {'ok' if out['warm'][0] <= 1500 else 'MISSED'})")
    print(f"  pointer → probe repaint: {percentiles(out['moves'])}  (goal p95 ≤ 16 ms: "
          f"{'ok' if p95 <= 16 else 'MISSED'})")
    print(f"  pad stroke → μ on the map: {percentiles(out['pad'])}  (goal ≤ 50 ms: "
          f"{'ok' if max(out['pad']) <= 50 else 'MISSED'})")
    print(f"  pin → server round trip (the old click path): {percentiles(out['round_trips'])}")
    print(f"  ratio {trip / live:.0f} (server round trip median / live repaint median)")


def app_section(args, chromium) -> None:
    """Each model in this app and, unless --no-baseline, in BASELINE's, the two in alternating order."""
    apps = [("onnxruntime-web", ROOT)]
    if args.baseline:
        apps.append((f"the app at {BASELINE}", baseline_app()))
    try:
        for i, name in enumerate(args.models):
            if not (Path(args.checkpoints) / f"{name}.pt").exists():
                raise SystemExit(f"{name}.pt not found in {args.checkpoints}")
            folder = Path(tempfile.mkdtemp(prefix="live-latency-"))  # only this model, so a fresh session shows it
            (folder / f"{name}.pt").symlink_to(Path(args.checkpoints).resolve() / f"{name}.pt")
            try:
                for label, root in (apps if i % 2 == 0 else apps[::-1]):
                    server = StreamlitServer({"VAE_CHECKPOINT_DIR": str(folder)}, root=root)
                    try:
                        page = chromium.new_page(viewport={"width": 1400, "height": 1100})
                        out = measure_app(page, server.url, args.moves, args.strokes, args.pins)
                        page.context.close()
                    finally:
                        server.stop()
                    report_app(name, label, out)
            finally:
                shutil.rmtree(folder)
    finally:
        if args.baseline:
            shutil.rmtree(apps[1][1])


# --- the runtime beside the old forward pass --------------------------------------------------------------------

class ExampleVAE(nn.Module):
    """pytorch/examples vae/main.py's model: 784-400-20, ReLU, a sigmoid on the decoder's output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))


class _Call(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn
        self.owner = fn.__self__

    def forward(self, x: torch.Tensor):
        return self.fn(x)


def _old_export():
    """vae_core/export.py as of BASELINE, imported from git as vae_core._baseline_export."""
    source = subprocess.run(["git", "show", f"{BASELINE}:vae_core/export.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("vae_core._baseline_export", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "vae_core"
    sys.modules[spec.name] = module  # dataclasses look their module up
    exec(compile(source, f"{BASELINE}:vae_core/export.py", "exec"), module.__dict__)
    return module


def runtime_models(names: list[str]) -> list[dict]:
    """For each model: its title, image shape and latent size, the new runtime's files and spec, the old pass's."""
    old = _old_export()
    out = []
    for name in names:
        torch.manual_seed(0)
        if name in ("z2", "z20"):
            model = load_checkpoint(ROOT / "checkpoints" / f"mnist_{name}.pt")[0].eval()
            title, twin = f"mnist_{name}", model
            exported = browser_model(model)
            files, spec = exported.onnx(), exported.spec
        elif name == "example":
            title = "PyTorch example VAE 784-400-20 (imported)"
            example = ExampleVAE().eval()
            with tempfile.TemporaryDirectory() as tmp:
                paths = export_modules(_Call(example.encode), _Call(example.decode), (1, 28, 28), 20, tmp, flat_input=True)
                files = tuple(p.read_bytes() for p in paths)
            spec = {"image_shape": [1, 28, 28], "latent_dim": 20, "n_classes": 0, "probabilistic": True,
                    "decoder_output": "probs", "input_rank": 2,
                    "encoder": {"input": "x", "label": None, "outputs": ["mu", "logvar"], "batch": None},
                    "decoder": {"input": "z", "label": None, "output": "x", "batch": None}}
            twin = build_model(ModelConfig(hidden=(400,), latent_dim=20)).eval()  # the old pass's model of its sizes
        elif name == "conv64":
            title = "64×64 RGB conv VAE"
            model = build_model(ModelConfig(arch="conv", image_shape=(3, 64, 64), latent_dim=8)).eval()
            exported = browser_model(model)
            files, spec, twin = exported.onnx(), exported.spec, model
        else:
            raise SystemExit(f"unknown runtime model {name!r}")
        baseline = old.browser_model(twin)
        out.append({"name": name, "title": title, "spec": spec, "files": files, "old_spec": baseline.spec,
                    "old_weights": baseline.weights,
                    "decoder_weights": sum(p.numel() for n, p in twin.named_parameters() if n.startswith("decoder"))})
    return out


HARNESS = """
window.H = {timings: [], busy: false, want: null, events: []};
H.paint = (p, shape) => {
  const [c, h, w] = shape, cv = document.getElementById('out'), ctx = cv.getContext('2d');
  cv.width = w; cv.height = h;
  const img = ctx.createImageData(w, h), g = c === 3 ? h * w : 0;
  for (let i = 0; i < h * w; i++) {
    img.data[4 * i] = Math.round(255 * p[i]); img.data[4 * i + 1] = Math.round(255 * p[i + g]);
    img.data[4 * i + 2] = Math.round(255 * p[i + 2 * g]); img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
};
H.z = (ev, d) => { const r = ev.target.getBoundingClientRect(), u = (ev.clientX - r.left) / r.width * 6 - 3,
  v = 3 - (ev.clientY - r.top) / r.height * 6, z = new Float32Array(d); z[0] = u; if (d > 1) z[1] = v;
  for (let k = 2; k < d; k++) z[k] = 0.5 * Math.sin(k * u + v); return z; };
H.use = async (impl, args) => {
  const t0 = performance.now(), d = args.spec.latent_dim;
  if (impl === 'old') {
    const W = new Float32Array(await (await fetch(args.weights)).arrayBuffer());
    H.onmove = (ev) => { H.paint(lpDecode(args.spec, W, H.z(ev, d), 0), args.spec.image_shape);
                         H.timings.push(performance.now() - ev.timeStamp); };
  } else {
    const m = await LpModel.load(args);
    await m.decode(new Float32Array(d), 1, 0);  // the first run sets the session up
    H.onmove = (ev) => {
      H.want = H.z(ev, d); H.events.push(ev.timeStamp);
      if (H.busy) return;
      H.busy = true;
      (async () => { while (H.want) { const z = H.want, events = H.events; H.want = null; H.events = [];
        H.paint(await m.decode(z, 1, 0), args.spec.image_shape); const now = performance.now();
        for (const t of events) H.timings.push(now - t); } })().finally(() => { H.busy = false; });
    };
  }
  return performance.now() - t0;
};
const pad = document.getElementById('pad');
pad.addEventListener('onpointerrawupdate' in window ? 'pointerrawupdate' : 'pointermove', (ev) => H.onmove && H.onmove(ev));
"""


def runtime_block(server: RuntimeServer, context, model: dict, impl: str, moves: int,
                  seed: int) -> tuple[float, list[float]]:
    """One fresh page: the model loaded by `impl` ("old" or "new"), then `moves` pointer moves; (load ms, timings).
    The load includes making the runtime (new) on a fresh page, with the model from Cache Storage after the first."""
    name = hashlib.sha256(model["files"][0] + model["files"][1]).hexdigest()[:20]
    server.files.update({f"/{name}-encoder.onnx": model["files"][0], f"/{name}-decoder.onnx": model["files"][1],
                         f"/{name}-old.bin": model["old_weights"]})
    page = server.page(context)
    try:
        page.evaluate("""() => { document.body.innerHTML = '<canvas id="pad" width="400" height="400" ' +
            'style="width:400px;height:400px"></canvas><canvas id="out"></canvas>'; }""")
        page.add_script_tag(content=old_forward_js())
        page.add_script_tag(content=HARNESS)
        args = ({"spec": model["old_spec"], "weights": f"/{name}-old.bin"} if impl == "old" else
                {"sha": name, "spec": model["spec"], "encoder": f"/{name}-encoder.onnx", "decoder": f"/{name}-decoder.onnx"})
        load_ms = page.evaluate("([impl, args]) => H.use(impl, args)", [impl, args])
        box = page.locator("#pad").bounding_box()
        for u, v in np.random.default_rng(seed).uniform(0.02, 0.98, (moves, 2)):
            page.mouse.move(box["x"] + u * box["width"], box["y"] + v * box["height"])
        page.wait_for_function("() => !H.busy")
        return load_ms, page.evaluate("() => H.timings.slice()")
    finally:
        page.close()


_OLD_FORWARD: list[str] = []


def old_forward_js() -> str:
    if not _OLD_FORWARD:
        _OLD_FORWARD.append(subprocess.run(["git", "show", f"{BASELINE}:ui/components/forward.js"], cwd=ROOT,
                                           check=True, capture_output=True, text=True).stdout)
    return _OLD_FORWARD[0]


def runtime_section(args, chromium) -> None:
    print(f"\nruntime: onnxruntime-web (new) vs the plain-JS forward pass of {BASELINE} (old), headless Chromium, "
          f"{args.rounds} rounds of old/new blocks of {args.moves // args.rounds} moves each")
    models = runtime_models(args.runtime_models)
    server = RuntimeServer()
    context = chromium.new_context(viewport={"width": 900, "height": 700})
    try:
        for model in models:
            timings = {"old": [], "new": []}
            loads = {"old": [], "new": []}
            for r in range(args.rounds):
                for impl in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    load_ms, ms = runtime_block(server, context, model, impl, args.moves // args.rounds, seed=r)
                    loads[impl].append(load_ms)
                    timings[impl] += ms
            print(f"\n  {model['title']} (decoder {model['decoder_weights'] / 1e6:.2f} M weights; load average "
                  f"{os.getloadavg()[0]:.1f})")
            for impl, label in (("old", "old forward pass"), ("new", "onnxruntime-web")):
                p95 = float(np.percentile(timings[impl], 95))
                print(f"    {label:17s} pointer → repaint {percentiles(timings[impl])}  "
                      f"[{'ok' if p95 <= 16 else 'MISSED'}]  model ready {statistics.median(loads[impl]):.0f} ms")
            ratio = np.percentile(timings["old"], 95) / np.percentile(timings["new"], 95)
            print(f"    p95 old / new: {ratio:.2f}")
    finally:
        context.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    parser.add_argument("--models", nargs="*", default=["mnist_z2", "mnist_z20"])
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--strokes", type=int, default=10)
    parser.add_argument("--pins", type=int, default=10)
    parser.add_argument("--runtime-models", nargs="*", default=["z2", "z20", "example", "conv64"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help=f"skip the app as of {BASELINE} (its own forward pass)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing")
    if not (ROOT / "static" / "ort" / "ort.wasm.bundle.min.mjs").exists():
        raise SystemExit("static/ort/ is empty: ./run.sh installs onnxruntime-web")
    from playwright.sync_api import sync_playwright

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            if args.models:
                app_section(args, chromium)
            if args.runtime_models:
                runtime_section(args, chromium)
        finally:
            chromium.close()


if __name__ == "__main__":
    main()
