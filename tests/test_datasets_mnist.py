"""The MNIST family's source (IDX files, torchvision, the bundled test splits) and the embedded sample, through the
facade `vae_core.data`."""
import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vae_core.data
from vae_core.data import (
    BUNDLED_DIR, RAW_FILES, SAMPLE, TORCHVISION_DATASETS, DatasetUnavailable, available_datasets, load_dataset,
    load_test_set, missing_files,
)
from vae_core.datasets import mnist

BUNDLED = ("mnist", "fashion-mnist")


def test_embedded_sample_is_real_mnist_split_4000_1000():
    ds = load_dataset(SAMPLE)
    assert ds.train_images.shape == (4000, 1, 28, 28) and ds.test_images.shape == (1000, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.image_shape == (1, 28, 28)
    assert ds.digit_like and ds.labelled and ds.sha is None and ds.family == "mnist"
    counts = torch.bincount(torch.cat([ds.train_labels, ds.test_labels]), minlength=10)
    assert counts.tolist() == [500] * 10
    # real digits: dark background, bright strokes, about 19% of pixels inked like MNIST
    ink = (ds.test_images > 127).float().mean().item()
    assert 0.1 < ink < 0.3 and ds.test_images[:, 0, 0, :].max() == 0
    again = load_dataset(SAMPLE)
    assert torch.equal(again.test_labels, ds.test_labels)  # fixed split


def test_missing_dataset_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("fashion-mnist", tmp_path, download=False)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert len(missing_files("fashion-mnist", tmp_path)) == 4


def test_without_files_only_the_sample_can_be_trained_on(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    assert available_datasets() == [SAMPLE, "dsprites", "dsprites-32"]


def test_full_mnist_from_a_data_folder(shared_data):
    ds = load_dataset("mnist", shared_data, download=False)
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.test_labels).tolist()[:2] == [980, 1135]
    assert "mnist" in available_datasets(shared_data) and "fashion-mnist" in available_datasets(shared_data)


@pytest.mark.parametrize("name", BUNDLED)
def test_raw_files_are_read_without_torchvision_into_the_tensors_it_makes(name, shared_data):
    if missing_files(name, shared_data):
        pytest.skip(f"full {name} not found in {shared_data}")
    ours = mnist._load_raw(name, str(shared_data.resolve()))
    theirs = mnist._load_torchvision(name, str(shared_data.resolve()), False)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        a, b = getattr(ours, field), getattr(theirs, field)
        assert a.dtype == b.dtype and torch.equal(a, b), field
    assert load_dataset(name, shared_data, download=False) is ours


def test_full_data_loads_without_importing_torchvision(shared_data):
    code = ("import sys, vae_core.data as d; ds = d.load_dataset('mnist', sys.argv[1], download=False); "
            "print(len(ds.train_images), 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(shared_data)], capture_output=True, text=True, check=True,
                         cwd=Path(vae_core.data.__file__).parent.parent)
    assert out.stdout.split() == ["60000", "False"]


def test_a_truncated_raw_file_is_reported_by_name(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in RAW_FILES:  # valid headers, but the training images end after 10 bytes of their 47 million
        dims = 3 if "images" in file else 1
        sizes = (60000 if file.startswith("train") else 10000, 28, 28)[:dims]
        (raw / file).write_bytes(bytes((0, 0, 8, dims)) + b"".join(n.to_bytes(4, "big") for n in sizes) + bytes(10))
    with pytest.raises(DatasetUnavailable, match="^mnist is not available: train-images-idx3-ubyte is not a uint8 IDX"):
        load_dataset("mnist", tmp_path, download=False)


@pytest.fixture
def offline_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VAE_OFFLINE", "1")
    return tmp_path


@pytest.mark.parametrize("name", BUNDLED)
def test_offline_test_set_is_the_bundled_10000_images_of_that_dataset(name, offline_without_data):
    ds = load_test_set(name)
    assert ds.name == name and ds.class_names == TORCHVISION_DATASETS[name][2]
    assert ds.test_images.shape == (10000, 1, 28, 28) and ds.test_images.dtype == torch.uint8
    assert ds.test_labels.dtype == torch.int64 and ds.test_labels.shape == (10000,)
    assert ds.train_images.shape == (0, 1, 28, 28) and ds.train_labels.shape == (0,)
    assert "bundled" in ds.source and "test split" in ds.source
    expected = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist" else [1000] * 10
    assert torch.bincount(ds.test_labels, minlength=10).tolist() == expected
    assert available_datasets() == [SAMPLE, "dsprites", "dsprites-32"]  # a test split is no training data


def test_the_two_bundled_test_sets_are_different_images(offline_without_data):
    digits, clothes = load_test_set("mnist"), load_test_set("fashion-mnist")
    # Fashion-MNIST is far more inked than MNIST (~50% vs ~19% of pixels > 0)
    assert (clothes.test_images > 0).float().mean() > 1.5 * (digits.test_images > 0).float().mean()


def test_bundled_test_set_is_used_without_a_download_attempt(tmp_path, monkeypatch):
    def no_torchvision(*args):
        raise AssertionError("torchvision was asked for data the bundle holds")

    monkeypatch.setattr(mnist, "_load_torchvision", no_torchvision)
    ds = load_test_set("fashion-mnist", tmp_path, download=True)
    assert ds.name == "fashion-mnist" and len(ds.test_images) == 10000


def test_a_dataset_without_files_or_bundle_is_unavailable_never_another(offline_without_data, monkeypatch):
    with pytest.raises(DatasetUnavailable, match="^kmnist is not available"):
        load_test_set("kmnist")
    monkeypatch.setattr(mnist, "BUNDLED_DIR", offline_without_data / "no-bundle")
    with pytest.raises(DatasetUnavailable, match="^mnist is not available"):
        load_test_set("mnist")


@pytest.fixture
def fresh_bundle_cache():
    mnist._load_bundled.cache_clear()
    yield
    mnist._load_bundled.cache_clear()


def test_a_damaged_bundle_is_reported_as_unavailable(offline_without_data, monkeypatch, fresh_bundle_cache):
    folder = offline_without_data / "bundle" / "MNIST"
    folder.mkdir(parents=True)
    for file in mnist.BUNDLED_FILES:  # what a checkout without Git LFS leaves in place of the files
        (folder / file).write_text("version https://git-lfs.github.com/spec/v1\n")
    monkeypatch.setattr(mnist, "BUNDLED_DIR", folder.parent)
    with pytest.raises(DatasetUnavailable, match="bundled mnist test split .* is damaged"):
        load_test_set("mnist")


def test_test_set_of_the_sample_is_the_sample_and_unknown_names_are_refused():
    assert load_test_set(SAMPLE) is load_dataset(SAMPLE)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_test_set("cifar")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_files_are_byte_identical_to_the_full_test_split(name, shared_data):
    folder = TORCHVISION_DATASETS[name][1]
    raw = shared_data / folder / "raw"
    if missing_files(name, shared_data):
        pytest.skip(f"full {name} not found in {raw}")
    for file in RAW_FILES[2:]:
        assert gzip.decompress((BUNDLED_DIR / folder / f"{file}.gz").read_bytes()) == (raw / file).read_bytes(), file
    full = load_dataset(name, shared_data, download=False)
    bundled = mnist._load_bundled(name)
    assert torch.equal(bundled.test_images, full.test_images) and torch.equal(bundled.test_labels, full.test_labels)


def test_test_set_prefers_the_full_dataset_on_disk(shared_data):
    ds = load_test_set("mnist", shared_data, download=False)
    assert ds.source.startswith("full mnist") and len(ds.train_images) == 60000 and len(ds.test_images) == 10000
