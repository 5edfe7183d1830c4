"""The live plane's Python side without a browser: the model as the browser gets it, what the browser's reports
become, the static files it is served (the model's ONNX files, the tooltip tiles), and bad reports refused."""
from __future__ import annotations

import base64
import dataclasses
import gzip
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import shipped_checkpoint
from ui import latent_plane
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig
from vae_core.data import to_display
from vae_core.export import browser_model
from vae_core.models import build_model
from vae_core.projection import slice_plane


@pytest.mark.parametrize("config", [
    ModelConfig(), ModelConfig(kind="ae", hidden=(32, 16)), ModelConfig(kind="cvae", n_classes=10, hidden=(32,)),
], ids=["vae", "ae", "cvae"])
def test_the_spec_names_what_the_exported_graphs_take_and_give(config):
    import onnx

    torch.manual_seed(0)
    model = build_model(config).eval()
    exported = browser_model(model)
    spec = exported.spec
    encoder, decoder = (onnx.load_from_string(b).graph for b in exported.onnx())
    assert [i.name for i in encoder.input] == [spec["encoder"]["input"], *filter(None, [spec["encoder"]["label"]])]
    assert [o.name for o in encoder.output] == spec["encoder"]["outputs"]
    assert [i.name for i in decoder.input] == [spec["decoder"]["input"], *filter(None, [spec["decoder"]["label"]])]
    assert [o.name for o in decoder.output] == [spec["decoder"]["output"]]
    assert spec["probabilistic"] == model.probabilistic and spec["n_classes"] == (10 if model.conditional else 0)
    assert spec["image_shape"] == [1, 28, 28] and spec["decoder_output"] == "logits" and spec["input_rank"] == 4


def test_the_hash_names_the_weights_and_is_made_without_exporting(monkeypatch):
    torch.manual_seed(0)
    a = build_model(ModelConfig(hidden=(16,)))
    monkeypatch.setattr("vae_core.export.export_model", lambda model: pytest.fail("exported to name the files"))
    assert browser_model(a).sha == browser_model(a).sha
    with torch.no_grad():
        a.decoder[0].weight[0, 0] += 1.0
    b = browser_model(a)
    torch.manual_seed(0)
    assert b.sha != browser_model(build_model(ModelConfig(hidden=(16,)))).sha
    assert browser_model(build_model(ModelConfig(hidden=(16,), latent_dim=3))).sha != b.sha


def test_the_export_traces_a_copy_so_the_app_can_use_the_model_meanwhile(monkeypatch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(16,)))
    traced = []
    monkeypatch.setattr("vae_core.export.export_model", lambda m: traced.append(m) or (b"", b""))
    exported = browser_model(model)
    with torch.no_grad():
        model.decoder[0].weight += 1.0  # later changes do not reach the files named by the hash of the weights then
    exported.onnx()
    assert traced[0] is not model
    assert not torch.equal(traced[0].decoder[0].weight, model.decoder[0].weight)
    assert all(torch.equal(a, b) for a, b in zip(traced[0].encoder.parameters(), model.encoder.parameters()))


def test_a_model_is_exported_once_in_the_background_and_published_under_its_hash(tmp_path, monkeypatch):
    monkeypatch.setattr(latent_plane, "STATIC_DIR", tmp_path)
    model, info = load_checkpoint(shipped_checkpoint("mnist_z2"))
    sel = SimpleNamespace(model=model, info=info)
    calls = []
    real = browser_model(model)
    monkeypatch.setattr(latent_plane, "browser_model",
                        lambda m: dataclasses.replace(real, onnx=lambda: calls.append(1) or real.onnx()))
    payload = latent_plane._model_payload.__wrapped__(("k",), sel)  # returns at once; the export runs meanwhile
    assert payload["encoder"] == f"app/static/cache/model-{real.sha}-encoder.onnx"
    decoder = tmp_path / "cache" / f"model-{real.sha}-decoder.onnx"
    deadline = time.monotonic() + 180
    while not (decoder.exists() and (tmp_path / "cache" / f"model-{real.sha}-encoder.onnx").exists()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert calls == [1]  # one export gives both files
    import onnxruntime

    z = np.array([[0.5, -1.0]], np.float32)
    logits = onnxruntime.InferenceSession(decoder.read_bytes()).run(["logits"], {"z": z})[0]
    with torch.no_grad():
        assert logits == pytest.approx(model.decode(torch.from_numpy(z)).numpy(), abs=1e-4)
    latent_plane._model_payload.__wrapped__(("k",), sel)
    time.sleep(0.5)
    assert calls == [1]  # the files are there: nothing is exported again


def test_pins_are_recomputed_on_the_plane_and_bad_ones_dropped():
    plane = slice_plane(4, (1, 3), np.array([0.5, 9.0, -1.0, 9.0]))
    record = latent_plane.pinned_record({"x": 1.25, "y": -2.0, "z": [99.0]}, plane)  # the browser's z is not trusted
    assert record["z"] == pytest.approx([0.5, 1.25, -1.0, -2.0]) and record["plane"] == ("z1", "z3")
    for bad in (None, "x", {"x": 1.0}, {"x": "nan", "y": 0.0}, {"x": float("inf"), "y": 0.0}, {"x": [1], "y": 2}):
        assert latent_plane.pinned_record(bad, plane) is None


def test_a_drawn_digit_arrives_as_an_image_and_garbage_as_nothing():
    pixels = (np.arange(784) % 256).astype(np.uint8)
    drawn = latent_plane.decode_drawn({"pixels": base64.b64encode(pixels.tobytes()).decode(), "mu": [0.1, 0.2]})
    assert drawn["pixels"].shape == (28, 28) and drawn["pixels"].dtype == np.float32
    assert drawn["pixels"].ravel() == pytest.approx(pixels / 255.0) and drawn["mu"] == [0.1, 0.2]
    for bad in (None, {}, {"pixels": 5}, {"pixels": "***"}, {"pixels": base64.b64encode(b"short").decode()}):
        assert latent_plane.decode_drawn(bad) is None


@pytest.mark.parametrize("shape", [(300, 1, 28, 28), (300, 3, 16, 16)])
def test_tile_t_holds_images_from_t_times_tile_images_in_display_layout(shape):
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    shown = to_display(images)
    assert shown.shape == ((300, 28, 28) if shape[1] == 1 else (300, 16, 16, 3))
    size = shown[0].size
    for t, count in ((0, 256), (1, 300 - 256)):
        raw = np.frombuffer(gzip.decompress(latent_plane.tile_bytes(images, t)), np.uint8)
        assert raw.size == count * size
        assert (raw[:size].reshape(shown[0].shape) == shown[t * 256]).all()
        assert (raw[-size:].reshape(shown[0].shape) == shown[t * 256 + count - 1]).all()


def test_published_files_are_written_once_under_their_name(tmp_path, monkeypatch):
    monkeypatch.setattr(latent_plane, "STATIC_DIR", tmp_path)
    calls = []
    url = latent_plane.publish("model-abc.bin", lambda: calls.append(1) or b"weights")
    assert url == "app/static/cache/model-abc.bin" and (tmp_path / "cache" / "model-abc.bin").read_bytes() == b"weights"
    latent_plane.publish("model-abc.bin", lambda: calls.append(1) or b"other")
    assert calls == [1] and not list((tmp_path / "cache").glob("*.tmp"))
