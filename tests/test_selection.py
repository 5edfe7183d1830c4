"""vae_core.selection: a reported selection's polygons checked, the points inside them counted, and what the
selected images hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.loss import gaussian_kl
from vae_core.selection import MAX_SHAPES, MAX_VERTICES, inside, kl_per_dim, parse_shapes, summarize, typical_ends


def box(x0, y0, x1, y1):
    return {"kind": "box", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}


@pytest.mark.parametrize("value, reason", [
    (None, "list of 1 to"), ([], "list of 1 to"), ([box(0, 0, 1, 1)] * (MAX_SHAPES + 1), "list of 1 to"),
    (["lasso"], "a shape is"), ([{"kind": "circle", "points": [[0, 0]] * 3}], "a shape is"),
    ([{"kind": "lasso", "points": [[0, 0], [1, 1]]}], "3 to"),
    ([{"kind": "lasso", "points": [[0, 0]] * (MAX_VERTICES + 1)}], "3 to"),
    ([{"kind": "lasso", "points": [[0, 0], [1, "1"], [2, 0]]}], "two finite numbers"),
    ([{"kind": "lasso", "points": [[0, 0], [1, float("nan")], [2, 0]]}], "two finite numbers"),
    ([{"kind": "lasso", "points": [[0, 0], [1, True], [2, 0]]}], "two finite numbers"),
    ([{"kind": "lasso", "points": [[0, 0], [1, 1, 1], [2, 0]]}], "two finite numbers"),
])
def test_a_malformed_selection_is_refused_with_a_reason(value, reason):
    with pytest.raises(ValueError, match=reason):
        parse_shapes(value)


def test_boxes_select_what_lies_inside_and_shapes_unite():
    xy = np.random.default_rng(0).uniform(-3, 3, (20_000, 2)).astype(np.float32)
    a, b = box(-1, -1, 0.5, 2), box(0, 0, 2.5, 1)
    in_a = (xy[:, 0] > -1) & (xy[:, 0] < 0.5) & (xy[:, 1] > -1) & (xy[:, 1] < 2)
    in_b = (xy[:, 0] > 0) & (xy[:, 0] < 2.5) & (xy[:, 1] > 0) & (xy[:, 1] < 1)
    assert (inside(xy, parse_shapes([a])) == in_a).all()
    assert (inside(xy, parse_shapes([a, b])) == (in_a | in_b)).all()


def test_a_self_crossing_lasso_follows_the_even_odd_rule():
    """As the browser's test (point_grid.js) does: the middle of a five-pointed star drawn in one stroke is outside."""
    angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
    star = {"kind": "lasso", "points": np.c_[np.cos(angles), np.sin(angles)].tolist()}
    assert inside(np.array([[0.0, 0.0], [0.0, 0.8], [5.0, 5.0]]), parse_shapes([star])).tolist() == [False, True, False]


def test_kl_per_dimension_sums_to_the_codes_kl():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=(50, 4)), rng.uniform(0.1, 2, (50, 4))
    total = gaussian_kl(torch.tensor(mu), torch.tensor(np.log(sigma ** 2))).numpy()
    np.testing.assert_allclose(kl_per_dim(mu, sigma).sum(axis=1), total, rtol=1e-10)


def test_the_summary_of_a_selection():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    labels = np.array([3] * 20 + [7] * 10)
    mu, sigma = rng.normal(size=(30, 2)), rng.uniform(0.1, 1, (30, 2))
    s = summarize(images, labels, mu, sigma, 10)
    assert s.count == 30 and s.class_counts.tolist() == [0, 0, 0, 20, 0, 0, 0, 10, 0, 0]
    np.testing.assert_allclose(s.mean_image, images.astype(np.float64).mean(0) / 255)
    np.testing.assert_allclose(s.mu_spread[1], np.median(mu, axis=0))
    np.testing.assert_allclose(s.kl, kl_per_dim(mu, sigma).mean(0))
    point = summarize(images, labels, mu, np.zeros_like(sigma), 10)  # an autoencoder's codes
    assert point.sigma_spread is None and point.kl is None
    nelbo = rng.normal(100, 10, 30)
    low, high = typical_ends(nelbo, 5)
    assert nelbo[low].tolist() == sorted(nelbo)[:5] and nelbo[high].tolist() == sorted(nelbo)[::-1][:5]
    with pytest.raises(ValueError, match="empty"):
        summarize(images[:0], labels[:0], mu[:0], sigma[:0], 10)
