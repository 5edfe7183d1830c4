"""The live latent plane in Chromium: the browser's forward pass equals torch's, moving decodes without the server,
points are picked and empty space pinned exactly, and a drawn digit encodes like the same image uploaded."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from browser_plane import (PAD, PINNED, PLANE, SEVEN, draw, empty_spots, geometry, isolated_points, open_plane, pin,
                           probe, run_model, RuntimeServer)
from conftest import CHROMIUM, CHROMIUM_ARGS, SHIPPED, shipped_checkpoint
from vae_core import inference, preprocess
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_test_set
from vae_core.config import ModelConfig
from vae_core.export import browser_model
from vae_core.models import LatentModel, build_model
from vae_core.onnx_export import export_modules

SHIPPED_MODELS = sorted(SHIPPED.glob("*.pt"))


def _conv(kind: str) -> tuple[LatentModel, str]:
    """A seeded conv model (no conv model ships): its random weights exercise Conv2d, ConvTranspose2d and the
    condition joining the conv features."""
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="conv", latent_dim=3, hidden=(64,), kind=kind,
                                   n_classes=10 if kind == "cvae" else 0)), "mnist"


MODELS = [*(pytest.param(lambda p=p: _shipped(p), id=p.stem) for p in SHIPPED_MODELS),
          pytest.param(lambda: _conv("vae"), id="conv_vae"), pytest.param(lambda: _conv("cvae"), id="conv_cvae")]


def _shipped(path) -> tuple[LatentModel, str]:
    model, info = load_checkpoint(path)
    return model, info.dataset


@pytest.fixture(scope="module")
def runtime_context(chromium, browser_runtime):
    """A server of the runtime's files and one browser context for its pages (onnxruntime-web is fetched once)."""
    server = RuntimeServer()
    context = chromium.new_context()
    yield server, context
    context.close()
    server.stop()


def in_browser(runtime, model: LatentModel, zs: np.ndarray, labels: list[int], images: np.ndarray,
               backend: str | None = None) -> dict:
    """`model` exported as the app exports it and run by the browser's runtime (see browser_plane.run_model)."""
    server, context = runtime
    exported = browser_model(model)
    encoder, decoder = exported.onnx()
    name = exported.sha
    server.files.update({f"/{name}-encoder.onnx": encoder, f"/{name}-decoder.onnx": decoder})
    page = server.page(context, backend)
    try:
        return run_model(page, exported.spec, name, zs, labels, images)
    finally:
        page.close()


@pytest.mark.parametrize("make", MODELS)
def test_the_browser_decodes_and_encodes_like_torch(runtime_context, make):
    """Every shipped model and a conv VAE and cVAE, exported to ONNX and run by onnxruntime-web: 20 random latent
    points decoded within 1/255 of torch's decode_mean per pixel, and 4 test images encoded to the same μ (and
    log σ²)."""
    model, dataset = make()
    model.eval()
    rng = np.random.default_rng(0)
    zs = rng.uniform(-3, 3, (20, model.latent_dim)).astype(np.float32)
    labels = rng.integers(0, 10, 20).tolist() if model.conditional else [0] * 20
    images = load_test_set(dataset).test_images[:4].numpy().astype(np.float32) / 255.0
    out = in_browser(runtime_context, model, zs, labels, images)
    assert out["backend"] == "wasm"  # headless Chromium here has no WebGPU adapter
    expected = inference.decode(model, zs, np.array(labels) if model.conditional else None).reshape(20, -1)
    assert np.abs(np.asarray(out["decoded"]) - expected).max() <= 1 / 255
    with torch.no_grad():
        q = model.encode(torch.from_numpy(images), torch.tensor(labels[:4]) if model.conditional else None)
    mu = np.asarray([e["mu"] for e in out["encoded"]])
    assert mu == pytest.approx(q.mean.numpy(), abs=1e-4)
    if model.probabilistic:
        assert np.asarray([e["logvar"] for e in out["encoded"]]) == pytest.approx(q.logvar.numpy(), abs=1e-3)


