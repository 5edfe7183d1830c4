import errno
import math
import os
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import vae_core.atomic as atomic
import vae_core.checkpoint as ckpt
from vae_core.checkpoint import (CheckpointError, CheckpointWriteError, DiskFullError, list_checkpoints, load_checkpoint,
                                 read_info, save_checkpoint)
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import build_model

ROOT = Path(__file__).resolve().parent.parent


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(ModelConfig(latent_dim=3, hidden=(16,), **kw))


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = _model(likelihood="gaussian")
    history = [{"epoch": 1, "test_elbo": 150.0}]
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig(dataset="mnist", beta=2.0), "mnist", history,
                           {"elbo": 150.0})
    loaded, info = load_checkpoint(path)
    assert info.model_config == model.config and info.beta == 2.0 and info.dataset == "mnist"
    assert info.history == history and info.test_elbo == 150.0 and info.name == "m"
    z = torch.randn(4, 3)
    torch.testing.assert_close(loaded.decode(z), model.eval().decode(z))
    assert not loaded.training


def test_a_model_of_an_imported_set_records_its_name_and_content(tmp_path):
    model = _model(arch="conv", image_shape=(3, 32, 32))
    sha = "0123abcd" * 8
    path = save_checkpoint(tmp_path / "m.pt", model, TrainConfig(dataset="parts"), "parts", dataset_sha=sha)
    loaded, info = load_checkpoint(path)  # loads whether or not "parts" is imported here
    assert info.dataset == "parts" and info.dataset_sha == sha and info.model_config.image_shape == (3, 32, 32)
    assert read_info(save_checkpoint(tmp_path / "b.pt", _model(), TrainConfig(), "mnist")).dataset_sha is None


def test_interrupted_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(0), TrainConfig(), "mnist-sample")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # what a Ctrl-C mid-write looks like

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, _model(1), TrainConfig(), "mnist-sample")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_readers_racing_a_writer_only_see_complete_files(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(0), TrainConfig(), "mnist-sample")
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            try:
                read_info(path)
            except CheckpointError as exc:
                errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for seed in range(10):
        save_checkpoint(path, _model(seed), TrainConfig(), "mnist-sample")
    stop.set()
    t.join()
    assert errors == []


# A writer that stops halfway through its temp file and waits to be killed, so the kill lands mid-save every time.
STALLED_WRITER = """
import os, sys, time
import vae_core.atomic as atomic
import vae_core.checkpoint as ckpt
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import build_model

def stall(fd, data):
    os.write(fd, bytes(data[: len(data) // 2]))
    print("half written", flush=True)
    time.sleep(600)

atomic._write_all = stall
ckpt.save_checkpoint(sys.argv[1], build_model(ModelConfig(latent_dim=3, hidden=(1024,))), TrainConfig(), "mnist")
"""


@pytest.mark.parametrize("cleaner", ["save", "list"])
def test_killed_writer_leaves_the_old_file_and_its_temp_file_is_cleaned(tmp_path, cleaner):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(0), TrainConfig(), "mnist-sample")
    before = path.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "half written\n", writer.stderr.read()
        temp_files = list(tmp_path.glob(".m.pt.*.tmp"))
        assert len(temp_files) == 1 and temp_files[0].stat().st_size > 0
        list_checkpoints(tmp_path)
        assert temp_files[0].exists()  # a live writer's file is left alone
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == before and read_info(path).dataset == "mnist-sample"
    assert temp_files[0].exists()  # nothing runs in a killed process to clean up after it
    if cleaner == "save":
        save_checkpoint(tmp_path / "other.pt", _model(1), TrainConfig(), "mnist")
    else:
        infos, errors = list_checkpoints(tmp_path)
        assert [i.name for i in infos] == ["m"] and errors == []
    assert not temp_files[0].exists()
    assert path.read_bytes() == before


def test_a_full_disk_raises_disk_full_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(0), TrainConfig(), "mnist-sample")
    before = path.read_bytes()

    def full(fd, data):
        os.write(fd, bytes(data[:100]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_all", full)
    with pytest.raises(DiskFullError) as caught:
        save_checkpoint(path, _model(1), TrainConfig(), "mnist-sample")
    error = caught.value
    assert isinstance(error, CheckpointWriteError) and isinstance(error, OSError)
    assert str(error).startswith(f"disk full: cannot save {path} (needs ") and "\n" not in str(error)
    assert error.path == path and error.needed_bytes > len(before) // 2 and error.free_bytes is not None
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_other_write_failures_raise_checkpoint_write_error(tmp_path):
    with pytest.raises(CheckpointWriteError, match="cannot save .*missing/m.pt") as caught:
        save_checkpoint(tmp_path / "missing" / "m.pt", _model(), TrainConfig(), "mnist")
    assert not isinstance(caught.value, DiskFullError)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all", None],  # None: a real checkpoint cut in half
)
def test_malformed_files_are_refused_with_their_name(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:
        save_checkpoint(path, _model(), TrainConfig(), "mnist")
        data = path.read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(path)


def test_foreign_and_malicious_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": build_model(ModelConfig()).state_dict()}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt.*not a Latent Explorer checkpoint"):
        load_checkpoint(foreign)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "latent-explorer-vae", "payload": Evil()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, _model(), TrainConfig(), "mnist")
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["latent_dim"] = 5
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="m.pt.*do not match"):
        load_checkpoint(path)


