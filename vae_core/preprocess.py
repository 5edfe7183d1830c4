"""Turn arbitrary uploaded image files into model inputs the way the model's dataset was made.

Digit-like sets (the MNIST family) are 28x28 float images in [0, 1], a white
digit on a black background, the digit scaled so that its longer side fits a
20x20 box and placed so that its centre of mass sits at the centre of the
field. Uploads are nothing like that (phone photos of paper, scans,
transparent PNGs, 16-bit files...), so for those sets this module reproduces
the MNIST normalisation and keeps every intermediate step so the UI can show
the user what happened to their image. Any other set's images were only
centre-cropped to a square (or padded) and resized to its side, in its
colours (greyscale or RGB, alpha flattened on white), and so are uploads
(`square_image`, the importer's way).

Uploads are untrusted input: every decode happens behind size checks and every
Pillow failure is turned into an ``ImageRejected`` whose message can be shown
to the user as is.

Nothing here imports Streamlit so that the pipeline can be tested and reused
from the command line.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

__all__ = [
    "ALLOWED_FORMATS",
    "ImageRejected",
    "MAX_PIXELS",
    "MAX_UPLOAD_BYTES",
    "MNIST_SHAPE",
    "PreprocessResult",
    "preprocess_image",
    "preprocess_many",
    "square_image",
]

MAX_UPLOAD_BYTES: int = 10 * 1024 * 1024
MAX_PIXELS: int = 40_000_000

# MPO is what Pillow calls the JPEG variant many phone cameras write (a JPEG
# with an extra preview/depth frame appended); users think of it as JPEG.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP")
# What Image.open may try. MPO is not listed: Pillow has no separate MPO
# opener (the JPEG opener returns MPO files) and rejects unknown names here.
_OPEN_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_ALLOWED_TEXT = "PNG, JPEG, BMP, GIF and WebP"

MNIST_SHAPE = (1, 28, 28)
_SIZE = 28  # MNIST field; a digit-like set of another side scales the box and the centre below with it
_BOX = 20  # MNIST digits are scaled to fit this box inside the field
# Measured on MNIST itself (mean centre of mass over 5000 digits: 13.99,
# 14.00 with 0-based pixel indices), so inputs land where the model expects.
_COM_TARGET = 14.0

_DISPLAY_MAX_SIDE = 256
# The output is 20 px tall, so nothing above ~1k px can change the result;
# working on a bounded size keeps time and memory flat for 40 MP uploads.
_WORK_MAX_SIDE = 1024
# Below this (in 8-bit levels) the "content" is indistinguishable from sensor
# noise or JPEG artefacts, so the image is treated as blank.
_MIN_CONTRAST = 24.0
# Pixels fainter than this fraction of the content contrast count as
# background. The floor is raised to _NOISE_SIGMAS times the noise measured
# on the border, so paper texture and sensor noise in photos vanish while
# clean digital drawings (MNIST itself) keep their faint anti-aliased edges.
_MIN_FLOOR = 0.05
_MAX_FLOOR = 0.4
_NOISE_SIGMAS = 4.0
# Fraction of the content mass that may be cut from each side when finding
# the bounding box, so that an isolated speck far from the digit does not
# stretch the box (and shrink the digit).
_TRIM_FRACTION = 0.002
# MNIST strokes are ~2-3 px wide in the 20 px box; a thin pen line in a large
# photo would shrink to a faint sub-pixel line, so it is thickened first.
_MIN_STROKE_PX = 1.5
_TARGET_STROKE_PX = 2.0
_MAX_NAME_CHARS = 80
# The steps are shown as thumbnails of one height (or width): a 2000x20 upload or crop would be a 1 px
# line, so the displays are padded with grey to at most this aspect ratio.
_MAX_ASPECT = 3.0
# The "cropped" step gets a black margin and a grey frame, so white strokes that touch the crop's edge
# stay apart from a white page.
_CROP_MARGIN = 0.06  # of the longer side
_FRAME_PX = 2
_FRAME_VALUE = 128


class ImageRejected(ValueError):
    """An upload that cannot be used; ``str(exc)`` is a one-line user-facing reason."""


@dataclass
class PreprocessResult:
    name: str
    original: np.ndarray  # RGB or L uint8, EXIF-rotated, <= 256 px longer side, grey-padded to <= 3:1
    # uint8 HxW after grayscale (+inversion), same size as original; for a non-digit-like set the upload in the set's
    # colours (HxW or HxWx3), uninverted
    grayscale: np.ndarray
    inverted: bool
    cropped: np.ndarray  # uint8 crop of the content (white on black), padded and framed; else the square kept
    image: np.ndarray  # float32 in [0, 1], the model input in display layout: (S, S) grey, (S, S, 3) colour


class _Blank(Exception):
    pass


class _Noise(_Blank):
    """Nothing stands out, but not because the image is flat: it varies everywhere, like noise."""


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def preprocess_image(
    data: bytes, name: str = "image", image_shape: tuple[int, int, int] = MNIST_SHAPE, digit_like: bool = True,
    pad: bool = False,
) -> PreprocessResult:
    """Decode an uploaded file and normalise it as the model's dataset was made: images of `image_shape` (C, S, S),
    like MNIST's digits when `digit_like` (C must then be 1), else made square (cropped, or padded when `pad`) and
    resized as the importer made the set's images (see `square_image`).

    Raises ``ImageRejected`` with a message naming the file for anything that
    is not a usable still image.
    """
    c, h, w = image_shape
    if h != w or c not in (1, 3) or (digit_like and c != 1):
        raise ValueError(f"uploads are made into square greyscale or RGB images (digit-like ones greyscale), "
                         f"not {tuple(image_shape)}")
    label = _display_name(name)
    img = _open_checked(data, label)

    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001
        # A malformed EXIF block should not cost the user their upload; the
        # pixels are fine, only the orientation hint is lost.
        pass

    display_size = _fit_size(img.size, _DISPLAY_MAX_SIDE)
    if not digit_like:
        return _as_dataset_image(img, name, label, h, c, pad, display_size)
    work_size = _fit_size(img.size, _WORK_MAX_SIDE)
    noisy = False
    for gray, display in _gray_candidates(img, label, work_size, display_size):
        try:
            inverted_gray, inverted, cropped, image = _normalise(gray, h)
        except _Blank as why:
            noisy = noisy or isinstance(why, _Noise)
            continue
        return PreprocessResult(
            name=name,
            original=_pad_to_aspect(display, _FRAME_VALUE),
            grayscale=_pad_to_aspect(_shrink(inverted_gray, display_size), _FRAME_VALUE),
            inverted=inverted,
            cropped=_framed_crop(cropped),
            image=image,
        )
    if noisy:
        raise ImageRejected(
            f"'{label}' looks like noise: no single digit or drawing stands out from the speckle."
        )
    raise ImageRejected(f"'{label}' looks blank: no digit or drawing could be found in it.")


def preprocess_many(
    files: Iterable[tuple[str, bytes]], image_shape: tuple[int, int, int] = MNIST_SHAPE, digit_like: bool = True,
    pad: bool = False,
) -> tuple[list[PreprocessResult], list[str]]:
    """Preprocess several uploads (as `preprocess_image`); returns (results, error messages), both in input order."""
    results: list[PreprocessResult] = []
    errors: list[str] = []
    for name, data in files:
        try:
            results.append(preprocess_image(data, name, image_shape, digit_like, pad))
        except ImageRejected as exc:
            errors.append(str(exc))
        except Exception as exc:  # noqa: BLE001
            # One pathological file must never take the whole batch down;
            # the user still gets a reason they can act on.
            errors.append(
                f"'{_display_name(name)}' could not be processed ({type(exc).__name__})."
            )
    return results, errors


def square_image(img: Image.Image, side: int, channels: int, pad: bool = False) -> np.ndarray:
    """A decoded, upright image as an imported set of `side` px and `channels` (1 or 3) holds its images: uint8
    (side, side) or (side, side, 3). 16-bit and float pixels are mapped onto 0..255; a non-square image is cut to its
    centre square, or with `pad` fitted inside one whose margins take the mean colour of its border (a photo on
    white paper pads white, a light drawing on black pads black); Lanczos resampling to the side; transparency is
    flattened on white after resizing (Pillow resizes RGBA premultiplied, so invisible pixels do not bleed into the
    edges). ValueError or OSError for a colour mode Pillow cannot convert."""
    if _is_high_depth(img.mode):
        img = Image.fromarray(_high_depth_to_uint8(np.asarray(img), img.mode))
    transparent = img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    img = img.convert("RGBA" if transparent else "L" if channels == 1 else "RGB")
    w, h = img.size
    if not pad:
        n = min(w, h)
        left, top = (w - n) // 2, (h - n) // 2
        # Cropped first: resize(box=...) would let its filter reach the pixels beyond the box.
        out = img.crop((left, top, left + n, top + n)).resize((side, side), Image.Resampling.LANCZOS,
                                                               reducing_gap=3.0)
    else:
        fitted = ImageOps.contain(img, (side, side), Image.Resampling.LANCZOS)
        a = np.asarray(fitted)
        border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).mean(axis=0)
        out = Image.new(img.mode, (side, side), tuple(np.rint(np.atleast_1d(border)).astype(int).tolist()))
        out.paste(fitted, ((side - fitted.width) // 2, (side - fitted.height) // 2))
    if out.mode == "RGBA":
        out = Image.alpha_composite(Image.new("RGBA", out.size, (255, 255, 255, 255)), out)
    return np.asarray(out.convert("L" if channels == 1 else "RGB"))


def _as_dataset_image(img: Image.Image, name: str, label: str, side: int, channels: int, pad: bool,
                      display_size: tuple[int, int]) -> PreprocessResult:
    """The steps of a non-digit-like set's upload: the original, the image in the set's colours, the square it
    keeps (shown in `cropped`, at up to the display size), and the model input."""
    try:
        if _is_high_depth(img.mode):
            img = Image.fromarray(_high_depth_to_uint8(np.asarray(img), img.mode))
        # Shrunk once to the work size, inside Pillow (RGBA, so "P" and "1" images are resampled, not picked from):
        # nothing larger changes a result of at most 256 px, and a 40 MP upload is never copied around.
        work = _fit(img.convert("RGBA"), _fit_size(img.size, _WORK_MAX_SIDE))
    except (ValueError, OSError):
        raise ImageRejected(f"'{label}' uses an unsupported colour mode ({img.mode}).") from None
    image = square_image(work, side, channels, pad)
    kept = square_image(work, min(_DISPLAY_MAX_SIDE, max(work.size)), channels, pad)
    shown = _fit(work, display_size)
    flat = Image.alpha_composite(Image.new("RGBA", shown.size, (255, 255, 255, 255)), shown).convert("RGB")
    return PreprocessResult(
        name=name,
        original=_pad_to_aspect(np.asarray(flat), _FRAME_VALUE),
        grayscale=_pad_to_aspect(np.asarray(flat.convert("L")) if channels == 1 else np.asarray(flat), _FRAME_VALUE),
        inverted=False,
        cropped=kept,
        image=image.astype(np.float32) / 255.0,
    )


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------


def _display_name(name: str) -> str:
    # Messages must stay one line and readable whatever the browser sent.
    clean = re.sub(r"[\x00-\x1f\x7f]+", " ", str(name or "")).strip() or "image"
    if len(clean) > _MAX_NAME_CHARS:
        clean = clean[: _MAX_NAME_CHARS - 1] + "\u2026"
    return clean


_ALLOWED_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF87a", b"GIF89a")
_OTHER_MAGIC = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)


def _sniff_format(data: bytes) -> tuple[bool, str | None]:
    """(looks like an accepted format, name of a known but refused format).

    Used only to word the error message: unsupported formats are never handed
    to Pillow, so their (sometimes complex) parsers are not an attack surface.
    """
    head = data[:512]
    if head.startswith(_ALLOWED_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return True, None
    for magic, fmt in _OTHER_MAGIC:
        if head.startswith(magic):
            return False, fmt
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return False, "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1"):
            return False, "HEIC/HEIF"
    lowered = head.lstrip().lower()
    if lowered.startswith(b"<svg") or (lowered.startswith(b"<?xml") and b"<svg" in lowered):
        return False, "SVG"
    return False, None


def _open_checked(data: bytes, label: str) -> Image.Image:
    """Open, validate and fully decode an upload, or raise ImageRejected."""
    size = len(data)
    if size == 0:
        raise ImageRejected(f"'{label}' is empty (0 bytes).")
    if size > MAX_UPLOAD_BYTES:
        raise ImageRejected(
            f"'{label}' is {size:,} bytes ({size / 1024 / 1024:.2f} MB); the upload limit is "
            f"{MAX_UPLOAD_BYTES / 1024 / 1024:g} MB ({MAX_UPLOAD_BYTES:,} bytes)."
        )

    too_big = (
        f"'{label}' has too many pixels to be processed safely "
        f"(limit {MAX_PIXELS / 1e6:g} megapixels)."
    )
    damaged = f"'{label}' is damaged or truncated and could not be decoded."

    # Scoped, not global: Pillow only *warns* between MAX_IMAGE_PIXELS and
    # twice that, and a warning would let a bomb through. (catch_warnings is
    # process-wide state; the explicit MAX_PIXELS check below is the real
    # guard, this only covers Pillow's own check inside Image.open.)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=list(_OPEN_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(too_big) from None
        except UnidentifiedImageError:
            allowed_magic, other = _sniff_format(data)
            if allowed_magic:
                raise ImageRejected(damaged) from None
            if other:
                raise ImageRejected(
                    f"'{label}' is a {other} image; only {_ALLOWED_TEXT} are accepted."
                ) from None
            raise ImageRejected(
                f"'{label}' is not a recognised image file (expected {_ALLOWED_TEXT})."
            ) from None
        except Exception:  # noqa: BLE001
            # Plugins raise a zoo of types (OSError, SyntaxError, struct.error,
            # ValueError...) on malformed headers.
            raise ImageRejected(damaged) from None

        try:
            if img.format not in ALLOWED_FORMATS:
                raise ImageRejected(
                    f"'{label}' is a {img.format} image; only {_ALLOWED_TEXT} are accepted."
                )
            width, height = img.size
            # Header-only dimensions, checked before a single pixel is decoded.
            if width * height > MAX_PIXELS:
                raise ImageRejected(
                    f"'{label}' is {width}x{height} pixels, too large to process safely "
                    f"(limit {MAX_PIXELS / 1e6:g} megapixels)."
                )
            if width == 0 or height == 0:
                raise ImageRejected(damaged)
            try:
                frames = int(getattr(img, "n_frames", 1))
            except Exception:  # noqa: BLE001
                raise ImageRejected(damaged) from None
            if frames > 1 and img.format != "MPO":
                raise ImageRejected(
                    f"'{label}' is animated ({frames} frames); only still images are accepted."
                )
            if img.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2..1/8 scale when the photo is far
                # larger than anything the pipeline keeps.
                img.draft(None, (_WORK_MAX_SIDE, _WORK_MAX_SIDE))
            try:
                # Pillow decodes lazily; forcing it here is what surfaces
                # truncated/corrupt data ("image file is truncated", "broken
                # PNG file", ...) while we can still blame the file.
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageRejected(too_big) from None
            except Exception:  # noqa: BLE001
                raise ImageRejected(damaged) from None
        except ImageRejected:
            img.close()
            raise
    return img


# --------------------------------------------------------------------------
# Colour handling
# --------------------------------------------------------------------------

_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}


def _is_high_depth(mode: str) -> bool:
    return mode in ("I", "F") or mode.startswith("I;16")


def _gray_candidates(
    img: Image.Image, label: str, work_size: tuple[int, int], display_size: tuple[int, int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grayscale readings of the image to try in order: (gray at work size, display original).

    Transparent images have two plausible readings: dark strokes on a
    transparent sheet (composite over white, the common case) and light
    strokes on a transparent sheet (composite over black). The second is only
    tried when the first finds nothing.

    Everything is shrunk inside Pillow before it becomes a numpy array, so a
    40 MP upload is never copied around at full resolution.
    """
    mode = img.mode
    grayish = mode in _GRAY_MODES or mode.startswith("I;16")

    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        "transparency" in img.info and not _is_high_depth(mode)
    )
    if has_alpha:
        # Pillow resizes RGBA premultiplied, so shrinking before compositing
        # does not bleed the colour of invisible pixels into the edges.
        rgba = _fit(img.convert("RGBA"), work_size)
        if rgba.getchannel("A").getextrema()[0] < 255:
            candidates = []
            for level in (255, 0):
                backdrop = Image.new("RGBA", rgba.size, (level, level, level, 255))
                flat = Image.alpha_composite(backdrop, rgba).convert("L" if grayish else "RGB")
                candidates.append(_work_and_display(flat, work_size, display_size))
            return candidates
        img = rgba.convert("L" if grayish else "RGB")
        mode = img.mode

    if _is_high_depth(mode):
        img = Image.fromarray(_high_depth_to_uint8(np.asarray(img), mode))
    elif mode in ("1", "L"):
        img = img.convert("L")
    else:
        try:
            img = img.convert("RGB")
        except (ValueError, OSError):
            raise ImageRejected(f"'{label}' uses an unsupported colour mode ({mode}).") from None
    return [_work_and_display(img, work_size, display_size)]


