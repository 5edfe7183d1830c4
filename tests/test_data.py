"""The data facade: every source behind one set of functions, and the two image layouts (model NCHW, display)."""
import numpy as np
import pytest
import torch

from vae_core.data import (
    SAMPLE, DatasetUnavailable, ImageDataset, UnknownDataset, as_model_input, available_datasets, class_names,
    dataset_info, display_shape, known_datasets, load_dataset, load_test_set, to_display, to_float, valid_name,
)


def test_to_float_scales_to_unit_interval_keeping_the_layout():
    x = to_float(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2) and x.tolist() == [[[[0.0, 1.0]]]]


def _images(shape, n=3, seed=0):
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 32, 32), (3, 64, 64)])
def test_display_layout_round_trips_through_the_model_input(shape):
    nchw = _images(shape)
    shown = to_display(nchw)
    assert shown.shape == (3, *display_shape(shape)) and shown.dtype == np.uint8
    c = shape[0]
    # channels last, the axis dropped for greyscale: pixel (y, x) of channel k is where a viewer expects it
    assert shown[1, 5, 7, ...].tolist() == (nchw[1, 0, 5, 7].item() if c == 1 else nchw[1, :, 5, 7].tolist())
    expected = nchw.float() / 255
    for given in (nchw, nchw.numpy(), shown, shown.astype(np.float32) / 255):
        x = as_model_input(given, shape)
        assert x.shape == (3, *shape) and x.dtype == torch.float32 and torch.allclose(x, expected)
    one = as_model_input(shown[0], shape)  # a single image, in either layout
    assert one.shape == (1, *shape) and torch.equal(one, as_model_input(nchw[0], shape))


def test_model_input_without_a_shape_reads_2d_and_3d_as_greyscale_and_clamps_floats():
    assert as_model_input(np.zeros((28, 28), np.uint8)).shape == (1, 1, 28, 28)
    assert as_model_input(np.zeros((5, 28, 28), np.uint8)).shape == (5, 1, 28, 28)
    assert as_model_input(np.full((2, 3, 8, 8), 1.5, np.float32)).max() == 1.0
    assert as_model_input(np.zeros((2, 8, 8, 3), np.float32)).shape == (2, 3, 8, 8)


def test_model_input_of_the_wrong_shape_names_both_shapes():
    with pytest.raises(ValueError, match=r"expected images shaped \(3, 32, 32\).*got \(2, 28, 28\)"):
        as_model_input(np.zeros((2, 28, 28), np.uint8), (3, 32, 32))


def test_built_in_datasets_describe_themselves_without_loading():
    assert known_datasets()[:4] == [SAMPLE, "mnist", "fashion-mnist", "kmnist"]
    for name in ("mnist", "fashion-mnist", "kmnist", SAMPLE):
        info = dataset_info(name)
        assert info.image_shape == (1, 28, 28) and info.digit_like and info.labelled and info.sha is None
        assert len(class_names(name)) == 10
    assert class_names("fashion-mnist")[9] == "Ankle boot"


@pytest.mark.parametrize("name", ["cifar", "../mnist", "", "a" * 65, None, "mnist\n"])
def test_unknown_or_malformed_names_are_refused_as_unavailable_values(name):
    with pytest.raises(UnknownDataset, match="unknown dataset") as err:
        load_dataset(name)
    # callers that catch either keep working: pages catch DatasetUnavailable, older code ValueError
    assert isinstance(err.value, DatasetUnavailable) and isinstance(err.value, ValueError)
    assert not valid_name(name) or name == "cifar"


def test_an_image_dataset_must_be_uint8_nchw():
    with pytest.raises(ValueError, match=r"must be uint8 \(N, C, H, W\)"):
        ImageDataset("x", torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64),
                     torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), ("a",), "test")
    with pytest.raises(ValueError, match="differ in shape"):
        ImageDataset("x", torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64),
                     torch.zeros(2, 3, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), ("a",), "test")


def test_known_generative_factors_go_with_the_test_images():
    def data(factors, names):
        images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
        return ImageDataset("x", images, torch.zeros(4, dtype=torch.int64), images, torch.zeros(4, dtype=torch.int64),
                            ("a",), "test", factors=factors, factor_names=names)

    assert data(np.zeros((4, 2), np.float32), ("scale", "x")).factors.shape == (4, 2)
    with pytest.raises(ValueError, match=r"factors must be \(test images, factor names\) = \(4, 2\)"):
        data(np.zeros((3, 2), np.float32), ("scale", "x"))


def test_imported_sets_join_every_list_after_the_built_in_ones(imported_sets, tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    manifest = imported_sets.add("parts", side=32, channels=3)
    assert available_datasets() == [SAMPLE, "dsprites", "dsprites-32", "parts"]
    assert known_datasets() == [SAMPLE, "mnist", "fashion-mnist", "kmnist", "dsprites", "dsprites-32", "parts"]
    info = dataset_info("parts")
    assert info.image_shape == (3, 32, 32) and not info.digit_like and info.sha == manifest.sha


def test_a_checkpoints_sha_keeps_a_reimported_set_from_being_shown(imported_sets):
    first = imported_sets.add("parts", side=32, channels=3, seed=0)
    assert load_test_set("parts", sha=first.sha).sha == first.sha
    imported_sets.add("parts", side=32, channels=3, seed=1)  # imported again with other images (--replace)
    with pytest.raises(DatasetUnavailable, match="not the one the model was trained on"):
        load_test_set("parts", sha=first.sha)
    assert load_test_set("parts").sha != first.sha  # asked for without a model, the set as it is now
