"""The live plane's Python side without a browser: the model export, what the browser's reports become, the
static files it is served, and bad reports refused."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import shipped_checkpoint
from ui import latent_plane
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig
from vae_core.export import UnsupportedLayer, browser_model
from vae_core.models import build_model
from vae_core.projection import slice_plane


def run_ops(ops: list[dict], weights: np.ndarray, x: np.ndarray, condition: np.ndarray | None = None) -> np.ndarray:
    """The exported ops run in numpy (torch only for the convolutions): what ui/components/forward.js computes."""
    h = np.asarray(x, np.float64)
    for op in ops:
        kind = op["op"]
        if kind == "linear":
            w = weights[op["w"]: op["w"] + op["in"] * op["out"]].reshape(op["out"], op["in"])
            h = w @ h.ravel() + weights[op["b"]: op["b"] + op["out"]]
        elif kind == "relu":
            h = np.maximum(h, 0.0)
        elif kind == "flatten":
            h = h.ravel()
        elif kind == "reshape":
            h = h.reshape(op["shape"])
        elif kind == "concat_condition":
            h = h.ravel() if condition is None else np.concatenate([h.ravel(), condition])
        else:
            conv = torch.nn.functional.conv2d if kind == "conv" else torch.nn.functional.conv_transpose2d
            shape = (op["cout"], op["cin"]) if kind == "conv" else (op["cin"], op["cout"])
            w = weights[op["w"]: op["w"] + shape[0] * shape[1] * op["k"] ** 2].reshape(*shape, op["k"], op["k"])
            h = conv(torch.from_numpy(h[None]), torch.from_numpy(w).double(),
                     torch.from_numpy(weights[op["b"]: op["b"] + op["cout"]]).double(),
                     stride=op["stride"], padding=op["pad"])[0].numpy()
    return h


@pytest.mark.parametrize("config", [
    ModelConfig(), ModelConfig(kind="ae", hidden=(32, 16)), ModelConfig(kind="cvae", n_classes=10, hidden=(32,)),
    ModelConfig(arch="conv", latent_dim=3, hidden=(32,)), ModelConfig(arch="conv", kind="cvae", n_classes=10, hidden=(32,)),
], ids=["mlp-vae", "mlp-ae", "mlp-cvae", "conv-vae", "conv-cvae"])
def test_the_exported_ops_compute_what_the_model_does(config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    exported = browser_model(model)
    weights = np.frombuffer(exported.weights, "<f4").astype(np.float64)
    assert exported.n_floats == sum(p.numel() for n, p in model.named_parameters() if n != "log_var_x")
    label = 3 if model.conditional else None
    onehot = np.eye(10)[label] if label is not None else None
    z = np.array([0.7, -1.2, 0.4][:config.latent_dim], np.float32)
    x = torch.rand(1, *config.image_shape)
    with torch.no_grad():
        logits = model.decode(torch.from_numpy(z)[None], None if label is None else torch.tensor([label]))
        code = model.encode(x, None if label is None else torch.tensor([label]))
    decoded = run_ops(exported.spec["decoder"], weights, z, onehot)
    assert decoded.shape == tuple(config.image_shape)
    assert decoded == pytest.approx(logits[0].numpy(), abs=1e-4)
    encoded = run_ops(exported.spec["encoder"], weights, x[0].numpy(), onehot)
    assert encoded[:config.latent_dim] == pytest.approx(code.mean[0].numpy(), abs=1e-4)
    assert exported.spec["probabilistic"] == (code.logvar is not None)


def test_the_hash_names_the_weights():
    torch.manual_seed(0)
    a = build_model(ModelConfig(hidden=(16,)))
    assert browser_model(a).sha == browser_model(a).sha
    with torch.no_grad():
        a.decoder[0].weight[0, 0] += 1.0
    b = browser_model(a)
    torch.manual_seed(0)
    assert b.sha != browser_model(build_model(ModelConfig(hidden=(16,)))).sha


def test_a_layer_the_browser_lacks_is_refused_by_name():
    model = build_model(ModelConfig(hidden=(16,)))
    model.decoder[1] = nn.Tanh()
    with pytest.raises(UnsupportedLayer, match="Tanh"):
        browser_model(model)


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


def test_the_atlas_puts_image_i_at_row_i_div_columns():
    images = np.random.default_rng(0).integers(0, 256, (23, 28, 28), dtype=np.uint8)
    sheet = np.asarray(Image.open(io.BytesIO(latent_plane.atlas_png(images, columns=5))))
    assert sheet.shape == (5 * 28, 5 * 28)
    for i in (0, 7, 22):
        r, c = divmod(i, 5)
        assert (sheet[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] == images[i]).all()


def test_published_files_are_written_once_under_their_name(tmp_path, monkeypatch):
    monkeypatch.setattr(latent_plane, "STATIC_DIR", tmp_path)
    calls = []
    url = latent_plane.publish("model-abc.bin", lambda: calls.append(1) or b"weights")
    assert url == "app/static/cache/model-abc.bin" and (tmp_path / "cache" / "model-abc.bin").read_bytes() == b"weights"
    latent_plane.publish("model-abc.bin", lambda: calls.append(1) or b"other")
    assert calls == [1] and not list((tmp_path / "cache").glob("*.tmp"))


def test_shipped_weights_are_served_as_float32_in_op_order():
    model, _ = load_checkpoint(shipped_checkpoint("mnist_z2"))
    exported = browser_model(model)
    weights = np.frombuffer(exported.weights, "<f4")
    first = exported.spec["encoder"][2]  # flatten, condition, then the first Linear
    assert first["op"] == "linear" and first["in"] == 784
    w = weights[first["w"]:first["w"] + first["in"] * first["out"]].reshape(first["out"], first["in"])
    assert (w == model.encoder[1][0].weight.detach().numpy()).all()
