"""Generated image sets for the importer's tests (no colour dataset is available offline): tinted shapes and sevens in
class folders, every accepted format and colour mode, and the junk a user's folder or zip holds."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "seven", "square")
# The known image (square/known.png): 56×84, red bands of 14 rows above and below a 56×56 centre that is black in
# its top half and white in its bottom half. Cropping the centre leaves no red, and the halves stay black and white.
KNOWN = "square/known.png"


def shape(kind: str, size: tuple[int, int], tint: tuple[int, int, int], background: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    w, h = size
    box = (w * 0.2, h * 0.2, w * 0.8, h * 0.8)
    if kind == "circle":
        draw.ellipse(box, fill=tint)
    elif kind == "square":
        draw.rectangle(box, fill=tint)
    else:  # a hand-drawn-looking seven: a bar and a slanted stroke
        draw.line([(w * 0.25, h * 0.2), (w * 0.75, h * 0.2), (w * 0.4, h * 0.85)], fill=tint, width=max(2, w // 8))
    return img


def known_image() -> Image.Image:
    a = np.zeros((84, 56, 3), np.uint8)
    a[:14] = a[70:] = (255, 0, 0)
    a[42:70] = 255
    return Image.fromarray(a)


def make_colour_folder(root: Path, per_class: int = 6, seed: int = 0) -> dict[str, int]:
    """Valid images only: `per_class` tinted images per class (sizes 36..60 px, PNG/JPEG/WebP/BMP in turn) and the
    known image in `square/`. Returns the number of images per class."""
    rng = np.random.default_rng(seed)
    formats = ("png", "jpg", "webp", "bmp")
    counts = {}
    for kind in CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = tuple(int(v) for v in rng.integers(36, 61, 2))
            tint = tuple(int(v) for v in rng.integers(60, 256, 3))
            background = tuple(int(v) for v in rng.integers(0, 50, 3))
            shape(kind, size, tint, background).save(root / kind / f"{kind}_{i}.{formats[i % len(formats)]}")
        counts[kind] = per_class
    known_image().save(root / KNOWN)
    counts["square"] += 1
    return counts


def png_with_header_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims width × height: a decompression bomb, refused before decoding."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def encoded(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def add_junk(root: Path, outside: Path) -> dict[str, str]:
    """Junk mixed into a colour folder; returns {path inside the folder: the reason it must be skipped for}."""
    good = shape("circle", (40, 40), (0, 120, 255), (0, 0, 0))
    jpeg = encoded(good, "JPEG")
    (root / "circle" / "notes.txt").write_text("not an image")
    (root / "circle" / "empty.png").write_bytes(b"")
    (root / "square" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "square" / "bomb.png").write_bytes(png_with_header_size(100_000, 100_000))
    (root / "seven" / "dot.png").write_bytes(encoded(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"))
    (root / "seven" / "scan.tiff").write_bytes(encoded(good, "TIFF"))
    (root / "circle" / ".hidden.png").write_bytes(encoded(good, "PNG"))
    (root / "__MACOSX" / "circle").mkdir(parents=True)
    (root / "__MACOSX" / "circle" / "._circle_0.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "stray.png").write_bytes(encoded(good, "PNG"))
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes(encoded(good, "PNG"))
    os.symlink(outside, root / "circle" / "outside.png")
    os.symlink(outside.parent, root / "circle" / "elsewhere")
    os.mkfifo(root / "square" / "pipe.png")  # reading it would block forever
    return {
        "circle/notes.txt": "not an image",
        "circle/empty.png": "empty (0 bytes)",
        "square/truncated.jpg": "damaged or truncated",
        "square/bomb.png": "too many pixels",
        "seven/dot.png": "too small",
        "seven/scan.tiff": "format not accepted",
        "circle/.hidden.png": "hidden file",
        "__MACOSX/": "macOS metadata (__MACOSX)",
        ".git/": "hidden folder, not read",
        "stray.png": "not inside a class folder",
        "circle/outside.png": "symbolic link leading outside the folder, not followed",
        "circle/elsewhere": "symbolic link to a folder, not followed",
        "square/pipe.png": "not a regular file",
    }
