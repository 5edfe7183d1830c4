"""What the shipped AE, denoising AE and conditional VAE are there to show, checked on the models themselves."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SHIPPED, shipped_checkpoint
from vae_core import inference
from vae_core.checkpoint import load_checkpoint, read_info
from vae_core.classifier import confident_share, load_classifier, probabilities
from vae_core.corruption import corrupt
from vae_core.data import load_test_set


@pytest.fixture(scope="module")
def judge():
    path = SHIPPED / "classifier" / "mnist.pt"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_classifier(path)[0]


def test_the_shipped_kinds_are_what_their_names_say():
    for name, kind in (("mnist_ae_z2", "ae"), ("mnist_dae_z2", "dae"), ("mnist_cvae_z2", "cvae")):
        info = read_info(shipped_checkpoint(name))
        reference = read_info(shipped_checkpoint("mnist_z2")).model_config
        assert info.model_config.kind == kind and info.dataset == "mnist"
        assert info.model_config.hidden == reference.hidden and info.model_config.latent_dim == 2  # same nets


def test_the_cvae_needs_fewer_nats_than_the_vae_of_the_same_size():
    cvae, vae = read_info(shipped_checkpoint("mnist_cvae_z2")), read_info(shipped_checkpoint("mnist_z2"))
    assert cvae.metrics["elbo"] < vae.metrics["elbo"]  # the label carries what z no longer has to


def test_a_cvae_draws_one_style_as_ten_different_digits(judge):
    model = load_checkpoint(shipped_checkpoint("mnist_cvae_z2"))[0]
    for z in (np.zeros(2), np.array([1.0, -0.5]), np.array([-1.2, 0.8])):
        images = inference.decode(model, np.repeat(z[None], 10, 0), np.arange(10))
        assert list(probabilities(judge, images).argmax(1)) == list(range(10))


def test_prior_samples_of_the_ae_are_far_less_often_digits_than_the_vaes(judge):
    shares = {}
    for name in ("mnist_ae_z2", "mnist_z2"):
        model = load_checkpoint(shipped_checkpoint(name))[0]
        shares[name] = confident_share(judge, inference.sample_prior(model, 1000, seed=1))
    assert shares["mnist_z2"] > shares["mnist_ae_z2"] + 0.15, shares


def test_the_denoising_ae_undoes_masking_better_than_the_plain_ae():
    clean = load_test_set("mnist").test_images[:500]
    noisy = corrupt(clean.float().div(255).unsqueeze(1), "mask:0.5", __import__("torch").Generator().manual_seed(0))
    errors = {}
    for name in ("mnist_ae_z2", "mnist_dae_z2"):
        model = load_checkpoint(shipped_checkpoint(name))[0]
        recon = inference.reconstruct(model, noisy[:, 0].numpy())
        errors[name] = float(((recon - clean.numpy() / 255.0) ** 2).mean())
    assert errors["mnist_dae_z2"] < errors["mnist_ae_z2"], errors