@pytest.fixture(scope="module")
def webgpu_context(chromium, browser_runtime):
    """Chromium with WebGPU on SwiftShader (software: correct, not fast) and a runtime server, or a skip."""
    args = [a for a in CHROMIUM_ARGS if a != "--disable-gpu"]
    browser = chromium.browser_type.launch(executable_path=str(CHROMIUM), args=[
        *args, "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan"])
    server = RuntimeServer()
    context = browser.new_context()
    page = server.page(context)
    adapter = page.evaluate("async () => !!(navigator.gpu && await navigator.gpu.requestAdapter())")
    page.close()
    if not adapter:
        pytest.skip("this Chromium offers no WebGPU adapter, not even SwiftShader's")
    yield server, context
    context.close()
    browser.close()
    server.stop()


def test_the_webgpu_backend_decodes_like_torch(webgpu_context):
    """The runtime's WebGPU path (forced: SwiftShader is a fallback adapter, which the runtime leaves alone unasked)
    on a conditional VAE and a 64×64 RGB conv VAE: within 1/255 of torch, μ within 1e-4; the two models' four
    sessions are made one at a time (WebGPU refuses two at once)."""
    server, context = webgpu_context
    torch.manual_seed(1)
    models = [load_checkpoint(shipped_checkpoint("mnist_cvae_z2"))[0].eval(),
              build_model(ModelConfig(arch="conv", image_shape=(3, 64, 64), latent_dim=4, hidden=(32,))).eval()]
    rng = np.random.default_rng(3)
    for model in models:
        zs = rng.uniform(-3, 3, (3, model.latent_dim)).astype(np.float32)
        labels = [1, 4, 7] if model.conditional else [0] * 3
        images = rng.uniform(size=(2, *model.config.image_shape)).astype(np.float32)
        out = in_browser((server, context), model, zs, labels, images, backend="webgpu")
        assert out["backend"] == "webgpu"
        y = torch.tensor(labels) if model.conditional else None
        with torch.no_grad():
            expected = model.decode_mean(torch.from_numpy(zs), y).reshape(3, -1).numpy()
            mu = model.encode(torch.from_numpy(images), None if y is None else y[:2]).mean.numpy()
        assert np.abs(np.asarray(out["decoded"]) - expected).max() <= 1 / 255
        assert np.asarray([e["mu"] for e in out["encoded"]]) == pytest.approx(mu, abs=1e-4)


def test_a_colour_model_decodes_like_torch_in_every_channel(runtime_context):
    """A conv VAE drawing 64×64 RGB images (random weights): the browser's pixel means equal torch's within 1/255 in
    each channel."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(arch="conv", image_shape=(3, 64, 64), latent_dim=4, hidden=(32,))).eval()
    with torch.no_grad():  # four random transposed convolutions give a nearly flat image (σ < 0.01 per channel)
        for layer in model.decoder.deconv:
            if isinstance(layer, nn.ConvTranspose2d):
                layer.weight *= 3
    zs = np.random.default_rng(1).uniform(-3, 3, (6, 4)).astype(np.float32)
    images = torch.rand(2, 3, 64, 64).numpy()
    out = in_browser(runtime_context, model, zs, [0] * 6, images)
    decoded = np.asarray(out["decoded"]).reshape(6, 3, 64, 64)
    with torch.no_grad():
        expected = model.decode_mean(torch.from_numpy(zs)).numpy()
    assert expected.shape == decoded.shape and expected.std(axis=(0, 2, 3)).min() > 0.01  # three distinct channels
    assert np.abs(decoded - expected).max() <= 1 / 255
    with torch.no_grad():
        mu = model.encode(torch.from_numpy(images)).mean.numpy()
    assert np.asarray([e["mu"] for e in out["encoded"]]) == pytest.approx(mu, abs=1e-4)


class _ForeignEncoder(nn.Module):
    """Layers our nets do not have, on a flattened (rank-2) input: BatchNorm, LeakyReLU; outputs μ and log σ²."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3 * 32 * 32, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.2), nn.Linear(64, 2 * d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.body(x).chunk(2, dim=1)
        return mu, logvar


def _foreign_decoder(d: int) -> nn.Module:
    """Upsampling + convolution, BatchNorm2d, LeakyReLU, Tanh, a sigmoid at the end (probabilities), and a flattened
    output."""
    return nn.Sequential(nn.Linear(d, 32 * 8 * 8), nn.Unflatten(1, (32, 8, 8)), nn.BatchNorm2d(32), nn.LeakyReLU(0.1),
                         nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 16, 3, padding=1), nn.Tanh(),
                         nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(16, 3, 3, padding=1), nn.Sigmoid(),
                         nn.Flatten())


