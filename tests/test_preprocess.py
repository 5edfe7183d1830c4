"""Tests for vae_core.preprocess: safe decoding and MNIST-style normalisation.

Every fixture is generated here with Pillow/numpy so that no binary files
need to live in the repository.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, features

from vae_core import preprocess as pp
from vae_core.preprocess import (
    ImageRejected,
    PreprocessResult,
    preprocess_image,
    preprocess_many,
)

# --------------------------------------------------------------------------
# Fixture helpers
# --------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def seven(size: tuple[int, int] = (240, 240), width: int = 22, fg: int = 0, bg: int = 255) -> Image.Image:
    """A thick '7' (asymmetric, so misplacement or flips show up)."""
    w, h = size
    img = Image.new("L", size, bg)
    ImageDraw.Draw(img).line(
        [(0.28 * w, 0.22 * h), (0.72 * w, 0.22 * h), (0.42 * w, 0.82 * h)],
        fill=fg,
        width=width,
        joint="curve",
    )
    return img


def ell(size: tuple[int, int] = (200, 300), width: int = 26) -> Image.Image:
    """A black 'L' on white; no rotation or flip of it looks like itself."""
    w, h = size
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    d.line([(0.3 * w, 0.15 * h), (0.3 * w, 0.8 * h)], fill=0, width=width)
    d.line([(0.3 * w, 0.8 * h), (0.75 * w, 0.8 * h)], fill=0, width=width)
    return img


def noisy_png(size: int = 200) -> bytes:
    """A PNG whose bytes are dominated by incompressible pixel data."""
    rng = np.random.default_rng(0)
    base = np.asarray(seven((size, size)), dtype=np.int16)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(noisy))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, float).ravel(), np.asarray(b, float).ravel())[0, 1])


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    idx = np.arange(img.shape[0])
    total = img.sum()
    return float((img.sum(axis=1) * idx).sum() / total), float((img.sum(axis=0) * idx).sum() / total)


def distance_to_centre(img: np.ndarray) -> float:
    """Distance of the centre of mass from the accepted centre band [13.5, 14]."""
    cy, cx = centre_of_mass(img)
    dy = max(13.5 - cy, 0.0, cy - 14.0)
    dx = max(13.5 - cx, 0.0, cx - 14.0)
    return float(np.hypot(dy, dx))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of any size, built without allocating its pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def assert_valid_result(result: PreprocessResult) -> None:
    assert result.image.shape == (28, 28)
    assert result.image.dtype == np.float32
    assert result.image.min() >= 0.0 and result.image.max() == pytest.approx(1.0)
    assert result.original.dtype == np.uint8 and result.grayscale.dtype == np.uint8
    assert result.cropped.dtype == np.uint8 and result.cropped.ndim == 2
    assert result.original.shape[:2] == result.grayscale.shape
    assert max(result.grayscale.shape) <= 256


@pytest.fixture(scope="module")
def reference_seven() -> PreprocessResult:
    return preprocess_image(encode(seven()), "seven.png")


# --------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------


def test_text_file_named_png_is_rejected():
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(b"hello, this is just some text\n" * 20, "notes.png")
    msg = str(exc.value)
    assert "notes.png" in msg and "not a recognised image" in msg
    assert "\n" not in msg


def test_truncated_png_is_rejected():
    data = noisy_png()
    Image.open(io.BytesIO(data)).load()  # the full file is fine
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(data[: len(data) // 2], "half.png")
    assert "half.png" in str(exc.value) and "truncated" in str(exc.value)


def test_truncated_jpeg_is_rejected():
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageRejected, match="truncated"):
        preprocess_image(data[: len(data) // 2], "half.jpg")


def test_damaged_header_of_known_format_reports_damage_not_unknown_format():
    data = noisy_png()
    with pytest.raises(ImageRejected, match="damaged"):
        preprocess_image(data[:20], "stub.png")


def test_empty_file_is_rejected():
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(b"", "empty.png")
    assert "empty.png" in str(exc.value) and "empty" in str(exc.value).replace("empty.png", "")


def test_oversized_upload_is_rejected_before_decoding():
    data = noisy_png()
    data = data + b"\x00" * (pp.MAX_UPLOAD_BYTES + 1 - len(data))
    assert len(data) == pp.MAX_UPLOAD_BYTES + 1
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(data, "big.png")
    assert "big.png" in str(exc.value) and "10 MB" in str(exc.value) and "10,485,761 bytes" in str(exc.value)
    # Exactly at the limit the size check passes (the trailing junk after
    # IEND is ignored by PNG decoders), proving the bound is inclusive.
    assert_valid_result(preprocess_image(data[:-1], "big.png"))


@pytest.fixture
def decoders(monkeypatch) -> list[str]:
    """The pixel decoders Pillow creates from here on (one per decoded image or tile), by name: rejecting a
    file from its header alone creates none, so its work does not grow with the pixel count."""
    created: list[str] = []
    real = Image._getdecoder

    def counting(mode, decoder_name, args, extra=()):
        created.append(decoder_name)
        return real(mode, decoder_name, args, extra)

    monkeypatch.setattr(Image, "_getdecoder", counting)
    return created


def test_pixel_decoding_is_seen_by_the_decoder_count(decoders):
    # the control for the two tests below: a file that is decoded shows up
    assert_valid_result(preprocess_image(encode(seven()), "seven.png"))
    assert "zip" in decoders  # PNG's pixel decoder ("raw" ones also unpack numpy arrays)


def test_decompression_bomb_is_rejected_without_decoding(decoders):
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    data = buf.getvalue()
    assert len(data) < 200_000  # 400 megapixels in a tiny file
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(data, "bomb.png")
    assert "bomb.png" in str(exc.value) and "megapixels" in str(exc.value)
    assert decoders == []


def test_own_pixel_limit_applies_below_pillows_bomb_threshold(decoders):
    # 48 MP: above MAX_PIXELS but below Pillow's own warning threshold
    # (~89 MP), so only the module's header check can catch it.
    data = huge_bilevel_png(8000, 6000)
    assert 8000 * 6000 > pp.MAX_PIXELS
    assert 8000 * 6000 < Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageRejected, match="8000x6000"):
        preprocess_image(data, "wide.png")
    assert decoders == []


def test_pixel_limit_is_read_at_call_time(monkeypatch):
    data = encode(seven((200, 200)))
    monkeypatch.setattr(pp, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ImageRejected, match="megapixels"):
        preprocess_image(data, "x.png")


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_are_rejected(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = [seven((120, 120), width=12 + 4 * i).convert("P" if fmt == "GIF" else "L") for i in range(3)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(data, f"anim.{fmt.lower()}")
    msg = str(exc.value)
    assert "animated" in msg and "still images" in msg and f"anim.{fmt.lower()}" in msg


def test_single_frame_gif_is_accepted(reference_seven):
    result = preprocess_image(encode(seven().convert("P"), "GIF"), "still.gif")
    assert_valid_result(result)
    assert corr(result.image, reference_seven.image) > 0.98


def test_multi_picture_jpeg_from_camera_is_not_treated_as_animated(reference_seven):
    # Phones write MPO: a JPEG plus an appended preview/depth frame.
    main = seven().convert("RGB")
    data = encode(main, "MPO", save_all=True, append_images=[main.resize((60, 60))])
    probe = Image.open(io.BytesIO(data))
    assert probe.format == "MPO" and probe.n_frames == 2
    result = preprocess_image(data, "camera.jpg")
    assert corr(result.image, reference_seven.image) > 0.95


@pytest.mark.parametrize("colour", [0, 255, 128])
def test_blank_image_is_rejected(colour):
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(encode(Image.new("L", (100, 80), colour)), "blank.png")
    assert "looks blank" in str(exc.value) and "blank.png" in str(exc.value)


def test_blank_noisy_photo_is_rejected():
    rng = np.random.default_rng(3)
    paper = np.clip(rng.normal(220, 6, (300, 400)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageRejected, match="looks blank"):
        preprocess_image(encode(Image.fromarray(paper), "JPEG", quality=90), "paper.jpg")


def _noise(kind: str) -> np.ndarray:
    rng = np.random.default_rng(5)
    if kind == "uniform":
        return rng.integers(0, 256, (200, 240), dtype=np.uint8)
    if kind == "uniform RGB":
        return rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    return np.clip(rng.normal(128, 50, (200, 240)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["uniform", "uniform RGB", "gaussian"])
def test_pure_noise_is_called_noise_not_blank(kind):
    # Nothing is there to crop or centre, so there is no MNIST-like input to make; but the image is anything
    # but blank, and saying so would tell the user their file was read wrong.
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(encode(Image.fromarray(_noise(kind))), "static.png")
    msg = str(exc.value)
    assert "looks like noise" in msg and "blank" not in msg and "static.png" in msg


def test_digit_on_noise_is_still_found(reference_seven):
    noise = _noise("gaussian").astype(np.float64) * 0.15
    ink = np.asarray(seven((240, 200), width=30), np.float64)
    result = preprocess_image(encode(Image.fromarray(np.clip(ink * 0.85 + noise, 0, 255).astype(np.uint8))), "n.png")
    assert_valid_result(result)
    assert corr(result.image, preprocess_image(encode(seven((240, 200), width=30)), "clean.png").image) > 0.9


def test_unsupported_format_is_rejected_by_name():
    data = encode(seven(), "TIFF")
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(data, "scan.tif")
    msg = str(exc.value)
    assert "scan.tif" in msg and "TIFF" in msg and "PNG" in msg


def test_unsupported_format_pillow_could_read_is_still_rejected():
    # ICO: Pillow decodes it, the app does not accept it.
    data = encode(seven().convert("RGBA"), "ICO", sizes=[(64, 64)])
    assert Image.open(io.BytesIO(data)).format == "ICO"
    with pytest.raises(ImageRejected, match="ICO"):
        preprocess_image(data, "favicon.ico")


def test_rejection_message_is_one_line_even_for_odd_names():
    with pytest.raises(ImageRejected) as exc:
        preprocess_image(b"", "evil\nname\r.png")
    assert "\n" not in str(exc.value) and "\r" not in str(exc.value)


# --------------------------------------------------------------------------
# Colour modes
# --------------------------------------------------------------------------


def test_cmyk_jpeg_digit_is_found(reference_seven):
    cmyk = seven().convert("CMYK")
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = preprocess_image(data, "cmyk.jpg")
    assert_valid_result(result)
    assert result.inverted
    assert distance_to_centre(result.image) <= 1.0
    assert corr(result.image, reference_seven.image) > 0.9


def test_16bit_png_is_scaled_not_clipped(reference_seven):
    level = np.asarray(seven(), dtype=np.float64) / 255.0  # 1 = paper, 0 = ink
    # Background 20000, ink 65535: every value exceeds 255, so clipping
    # instead of scaling would make the whole image one saturated colour.
    arr16 = np.rint(65535 - level * (65535 - 20000)).astype(np.uint16)
    img16 = Image.fromarray(arr16)
    data = encode(img16)
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    result = preprocess_image(data, "deep.png")
    assert_valid_result(result)
    assert not result.inverted
    # Display grayscale keeps the scaled levels: 20000/257 ~ 78, 65535/257 = 255.
    assert abs(int(result.grayscale[0, 0]) - 78) <= 2
    assert result.grayscale.max() >= 250
    assert corr(result.image, reference_seven.image) > 0.95


def test_rgba_transparent_background_with_black_stroke(reference_seven):
    alpha = 255 - np.asarray(seven())  # opaque where the stroke is
    rgba = np.zeros((*alpha.shape, 4), np.uint8)  # transparent pixels are (0,0,0,0): black!
    rgba[..., 3] = alpha
    result = preprocess_image(encode(Image.fromarray(rgba)), "sticker.png")
    assert_valid_result(result)
    assert result.inverted  # composited over white => dark stroke on light
    img = result.image
    assert img[0, 0] == 0 and img[-1, -1] == 0
    assert img[img > 0.5].size > 20  # the stroke is white in the output
    assert corr(img, reference_seven.image) > 0.95
    assert result.original.ndim == 3 and (result.original[0, 0] == 255).all()


def test_rgba_light_stroke_on_transparent_background(reference_seven):
    alpha = 255 - np.asarray(seven())
    rgba = np.full((*alpha.shape, 4), 255, np.uint8)  # white everywhere...
    rgba[..., 3] = alpha  # ...but only the stroke is opaque
    result = preprocess_image(encode(Image.fromarray(rgba)), "white-ink.png")
    assert_valid_result(result)
    assert corr(result.image, reference_seven.image) > 0.95


@pytest.mark.parametrize(
    "mode, fmt",
    [
        ("1", "PNG"),
        ("P", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "PNG"),
        ("RGB", "BMP"),
        ("RGB", "GIF"),
        ("RGB", "WEBP"),
        ("L", "JPEG"),
    ],
)
def test_other_modes_and_formats(mode, fmt, reference_seven):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    src = seven()
    data = encode(src.convert(mode), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    result = preprocess_image(data, f"x.{fmt.lower()}")
    assert_valid_result(result)
    assert result.inverted
    assert corr(result.image, reference_seven.image) > 0.95


# --------------------------------------------------------------------------
# Geometry and photos
# --------------------------------------------------------------------------


def light_photo_of_seven() -> bytes:
    """A ~600x400 'phone photo': dark ink on shaded, noisy, slightly tinted paper."""
    rng = np.random.default_rng(7)
    h, w = 400, 600
    shading = np.linspace(-18, 18, w)[None, :] + np.linspace(-8, 8, h)[:, None]
    paper = 212 + shading + rng.normal(0, 5, (h, w))
    ink = np.asarray(seven((w, h), width=30).filter(ImageFilter.GaussianBlur(1.5)), float) / 255.0
    gray = paper * ink + 45 * (1 - ink)
    rgb = np.stack([gray + 4, gray, gray - 10], axis=-1) + rng.normal(0, 3, (h, w, 3))
    return encode(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), "JPEG", quality=85)


def test_white_background_photo_is_inverted_and_centred():
    result = preprocess_image(light_photo_of_seven(), "photo.jpg")
    assert_valid_result(result)
    assert result.inverted
    img = result.image
    assert result.original.shape == (171, 256, 3)
    corners = [img[0, 0], img[0, -1], img[-1, 0], img[-1, -1]]
    assert max(corners) < 0.02
    # A '7' is top-heavy, so centring its mass pushes its foot towards the
    # bottom edge (MNIST sevens do the same); the frame must still be dark.
    assert np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).mean() < 0.05
    assert distance_to_centre(img) <= 1.0
    rows = np.flatnonzero((img > 0.2).any(axis=1))
    cols = np.flatnonzero((img > 0.2).any(axis=0))
    assert 18 <= max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # longer side scaled to ~20 px
    # Paper texture and shading must not leak in as grey haze: more than
    # 2 px away from the strokes the output is (near) black.
    strokes = img > 0.3
    near = np.zeros_like(strokes)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(strokes, dy, axis=0), dx, axis=1)
    assert img[~near].max() < 0.03


def test_photo_with_dust_speck_keeps_digit_size():
    clean = preprocess_image(encode(seven((400, 400), width=36)), "clean.png")
    dirty_img = seven((400, 400), width=36)
    ImageDraw.Draw(dirty_img).ellipse([380, 380, 383, 383], fill=0)  # a speck in a corner
    dirty = preprocess_image(encode(dirty_img), "dirty.png")
    assert corr(clean.image, dirty.image) > 0.95


THUMB_MAX_ASPECT = 3  # the page shows each step at one height (or width): 3:1 keeps a wide one >= 1/3 tall


@pytest.mark.parametrize("size, box", [((2100, 200), (50, 90, 2049, 109)), ((200, 2100), (90, 50, 109, 2049))])
def test_very_long_stroke_gives_readable_thumbnails(size, box):
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).rectangle(box, fill=0)  # a 2000 x 20 stroke
    result = preprocess_image(encode(img), "dash.png")
    assert_valid_result(result)
    for step in (result.original, result.grayscale, result.cropped):
        h, w = step.shape[:2]
        assert max(h, w) <= 256 and max(h, w) <= THUMB_MAX_ASPECT * min(h, w)
    # the whole stroke is in the picture, across (nearly) all of its long side
    bright = result.cropped > 200
    along = bright.any(axis=0) if size[0] > size[1] else bright.any(axis=1)
    assert along.sum() >= 0.8 * max(result.cropped.shape) and bright.sum() >= along.sum()
    # and the model gets a 20 px bar, as MNIST draws a long stroke
    rows, cols = np.flatnonzero(result.image.max(axis=1) > 0.5), np.flatnonzero(result.image.max(axis=0) > 0.5)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 >= 19


def test_cropped_step_is_framed_so_edge_strokes_stay_apart_from_the_page(reference_seven):
    crop = reference_seven.cropped
    # a crop is the content's bounding box, so its strokes touch its edges; around them: black, then grey
    frame = np.concatenate([crop[:2].ravel(), crop[-2:].ravel(), crop[:, :2].ravel(), crop[:, -2:].ravel()])
    assert (frame == 128).all()
    inside = crop[2:-2, 2:-2]
    assert (np.concatenate([inside[0], inside[-1], inside[:, 0], inside[:, -1]]) == 0).all()
    assert inside.max() >= 250


def test_thin_pen_stroke_is_thickened():
    thin = preprocess_image(encode(seven((800, 800), width=4)), "pen.png")
    assert_valid_result(thin)
    # MNIST strokes are 2-3 px wide; a 4 px line in an 800 px image would
    # otherwise shrink to a 0.1 px hairline.
    assert (thin.image > 0.5).sum() >= 25


def test_exif_rotation_is_applied():
    upright = ell()  # 200 wide x 300 tall
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # camera sensor orientation
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(stored, "JPEG", quality=95, exif=exif)

    result = preprocess_image(data, "phone.jpg")
    assert_valid_result(result)
    assert result.original.shape[:2] == (300, 200) or result.original.shape[:2] == (256, 171)
    expected = preprocess_image(encode(upright), "upright.png").image
    unrotated = preprocess_image(encode(stored), "stored.png").image
    assert corr(result.image, expected) > 0.9
    assert corr(result.image, unrotated) < 0.6


def test_malformed_exif_does_not_reject_the_image(reference_seven):
    exif = Image.Exif()
    exif[0x0112] = 99  # not a valid orientation
    data = encode(seven().convert("RGB"), "JPEG", quality=95, exif=exif)
    result = preprocess_image(data, "odd-exif.jpg")
    assert corr(result.image, reference_seven.image) > 0.9


@pytest.fixture(scope="module")
def mnist_digits() -> np.ndarray:
    from vae_core.data import SAMPLE, load_dataset

    return load_dataset(SAMPLE).train_images[:40, 0].numpy()


def test_real_mnist_digits_round_trip(mnist_digits):
    scores = []
    for i, digit in enumerate(mnist_digits):
        result = preprocess_image(encode(Image.fromarray(digit)), f"mnist{i}.png")
        assert not result.inverted
        assert distance_to_centre(result.image) <= 1.0
        scores.append(corr(result.image, digit))
    assert min(scores) > 0.8
    assert np.median(scores) > 0.98  # MNIST is already normalised: near identity


def test_enlarged_inverted_mnist_digit(mnist_digits):
    digit = mnist_digits[0]
    scan = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BICUBIC)
    result = preprocess_image(encode(scan.convert("RGB"), "JPEG", quality=92), "scan.jpg")
    assert result.inverted
    assert corr(result.image, digit) > 0.8


# --------------------------------------------------------------------------
# Batch processing
# --------------------------------------------------------------------------


def test_preprocess_many_keeps_going_and_keeps_order():
    files = [
        ("a.png", encode(seven())),
        ("b.png", b"not an image"),
        ("c.jpg", encode(ell().convert("RGB"), "JPEG")),
        ("d.png", b""),
        ("e.png", encode(Image.new("L", (50, 50), 255))),
    ]
    results, errors = preprocess_many(files)
    assert [r.name for r in results] == ["a.png", "c.jpg"]
    assert len(errors) == 3
    assert "b.png" in errors[0] and "d.png" in errors[1] and "e.png" in errors[2]
    assert "looks blank" in errors[2]


def test_preprocess_many_survives_unexpected_errors(monkeypatch):
    real = pp.preprocess_image

    def flaky(data: bytes, name: str = "image", *settings) -> PreprocessResult:
        if name == "boom.png":
            raise RuntimeError("internal failure")
        return real(data, name, *settings)

    monkeypatch.setattr(pp, "preprocess_image", flaky)
    results, errors = preprocess_many([("boom.png", b"x"), ("ok.png", encode(seven()))])
    assert [r.name for r in results] == ["ok.png"]
    assert len(errors) == 1 and "boom.png" in errors[0]
