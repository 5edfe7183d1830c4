"""Models imported from ONNX: export (ours and any PyTorch pair), the checks a file passes or fails with one line, the
imported model behind the usual interface, the one-file format with list/evaluate/the app, and the PyTorch example."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onnx_files
from conftest import ROOT, SHIPPED, plane_data, plane_points, served_file, shipped_checkpoint
from vae_core import inference
from vae_core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, read_info
from vae_core.cli import main
from vae_core.data import load_dataset, load_test_set
from vae_core.evaluate import elbo, evaluate
from vae_core.imported import build, save_imported
from vae_core.models import KINDS, ImportedVAE
from vae_core.models.onnx_model import LOGIT_EPS
from vae_core.onnx_check import OnnxError, check_pair
from vae_core.onnx_export import export_model, export_modules

SHIPPED_MODELS = sorted(p.stem for p in SHIPPED.glob("*.pt"))
OUR_SHIPPED = [name for name in SHIPPED_MODELS if read_info(shipped_checkpoint(name)).model_class.trainable]
IMPORTED_SHIPPED = sorted(set(SHIPPED_MODELS) - set(OUR_SHIPPED))


def _run(session: ort.InferenceSession, **feeds: np.ndarray) -> list[np.ndarray]:
    return session.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})


def _import(args: list[str], capsys) -> tuple[int, list[str], str]:
    code = main(["import", *args])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


@pytest.mark.parametrize("name", OUR_SHIPPED)
def test_every_shipped_model_exports_to_onnx_that_equals_torch(name):
    model, _ = load_checkpoint(shipped_checkpoint(name))
    encoder, decoder = (ort.InferenceSession(b) for b in export_model(model))
    # real images of the model's shape: the bundled digits for MNIST's, else the model's own set (dSprites is made here)
    images = "mnist-sample" if model.config.image_shape == (1, 28, 28) else read_info(shipped_checkpoint(name)).dataset
    x = load_test_set(images).test_images[:64].float().div(255)
    z = torch.randn(64, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.arange(64) % 10 if model.conditional else None
    label = {"y": F.one_hot(y, 10).numpy()} if model.conditional else {}
    with torch.no_grad():
        q, logits = model.encode(x, y), model.decode(z, y)
    codes = _run(encoder, x=x.numpy(), **label)
    assert [o.name for o in encoder.get_outputs()] == (["mu", "logvar"] if model.probabilistic else ["mu"])
    np.testing.assert_allclose(codes[0], q.mean.numpy(), rtol=0, atol=1e-5)
    if model.probabilistic:
        np.testing.assert_allclose(codes[1], q.logvar.numpy(), rtol=0, atol=1e-5)
    (onnx_logits,) = _run(decoder, z=z.numpy(), **label)
    assert onnx_logits.shape == (64, *model.config.image_shape)
    # logits reach ±200 here, so they match within 1e-5 relative; the pixel means within 1e-5 absolute
    np.testing.assert_allclose(onnx_logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(onnx_logits)).numpy(), torch.sigmoid(logits).numpy(),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", IMPORTED_SHIPPED)
def test_a_shipped_imported_model_exports_its_own_files_which_equal_its_torch_wrapper(name):
    """The shipped PyTorch-example VAE (784-400-20, flattened input, sigmoid output): the files given back are the ones
    imported, and running them equals the model's encode and decode (probabilities → logits as the wrapper says)."""
    model, _ = load_checkpoint(shipped_checkpoint(name))
    assert export_model(model) == model.onnx_files
    encoder, decoder = (ort.InferenceSession(b) for b in model.onnx_files)
    x = load_test_set("mnist-sample").test_images[:64].float().div(255)
    z = torch.randn(64, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    rank = len(encoder.get_inputs()[0].shape)
    codes = _run(encoder, **{encoder.get_inputs()[0].name: x.reshape(64, -1).numpy() if rank == 2 else x.numpy()})
    (pixels,) = _run(decoder, **{decoder.get_inputs()[0].name: z.numpy()})
    with torch.no_grad():
        q, logits = model.encode(x), model.decode(z)
    np.testing.assert_allclose(codes[0], q.mean.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(pixels.reshape(logits.shape), torch.sigmoid(logits).numpy(), rtol=0, atol=1e-5)


class ForeignEncoder(nn.Module):
    """Layers our nets do not have, on a flattened (N, 784) input: BatchNorm, LeakyReLU, Tanh."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(784, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.2), nn.Linear(64, 2 * d))
        self.d = d

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return h[:, :self.d], 3 * torch.tanh(h[:, self.d:])


class ForeignDecoder(nn.Module):
    """Dense to 7×7, then Upsample + Conv twice, BatchNorm2d and LeakyReLU between, Tanh mapped to [0, 1]."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.dense = nn.Linear(d, 8 * 7 * 7)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                                nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2, mode="bilinear"),
                                nn.Conv2d(8, 1, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.up(self.dense(z).view(-1, 8, 7, 7)) + 1) / 2


def _with_running_stats(module: nn.Module) -> nn.Module:
    """Batch norms whose running statistics are not the identity, so eval mode's arithmetic is really exported."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return module.eval()


def test_a_net_with_foreign_layers_is_exported_imported_and_evaluated(tmp_path):
    torch.manual_seed(0)
    encoder, decoder = _with_running_stats(ForeignEncoder()), _with_running_stats(ForeignDecoder())
    paths = export_modules(encoder, decoder, (1, 28, 28), 3, tmp_path, flat_input=True)
    assert paths == (tmp_path / "encoder.onnx", tmp_path / "decoder.onnx")
    data = load_test_set("mnist-sample")
    model = build(paths[0].read_bytes(), paths[1].read_bytes(), data)
    assert isinstance(model, ImportedVAE) and model.config.input_rank == 2 and model.latent_dim == 3
    x = data.test_images[:300].float().div(255)
    with torch.no_grad():
        mu, logvar = encoder(x.flatten(1))
        means = decoder(mu)
    q = model.encode(x)
    torch.testing.assert_close(q.mean, mu, rtol=0, atol=1e-5)
    torch.testing.assert_close(q.logvar, logvar, rtol=0, atol=1e-5)
    # decoded means through probs -> logits -> sigmoid: equal within the clamp
    torch.testing.assert_close(model.decode_mean(mu), means.clamp(LOGIT_EPS, 1 - LOGIT_EPS), rtol=0, atol=1e-5)
    metrics = evaluate(model, data.test_images, iw_samples=3)
    assert metrics["kind"] == "onnx_vae" and metrics["n_images"] == len(data.test_images)
    assert all(math.isfinite(metrics[k]) for k in ("elbo", "recon", "kl", "iw_logpx"))
    assert metrics["elbo"] == pytest.approx(metrics["recon"] + metrics["kl"])
    assert 0 <= metrics["active_units"] <= 3


@pytest.fixture(scope="module")
def z20_onnx(tmp_path_factory) -> tuple[Path, Path]:
    """mnist_z20 exported by export_model, as two files."""
    model, _ = load_checkpoint(shipped_checkpoint("mnist_z20"))
    folder = tmp_path_factory.mktemp("z20")
    for name, blob in zip(("encoder.onnx", "decoder.onnx"), export_model(model)):
        (folder / name).write_bytes(blob)
    return folder / "encoder.onnx", folder / "decoder.onnx"


def test_an_imported_copy_of_mnist_z20_evaluates_like_the_checkpoint(z20_onnx, tmp_path, capsys):
    out = tmp_path / "z20_onnx.pt"
    code, err, stdout = _import(["--encoder", str(z20_onnx[0]), "--decoder", str(z20_onnx[1]), "--dataset", "mnist",
                                 "--decoder-output", "logits", "--title", "z20 via ONNX", "--out", str(out)], capsys)
    assert code == 0, err
    assert len(err) == 1 and err[0].startswith(f"imported {out}: imported VAE, d = 20, test -ELBO")
    recorded = json.loads(stdout)
    stored = read_info(shipped_checkpoint("mnist_z20")).metrics
    assert recorded["elbo"] == pytest.approx(stored["elbo"], abs=1e-3)  # the same seeded estimate as at training
    info = read_info(out)
    assert info.model_config.kind == "onnx_vae" and info.extra["title"] == "z20 via ONNX" and info.dataset == "mnist"
    figures = []
    for path in (shipped_checkpoint("mnist_z20"), out):
        assert main(["evaluate", str(path), "--dataset", "mnist", "--iw-samples", "3"]) == 0
        figures.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    ours, imported = figures
    assert (ours["kind"], imported["kind"]) == ("vae", "onnx_vae")
    for key in ("elbo", "recon", "kl", "iw_logpx"):
        assert imported[key] == pytest.approx(ours[key], abs=1e-3), key
    assert imported["active_units"] == ours["active_units"] and imported["n_images"] == ours["n_images"] == 10_000


HOSTILE = onnx_files.hostile_files()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_refused_with_one_line_and_exit_2(case, tmp_path, capsys):
    encoder, decoder, at_fault, says = HOSTILE[case]
    paths = {"encoder": tmp_path / "E.onnx", "decoder": tmp_path / "D.onnx"}
    paths["encoder"].write_bytes(encoder)
    paths["decoder"].write_bytes(decoder)
    out = tmp_path / "imported.pt"
    code, err, stdout = _import(["--encoder", str(paths["encoder"]), "--decoder", str(paths["decoder"]),
                                 "--dataset", "mnist-sample", "--out", str(out)], capsys)
    assert code == 2 and stdout == ""
    assert len(err) == 1 and err[0].startswith(f"error: {paths[at_fault]}: refused: "), err
    assert says in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D.onnx", "E.onnx"]  # nothing written, no temp file


def test_the_hostile_set_leaves_the_process_under_1_5_gb():
    """bench/onnx_hostile.py runs every hostile file through the CLI's import in one process, then a valid pair."""
    run = subprocess.run([sys.executable, "bench/onnx_hostile.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert [c["case"] for c in result["cases"]] == list(HOSTILE)
    assert all(c["exit"] == 2 and len(c["lines"]) == 1 and not c["written"] for c in result["cases"])
    assert result["valid"]["exit"] == 0 and result["valid"]["written"]
    assert result["peak_mb"] < 1500, result


def test_only_the_capped_first_run_sees_what_tensors_cost_together():
    """Six 200 MB tensors pass every check made without running them (each is within bounds); the child, capped at
    1 GB, fails making them, and the server never makes a session of them."""
    from vae_core.onnx_check import check_graph

    check_graph(onnx_files.many_tensors_bomb(), "D.onnx", "decoder", onnx_files.IMAGE, latent_dim=2)
    with pytest.raises(OnnxError, match="^D.onnx: refused: running it on 2 images needed more than the 1.0 GB"):
        check_pair(onnx_files.encoder(), onnx_files.many_tensors_bomb(), onnx_files.IMAGE, "probs",
                   decoder_name="D.onnx")


def test_a_decoder_declared_as_probabilities_must_give_them():
    with pytest.raises(OnnxError, match=r"decoder.onnx: refused: its outputs range over .* import it with the decoder "
                                        "output logits"):
        check_pair(onnx_files.encoder(), onnx_files.decoder(probs=False), onnx_files.IMAGE, "probs")
    assert check_pair(onnx_files.encoder(), onnx_files.decoder(probs=False), onnx_files.IMAGE, "logits").latent_dim == 2


def test_an_autoencoder_with_a_fixed_batch_and_flat_output_runs_in_padded_chunks():
    """One output (a point code), a batch size fixed in the file and a flattened decoder output."""
    import onnx

    def fixed(blob: bytes, batch: int) -> bytes:
        model = onnx.load_from_string(blob)
        for value in [*model.graph.input, *model.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_value = batch
        return model.SerializeToString()

    encoder, decoder = fixed(onnx_files.encoder(outputs=1), 3), fixed(onnx_files.decoder(flat=True), 3)
    data = load_test_set("mnist-sample")
    model = build(encoder, decoder, data)
    assert model.kind == "onnx_ae" and not model.probabilistic and model.encoder.graph.batch == 3
    x = data.test_images[:10].float().div(255)
    expected = np.concatenate([ort.InferenceSession(encoder).run(None, {"x": x[i:i + 1].repeat(3, 1, 1, 1).numpy()})[0][:1]
                               for i in range(10)])
    q = model.encode(x)
    assert q.logvar is None and q.mean.shape == (10, 2)
    np.testing.assert_allclose(q.mean.numpy(), expected, atol=1e-6)
    assert model.decode(q.mean).shape == (10, 1, 28, 28)
    assert set(evaluate(model, data.test_images[:50])) == {"kind", "recon", "n_images"}


def test_a_gaussian_import_uses_its_fixed_variance():
    data = load_test_set("mnist-sample")
    model = build(onnx_files.encoder(), onnx_files.decoder(), data, likelihood="gaussian", gaussian_var=0.5)
    x = data.test_images[:20].float().div(255)
    mean = model.decode_mean(model.encode(x).mean)
    expected = (0.5 * ((x - mean) ** 2 / 0.5 + math.log(0.5) + math.log(2 * math.pi))).flatten(1).sum(1)
    torch.testing.assert_close(model.recon_nll(model.decode(model.encode(x).mean), x), expected)


def test_bad_import_arguments_exit_2_with_one_line(tmp_path, capsys):
    good = tmp_path / "E.onnx"
    good.write_bytes(onnx_files.encoder())
    (tmp_path / "D.onnx").write_bytes(onnx_files.decoder())
    cases = [
        (["--encoder", str(good), "--decoder", str(tmp_path / "missing.onnx"), "--dataset", "mnist-sample"],
         f"{tmp_path / 'missing.onnx'}: no such file"),
        (["--encoder", str(good), "--decoder", str(tmp_path), "--dataset", "mnist-sample"], "not a regular file"),
        (["--encoder", str(good), "--decoder", str(tmp_path / "D.onnx"), "--dataset", "cifar10"], "unknown dataset"),
        (["--encoder", str(good), "--decoder", str(tmp_path / "D.onnx"), "--dataset", "mnist-sample",
          "--decoder-output", "scores"], "invalid choice: 'scores'"),
        (["--encoder", str(good), "--decoder", str(tmp_path / "D.onnx"), "--dataset", "mnist-sample",
          "--likelihood", "gaussian", "--gaussian-var", "nan"], "Gaussian variance must be a finite positive number"),
    ]
    for args, says in cases:
        code, err, _ = _import([*args, "--out", str(tmp_path / "m.pt")], capsys)
        assert code == 2 and len(err) == 1 and err[0].startswith("error:") and says in err[0], (args, err)
    code, err, _ = _import(["--encoder", str(good), "--decoder", str(tmp_path / "D.onnx"), "--dataset", "mnist-sample",
                            "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in err[0]
    assert not (tmp_path / "m.pt").exists()


@pytest.fixture(scope="module")
def imported_folder(tmp_path_factory) -> Path:
    """A folder with a good imported model (`good`) and imported files edited afterwards, each in its own way."""
    folder = tmp_path_factory.mktemp("imported")
    data = load_test_set("mnist-sample")
    encoder, decoder = onnx_files.encoder(), onnx_files.decoder()
    save_imported(folder / "good.pt", build(encoder, decoder, data), encoder, decoder, data, title="good")
    payload = torch.load(folder / "good.pt", weights_only=True)

    def edited(name: str, **changes: bytes | str) -> None:
        import hashlib

        copy = dict(payload, extra=dict(payload["extra"]))
        for role, value in changes.items():
            if isinstance(value, bytes):
                copy[role] = torch.frombuffer(bytearray(value), dtype=torch.uint8)
                copy["extra"][f"{role}_sha256"] = hashlib.sha256(value).hexdigest()  # edited consistently
            else:
                copy["extra"][role] = value
        torch.save(copy, folder / name)

    edited("nan_weights.pt", encoder=onnx_files.encoder(nan=True))
    edited("runtime_bomb.pt", decoder=onnx_files.runtime_bomb())
    edited("too_much_at_once.pt", decoder=onnx_files.many_tensors_bomb())
    edited("custom_op.pt", decoder=onnx_files.custom_domain())
    edited("wrong_checksum.pt", decoder_sha256="0" * 64)
    edited("now_an_ae.pt", encoder=onnx_files.encoder(outputs=1))
    return folder


EDITED = {"nan_weights.pt": "(encoder): refused: its weights hold NaN",
          "runtime_bomb.pt": "(decoder): refused: the size of tensor 'big'",
          "too_much_at_once.pt": "(decoder): refused: running it on 2 images needed more than",
          "custom_op.pt": "(decoder): refused: it uses operators of the custom domain",
          "wrong_checksum.pt": "does not match the checksum recorded at import",
          "now_an_ae.pt": "no longer match what was recorded at import"}


def test_list_skips_each_edited_imported_file_with_one_line(imported_folder, capsys):
    infos, errors = list_checkpoints(imported_folder)
    assert [i.name for i in infos] == ["good"]
    assert infos[0].model_config.kind == "onnx_vae" and infos[0].test_elbo is not None
    assert len(errors) == len(EDITED)
    for name, says in EDITED.items():
        assert sum(line.startswith(f"{imported_folder / name}") and says in line for line in errors) == 1, (name, errors)
    assert main(["list", str(imported_folder)]) == 0
    captured = capsys.readouterr()
    assert [row.split()[:2] for row in captured.out.splitlines()[1:]] == [["good", "onnx_vae"]]
    assert len(captured.err.strip().splitlines()) == len(EDITED)


@pytest.mark.parametrize("name", sorted(EDITED))
def test_evaluate_on_an_edited_imported_file_exits_2_with_one_line(imported_folder, name, capsys):
    path = imported_folder / name
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert main(["evaluate", str(path), "--dataset", "mnist-sample", "--iw-samples", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and EDITED[name] in err[0]


def test_an_imported_model_is_not_trainable_and_needs_no_weights(imported_folder):
    model, info = load_checkpoint(imported_folder / "good.pt")
    assert not model.trainable and KINDS[info.model_config.kind] is type(model) and list(model.parameters()) == []
    with pytest.raises(TypeError, match="not trained here"):
        model.objective(torch.zeros(1, 1, 28, 28))
    images = inference.decode(model, np.zeros((4, 2), np.float32))
    assert images.shape == (4, 28, 28) and ((0 <= images) & (images <= 1)).all()
    assert export_model(model) == (onnx_files.encoder(), onnx_files.decoder())  # its own files, for the browser


# --- the PyTorch example (pytorch/examples vae/main.py): its own loop, the README's export lines ----------------------

def readme_block(after: str) -> str:
    """The first ```python block of the README after the line containing `after`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


def test_the_pytorch_example_exported_with_the_readme_lines_evaluates_to_its_own_test_loss(tmp_path, monkeypatch):
    """The example's VAE trained by its own loop (one epoch of mnist-sample), exported by the README's lines, imported:
    evaluate's −ELBO equals the example's test loss (BCE on its sigmoid output + KLD, one sample per image) computed
    with the same noise within 0.05 nats, and its own test loop's figure (its own noise) within 0.5."""
    from bench.train_speed import ExampleVAE, example_loss

    torch.manual_seed(1)
    data = load_dataset("mnist-sample")
    model = ExampleVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = data.train_images.float().div(255)
    for batch in torch.randperm(len(train)).split(128):  # the example's train(): shuffled batches of 128
        x = train[batch]
        optimizer.zero_grad()
        recon, mu, logvar = model(x)
        example_loss(recon, x, mu, logvar).backward()
        optimizer.step()
    model.eval()
    test = data.test_images.float().div(255)
    own_loss = 0.0
    with torch.no_grad():  # the example's test(): one sample per image from torch's own generator
        for x in test.split(128):
            recon, mu, logvar = model(x)
            own_loss += float(example_loss(recon, x, mu, logvar))
    own_loss /= len(test)

    monkeypatch.chdir(tmp_path)
    exec(readme_block("PyTorch VAE example"), {"nn": nn, "model": model})
    imported = build((tmp_path / "vae_onnx" / "encoder.onnx").read_bytes(),
                     (tmp_path / "vae_onnx" / "decoder.onnx").read_bytes(), data)
    assert imported.config.input_rank == 2 and imported.latent_dim == 20
    figure = elbo(imported, data.test_images)["elbo"]

    gen = torch.Generator().manual_seed(0)  # evaluate.elbo's draws: one batch of 2,000 covers the sample's 1,000
    with torch.no_grad():
        mu, logvar = model.encode(test.flatten(1))
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        same_noise = float(example_loss(model.decode(z), test, mu, logvar)) / len(test)
    assert figure == pytest.approx(same_noise, abs=0.05)
    assert figure == pytest.approx(own_loss, abs=0.5)


# --- the app -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_folder(z20_onnx, tmp_path_factory) -> Path:
    """mnist_z2 beside an imported copy of mnist_z20."""
    folder = tmp_path_factory.mktemp("app_checkpoints")
    (folder / "mnist_z2.pt").symlink_to(shipped_checkpoint("mnist_z2"))
    data = load_test_set("mnist")
    encoder, decoder = (p.read_bytes() for p in z20_onnx)
    save_imported(folder / "z20_onnx.pt", build(encoder, decoder, data, decoder_output="logits"), encoder, decoder,
                  data, title="z20 via ONNX")
    return folder


@pytest.fixture
def app_with_import(monkeypatch, app_folder, tmp_path):
    import ui.shared
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(app_folder))
    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", app_folder)

    def make(page: str) -> AppTest:
        at = AppTest.from_file(page, default_timeout=120)
        at.session_state["selected_model"] = "z20_onnx"
        return at

    return make


def test_home_lists_and_shows_an_imported_model(app_with_import):
    at = app_with_import("../app.py")
    at.run()
    assert not at.exception
    assert sorted(at.sidebar.selectbox(key="_model_picker").options) == ["mnist_z2", "z20_onnx"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latent size d"] == "20" and metrics["Test −ELBO"] == "98.6 nats"
    assert any("imported VAE" in c.value for c in at.sidebar.caption)
    assert not at.sidebar.warning


def test_the_latent_map_shows_an_imported_models_codes_and_decodes_a_pin(app_with_import, app_folder):
    at = app_with_import("../app_pages/1_Latent_Map.py")
    at.run()
    assert not at.exception
    data = plane_data(at)
    model, info = load_checkpoint(app_folder / "z20_onnx.pt")
    # the browser runs the imported model's own two files, as imported
    assert [served_file(data["model"][part]).read_bytes() for part in ("encoder", "decoder")] == list(model.onnx_files)
    assert len(plane_points(data).xy) == 10_000
    z = np.linspace(-1, 1, 20).astype(np.float32)
    at.session_state["latent_map_click"] = {"x": 0.0, "y": 0.0, "z": z.tolist(), "plane": data["plane"]["labels"]}
    at.run()
    assert not at.exception
    assert any("decoded" in element.captions for element in at.get("image"))


def test_the_app_import_saves_a_checked_upload_and_refuses_a_hostile_one(monkeypatch, tmp_path):
    from vae_core.jobs import JobError
    from ui.imports import save_upload

    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path))
    args = dict(encoder_name="my_vae.onnx", decoder_name="my_decoder.onnx", dataset="mnist-sample")
    path = save_upload(onnx_files.encoder(), onnx_files.decoder(), **args)
    assert path == tmp_path / "my_vae.pt" and read_info(path).model_config.kind == "onnx_vae"
    with pytest.raises(JobError, match="already exists"):
        save_upload(onnx_files.encoder(), onnx_files.decoder(), **args)
    with pytest.raises(CheckpointError, match=r"^my_decoder.onnx: refused: a ConstantOfShape node asks for"):
        save_upload(onnx_files.encoder(), onnx_files.constant_of_shape_bomb(), **args, name="other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_vae.pt"]


def test_an_imported_model_is_its_importers_to_replace_or_delete(monkeypatch, tmp_path):
    from ui.imports import save_upload
    from ui.shared import describe
    from vae_core.jobs import JobError, Owner, delete_model, model_owner

    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path))
    alice, bob = Owner("a" * 64, "Alice"), Owner("b" * 64, "Bob")
    path = save_upload(onnx_files.encoder(), onnx_files.decoder(), encoder_name="e.onnx", decoder_name="d.onnx",
                       dataset="mnist-sample", name="hers", owner=alice)
    assert model_owner(path) == alice
    assert describe(read_info(path)).endswith("· imported by Alice")  # as everyone's picker describes it
    with pytest.raises(JobError, match="'hers' belongs to Alice; only they can replace or delete it"):
        delete_model(path, bob)
    delete_model(path, alice)
    assert not path.exists()


def test_an_import_does_not_take_the_name_a_run_under_way_saves_under(monkeypatch, tmp_path):
    import streamlit as st
    from ui import training
    from ui.imports import save_upload
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.jobs import JobError, Owner, TrainingJob, training_spec

    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path))
    alice, bob = Owner("a" * 64, "Alice"), Owner("b" * 64, "Bob")
    registry = training.registry()
    job = registry.submit(TrainingJob(training_spec(
        "hers", tmp_path, ModelConfig(latent_dim=2, hidden=(32,)),
        TrainConfig(dataset="mnist-sample", epochs=500, batch_size=500), iw_samples=0, owner=alice)))
    try:
        with pytest.raises(JobError, match="'hers' is being trained by a job of Alice"):
            save_upload(onnx_files.encoder(), onnx_files.decoder(), encoder_name="e.onnx", decoder_name="d.onnx",
                        dataset="mnist-sample", name="hers", owner=bob)
        assert job.running and not (tmp_path / "hers.pt").exists()  # nothing written for the job to overwrite later
    finally:
        registry.clear()
        st.cache_resource.clear()


def test_home_offers_the_import_form(app_with_import):
    at = app_with_import("../app.py")
    at.run()
    assert not at.exception
    assert "Import your own model (ONNX)" in [e.label for e in at.expander]
    assert "Import" in [b.label for b in at.button]
    assert len(at.get("file_uploader")) == 2


def test_training_cannot_resume_an_imported_model(imported_folder, tmp_path, capsys):
    out = tmp_path / "m.pt"
    code = main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--resume", str(imported_folder / "good.pt"),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: {imported_folder / 'good.pt'} is an imported VAE: it is run as imported, "
                                 "not trained here"]
    assert not out.exists()
