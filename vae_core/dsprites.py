"""dSprites (Matthey et al. 2017, github.com/deepmind/dsprites-dataset) generated in the process: 737,280 binary
64×64 images of a square, an ellipse or a heart at every combination of 6 scales, 40 orientations and 32 × 32
positions, in the published file's order (posY varies fastest, then posX, orientation, scale, shape).

The published images were drawn as vectors with Love2D on a canvas of side 1 and rasterised at 64×64; nothing but the
images and their factor values was published. This renderer tests each pixel centre against the shape, inverse-
transformed into the sprite's frame. Its constants were read off the 320 published frames of the repository's
dsprites.gif (heart, ellipse and square traversals): the sprite's centre is at 0.25 + 0.5·pos of the canvas, a square
of scale 1 is 0.3 wide, an ellipse 0.4 × 0.225, the heart the classic parametric curve (x = 16 sin³t, y = 13 cos t −
5 cos 2t − 2 cos 3t − cos 4t) fitted into a 0.3 × 0.3 box and turning about its point (0, −2.17); orientation turns
the sprite counter-clockwise on screen. Against those frames the
rendered images agree to an intersection over union of 1.000 (square), 0.995 (ellipse) and 0.997 (heart): a
pixel of the outline differs here and there (the published rasteriser's own rules and its polygon for the heart).

The 32×32 variant averages each 2×2 block of the 64×64 image (grey levels 0, 64, 128, 191, 255): rendering at 32
directly would make neighbouring positions (1.03 px apart at 64, half that at 32) draw the same pixels, hiding part of
the position factors from the data.

The full grid is cached as packed bits (`np.packbits`, 377 MB) under $VAE_DATASETS_DIR/.cache/ (default
<repo>/datasets/.cache/), written atomically on first use and checked against fresh renders when read.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
SHAPES = ("square", "ellipse", "heart")
FACTOR_SIZES = (3, 6, 40, 32, 32)
# The published latents_values: shape is stored as 1, 2, 3; orientation is np.linspace(0, 2π, 40) with both ends
# included, so orientations 0 and 39 draw the same image (as in the published file).
FACTOR_VALUES = (
    np.array([1.0, 2.0, 3.0]),
    np.linspace(0.5, 1.0, 6),
    np.linspace(0.0, 2 * np.pi, 40),
    np.linspace(0.0, 1.0, 32),
    np.linspace(0.0, 1.0, 32),
)
N_IMAGES = int(np.prod(FACTOR_SIZES))  # 737,280
SIDE = 64
SIDES = (64, 32)
DATASETS_DIR_ENV = "VAE_DATASETS_DIR"
DEFAULT_TEST_SIZE = 10_000

# Sprite geometry in canvas units (the canvas is 1 wide) at scale 1, read off the published frames (module docstring).
POSITION_OFFSET, POSITION_RANGE = 0.25, 0.5
SQUARE_HALF_SIDE = 0.15
ELLIPSE_SEMI_AXES = (0.2, 0.1125)
HEART_BOX = 0.3
HEART_PIVOT_Y = -2.17  # in the curve's own units (y up): the point of the curve the heart turns about


def _heart(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The classic parametric heart, y up: its tip at (0, −17), its lobes up to y = 11.92, 32 wide."""
    return 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)


# Each half's outline is two arcs monotonic in x (np.interp needs x increasing): from the notch out to the widest
# point, and from the tip up to it.
_HEART_UPPER_X, _HEART_UPPER_Y = _heart(np.linspace(0.0, np.pi / 2, 4097))
_HEART_LOWER_X, _HEART_LOWER_Y = _heart(np.linspace(np.pi, np.pi / 2, 4097))
_HEART_Y_SPAN = _HEART_UPPER_Y.max() - _HEART_LOWER_Y.min()  # 28.92
# The farthest any sprite reaches from its centre at scale 1, so each is drawn inside a window of its own size.
_REACH = (
    SQUARE_HALF_SIDE * np.sqrt(2),
    ELLIPSE_SEMI_AXES[0],
    float(np.hypot(np.r_[_HEART_UPPER_X, _HEART_LOWER_X] * HEART_BOX / 32,
                   (np.r_[_HEART_UPPER_Y, _HEART_LOWER_Y] - HEART_PIVOT_Y) * HEART_BOX / _HEART_Y_SPAN).max()),
)
# Part of the cache file's name: a change to the geometry above can never be served an old cache.
RENDER_TAG = hashlib.sha256(repr((POSITION_OFFSET, POSITION_RANGE, SQUARE_HALF_SIDE, ELLIPSE_SEMI_AXES, HEART_BOX,
                                  HEART_PIVOT_Y, SIDE, [v.tolist() for v in FACTOR_VALUES])).encode()).hexdigest()[:12]
