"""The shipped MNIST classifier that judges decoded images."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SHIPPED
from vae_core.checkpoint import CheckpointError, save_checkpoint
from vae_core.classifier import CONFIDENT, confident_share, load_classifier, probabilities
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_test_set
from vae_core.models import build_model

CLASSIFIER = SHIPPED / "classifier" / "mnist.pt"


@pytest.fixture(scope="module")
def classifier():
    if not CLASSIFIER.exists():
        pytest.skip(f"{CLASSIFIER} is missing")
    return load_classifier(CLASSIFIER)


def test_it_reads_the_mnist_test_set_at_98_percent_or_better(classifier):
    model, meta = classifier
    data = load_test_set("mnist")
    predicted = probabilities(model, data.test_images).argmax(1)
    accuracy = float((predicted == data.test_labels.numpy()).mean())
    assert accuracy >= 0.98 and accuracy == pytest.approx(meta["test_accuracy"], abs=1e-4)
    assert CLASSIFIER.stat().st_size < 1_000_000  # a few hundred KB


def test_confidence_separates_digits_from_noise(classifier):
    model, _ = classifier
    digits = load_test_set("mnist").test_images[:500].numpy() / 255.0
    noise = np.random.default_rng(0).random((500, 28, 28))
    assert confident_share(model, digits) > 0.9  # measured 0.946 on the first 500
    assert confident_share(model, noise) < 0.2
    assert probabilities(model, digits[:3]).sum(1) == pytest.approx(np.ones(3), abs=1e-5)
    assert CONFIDENT == 0.9


def test_a_model_checkpoint_is_not_taken_for_a_classifier(tmp_path):
    path = save_checkpoint(tmp_path / "vae.pt", build_model(ModelConfig(hidden=(8,))), TrainConfig(), "mnist-sample")
    with pytest.raises(CheckpointError, match="vae.pt: not a Latent Explorer classifier"):
        load_classifier(path)
    (tmp_path / "junk.pt").write_bytes(b"\x00")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_classifier(tmp_path / "junk.pt")
