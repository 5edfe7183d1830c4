"""dSprites generated in the process: the grid's counts, order and values, images checked by their factors (pixel by
pixel where the published frames pin them down), determinism, sampling by factor and the cached full grid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vae_core import dsprites as ds


def test_the_grid_has_the_published_sizes_values_and_order():
    assert ds.FACTOR_NAMES == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.FACTOR_SIZES == (3, 6, 40, 32, 32) and ds.N_IMAGES == 737_280
    assert list(ds.FACTOR_VALUES[1]) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert ds.FACTOR_VALUES[2][1] == pytest.approx(0.16110732) and ds.FACTOR_VALUES[2][-1] == pytest.approx(2 * np.pi)
    assert ds.FACTOR_VALUES[3][1] == pytest.approx(0.03225806) and ds.FACTOR_VALUES[4][-1] == 1.0
    # posY varies fastest, shape slowest, as in the published file
    assert ds.from_flat(np.array([0, 1, 32, 1024, 40960, 737_279])).tolist() == [
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [2, 5, 39, 31, 31]]
    flat = np.random.default_rng(0).integers(ds.N_IMAGES, size=1000)
    assert np.array_equal(ds.to_flat(ds.from_flat(flat)), flat)
    idx = ds.from_flat(flat)
    assert np.array_equal(ds.factor_indices(ds.factor_values(idx)), idx)
    with pytest.raises(ValueError, match="scale"):
        ds.factor_indices(np.array([[1.0, 0.55, 0.0, 0.0, 0.0]]))


def _square(scale_index: int, pos: int = 0) -> np.ndarray:
    return ds.render(np.array([[0, scale_index, 0, pos, pos]]))[0, 0]


def test_a_square_covers_the_pixels_its_scale_and_position_give():
    """The centre of position index p is at 16 + 32·p/31 pixels; a square of scale s is 19.2·s pixels wide. At position
    0 (centre 16.0) a square of scale 1 spans [6.4, 25.6]: pixel centres 6.5 … 25.5, so rows and columns 6 to 25; of
    scale 0.5, [11.2, 20.8]: 11 to 20. The published frames show exactly these boxes (400 and 100 pixels)."""
    for scale_index, (lo, hi) in ((5, (6, 25)), (0, (11, 20)), (2, (9, 22))):
        img = _square(scale_index)
        expected = np.zeros((64, 64), dtype=np.uint8)
        expected[lo:hi + 1, lo:hi + 1] = 255
        assert np.array_equal(img, expected), scale_index
    # the last position (centre 48.0): the same box 32 pixels further right and down
    assert np.array_equal(_square(5, 31), np.roll(_square(5, 0), (32, 32), axis=(0, 1)))


def test_rotations_and_symmetries():
    centre = [0.5, 0.5]  # the canvas's centre (32.0, 32.0) lies between pixels: mirror images are exact
    square = ds.render_values(np.array([[1, 0.8, 0.3, *centre], [1, 0.8, 0.3 + np.pi / 2, *centre]]))
    assert np.array_equal(square[0], square[1]) and square[0].any()  # a quarter turn maps a square onto itself
    ellipse = ds.render_values(np.array([[2, 1.0, 0.0, *centre], [2, 1.0, 0.7, *centre], [2, 1.0, np.pi / 2, *centre]]))[:, 0]
    assert np.array_equal(ellipse[0], ellipse[0][::-1]) and np.array_equal(ellipse[0], ellipse[0][:, ::-1])
    assert np.array_equal(ellipse[1], ellipse[1][::-1, ::-1])  # point-symmetric at any angle
    assert np.array_equal(ellipse[2], ellipse[0].T)  # a quarter turn swaps its axes
    wide = np.flatnonzero(ellipse[0].any(0))
    tall = np.flatnonzero(ellipse[0].any(1))
    assert len(wide) == 26 and len(tall) == 14  # 0.4 × 0.225 of the canvas: 25.6 × 14.4 pixels
    heart = ds.render_values(np.array([[3, 1.0, 0.0, *centre]]))[0, 0]
    assert np.array_equal(heart, heart[:, ::-1]) and not np.array_equal(heart, heart[::-1])  # upright, lobes up
    rows = np.flatnonzero(heart.any(1))
    assert heart[rows[0]].sum() > heart[rows[-1]].sum()  # wide lobes at the top, the point at the bottom


def test_orientation_turns_counter_clockwise_on_screen_and_its_ends_coincide():
    idx = np.array([[2, 5, 0, 16, 16], [2, 5, 10, 16, 16], [2, 5, 39, 16, 16]])  # heart, quarter-ish turn, 2π
    first, turned, last = ds.render(idx)[:, 0] > 0
    assert np.array_equal(first, last)  # orientations 0 and 2π: the same image, as in the published file
    centre = (0.25 + 0.5 * 16 / 31) * 64 - 0.5  # in pixel indices (pixel j's centre is at j + 0.5)
    # The heart's mass sits 2 pixels above the point it turns about (its lobes outweigh its tip): upright that is up;
    # turned counter-clockwise on screen by 92°, it is to the left (image x grows to the right, y downwards).
    ys, xs = np.nonzero(first)
    assert ys.mean() < centre - 1.5 and abs(xs.mean() - centre) < 0.1
    ys, xs = np.nonzero(turned)
    assert xs.mean() < centre - 1.5 and abs(ys.mean() - centre) < 0.7


def test_images_are_binary_with_a_32_pixel_variant_of_block_means_and_rendering_is_deterministic():
    idx = ds.from_flat(np.random.default_rng(1).integers(ds.N_IMAGES, size=300))
    big, small = ds.render(idx), ds.render(idx, side=32)
    assert big.shape == (300, 1, 64, 64) and big.dtype == np.uint8 and set(np.unique(big)) == {0, 255}
    assert small.shape == (300, 1, 32, 32) and set(np.unique(small)) <= {0, 64, 128, 191, 255}
    means = big[:, 0].reshape(300, 32, 2, 32, 2).mean(axis=(2, 4))
    assert np.abs(small[:, 0] - means).max() <= 0.5
    assert np.array_equal(ds.render(idx), big)
    # every sprite lies fully inside the canvas and is drawn
    assert (big[:, 0, 0].sum() + big[:, 0, -1].sum() + big[:, 0, :, 0].sum() + big[:, 0, :, -1].sum()) == 0
    assert (big > 0).sum(axis=(1, 2, 3)).min() >= 50
    with pytest.raises(ValueError):
        ds.render(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError):
        ds.render(idx, side=28)
    for bad in ([1, 0.0, 0, 0.5, 0.5], [1, 1.0, np.nan, 0.5, 0.5], [4, 1.0, 0, 0.5, 0.5]):
        with pytest.raises(ValueError):
            ds.render_values(np.array([bad]))


def test_sampling_holds_the_fixed_factors_and_varies_the_others():
    images, idx = ds.sample(500, fixed={"shape": 1, "scale": 3}, seed=4)
    assert images.shape == (500, 1, 64, 64)
    assert set(idx[:, 0]) == {1} and set(idx[:, 1]) == {3}
    assert len(set(idx[:, 3])) > 20 and len(set(idx[:, 2])) > 30
    assert np.array_equal(images, ds.render(idx))
    again, idx_again = ds.sample(500, fixed={"shape": 1, "scale": 3}, seed=4)
    assert np.array_equal(idx, idx_again) and np.array_equal(images, again)
    assert not np.array_equal(ds.sample(500, fixed={"shape": 1}, seed=5)[1], idx)
    with pytest.raises(ValueError, match="colour"):
        ds.sample(2, fixed={"colour": 0})
    with pytest.raises(ValueError, match="shape index"):
        ds.sample(2, fixed={"shape": 3})


def test_the_full_grid_is_cached_and_reused(tmp_path, monkeypatch):
    """The full grid's first generation is replaced here by a small stand-in (rows rendered only where the check
    reads them), so the test costs a second: what is tested is the caching, the check and the split."""
    monkeypatch.setenv(ds.DATASETS_DIR_ENV, str(tmp_path))
    written = []

    def small_write(path, chunk=8192):  # the real writer's file, with only the rows the check and the split read
        written.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(ds.N_IMAGES, 512))
        rows = np.unique(np.r_[np.random.default_rng(0).choice(ds.N_IMAGES, 16, replace=False),
                               np.random.default_rng(7).permutation(ds.N_IMAGES)[:60]])
        out[rows] = ds._packed(ds.from_flat(rows))
        out.flush()

    monkeypatch.setattr(ds, "_write_grid", small_write)
    bits = ds.full_grid()
    assert ds.cache_path().parent == tmp_path / ".cache" and written == [ds.cache_path()]
    assert ds.full_grid().shape == bits.shape and len(written) == 1  # reused, not made again
    part = ds.split(side=32, train_size=40, test_size=20, seed=7)
    assert part.test_images.shape == (20, 1, 32, 32) and part.train_images.shape == (40, 1, 32, 32)
    assert np.array_equal(part.test_images, ds.render(part.test_factors, side=32))
    assert np.array_equal(part.train_images, ds.render(part.train_factors, side=32))
    assert not set(ds.to_flat(part.test_factors)) & set(ds.to_flat(part.train_factors))
    alone = ds.split(side=32, train_size=0, test_size=20, seed=7)  # the test set alone: the same images
    assert alone.train_images.shape == (0, 1, 32, 32) and np.array_equal(alone.test_images, part.test_images)
    # a damaged cache (a row that is not its image) is made again rather than served
    damaged = np.load(ds.cache_path(), mmap_mode="r+")
    damaged[np.random.default_rng(0).choice(ds.N_IMAGES, 16, replace=False)[0]] ^= 0xFF
    damaged.flush()
    del damaged
    ds.full_grid()
    assert len(written) == 2


def test_the_real_cache_is_written_atomically(tmp_path, monkeypatch):
    """The real writer on a grid cut to 3 chunks: the file appears only whole, under its final name."""
    monkeypatch.setenv(ds.DATASETS_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(ds, "N_IMAGES", 300)
    ds._write_grid(ds.cache_path(), chunk=128)
    assert [p.name for p in (tmp_path / ".cache").iterdir()] == [ds.cache_path().name]
    bits = np.load(ds.cache_path())
    assert bits.shape == (300, 512)
    assert np.array_equal(np.unpackbits(bits, axis=1).reshape(300, 64, 64) * 255, ds.render(ds.from_flat(np.arange(300)))[:, 0])


def test_the_images_match_the_published_frames():
    """The 320 published frames of the dataset's repository (tests/data/README.md): per shape the generator's images
    overlap them at an intersection over union ≥ 0.995 (square ≥ 0.999), differing by at most 6 outline pixels."""
    stored = np.load(Path(__file__).parent / "data" / "dsprites_published_frames.npz")
    published = np.unpackbits(stored["frames"], axis=1).reshape(-1, 64, 64).astype(bool)
    ours = ds.render(stored["factors"].astype(np.int64))[:, 0] > 0
    for shape, least in ((0, 0.999), (1, 0.99), (2, 0.995)):
        rows = stored["factors"][:, 0] == shape
        a, b = ours[rows], published[rows]
        assert (a & b).sum() / (a | b).sum() >= least, ds.SHAPES[shape]
        assert (a ^ b).sum(axis=(1, 2)).max() <= 6