def _work_and_display(
    img: Image.Image, work_size: tuple[int, int], display_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    work = _fit(img, work_size)
    gray = work if work.mode == "L" else work.convert("L")
    return np.asarray(gray), np.asarray(_fit(work, display_size))


def _high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Map 16/32-bit or float pixels onto 0..255.

    Pillow's own convert("L") clips these modes at 255, which turns a
    typical 16-bit image into a saturated white rectangle.
    """
    a = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(a.min()), float(a.max())
    if mode.startswith("I;16"):
        scaled = a / 257.0
    elif mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = a * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = a
    elif mode == "I" and lo >= 0.0 and hi <= 65535.0:
        # Pillow versions before I;16 support opened 16-bit PNGs as "I".
        scaled = a / 257.0
    else:
        scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------


def _fit_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    if max(w, h) <= max_side:
        return w, h
    s = max_side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    if img.size == size:
        return img
    # reducing_gap: box-reduce first, then Lanczos; visually identical and
    # much faster on multi-megapixel photos.
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _shrink(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (arr.shape[1], arr.shape[0]) == size:
        return np.ascontiguousarray(arr)
    return np.asarray(_fit(Image.fromarray(arr), size))


def _fit_border_plane(g: np.ndarray) -> tuple[np.ndarray, float]:
    """Background estimate: a plane fitted to the border pixels, and the noise around it.

    Photos of paper are rarely evenly lit; removing a linear shading gradient
    keeps one side of the sheet from being mistaken for content. The fit is
    repeated without outliers so that a digit touching the edge does not drag
    the plane up.
    """
    h, w = g.shape
    if h < 3 or w < 3:
        return np.full_like(g, float(np.median(g))), 0.0
    ys = np.concatenate([np.zeros(w), np.full(w, h - 1), np.arange(1, h - 1), np.arange(1, h - 1)])
    xs = np.concatenate([np.arange(w), np.arange(w), np.zeros(h - 2), np.full(h - 2, w - 1)])
    vals = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]]).astype(np.float64)
    design = np.stack([np.ones_like(xs), xs / w, ys / h], axis=1)
    keep = np.ones(vals.shape, dtype=bool)
    sigma = 0.0
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(design[keep], vals[keep], rcond=None)
        resid = vals - design @ coef
        # MAD scaled to a Gaussian sigma: robust to content on the border.
        sigma = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        new_keep = np.abs(resid) <= 3.0 * sigma + 2.0
        if new_keep.sum() < 0.25 * vals.size or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    yy = (np.arange(h, dtype=np.float32) / h)[:, None]
    xx = (np.arange(w, dtype=np.float32) / w)[None, :]
    return (coef[0] + coef[1] * xx + coef[2] * yy).astype(np.float32), sigma


def _content_bounds(profile: np.ndarray) -> tuple[int, int]:
    """Index range holding all but _TRIM_FRACTION of the mass at each end."""
    nonzero = np.flatnonzero(profile)
    if nonzero.size == 0:
        return 0, profile.size
    cum = np.cumsum(profile, dtype=np.float64)
    total = cum[-1]
    lo = int(np.searchsorted(cum, total * _TRIM_FRACTION, side="right"))
    hi = int(np.searchsorted(cum, total * (1.0 - _TRIM_FRACTION), side="left")) + 1
    lo = min(lo, int(nonzero[-1]))
    return lo, max(hi, lo + 1)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width estimated as 2 * area / boundary length."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    # A pixel on the image's edge counts as boundary (border_value=0).
    boundary = area - int(ndimage.binary_erosion(mask).sum())
    return 2.0 * area / max(boundary, 1)


# --------------------------------------------------------------------------
# MNIST normalisation
# --------------------------------------------------------------------------


def _normalise(gray: np.ndarray, side: int = _SIZE) -> tuple[np.ndarray, bool, np.ndarray, np.ndarray]:
    """gray uint8 -> (gray after inversion, inverted, float content crop, side x side float32)."""
    box, com = _BOX * side / _SIZE, _COM_TARGET * side / _SIZE
    g = gray.astype(np.float32)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    background = float(np.median(border))

    # The content is whatever departs most from the background. Percentiles
    # (not min/max) keep a few noisy pixels from deciding; when the content
    # is too small to move them, fall back to "light background => invert".
    lo, hi = np.percentile(g, [0.5, 99.5])
    darker, lighter = background - lo, hi - background
    if abs(darker - lighter) > _MIN_CONTRAST:
        inverted = bool(darker > lighter)
    else:
        inverted = background >= 128.0
    if inverted:
        g = 255.0 - g
    inverted_gray = np.clip(np.rint(g), 0, 255).astype(np.uint8)

    plane, sigma = _fit_border_plane(g)
    flat = g - plane
    contrast = float(flat.max())
    # Blank test on a 3x3 average: in a photo of empty paper the brightest
    # noise pixel easily reaches 5 sigma, but real strokes survive averaging
    # while noise does not.
    if ndimage.uniform_filter(flat, 3, mode="nearest").max() < max(_MIN_CONTRAST, _NOISE_SIGMAS * sigma):
        raise _Noise if sigma > _MIN_CONTRAST else _Blank
    floor = min(max(_MIN_FLOOR, _NOISE_SIGMAS * sigma / contrast), _MAX_FLOOR)
    level = np.clip((flat / contrast - floor) / (1.0 - floor), 0.0, 1.0)

    r0, r1 = _content_bounds(level.sum(axis=1))
    c0, c1 = _content_bounds(level.sum(axis=0))
    crop = level[r0:r1, c0:c1]
    if not crop.any():
        raise _Blank

    # Thicken strokes that would end up thinner than MNIST's. Solving
    # (width + 2r) * BOX / (long + 2r) = TARGET for the dilation radius r
    # accounts for the padding the dilation itself adds.
    ch, cw = crop.shape
    long_side = max(ch, cw)
    width = _stroke_width(crop > 0.5)
    thick = crop
    if width > 0 and width * box / long_side < _MIN_STROKE_PX:
        radius = math.ceil(
            (_TARGET_STROKE_PX * long_side - box * width) / (2 * box - 2 * _TARGET_STROKE_PX)
        )
        if radius > 0:
            thick = ndimage.maximum_filter(np.pad(crop, radius), 2 * radius + 1, mode="constant")

    th, tw = thick.shape
    scale = box / max(th, tw)
    nh, nw = max(1, round(th * scale)), max(1, round(tw * scale))
    small = Image.fromarray(np.ascontiguousarray(thick, dtype=np.float32)).resize(
        (nw, nh), Image.Resampling.LANCZOS
    )
    small = np.clip(np.asarray(small, dtype=np.float32), 0.0, 1.0)
    mass = float(small.sum())
    if mass <= 0.0:
        raise _Blank

    # MNIST: put the box in the field, then translate so the centre of mass
    # is at the centre. Whole-pixel shifts keep the strokes as sharp as the
    # originals; clamping keeps a lopsided digit (a "7") from being cut off.
    cy, cx = ndimage.center_of_mass(small)
    top = int(np.clip(math.floor(com - cy + 0.5), 0, side - nh))
    left = int(np.clip(math.floor(com - cx + 0.5), 0, side - nw))
    image = np.zeros((side, side), dtype=np.float32)
    image[top : top + nh, left : left + nw] = small
    image /= image.max()
    return inverted_gray, inverted, crop, image


def _pad_to_aspect(a: np.ndarray, fill: int) -> np.ndarray:
    """``a`` centred on a ``fill`` canvas whose longer side is at most _MAX_ASPECT times the shorter."""
    h, w = a.shape[:2]
    height, width = max(h, math.ceil(w / _MAX_ASPECT)), max(w, math.ceil(h / _MAX_ASPECT))
    if (height, width) == (h, w):
        return np.ascontiguousarray(a)
    out = np.full((height, width, *a.shape[2:]), fill, a.dtype)
    top, left = (height - h) // 2, (width - w) // 2
    out[top : top + h, left : left + w] = a
    return out


def _framed_crop(crop: np.ndarray) -> np.ndarray:
    """The float content crop as the uint8 picture of the "cropped" step: a black margin and a grey
    frame around it, padded to a readable aspect ratio, at most _DISPLAY_MAX_SIDE px."""
    h, w = crop.shape
    inner_max = int((_DISPLAY_MAX_SIDE - 2 * _FRAME_PX) / (1 + 2 * _CROP_MARGIN))
    small = _shrink(np.rint(np.clip(crop, 0.0, 1.0) * 255.0).astype(np.uint8), _fit_size((w, h), inner_max))
    margin = max(1, int(_CROP_MARGIN * max(small.shape)))
    padded = _pad_to_aspect(np.pad(small, margin), 0)
    return np.pad(padded, _FRAME_PX, constant_values=_FRAME_VALUE)
