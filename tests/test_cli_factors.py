"""`evaluate --factors`: a model trained by the CLI on the 32×32 dSprites variant gets the five disentanglement
metrics in its JSON; a dataset without known factors is refused with one line."""
from __future__ import annotations

import json

import pytest

from vae_core import cli
from vae_core.disentanglement import METRIC_KEYS


@pytest.mark.parametrize("small_dsprites", [(1500, 600)], indirect=True)
def test_a_one_epoch_run_on_dsprites_32_reports_every_metric(small_dsprites, tmp_path, capsys):
    out = tmp_path / "d.pt"
    assert cli.main(["train", "--dataset", "dsprites-32", "--epochs", "1", "--latent-dim", "4", "--hidden", "64",
                     "--arch", "mlp", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--dataset", "dsprites-32", "--iw-samples", "2", "--factors"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["n_images"] == 600 and metrics["latent_dim"] == 4
    for key in METRIC_KEYS:
        assert 0.0 <= metrics[key] <= 1.0, key
    # one epoch on 1,500 images learns something of the factors: the codes beat chance (β-VAE score: 1/5, one of five
    # factors; DCI informativeness: the mean over factors of 1/values, (1/3 + 1/6 + 1/40 + 2/32) / 5 = 0.12)
    assert metrics["beta_vae_score"] > 0.4 and metrics["dci_informativeness"] > 0.15


def test_factors_on_a_set_without_them_is_one_line(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert cli.main(["train", "--dataset", "mnist-sample", "--epochs", "1", "--latent-dim", "2", "--hidden", "32",
                     "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--dataset", "mnist-sample", "--factors"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --factors: mnist-sample has no known generative factors")
