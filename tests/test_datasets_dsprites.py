"""The dSprites data source: both names served, the shape as the class, the test images' factor values, the test set
alone without the training images, and the training set disjoint from it."""
from __future__ import annotations

import numpy as np
import torch

from vae_core import dsprites
from vae_core.data import dataset_info, load_dataset, load_test_set


def test_both_sizes_are_served_with_factors_and_the_shape_as_class(small_dsprites):
    assert dataset_info("dsprites").image_shape == (1, 64, 64)
    assert dataset_info("dsprites-32").class_names == ("square", "ellipse", "heart")
    data = load_dataset("dsprites-32")
    assert data.train_images.shape == (50, 1, 32, 32) and data.test_images.shape == (30, 1, 32, 32)
    assert data.factor_names == dsprites.FACTOR_NAMES and data.factors.shape == (len(data.test_images), 5)
    idx = dsprites.factor_indices(data.factors)
    assert torch.equal(data.test_labels, torch.from_numpy(idx[:, 0]))
    assert np.array_equal(data.test_images.numpy(), dsprites.render(idx, side=32))
    test_only = load_test_set("dsprites-32")
    assert len(test_only.train_images) == 0 and torch.equal(test_only.test_images, data.test_images)
