"""The live latent plane in Chromium: the browser's forward pass equals torch's, moving decodes without the server,
points are picked and empty space pinned exactly, and a drawn digit encodes like the same image uploaded."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from browser_plane import (PAD, PINNED, PLANE, SEVEN, draw, empty_spots, geometry, isolated_points, open_plane, pin,
                           probe)
from conftest import ROOT, SHIPPED
from vae_core import inference, preprocess
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_test_set
from vae_core.config import ModelConfig
from vae_core.export import browser_model
from vae_core.models import LatentModel, build_model

FORWARD_JS = (ROOT / "ui" / "components" / "forward.js").read_text()
SHIPPED_MODELS = sorted(SHIPPED.glob("*.pt"))


def _run_in_browser(page, exported, zs: np.ndarray, labels: list[int], images: np.ndarray) -> dict:
    return page.evaluate("""([spec, b64, zs, labels, images]) => {
        const bin = atob(b64), bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const W = new Float32Array(bytes.buffer);
        return {decoded: zs.map((z, i) => Array.from(lpDecode(spec, W, z, labels[i]))),
                encoded: images.map((x, i) => lpEncode(spec, W, Float32Array.from(x), labels[i]))}; }""",
                         [exported.spec, base64.b64encode(exported.weights).decode(), zs.tolist(), labels,
                          images.reshape(len(images), -1).tolist()])


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
def forward_page(chromium):
    """One blank page with forward.js loaded, shared by every model."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=FORWARD_JS)
    yield page
    context.close()


@pytest.mark.parametrize("make", MODELS)
def test_the_browser_decodes_and_encodes_like_torch(forward_page, make):
    """Every shipped model and a conv VAE and cVAE: 20 random latent points decoded in the browser within 1/255 of
    torch's decode_mean per pixel, and 4 test images encoded to the same μ (and log σ²)."""
    model, dataset = make()
    model.eval()
    exported = browser_model(model)
    page = forward_page
    rng = np.random.default_rng(0)
    zs = rng.uniform(-3, 3, (20, model.latent_dim)).astype(np.float32)
    labels = rng.integers(0, 10, 20).tolist() if model.conditional else [0] * 20
    images = load_test_set(dataset).test_images[:4, 0].numpy().astype(np.float32) / 255.0
    out = _run_in_browser(page, exported, zs, labels, images)
    expected = inference.decode(model, zs, np.array(labels) if model.conditional else None).reshape(20, -1)
    assert np.abs(np.asarray(out["decoded"]) - expected).max() <= 1 / 255
    with torch.no_grad():
        q = model.encode(torch.from_numpy(images)[:, None], torch.tensor(labels[:4]) if model.conditional else None)
    mu = np.asarray([e["mu"] for e in out["encoded"]])
    assert mu == pytest.approx(q.mean.numpy(), abs=1e-4)
    if model.probabilistic:
        assert np.asarray([e["logvar"] for e in out["encoded"]]) == pytest.approx(q.logvar.numpy(), abs=1e-3)


@pytest.fixture
def plane_page(app_checkpoints, streamlit_server_factory, browser_page):
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    sent: list[str] = []
    browser_page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    open_plane(browser_page, server.url)
    browser_page.wait_for_timeout(500)  # let the first rerun's messages settle
    return browser_page, sent, load_checkpoint(app_checkpoints.z2)[0]


def test_moving_decodes_in_the_browser_without_the_server(plane_page):
    page, sent, model = plane_page
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


def test_clicks_pick_isolated_points_and_pin_empty_space_exactly(plane_page):
    page, sent, model = plane_page
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


def test_a_drawn_digit_encodes_like_the_same_image_uploaded(plane_page):
    page, sent, model = plane_page
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
