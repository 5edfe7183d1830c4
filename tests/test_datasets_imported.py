"""The imported-datasets source: the importer's store read as ImageDatasets of any (C, H, W)."""
import numpy as np
import pytest
import torch

from vae_core.data import DatasetUnavailable, dataset_info, load_dataset, load_test_set
from vae_core.importer import load_arrays


@pytest.mark.parametrize("side, channels", [(32, 3), (64, 3), (32, 1)])
def test_an_imported_set_loads_as_uint8_nchw_with_its_manifest(imported_sets, side, channels):
    manifest = imported_sets.add("mine", side=side, channels=channels, n_train=300, n_test=60)
    data = load_dataset("mine")
    assert data.train_images.shape == (300, channels, side, side) and data.test_images.shape == (60, channels, side, side)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    stored = load_arrays(manifest)
    assert np.array_equal(data.test_images.numpy(), stored["test_images"])
    assert np.array_equal(data.test_labels.numpy(), stored["test_labels"])
    assert data.image_shape == (channels, side, side) and data.class_names == manifest.class_names
    assert data.sha == manifest.sha and data.labelled and not data.digit_like and not data.pad
    assert f"{side}×{side}" in data.source and ("colour" if channels == 3 else "greyscale") in data.source
    assert load_test_set("mine") is data  # one read per content


def test_an_unlabelled_set_is_one_class_that_says_it_means_nothing(imported_sets):
    imported_sets.add("flat", side=32, channels=3, labelled=False)
    info, data = dataset_info("flat"), load_dataset("flat")
    assert not info.labelled and not data.labelled and info.class_names == data.class_names == ("unlabelled",)
    assert set(data.train_labels.tolist()) == set(data.test_labels.tolist()) == {0}  # stored as -1


def test_a_padded_set_says_so_for_its_uploads(imported_sets):
    imported_sets.add("padded", side=32, channels=3, pad=True)
    imported_sets.add("cropped", side=32, channels=3, seed=1)  # the same images may not have two names
    assert dataset_info("padded").pad and load_dataset("padded").pad and not dataset_info("cropped").pad


def test_a_set_imported_again_under_its_name_is_read_afresh(imported_sets):
    imported_sets.add("mine", side=32, channels=3, seed=0)
    before = load_dataset("mine")
    imported_sets.add("mine", side=32, channels=3, seed=1)
    after = load_dataset("mine")
    assert after.sha != before.sha and not torch.equal(after.test_images, before.test_images)


def test_a_damaged_store_entry_is_unavailable_by_name(imported_sets):
    manifest = imported_sets.add("mine", side=32, channels=3)
    manifest.data_path.write_bytes(manifest.data_path.read_bytes()[:1000])  # truncated
    with pytest.raises(DatasetUnavailable, match="imported dataset 'mine' .* is damaged"):
        load_dataset("mine")


def test_a_removed_set_is_unknown(imported_sets):
    imported_sets.add("mine", side=32, channels=3)
    imported_sets.remove("mine")
    with pytest.raises(DatasetUnavailable, match="unknown dataset 'mine'"):
        load_test_set("mine")