def _shuffled_batch_norm_statistics(module: nn.Module) -> None:
    """Running statistics of a trained net, so that eval-mode BatchNorm is not the identity."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def test_a_model_with_foreign_layers_runs_in_the_browser_as_in_onnxruntime(runtime_context, tmp_path):
    """An encoder and decoder built here with layers our nets lack, exported with export_modules as a user would:
    Chromium decodes them as onnxruntime (Python) does, within 1/255, and encodes to the same μ within 1e-4."""
    import onnxruntime

    torch.manual_seed(2)
    d = 5
    encoder, decoder = _ForeignEncoder(d), _foreign_decoder(d)
    _shuffled_batch_norm_statistics(encoder)
    _shuffled_batch_norm_statistics(decoder)
    with torch.no_grad():
        decoder[8].weight *= 10  # pixels spread over (0, 1) rather than all near 0.5
    paths = export_modules(encoder, decoder, (3, 32, 32), d, tmp_path, flat_input=True)
    files = [p.read_bytes() for p in paths]
    spec = {"image_shape": [3, 32, 32], "latent_dim": d, "n_classes": 0, "probabilistic": True,
            "decoder_output": "probs", "input_rank": 2,
            "encoder": {"input": "x", "label": None, "outputs": ["mu", "logvar"], "batch": None},
            "decoder": {"input": "z", "label": None, "output": "x", "batch": None}}
    rng = np.random.default_rng(2)
    zs = rng.normal(size=(8, d)).astype(np.float32)
    images = rng.uniform(size=(3, 3 * 32 * 32)).astype(np.float32)
    name = hashlib.sha256(files[0] + files[1]).hexdigest()[:20]
    server, context = runtime_context
    server.files.update({f"/{name}-encoder.onnx": files[0], f"/{name}-decoder.onnx": files[1]})
    page = server.page(context)
    out = run_model(page, spec, name, zs, [0] * 8, images)
    page.close()
    probs = onnxruntime.InferenceSession(files[1]).run(["x"], {"z": zs})[0]
    assert probs.shape == (8, 3 * 32 * 32) and probs.std() > 0.05
    assert np.abs(np.asarray(out["decoded"]) - probs).max() <= 1 / 255
    mu = onnxruntime.InferenceSession(files[0]).run(["mu"], {"x": images})[0]
    assert np.asarray([e["mu"] for e in out["encoded"]]) == pytest.approx(mu, abs=1e-4)


@pytest.fixture
def plane_page(app_checkpoints, streamlit_server_factory, browser_page, browser_runtime):
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    sent: list[str] = []
    browser_page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    requests: list[str] = []
    browser_page.on("request", lambda request: requests.append(request.url))
    open_plane(browser_page, server.url)
    browser_page.wait_for_timeout(500)  # let the first rerun's messages settle
    return browser_page, sent, load_checkpoint(app_checkpoints.z2)[0], (server.url, requests)


def test_moving_decodes_in_the_browser_without_the_server(plane_page):
    page, sent, model, (url, requests) = plane_page
    box = page.locator(PLANE).bounding_box()
    before = len(sent)
    rng = np.random.default_rng(3)
    seen = set()
    for u, v in rng.uniform(0.15, 0.85, (40, 2)):
        page.mouse.move(box["x"] + u * box["width"], box["y"] + v * box["height"])
        pixels, z = probe(page)
        # the probe shows what the model decodes at the z it names, to within one grey level
        assert np.abs(pixels - inference.decode(model, z)[0]).max() <= 1 / 255 + 1e-6
        seen.add(tuple(np.round(z, 4)))
    assert len(seen) == 40  # every move painted a new position
    page.keyboard.press("Tab")  # nothing else happens meanwhile; then the arrows move the probe too
    page.locator(PLANE).focus()
    z0 = probe(page)[1]
    page.keyboard.press("ArrowRight")
    assert probe(page)[1][0] > z0[0]
    assert len(sent) == before, "moving over the plane sent messages to the server"
    # the runtime, the model and the tooltip tiles all come from the app's own server
    index, px, py = isolated_points(geometry(page), 1)[0]
    page.mouse.move(px, py)
    page.wait_for_function(f"() => document.querySelector('[data-lp=tip-image]').dataset.index === '{index}'",
                           timeout=30_000)
    tip = np.asarray(page.evaluate("""() => { const c = document.querySelector('[data-lp=tip-image]');
        return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""), np.uint8)
    shown = load_test_set("mnist").test_images[index].numpy().reshape(28, 28)
    assert (tip.reshape(28, 28, 4)[..., 0] == shown).all() and shown.any()
    for served in ("/app/static/ort/", "/app/static/cache/model-", "/app/static/cache/tiles-"):
        assert any(served in u for u in requests), served
    assert [u for u in requests if not u.startswith(url + "/") and not u.startswith(("data:", "blob:"))] == []