def test_listing_reads_metadata_and_reports_bad_files(tmp_path):
    save_checkpoint(tmp_path / "b.pt", _model(), TrainConfig(beta=4.0), "mnist", metrics={"elbo": 120.0})
    save_checkpoint(tmp_path / "a.pt", _model(), TrainConfig(), "fashion-mnist")
    (tmp_path / "broken.pt").write_bytes(b"\x00" * 10)
    (tmp_path / "notes.txt").write_text("ignored")
    infos, errors = list_checkpoints(tmp_path)
    assert [i.name for i in infos] == ["a", "b"]
    assert infos[1].beta == 4.0 and infos[1].test_elbo == 120.0
    assert len(errors) == 1 and "broken.pt" in errors[0]
    assert list_checkpoints(tmp_path / "missing") == ([], [])


def test_saved_files_get_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.pt", _model(), TrainConfig(), "mnist")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_every_shipped_checkpoint_still_loads():
    shipped = sorted((ROOT / "checkpoints").glob("*.pt"))
    if not shipped:
        pytest.skip("no shipped checkpoints in checkpoints/")
    infos, errors = list_checkpoints(ROOT / "checkpoints")
    assert errors == [] and [i.path for i in infos] == shipped
    for path in shipped:
        model, info = load_checkpoint(path)
        z = torch.zeros(1, info.model_config.latent_dim)
        label = torch.zeros(1, dtype=torch.long) if model.conditional else None
        assert torch.isfinite(model.decode(z, label)).all() and math.isfinite(info.metrics["recon"])
        assert math.isfinite(info.test_elbo) if model.probabilistic else info.test_elbo is None


def _tampered(tmp_path, change) -> Path:
    path = save_checkpoint(tmp_path / "m.pt", _model(), TrainConfig(), "mnist", metrics={"elbo": 100.0})
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


def _nan_weight(payload):
    payload["state_dict"]["decoder.0.bias"][0] = math.nan


@pytest.mark.parametrize(
    "change, message",
    [
        (_nan_weight, r"weights hold NaN or infinite values \(decoder.0.bias\)"),
        (lambda p: p["metrics"].update(elbo="abc"), "stored metric 'elbo' is 'abc', not a finite number"),
        (lambda p: p["metrics"].update(elbo=math.inf), "stored metric 'elbo' is inf, not a finite number"),
        (lambda p: p["model_config"].update(hidden=[25000, 25000]), "at most 8 hidden layers of at most 8192 units"),
        (lambda p: p["model_config"].update(image_shape=[1, 100000, 100000]), "image shape must be"),
        (lambda p: p["model_config"].update(latent_dim="3"), "latent size must be at least 1, got '3'"),
        (lambda p: p["train_config"].update(lr=math.nan), "learning rate must be a finite positive number"),
        (lambda p: p.update(dataset="../cifar10"), "trained on a dataset with a malformed name '../cifar10'"),
        (lambda p: p.update(dataset=["mnist"]), r"trained on a dataset with a malformed name \['mnist'\]"),
        (lambda p: p.update(dataset_sha="<script>"), "the dataset's content hash is '<script>'"),
        (lambda p: p.update(history="lots"), "the training history is not a list of numbers"),
        (lambda p: p["state_dict"].update({"decoder.0.bias": p["state_dict"]["decoder.0.bias"].double()}),
         r"decoder.0.bias is torch.float64 \[16\], expected torch.float32 \[16\]"),
        (lambda p: p["state_dict"].update({"decoder.0.bias": torch.zeros(1).expand(16)}), "not stored densely"),
    ],
)
def test_tampered_checkpoints_are_refused_with_one_line_naming_the_file(tmp_path, change, message):
    path = _tampered(tmp_path, change)
    for reader in (read_info, load_checkpoint):
        with pytest.raises(CheckpointError, match=message) as caught:
            reader(path)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert list_checkpoints(tmp_path)[0] == []


def test_a_stored_nan_history_entry_is_allowed(tmp_path):
    # fit() records NaN test metrics when it skips evaluating an epoch; that model is still usable
    path = _tampered(tmp_path, lambda p: p.update(history=[{"epoch": 1, "test_elbo": math.nan}]))
    assert math.isnan(read_info(path).history[0]["test_elbo"])


def test_compressed_and_legacy_archives_are_refused_before_unpickling(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", _model(), TrainConfig(), "mnist")
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    with pytest.raises(CheckpointError, match="deflated.pt: not a checkpoint written by PyTorch"):
        read_info(deflated)
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(good, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy.pt: not a readable checkpoint"):
        read_info(legacy)


def test_oversized_metadata_is_refused_without_unpickling(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", _model(), TrainConfig(), "mnist",
                           history=[{"epoch": float(i)} for i in range(2000)])
    monkeypatch.setattr(ckpt, "MAX_METADATA_BYTES", 1000)
    monkeypatch.setattr(ckpt.torch, "load", lambda *a, **k: pytest.fail("torch.load was reached"))
    with pytest.raises(CheckpointError, match="m.pt: refused: its metadata is"):
        read_info(path)


def test_a_metric_that_could_not_be_measured_is_left_out_so_the_file_stays_loadable(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", _model(), TrainConfig(), "mnist",
                           metrics={"elbo": math.nan, "kl": math.inf, "recon": 90.0, "active_units": 3})
    assert read_info(path).metrics == {"recon": 90.0, "active_units": 3}
