"""vae_core.per_image: every image's −ELBO, reconstruction error, KL, σ and classifier confidence, for a split at once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core import typicality
from vae_core.checkpoint import load_checkpoint
from vae_core.classifier import Classifier, probabilities
from vae_core.config import ModelConfig
from vae_core.data import load_dataset
from vae_core.loss import gaussian_kl
from vae_core.models import build_model
from vae_core.per_image import FIGURES, figure_names, per_image_figures


@pytest.fixture(scope="module")
def images():
    data = load_dataset("mnist-sample")
    return data.test_images[:120], data.test_labels[:120]


def test_a_vaes_figures_add_up_and_match_typicality(app_checkpoints, images):
    model, _ = load_checkpoint(app_checkpoints.z2)
    x, y = images
    torch.manual_seed(0)
    judge = Classifier().eval()
    f = per_image_figures(model, x, y, judge=judge, batch_size=50)
    assert list(f) == list(FIGURES) and all(v.shape == (len(x),) and np.isfinite(v).all() for v in f.values())
    # the same shared draws as the typicality score, so the same −ELBO, whatever the batch size
    np.testing.assert_allclose(f["nelbo"], typicality.per_image_nelbo(model, x), rtol=1e-6)
    np.testing.assert_allclose(f["nelbo"], f["recon"] + f["kl"], rtol=1e-12)
    with torch.no_grad():
        q = model.encode(x[:, None].float() / 255)
    np.testing.assert_allclose(f["kl"], gaussian_kl(q.mean, q.logvar).numpy(), rtol=1e-5)
    np.testing.assert_allclose(f["sigma"], q.std.mean(1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(f["confidence"], probabilities(judge, x).max(1), rtol=1e-5)
    assert (f["confidence"] <= 1).all() and (f["confidence"] >= 1 / 10).all()


def test_an_autoencoder_has_no_kl_or_sigma_and_its_nelbo_is_its_reconstruction(images):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="ae", hidden=(32,))).eval()
    x, y = images
    f = per_image_figures(model, x, y)
    assert tuple(f) == figure_names(model, judged=False) == ("nelbo", "recon")
    np.testing.assert_array_equal(f["nelbo"], f["recon"])
    np.testing.assert_allclose(f["recon"], typicality.per_image_nelbo(model, x), rtol=1e-6)


def test_a_conditional_model_is_told_each_images_class(images):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", n_classes=10, hidden=(32,))).eval()
    x, y = images
    told = per_image_figures(model, x, y)["nelbo"]
    per_class = typicality.per_class_nelbo(model, x)  # the same shared draws, under every class
    np.testing.assert_allclose(told, per_class[np.arange(len(x)), y.numpy()], rtol=1e-6)
