"""`python -m vae_core data add|list|remove` and `--dataset PATH` on a generated colour folder: the report, the
table, the round trip, one `error:` line and exit code 2 for anything wrong."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from image_sets import add_junk, make_colour_folder
from vae_core import cli
from vae_core.cli import main, resolve_dataset_argument
from vae_core.importer import DATASETS_DIR_ENV, list_imported

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(DATASETS_DIR_ENV, str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture
def shapes(tmp_path) -> Path:
    make_colour_folder(tmp_path / "shapes", per_class=4)
    return tmp_path / "shapes"


def test_add_list_remove_round_trip(store, shapes, capsys):
    add_junk(shapes, shapes.parent / "outside" / "x.png")
    assert main(["data", "add", "shapes", str(shapes), "--side", "28", "--test-fraction", "0.25"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("imported 'shapes' from ") and "13 images (10 train, 3 test), 28×28 RGB, 3 classes" in out
    assert "square/bomb.png: too many pixels" in out and "circle/outside.png: symbolic link leading outside" in out
    assert "decoding images" in err and "100%" in err  # the progress bar, on stderr

    assert main(["data", "add", "shapes", str(shapes), "--side", "28", "--test-fraction", "0.25"]) == 0
    assert capsys.readouterr().out.startswith("already imported, unchanged: 'shapes'")

    assert main(["data", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "train", "test", "classes", "side", "channels", "source"]
    assert table[1].split() == ["shapes", "10", "3", "3", "28", "3", str(shapes.resolve())]

    assert main(["data", "remove", "shapes"]) == 0
    assert capsys.readouterr().out.startswith("removed 'shapes' (13 images")
    assert list_imported(store) == []
    assert main(["data", "list"]) == 0 and len(capsys.readouterr().out.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["data"], "required: data_command"),
    (["data", "add", "mnist", "{shapes}"], "'mnist' is a built-in dataset"),
    (["data", "add", "my set", "{shapes}"], "dataset name 'my set' is not allowed"),
    (["data", "add", "x", "{shapes}/missing"], "missing does not exist"),
    (["data", "add", "x", "{shapes}", "--side", "30"], "invalid choice: 30"),
    (["data", "add", "x", "{shapes}", "--channels", "2"], "invalid choice: 2"),
    (["data", "add", "x", "{shapes}", "--test-fraction", "1.5"], "test fraction must be between 0 and 1"),
    (["data", "add", "x", "{shapes}/circle/circle_0.png"], "not a folder, a .zip or an .npz"),
    (["data", "add", "x", "{junk}"], "no usable image in junk"),
    (["data", "remove", "nothing"], "no imported dataset is named 'nothing'"),
])
def test_bad_data_arguments_exit_2_with_one_line(store, shapes, capsys, args, message):
    (shapes.parent / "junk" / "a").mkdir(parents=True)
    (shapes.parent / "junk" / "a" / "x.png").write_text("no")
    code = main([a.format(shapes=shapes, junk=shapes.parent / "junk") for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error:") and message in err[-1]
    assert sum(line.startswith("error:") for line in err) == 1 and "Traceback" not in "\n".join(err)
    assert list_imported(store) == []


def test_other_images_under_a_name_in_use_need_replace(store, shapes, tmp_path, capsys):
    assert main(["data", "add", "shapes", str(shapes)]) == 0
    other = tmp_path / "other"
    make_colour_folder(other, per_class=3, seed=1)
    assert main(["data", "add", "shapes", str(other)]) == 2
    assert "'shapes' already holds other images" in capsys.readouterr().err
    assert main(["data", "add", "shapes", str(other), "--replace"]) == 0
    assert capsys.readouterr().out.startswith("replaced 'shapes'")
    assert [m.source for m in list_imported(store)] == [str(other.resolve())]


def test_a_dataset_argument_that_is_a_path_is_imported_on_the_way(store, shapes, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_dataset_argument("mnist") == "mnist"
    assert resolve_dataset_argument("anything-else") == "anything-else"  # a name: the command says if it is unknown
    spaced = tmp_path / "my photos"
    shapes.rename(spaced)
    assert resolve_dataset_argument(str(spaced)) == "my-photos"
    assert capsys.readouterr().err.count("imported 'my-photos'") == 1
    assert resolve_dataset_argument(str(spaced)) == "my-photos"
    assert "already imported, unchanged: 'my-photos'" in capsys.readouterr().err
    assert resolve_dataset_argument("my-photos") == "my-photos"

    # a folder called mnist here is not the built-in one unless spelt as a path
    make_colour_folder(tmp_path / "mnist", per_class=2, seed=1)
    assert resolve_dataset_argument("mnist") == "mnist"
    assert resolve_dataset_argument("./mnist") == "mnist-images"
    with pytest.raises(cli.UsageError, match="no such folder or file"):
        resolve_dataset_argument("./nowhere")
    with pytest.raises(cli.UsageError, match="no such folder or file"):
        resolve_dataset_argument("photos.zip")


def test_the_command_line_itself(store, shapes):
    env = {**os.environ, DATASETS_DIR_ENV: str(store), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "vae_core", "data", "add", "cli-shapes", str(shapes)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported 'cli-shapes'") and "decoding images" in done.stderr
    assert [m.name for m in list_imported(store)] == ["cli-shapes"]
