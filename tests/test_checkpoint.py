import os
import threading
from pathlib import Path

import pytest
import torch

import vae_core.checkpoint as ckpt
from vae_core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, read_info, save_checkpoint
from vae_core.config import ModelConfig, TrainConfig
from vae_core.model import build_model


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


def test_killed_writer_never_exposes_a_partial_file(tmp_path):
    """Readers racing a writer only ever see a complete old or new file."""
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