_STALE_TEMP_SECONDS = 3600  # a generation takes minutes: an older temp file is a killed one's


# --- the factor grid -------------------------------------------------------------------------------------------------

def to_flat(factor_indices: np.ndarray) -> np.ndarray:
    """Factor indices (N, 5) -> positions (N,) in the published order."""
    return np.ravel_multi_index(tuple(np.asarray(factor_indices).T), FACTOR_SIZES)


def from_flat(flat: np.ndarray) -> np.ndarray:
    """Positions (N,) in the published order -> factor indices (N, 5), int64."""
    return np.stack(np.unravel_index(np.asarray(flat), FACTOR_SIZES), axis=1).astype(np.int64)


def factor_values(factor_indices: np.ndarray) -> np.ndarray:
    """Factor indices (N, 5) -> the published factor values (N, 5), float64."""
    idx = np.asarray(factor_indices)
    return np.stack([FACTOR_VALUES[k][idx[:, k]] for k in range(len(FACTOR_SIZES))], axis=1)


def factor_indices(values: np.ndarray) -> np.ndarray:
    """Factor values (N, 5) -> indices (N, 5) of the nearest grid value; ValueError for a value off the grid."""
    vals = np.asarray(values, dtype=np.float64)
    cols = []
    for k, grid in enumerate(FACTOR_VALUES):
        idx = np.abs(vals[:, k, None] - grid[None]).argmin(axis=1)
        if np.any(np.abs(grid[idx] - vals[:, k]) > 1e-6):
            raise ValueError(f"{FACTOR_NAMES[k]} values off the dSprites grid")
        cols.append(idx)
    return np.stack(cols, axis=1)


def _fixed_position(name: str) -> int:
    if name not in FACTOR_NAMES:
        raise ValueError(f"unknown dSprites factor {name!r}; choose from {', '.join(FACTOR_NAMES)}")
    return FACTOR_NAMES.index(name)


# --- rendering -------------------------------------------------------------------------------------------------------

