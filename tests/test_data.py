import pytest
import torch

from vae_core.data import (
    SAMPLE, DatasetUnavailable, available_datasets, load_dataset, load_dataset_or_sample, missing_files, to_float,
)


def test_embedded_sample_is_real_mnist_split_4000_1000():
    ds = load_dataset(SAMPLE)
    assert ds.train_images.shape == (4000, 28, 28) and ds.test_images.shape == (1000, 28, 28)
    assert ds.train_images.dtype == torch.uint8
    counts = torch.bincount(torch.cat([ds.train_labels, ds.test_labels]), minlength=10)
    assert counts.tolist() == [500] * 10
    # real digits: dark background, bright strokes, about 19% of pixels inked like MNIST
    ink = (ds.test_images > 127).float().mean().item()
    assert 0.1 < ink < 0.3 and ds.test_images[:, 0, :].max() == 0
    again = load_dataset(SAMPLE)
    assert torch.equal(again.test_labels, ds.test_labels)  # fixed split


def test_to_float_scales_to_unit_interval_with_a_channel():
    x = to_float(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2) and x.tolist() == [[[[0.0, 1.0]]]]


def test_missing_dataset_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("fashion-mnist", tmp_path, download=False)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert len(missing_files("fashion-mnist", tmp_path)) == 4


def test_fallback_to_the_sample_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    ds, notice = load_dataset_or_sample("mnist", download=False)
    assert ds.name == SAMPLE and "mnist-sample" in notice and "MNIST" in notice
    assert available_datasets() == [SAMPLE]


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")


def test_full_mnist_from_a_data_folder(shared_data):
    ds = load_dataset("mnist", shared_data, download=False)
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert torch.bincount(ds.test_labels).tolist()[:2] == [980, 1135]
    assert "mnist" in available_datasets(shared_data) and "fashion-mnist" in available_datasets(shared_data)
