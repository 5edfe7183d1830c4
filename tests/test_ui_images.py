import io

import numpy as np
import pytest
from PIL import Image

from ui.images import GRID_PAD_VALUE, tile, to_gif_bytes, to_png_bytes


def test_tile_puts_padding_between_cells_and_no_frame_around():
    images = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    tiled = tile(images, padding=1)
    assert tiled.shape == (2 * 2 + 1, 3 * 2 + 2)
    np.testing.assert_array_equal(tiled[3:5, 6:8], images[1, 2])
    np.testing.assert_array_equal(tiled[0:2, 0:2], images[0, 0])
    assert np.all(tiled[2, :] == 1.0) and np.all(tiled[:, [2, 5]] == 1.0)  # white gaps by default
    assert tile(np.ones((1, 2, 2)), padding=3).shape == (2, 2)  # a lone cell has no gap to show


def test_tile_grid_layout_grey_gaps_and_png():
    images = np.stack([np.full((28, 28), i / 10, np.float32) for i in range(6)]).reshape(2, 3, 28, 28)
    grid = tile(images, padding=1, pad_value=GRID_PAD_VALUE)
    assert grid.shape == (2 * 28 + 1, 3 * 28 + 2)
    assert grid.dtype == np.float32
    assert np.all(grid[28, :] == GRID_PAD_VALUE)  # horizontal separator
    assert np.all(grid[:, 28] == GRID_PAD_VALUE)  # vertical separator
    assert np.all(grid[:28, 29:57] == np.float32(0.1))  # row 0, column 1
    assert np.all(grid[29:, 29:57] == np.float32(0.4))  # row 1, column 1
    strip = tile(images[0], padding=0)  # (n, h, w) is one row
    assert strip.shape == (28, 3 * 28)
    assert np.asarray(Image.open(io.BytesIO(to_png_bytes(grid, scale=2)))).shape == (114, 172)


def test_tile_rgb_cells():
    cells = np.zeros((2, 2, 3, 3, 3), np.float32)
    cells[1, 0, ..., 0] = 1.0  # bottom-left cell red
    picture = tile(cells, padding=1)
    assert picture.shape == (7, 7, 3)
    np.testing.assert_array_equal(picture[4:, :3], np.broadcast_to([1.0, 0.0, 0.0], (3, 3, 3)))
    np.testing.assert_array_equal(picture[3], np.ones((7, 3)))


def test_colour_display_images_tile_and_encode_in_colour():
    row = np.zeros((3, 4, 4, 3), np.float32)  # a row of 3 colour cells in display layout
    row[1, ..., 2] = 1.0  # the middle one blue
    strip = tile(row, padding=1)
    assert strip.shape == (4, 14, 3)
    np.testing.assert_array_equal(strip[:, 5:9], np.broadcast_to([0.0, 0.0, 1.0], (4, 4, 3)))
    png = Image.open(io.BytesIO(to_png_bytes(strip, scale=2)))
    assert png.mode == "RGB" and np.asarray(png)[0, 10].tolist() == [0, 0, 255]
    gif = Image.open(io.BytesIO(to_gif_bytes(list(row), scale=2, loop=False)))
    gif.seek(1)
    assert gif.size == (8, 8) and gif.convert("RGB").getpixel((3, 3)) == (0, 0, 255)


def test_tile_rejects_bad_input():
    with pytest.raises(ValueError):
        tile(np.zeros((0, 28, 28)))
    with pytest.raises(ValueError):
        tile(np.zeros((2, 28, 28)), padding=-1)
    with pytest.raises(ValueError):
        tile(np.zeros((28, 28)))
    with pytest.raises(ValueError):
        tile(np.zeros((1, 2, 28, 28, 4)))


def test_to_png_bytes_float_and_uint8():
    img = np.zeros((28, 28), np.float32)
    img[3, 5] = 1.0
    img[10, 10] = 0.5
    decoded = Image.open(io.BytesIO(to_png_bytes(img)))
    assert decoded.format == "PNG" and decoded.size == (28, 28) and decoded.mode == "L"
    arr = np.asarray(decoded)
    assert arr[3, 5] == 255 and arr[10, 10] in (127, 128) and arr[0, 0] == 0

    big = np.asarray(Image.open(io.BytesIO(to_png_bytes(img, scale=4))))
    assert big.shape == (112, 112)
    assert (big[12:16, 20:24] == 255).all() and big[11, 20] == 0 and big[12, 19] == 0

    u8 = (np.arange(28 * 10) % 256).astype(np.uint8).reshape(10, 28)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(to_png_bytes(u8)))), u8)


def test_to_png_bytes_clips_out_of_range_floats():
    arr = np.asarray(Image.open(io.BytesIO(to_png_bytes(np.array([[-0.5, 2.0]])))))
    assert arr.tolist() == [[0, 255]]


def test_to_png_bytes_rejects_bad_input():
    with pytest.raises(ValueError):
        to_png_bytes(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError):
        to_png_bytes(np.zeros((4, 4)), scale=0)


def test_to_gif_bytes_frames_size_and_loop():
    frames = [np.full((28, 28), i / 4, np.float32) for i in range(5)]
    for f, i in zip(frames, range(5)):
        f[i, i] = 1.0  # make every frame distinct
    data = to_gif_bytes(frames, scale=3, duration_ms=80)
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF"
    assert gif.size == (84, 84)
    assert gif.n_frames == 5
    assert gif.info.get("loop") == 0
    assert gif.info.get("duration") == 80
    gif.seek(4)
    assert np.asarray(gif.convert("L"))[12, 12] == 255

    once = Image.open(io.BytesIO(to_gif_bytes(frames, loop=False)))
    assert "loop" not in once.info
    assert once.size == (112, 112)


def test_to_gif_bytes_rejects_bad_input():
    with pytest.raises(ValueError):
        to_gif_bytes([])
    with pytest.raises(ValueError):
        to_gif_bytes([np.zeros((28, 28)), np.zeros((14, 14))])