def test_clicks_pick_isolated_points_and_pin_empty_space_exactly(plane_page):
    page, sent, model, _ = plane_page
    nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert [n.split("\n")[-1].strip() for n in nav][:2] == ["Home", "Latent Map"]  # opened at its own address
    targets = isolated_points(geometry(page), 30)
    assert len(targets) == 30
    rng = np.random.default_rng(1)
    for index, px, py in targets:
        angle, radius = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1.5)
        page.mouse.click(px + radius * np.cos(angle), py + radius * np.sin(angle))
        page.wait_for_function("i => document.body.innerText.includes('#' + i + ' · class')", arg=index,
                               timeout=30_000)
    assert "Pinned" in page.inner_text("body") and not PINNED.search(page.inner_text("body"))  # no pin yet

    geom = geometry(page)
    pixel = geom["view"]["span"] / geom["area"]["w"]  # plane units per screen pixel
    for px, py in empty_spots(geom, 3):
        expected, _ = pin(page, px, py)
        shown = [float(v) for v in PINNED.search(page.inner_text("body")).groups()]
        assert abs(shown[0] - expected[0]) <= pixel and abs(shown[1] - expected[1]) <= pixel


def test_a_digit_drawn_while_the_model_loads_is_encoded_and_reported_once_it_has(
        app_checkpoints, streamlit_server_factory, browser_page, browser_runtime):
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    page, held = browser_page, []
    # the encoder's file is held back: the model is still loading while the digit is drawn
    page.route("**/*-encoder.onnx", lambda route: held.append(route))
    page.goto(f"{server.url}/Latent_Map")
    page.wait_for_function("() => { const lp = document.querySelector('.lp-root')?.__lp; "
                           "return lp && lp.data && !lp.model; }", timeout=120_000)
    deadline = time.monotonic() + 60
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert held, "the page never asked for the encoder"
    draw(page, SEVEN, model_loaded=False)
    assert page.evaluate("() => document.querySelector('.lp-root').__lp.strokes.length") == len(SEVEN)
    assert not page.get_attribute(PAD, "data-mu")  # nothing to encode it with yet
    held[0].continue_()
    page.wait_for_function(f"() => document.querySelector('{PAD}').dataset.mu", timeout=60_000)
    # reported, not only drawn on the map: the server scores it
    page.wait_for_function("() => document.body.innerText.includes('costlier than')", timeout=60_000)


def test_a_drawn_digit_encodes_like_the_same_image_uploaded(plane_page):
    page, sent, model, _ = plane_page
    draw(page, SEVEN)
    page.wait_for_function(f"() => document.querySelector('{PAD}').dataset.mu", timeout=10_000)
    mu_browser = np.asarray(json.loads(page.get_attribute(PAD, "data-mu")), np.float32)
    png = base64.b64decode(page.evaluate(f"() => document.querySelector('{PAD}').toDataURL('image/png')").split(",")[1])
    upload = preprocess.preprocess_image(png, "pad.png").image
    mu_upload = inference.encode(model, upload[None])[0][0]
    assert np.abs(mu_browser - mu_upload).max() <= 0.3, (mu_browser, mu_upload)
    # the map shows it, and the server scores it without the browser having waited
    assert page.evaluate("() => document.querySelector('.lp-root').__lp.drawnCode !== null")
    page.wait_for_function("() => document.body.innerText.includes('costlier than')", timeout=30_000)
    assert Image.open(io.BytesIO(png)).size == (280, 280)
    page.get_by_role("button", name="undo").click()
    page.wait_for_function(f"() => !document.querySelector('{PAD}').dataset.mu", timeout=10_000)
