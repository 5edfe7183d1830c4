"""Per-image −ELBO and the typicality / OOD score against the test set."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_dataset
from vae_core.evaluate import elbo
from vae_core.typicality import assess, per_image_nelbo, percentile_among


@pytest.fixture(scope="module")
def model_and_test(app_checkpoints):
    model, info = load_checkpoint(app_checkpoints.z2)
    return model, load_dataset("mnist-sample").test_images[:400]


def test_mean_matches_the_evaluators_elbo(model_and_test):
    model, images = model_and_test
    scores = per_image_nelbo(model, images)
    assert scores.shape == (len(images),) and np.isfinite(scores).all()
    # Two Monte-Carlo estimates of the same bound. Shared draws do not average out over images, so the
    # set's mean is only as good as the number of draws: compare with many.
    many = per_image_nelbo(model, images, samples=128)
    assert many.mean() == pytest.approx(elbo(model, images)["elbo"], rel=0.02)


def test_score_does_not_depend_on_the_batch(model_and_test):
    model, images = model_and_test
    together = per_image_nelbo(model, images[:50], batch_size=16)
    alone = np.array([per_image_nelbo(model, images[i : i + 1])[0] for i in (0, 17, 49)])
    np.testing.assert_allclose(alone, together[[0, 17, 49]], rtol=1e-5)


def test_uint8_and_float_inputs_agree(model_and_test):
    model, images = model_and_test
    as_float = images[:20].numpy().astype(np.float32) / 255.0
    np.testing.assert_allclose(per_image_nelbo(model, images[:20]), per_image_nelbo(model, as_float), rtol=1e-5)


def test_more_samples_reduce_the_spread_between_seeds(model_and_test):
    model, images = model_and_test
    few = np.std([per_image_nelbo(model, images[:1], samples=1, seed=s)[0] for s in range(12)])
    many = np.std([per_image_nelbo(model, images[:1], samples=32, seed=s)[0] for s in range(12)])
    assert many < few


def test_noise_is_flagged_and_test_digits_mostly_are_not(model_and_test):
    model, images = model_and_test
    reference = per_image_nelbo(model, images)
    noise = torch.rand(5, 28, 28, generator=torch.Generator().manual_seed(1)).numpy()
    flagged = assess(reference, per_image_nelbo(model, noise))
    assert all(t.ood and t.percentile == 100.0 for t in flagged)
    own = assess(reference, reference)
    assert sum(t.ood for t in own) <= 0.02 * len(own)
    assert sum(t.unusually_low for t in own) <= 0.02 * len(own)


def test_percentile_counts_reference_values_at_or_below():
    reference = np.array([4.0, 1.0, 3.0, 2.0])
    np.testing.assert_allclose(percentile_among(reference, [0.5, 2.0, 2.5, 9.0]), [0.0, 50.0, 50.0, 100.0])
    with pytest.raises(ValueError):
        percentile_among(np.array([]), 1.0)


def test_assess_thresholds_follow_the_chosen_percentile():
    reference = np.arange(1000, dtype=float)
    (t,) = assess(reference, [995.0], ood_percentile=99.0)
    assert t.high == pytest.approx(np.percentile(reference, 99)) and t.ood and not t.unusually_low
    (t,) = assess(reference, [5.0], ood_percentile=99.0)
    assert t.low == pytest.approx(np.percentile(reference, 1)) and t.unusually_low and not t.ood
    (t,) = assess(reference, [995.0], ood_percentile=99.9)
    assert not t.ood
    with pytest.raises(ValueError):
        assess(reference, [1.0], ood_percentile=100.0)


def test_rejects_bad_shapes_and_sample_counts(model_and_test):
    model, _ = model_and_test
    with pytest.raises(ValueError):
        per_image_nelbo(model, np.zeros((2, 2, 28, 28)))
    with pytest.raises(ValueError):
        per_image_nelbo(model, np.zeros((1, 28, 28)), samples=0)