def _inside(shape: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x right, y down, canvas units at scale 1, the sprite's own frame) are in the shape."""
    if shape == 0:
        return (np.abs(x) <= SQUARE_HALF_SIDE) & (np.abs(y) <= SQUARE_HALF_SIDE)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (x / a) ** 2 + (y / b) ** 2 <= 1.0
    # The heart is symmetric: inside is between the two arcs of a half's outline.
    cx = np.abs(x) * (32 / HEART_BOX)
    cy = HEART_PIVOT_Y - y * (_HEART_Y_SPAN / HEART_BOX)  # the curve's y points up, the image's down
    return ((cx <= 16) & (cy <= np.interp(cx, _HEART_UPPER_X, _HEART_UPPER_Y))
            & (cy >= np.interp(cx, _HEART_LOWER_X, _HEART_LOWER_Y)))


def render_values(values: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Factor values (N, 5) — shape 1, 2 or 3 and any scale, orientation (radians) and position — -> uint8 images
    (N, 1, side, side), 0 or 255 at 64 (2×2 averages of those at 32). Off-grid values are allowed (tests, pictures)."""
    if side not in SIDES:
        raise ValueError(f"dSprites images are {' or '.join(map(str, SIDES))} pixels wide, not {side}")
    vals = np.asarray(values, dtype=np.float64).reshape(-1, len(FACTOR_SIZES))
    if not np.isfinite(vals).all() or np.any(vals[:, 1] <= 0):
        raise ValueError("factor values must be finite numbers with a positive scale")
    out = np.zeros((len(vals), SIDE, SIDE), dtype=bool)
    shapes = np.rint(vals[:, 0]).astype(int) - 1
    if np.any((shapes < 0) | (shapes > 2)):
        raise ValueError("shape values are 1 (square), 2 (ellipse) or 3 (heart)")
    # Sprites of one shape and scale share a window size: each is drawn in a window around its centre, not the canvas.
    groups = shapes * 1000 + np.rint(vals[:, 1] * 500).astype(int)
    for key in np.unique(groups):
        rows = np.flatnonzero(groups == key)
        shape, scale = int(shapes[rows[0]]), float(vals[rows[0], 1])
        half = int(np.ceil(_REACH[shape] * scale * SIDE)) + 1
        width = min(2 * half + 2, SIDE)
        for start in range(0, len(rows), 4096):
            part = rows[start : start + 4096]
            out[part] = _draw(shape, vals[part], width, half)
    return (_halve(out) if side == 32 else out.view(np.uint8) * np.uint8(255))[:, None]


def _draw(shape: int, vals: np.ndarray, width: int, half: int) -> np.ndarray:
    """Sprites of one shape (and window width) -> their (n, 64, 64) bool canvases."""
    n = len(vals)
    scale, theta = vals[:, 1, None, None], vals[:, 2, None, None]
    centre_x = (POSITION_OFFSET + POSITION_RANGE * vals[:, 3]) * SIDE  # pixels; pixel j covers [j, j + 1)
    centre_y = (POSITION_OFFSET + POSITION_RANGE * vals[:, 4]) * SIDE
    col0 = np.clip(np.floor(centre_x).astype(int) - half, 0, SIDE - width)
    row0 = np.clip(np.floor(centre_y).astype(int) - half, 0, SIDE - width)
    steps = np.arange(width)
    dx = ((col0[:, None] + steps + 0.5) - centre_x[:, None])[:, None, :] / (SIDE * scale)  # (n, 1, w)
    dy = ((row0[:, None] + steps + 0.5) - centre_y[:, None])[:, :, None] / (SIDE * scale)  # (n, w, 1)
    cos, sin = np.cos(theta), np.sin(theta)
    # The sprite turned by θ counter-clockwise on screen: a pixel's offset turned back by θ is in the sprite's frame.
    window = _inside(shape, cos * dx - sin * dy, sin * dx + cos * dy)
    canvas = np.zeros((n, SIDE, SIDE), dtype=bool)
    canvas[np.arange(n)[:, None, None], (row0[:, None] + steps)[:, :, None], (col0[:, None] + steps)[:, None, :]] = window
    return canvas


def _halve(pixels: np.ndarray) -> np.ndarray:
    """bool (N, 64, 64) -> uint8 (N, 32, 32): the rounded mean of each 2×2 block in 0..255 (0, 64, 128, 191, 255)."""
    p = pixels.view(np.uint8)
    counts = p[:, 0::2, 0::2] + p[:, 0::2, 1::2] + p[:, 1::2, 0::2] + p[:, 1::2, 1::2]
    return _GREY[counts]


_GREY = np.array([(k * 255 + 2) // 4 for k in range(5)], dtype=np.uint8)


def render(factor_indices: np.ndarray, side: int = SIDE) -> np.ndarray:
    """Factor indices (N, 5) on the grid -> uint8 images (N, 1, side, side)."""
    idx = np.asarray(factor_indices).reshape(-1, len(FACTOR_SIZES))
    if np.any(idx < 0) or np.any(idx >= np.array(FACTOR_SIZES)):
        raise ValueError(f"factor indices must lie in [0, {FACTOR_SIZES}) per column")
    return render_values(factor_values(idx), side)


def sample(n: int, fixed: dict[str, int] | None = None, seed: int = 0,
           side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """`n` images with the factors in `fixed` (name -> index, e.g. {"shape": 1}) held and every other factor drawn
    uniformly, seeded: (uint8 images (n, 1, side, side), factor indices (n, 5))."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, FACTOR_SIZES, size=(n, len(FACTOR_SIZES)))
    for name, value in (fixed or {}).items():
        k = _fixed_position(name)
        if not 0 <= value < FACTOR_SIZES[k]:
            raise ValueError(f"{name} index must lie in [0, {FACTOR_SIZES[k]}), got {value}")
        idx[:, k] = value
    return render(idx, side), idx


# --- the cached full grid and the trainable split ----------------------------------------------------------------------

def cache_dir() -> Path:
    """$VAE_DATASETS_DIR/.cache, else <repo>/datasets/.cache (git-ignored)."""
    root = os.environ.get(DATASETS_DIR_ENV) or Path(__file__).resolve().parent.parent / "datasets"
    return Path(root).expanduser() / ".cache"


def cache_path() -> Path:
    return cache_dir() / f"dsprites64-{RENDER_TAG}.npy"


def full_grid(check: int = 16) -> np.ndarray:
    """Every image of the grid at 64×64 as packed bits, uint8 (737,280, 512), memory-mapped from the cache; made and
    written atomically on first use. `check` seeded rows are compared with fresh renders, so a damaged or foreign
    file is made again rather than served."""
    path = cache_path()
    if path.is_file():
        try:
            bits = np.load(path, mmap_mode="r")
            if bits.shape == (N_IMAGES, SIDE * SIDE // 8) and bits.dtype == np.uint8 and _matches(bits, check):
                return bits
        except (OSError, ValueError):  # truncated or not a .npy file: made again below
            pass
    _write_grid(path)
    return np.load(path, mmap_mode="r")


def _matches(bits: np.ndarray, check: int) -> bool:
    rows = np.sort(np.random.default_rng(0).choice(N_IMAGES, size=check, replace=False))
    return bool(np.array_equal(np.asarray(bits[rows]), _packed(from_flat(rows))))


def _packed(factor_idx: np.ndarray) -> np.ndarray:
    return np.packbits(render(factor_idx)[:, 0] > 0, axis=None).reshape(len(factor_idx), -1)


def _write_grid(path: Path, chunk: int = 8192) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in path.parent.glob(".dsprites64-*.tmp"):
        if now - old.stat().st_mtime > _STALE_TEMP_SECONDS:
            old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(N_IMAGES, SIDE * SIDE // 8))
        for start in range(0, N_IMAGES, chunk):
            rows = np.arange(start, min(start + chunk, N_IMAGES))
            out[rows] = _packed(from_flat(rows))
        out.flush()
        del out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; the cache is readable like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def images_at(flat: np.ndarray, side: int = SIDE, chunk: int = 16384) -> np.ndarray:
    """The grid's images at positions `flat` (published order) from the cache: uint8 (N, 1, side, side)."""
    bits = full_grid()
    flat = np.asarray(flat)
    out = np.empty((len(flat), 1, side, side), dtype=np.uint8)
    order = np.argsort(flat, kind="stable")  # reading the memory map in file order
    for start in range(0, len(flat), chunk):
        part = order[start : start + chunk]
        pixels = np.unpackbits(bits[flat[part]], axis=1).reshape(len(part), SIDE, SIDE).view(bool)
        out[part, 0] = _halve(pixels) if side == 32 else pixels.view(np.uint8) * np.uint8(255)
    return out


@dataclass(frozen=True)
class Split:
    """A seeded train/test split of the grid: images uint8 (N, 1, side, side) and their factor indices (N, 5)."""

    train_images: np.ndarray
    train_factors: np.ndarray
    test_images: np.ndarray
    test_factors: np.ndarray


def split(side: int = SIDE, train_size: int | None = None, test_size: int = DEFAULT_TEST_SIZE,
          seed: int = 0) -> Split:
    """A seeded permutation of the grid: its first `test_size` images are the test set, the next `train_size` (all the
    rest when None; 0 for the test set alone) the training set. The whole grid is 2.9 GB as uint8 at 64×64 and 0.74 GB
    at 32×32 (35 s to unpack from the cache here, 1.3 GB at its peak): pass a smaller `train_size` where memory is
    short; a random third of the grid still has a near neighbour of every image (positions are a pixel apart)."""
    if not 0 < test_size < N_IMAGES:
        raise ValueError(f"test size must lie in (0, {N_IMAGES}), got {test_size}")
    rest = N_IMAGES - test_size
    train_size = rest if train_size is None else train_size
    if not 0 <= train_size <= rest:
        raise ValueError(f"train size must lie in [0, {rest}], got {train_size}")
    perm = np.random.default_rng(seed).permutation(N_IMAGES)
    test, train = perm[:test_size], perm[test_size : test_size + train_size]
    return Split(train_images=images_at(train, side), train_factors=from_flat(train),
                 test_images=images_at(test, side), test_factors=from_flat(test))
