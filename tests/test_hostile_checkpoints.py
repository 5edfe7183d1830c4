"""A checkpoint folder holding every kind of hostile file beside good models: each bad file costs one line naming it,
the good models stay usable, nothing runs code or allocates much, and no command shows a traceback."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vae_core.checkpoint import save_checkpoint
from vae_core.cli import main
from vae_core.config import ModelConfig, TrainConfig
from vae_core.models import build_model

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints"
GOOD = ("mnist_z2", "fashion_z2")
# Growth of the peak resident set allowed for refusing every hostile file, over what importing torch already holds;
# the 25000 × 25000 config alone used to take 5.6 GB.
MAX_GROWTH_MB = 150


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tampered(folder: Path, source: Path, name: str, change) -> None:
    payload = torch.load(source, weights_only=True)
    change(payload)
    torch.save(payload, folder / name)


def _nan_weights(payload) -> None:
    payload["state_dict"]["decoder.0.weight"][0, 0] = math.nan


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    """(folder, good model names, hostile file names)."""
    folder = tmp_path_factory.mktemp("hostile")
    good = []
    for name in GOOD:
        if (SHIPPED / f"{name}.pt").exists():
            shutil.copy(SHIPPED / f"{name}.pt", folder / f"{name}.pt")
        else:
            torch.manual_seed(0)
            save_checkpoint(folder / f"{name}.pt", build_model(ModelConfig(hidden=(16,))), TrainConfig(), "mnist",
                            metrics={"elbo": 200.0})
        good.append(name)
    source = folder / f"{good[0]}.pt"
    raw = source.read_bytes()
    (folder / "one_byte.pt").write_bytes(b"\x80")
    (folder / "random_bytes.pt").write_bytes(os.urandom(64 * 1024))
    (folder / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    torch.save({"format": "latent-explorer-vae", "version": 1, "payload": _Payload(folder / "pwned")},
               folder / "code_payload.pt")
    _tampered(folder, source, "wrong_keys.pt",
              lambda p: p.update(state_dict={f"x.{k}": v for k, v in p["state_dict"].items()}))
    _tampered(folder, source, "nan_weights.pt", _nan_weights)
    _tampered(folder, source, "huge_hidden.pt", lambda p: p["model_config"].update(hidden=(25000, 25000)))
    _tampered(folder, source, "huge_image.pt", lambda p: p["model_config"].update(image_shape=(1, 100000, 100000)))
    _tampered(folder, source, "text_metric.pt", lambda p: p["metrics"].update(elbo="about 100"))
    hostile = sorted(p.name for p in folder.glob("*.pt") if p.stem not in good)
    assert len(hostile) == 9
    return folder, good, hostile


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vae_core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_list_names_each_hostile_file_once_and_lists_the_good_models(hostile_folder):
    folder, good, hostile = hostile_folder
    listed = _cli("list", str(folder))
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stdout + listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted(good)
    err = listed.stderr.splitlines()
    assert len(err) == len(hostile)
    for name in hostile:
        assert sum(f"{folder / name}:" in line for line in err) == 1, (name, err)
    assert not (folder / "pwned").exists()


@pytest.mark.parametrize("index", range(9))
def test_evaluate_on_a_hostile_file_exits_2_with_one_line(hostile_folder, index, capsys):
    folder, _, hostile = hostile_folder
    path = folder / hostile[index]
    code = main(["evaluate", str(path), "--dataset", "mnist-sample", "--iw-samples", "2"])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and captured.out == ""
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ")
    assert not (folder / "pwned").exists()


def test_the_good_models_still_evaluate_beside_hostile_files(hostile_folder, capsys):
    folder, good, _ = hostile_folder
    assert main(["evaluate", str(folder / f"{good[1]}.pt"), "--dataset", "mnist-sample", "--iw-samples", "2"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert math.isfinite(metrics["elbo"])


REFUSE_ALL = """
import json, resource, sys
from pathlib import Path
from vae_core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

folder = Path(sys.argv[1])
before = peak_mb()
refused = []
for path in sorted(folder.glob("*.pt")):
    try:
        load_checkpoint(path)
    except CheckpointError:
        refused.append(path.name)
infos, errors = list_checkpoints(folder)
print(json.dumps({"growth_mb": peak_mb() - before, "refused": refused, "errors": len(errors)}))
"""


def test_refusing_every_hostile_file_allocates_nothing_large(hostile_folder):
    folder, _, hostile = hostile_folder
    run = subprocess.run([sys.executable, "-c", REFUSE_ALL, str(folder)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["refused"] == hostile and result["errors"] == len(hostile)
    assert result["growth_mb"] < MAX_GROWTH_MB, result


def test_the_app_names_each_hostile_file_and_keeps_the_good_models(hostile_folder, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    import ui.shared

    folder, good, hostile = hostile_folder
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", folder)
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.session_state["selected_model"] = good[0]
    at.run()
    assert not at.exception
    assert sorted(at.sidebar.selectbox(key="_model_picker").options) == sorted(good)
    warnings = "\n".join(w.value for w in at.sidebar.warning)
    for name in hostile:
        assert warnings.count(f"{folder / name}:") == 1, (name, warnings)
    assert not (folder / "pwned").exists()
