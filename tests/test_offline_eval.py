"""`python -m vae_core evaluate` with no data folder and no network: each shipped model is measured on
its own dataset's 10,000 bundled test images, never on another dataset."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SHIPPED, shipped_checkpoint


def _documented_elbo(checkpoint: str) -> float:
    """The test −ELBO that checkpoints/README.md states for a shipped model (bold or not)."""
    table = (SHIPPED / "README.md").read_text()
    found = re.search(rf"^\| `{re.escape(checkpoint)}\.pt` \| \**([\d.]+)", table, re.MULTILINE)
    assert found, f"{checkpoint} has no row in checkpoints/README.md"
    return float(found.group(1))


def _evaluate_offline(tmp_path, *args: str) -> subprocess.CompletedProcess:
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = {**os.environ, "VAE_OFFLINE": "1", "VAE_DATA_DIR": str(empty)}
    return subprocess.run([sys.executable, "-m", "vae_core", "evaluate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("checkpoint, dataset", [("fashion_z2", "fashion-mnist"), ("mnist_z2", "mnist")])
def test_shipped_model_evaluates_offline_on_its_full_test_split(checkpoint, dataset, tmp_path):
    path = shipped_checkpoint(checkpoint)
    done = _evaluate_offline(tmp_path, str(path), "--dataset", dataset, "--iw-samples", "5")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["n_images"] == 10000 and metrics["dataset"] == dataset and metrics["trained_on"] == dataset
    # evaluate seeds its one posterior draw per image, so only thread-order rounding separates this run
    # from the documented figure; 0.5 nats also covers a re-seeded draw over 10,000 images.
    assert metrics["elbo"] == pytest.approx(_documented_elbo(checkpoint), abs=0.5)


def test_offline_evaluate_on_a_dataset_that_is_not_bundled_refuses(tmp_path):
    done = _evaluate_offline(tmp_path, str(shipped_checkpoint("mnist_z2")), "--dataset", "kmnist", "--iw-samples", "5")
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == ""
    assert len(err) == 1 and err[0].startswith("error: kmnist is not available")
