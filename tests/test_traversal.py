"""Latent traversals: rows ordered by KL, collapsed dimensions marked, each row sweeping only its own dimension; on
the shipped β = 8 model the marked rows are the ones the decoder ignores."""
from __future__ import annotations

import numpy as np

from conftest import shipped_checkpoint
from vae_core import inference
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ModelConfig
from vae_core.data import load_test_set
from vae_core.models import build_model
from vae_core.traversal import DimensionStats, dimension_stats, encode_one, traverse


def test_order_is_by_kl_and_collapsed_are_the_inactive_dimensions():
    stats = DimensionStats(kl=np.array([0.001, 3.0, 0.5, 3.0]), variance=np.array([0.0, 0.9, 0.3, 0.8]),
                           probabilistic=True)
    assert list(stats.order()) == [1, 3, 2, 0]  # ties keep dimension order
    assert list(stats.collapsed) == [True, False, False, False]


def test_an_autoencoder_orders_by_variance_and_never_collapses():
    stats = DimensionStats(kl=np.zeros(3), variance=np.array([0.0, 5.0, 2.0]), probabilistic=False)
    assert list(stats.order()) == [1, 2, 0] and not stats.collapsed.any()


def test_each_row_sweeps_only_its_dimension_from_the_start_code():
    model = build_model(ModelConfig(latent_dim=3, hidden=(16,)))
    data = load_test_set("mnist-sample")
    stats = dimension_stats(model, data.test_images[:200])
    z = encode_one(model, data.test_images[0])
    tr = traverse(model, z, stats, steps=5)
    assert tr.images.shape == (3, 5, 28, 28) and list(tr.values) == [-3.0, -1.5, 0.0, 1.5, 3.0]
    for row, dim in enumerate(tr.dims):
        codes = np.repeat(z[None], 5, 0)
        codes[:, dim] = tr.values
        assert np.allclose(tr.images[row], inference.decode(model, codes), atol=1e-6)
    assert list(tr.kl) == list(stats.kl[tr.dims])


def test_the_collapsed_rows_of_the_beta_8_model_are_those_the_decoder_ignores():
    model, info = load_checkpoint(shipped_checkpoint("mnist_z10_beta8"))
    data = load_test_set("mnist")
    stats = dimension_stats(model, data.test_images)
    assert int((~stats.collapsed).sum()) == info.metrics["active_units"]
    tr = traverse(model, encode_one(model, data.test_images[0]), stats)
    change = np.abs(tr.images - tr.images[:, :1]).mean(axis=(1, 2, 3))  # mean pixel change along each row
    assert tr.collapsed.any() and (~tr.collapsed).any()
    # measured: collapsed rows ≤ 0.003, active ones ≥ 0.013 (the largest 0.15)
    assert change[tr.collapsed].max() < 0.25 * change[~tr.collapsed].min()
    assert np.all(np.diff(tr.kl) <= 0)  # most informative first
