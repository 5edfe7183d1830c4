"""Pictures for the browser and for downloads: cells tiled into one grid, and PNG / animated GIF encodings
upscaled by whole pixels so that the browser does not blur small images. Images are in display layout: (H, W)
grey, (H, W, 3) colour."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from PIL import Image

# Mid-grey gaps keep the black backgrounds of neighbouring digits apart where white gaps would be too loud.
GRID_PAD_VALUE: float = 0.5


def tile(images: np.ndarray, padding: int = 0, pad_value: float = 1.0) -> np.ndarray:
    """Cells (rows, cols, h, w), RGB cells (rows, cols, h, w, 3), or one row of cells (n, h, w) or (n, h, w, 3)
    (display layout: a 4-D array ending in 3 is a row of colour cells) as one picture (H, W) or (H, W, 3), with
    `padding` px of `pad_value` between the cells.

    There is no frame around the picture: its edges are the outer cells' own, so an n×n grid stretched over a
    plot puts the cell centres on the grid nodes and is n·h + (n − 1)·padding px tall."""
    # imported here: torchvision takes seconds to import and pages that only encode a PNG do not need it
    from torchvision.utils import make_grid

    cells = torch.as_tensor(np.asarray(images))
    if cells.ndim == 3 or (cells.ndim == 4 and cells.shape[-1] == 3):
        cells = cells[None]
    rgb = cells.ndim == 5
    if cells.ndim not in (4, 5) or 0 in cells.shape[:2] or (rgb and cells.shape[-1] != 3):
        raise ValueError(f"expected (rows, cols, h, w[, 3]) or (n, h, w[, 3]) cells, got shape {tuple(cells.shape)}")
    if padding < 0:
        raise ValueError("padding must be >= 0")
    cols = cells.shape[1]
    cells = cells.flatten(0, 1)
    cells = cells.permute(0, 3, 1, 2) if rgb else cells[:, None]
    grid = make_grid(cells, nrow=cols, padding=padding, pad_value=pad_value)
    if len(cells) > 1:  # make_grid frames a grid with `padding` (but hands back a lone cell as it is)
        grid = grid[:, padding : grid.shape[1] - padding, padding : grid.shape[2] - padding]
    return (grid.permute(1, 2, 0) if rgb else grid[0]).numpy()


def rgb_cells(cells: np.ndarray) -> np.ndarray:
    """Cells of a grid, (rows, cols, h, w) grey or (rows, cols, h, w, 3) colour, as float colour cells in [0, 1]
    (uint8 scaled), so that they can be tinted whatever the images' channels."""
    a = np.asarray(cells)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.ndim == 4:
        return np.repeat(a[..., None], 3, axis=-1)
    if a.ndim == 5 and a.shape[-1] == 3:
        return a
    raise ValueError(f"expected (rows, cols, h, w[, 3]) cells, got shape {a.shape}")


HIDDEN_TINT = (0.2, 0.45, 0.95)  # blue: apart from any digit's grey and from the classifier's doubtful red


def tint(images: np.ndarray, where: np.ndarray, colour: tuple[float, float, float] = HIDDEN_TINT,
         strength: float = 0.6) -> np.ndarray:
    """Float images in display layout, grey (…, H, W) or colour (…, H, W, 3), as RGB with the pixels where `where`
    (…, H, W) is true blended toward `colour`: e.g. the patches a masked autoencoder was not shown, which are black
    like MNIST's background and would otherwise not be seen."""
    images, where = np.asarray(images, np.float32), np.asarray(where, bool)
    rgb = images if images.ndim == where.ndim + 1 else np.repeat(images[..., None], 3, axis=-1)
    return np.where(where[..., None], (1 - strength) * rgb + strength * np.float32(colour), rgb)


def to_png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode a float [0, 1] or uint8 image (2-D, or HxWx3/4) as PNG, nearest-neighbour upscaled."""
    pixels = _upscale(_to_uint8(image), scale)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def to_gif_bytes(
    frames: Sequence[np.ndarray],
    scale: int = 4,
    duration_ms: int = 100,
    loop: bool = True,
) -> bytes:
    """Encode frames (float [0, 1] or uint8, all the same shape) as an animated GIF.

    Pillow merges consecutive identical frames into one longer frame, so the
    decoded frame count can be lower than ``len(frames)`` for static runs.
    """
    if len(frames) == 0:
        raise ValueError("to_gif_bytes needs at least one frame")
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    arrays = [_upscale(_to_uint8(f), scale) for f in frames]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("all GIF frames must have the same shape")
    images = [Image.fromarray(a) for a in arrays]
    options: dict = {"save_all": True, "append_images": images[1:], "duration": int(duration_ms)}
    if loop:
        # loop=0 writes the NETSCAPE extension meaning "repeat forever";
        # leaving it out is how GIF says "play once".
        options["loop"] = 0
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", **options)
    return buf.getvalue()


def _to_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"expected a 2-D or HxWx3/4 image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64), nan=0.0)
        return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {a.dtype}")


def _upscale(a: np.ndarray, scale: int) -> np.ndarray:
    if int(scale) != scale or scale < 1:
        raise ValueError("scale must be a positive integer")
    scale = int(scale)
    if scale == 1:
        return a
    return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
