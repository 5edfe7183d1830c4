"""The Reconstruct page in AppTest: many uploads at once, good and bad, examples, the map overlays and the cached test-set scores."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import plane_data

from vae_core import typicality
from vae_core.checkpoint import read_info
from vae_core.data import load_dataset, load_test_set
from vae_core.preprocess import MAX_UPLOAD_BYTES

PAGE = "../app_pages/3_Reconstruct.py"


@pytest.fixture
def app(page_app):
    return lambda model=None: page_app(PAGE, model, timeout=90)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_dataset("mnist-sample").test_images[:8, 0].numpy()  # as pictures: (N, H, W)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _ink_on_paper(digit: np.ndarray, scale: int = 8) -> Image.Image:
    big = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BILINEAR)
    return Image.fromarray(255 - np.asarray(big))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side × side pixels (400 MP) in ~50 kB: all-zero rows compress ~1000:1."""
    row = b"\x00" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _photo(digit: np.ndarray) -> bytes:
    """Dark ink on unevenly lit, noisy paper, as a phone would take it."""
    rng = np.random.default_rng(0)
    h, w = 480, 640
    paper = 205 + 35 * np.linspace(0, 1, w)[None, :] + rng.normal(0, 4, (h, w))
    ink = np.asarray(Image.fromarray(digit).resize((300, 300), Image.Resampling.BILINEAR), float) / 255
    paper[90:390, 170:470] -= 170 * ink
    return _save(Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=85)


def _exif_rotated(digit: np.ndarray) -> bytes:
    """Pixels stored turned 90° anticlockwise, with EXIF orientation 6 saying "turn 90° clockwise to view"."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_ink_on_paper(digit).rotate(90, expand=True).convert("RGB"), "JPEG", quality=90, exif=exif)


def _good_files(d: np.ndarray) -> dict[str, bytes]:
    rgba = np.zeros((112, 112, 4), np.uint8)  # black strokes, transparent sheet
    rgba[..., 3] = np.asarray(Image.fromarray(d[3]).resize((112, 112)))
    return {
        "plain digit.png": _save(Image.fromarray(d[0]), "PNG"),
        "cmyk.jpg": _save(_ink_on_paper(d[1]).convert("CMYK"), "JPEG", quality=90),
        "sixteen bit.png": _save(Image.fromarray(d[2].astype(np.uint16) * 257), "PNG"),
        "transparent.png": _save(Image.fromarray(rgba, mode="RGBA"), "PNG"),
        "photo of a digit.jpg": _photo(d[4]),
        "exif rotated.jpg": _exif_rotated(d[5]),
        "scan.bmp": _save(_ink_on_paper(d[6], 4), "BMP"),
        "drawing.webp": _save(_ink_on_paper(d[7], 4), "WEBP", lossless=True),
    }


def _bad_files(d: np.ndarray) -> dict[str, bytes]:
    whole = _save(_ink_on_paper(d[0]), "PNG")
    frames = [Image.fromarray(x) for x in d[:3]]
    return {
        "notes.png": b"this is a text file with a .png name\n",
        "truncated.png": whole[: len(whole) // 2],
        "empty.png": b"",
        "bomb.png": _bomb_png(),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "too big.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * (MAX_UPLOAD_BYTES + 2**20),
    }


def _upload(at: AppTest, files: dict[str, bytes]) -> AppTest:
    if not at.file_uploader:
        at.run()
    at.file_uploader(key="recon_uploads").set_value([(name, data, "application/octet-stream")
                                                     for name, data in files.items()])
    return at.run()


def _cards(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**") and ". " in m.value]


def _marks(at: AppTest) -> tuple[list[dict], list[np.ndarray]]:
    """The uploads' codes and their posterior outlines, as sent to the live plane."""
    marks = plane_data(at, "recon_plane")["marks"]
    return [m for m in marks if "at" in m], [np.asarray(m["path"]) for m in marks if m.get("closed")]


def test_empty_page_invites_an_upload(app):
    at = app()
    at.run()
    assert not at.exception
    assert any("Try with 3 test digits" in i.value for i in at.info)
    assert at.file_uploader(key="recon_uploads").accept_multiple_files


def test_good_and_bad_files_together(app, digits):
    good, bad = _good_files(digits), _bad_files(digits)
    at = _upload(app(), {**good, **bad})
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad)
    for name in bad:
        assert sum(f"'{name}'" in message for message in errors) == 1, (name, errors)
    assert all("\n" not in message and "Traceback" not in message for message in errors)
    assert _cards(at) == [f"**{i}. {name}**" for i, name in enumerate(good, start=1)]
    recon_buttons = [b for b in at.get("download_button") if b.proto.label == "Reconstruction (PNG)"]
    assert len(recon_buttons) == len(good)
    verdicts = [m.value for m in (*at.success, *at.warning, *at.info) if m.value.startswith("−ELBO")]
    assert len(verdicts) == len(good)


def test_a_checkerboard_is_flagged_as_unusual(app, digits):
    checker = ((np.indices((64, 64)).sum(axis=0) // 4) % 2 * 255).astype(np.uint8)
    at = _upload(app(), {"digit.png": _save(Image.fromarray(digits[0]), "PNG"),
                         "checkerboard.png": _save(Image.fromarray(checker), "PNG")})
    assert not at.exception
    (warning,) = at.warning
    assert "Beyond the 99th percentile" in warning.value
    assert "100.0 %" in warning.value and _cards(at)[1] == "**2. checkerboard.png**"


def test_examples_ellipses_and_points(app):
    at = app()
    at.run()
    at.button(key="recon_try").click().run()
    assert not at.exception and not at.error
    assert len(_cards(at)) == 3
    points, one_sigma = _marks(at)
    assert [p["label"] for p in points] == ["1", "2", "3"]
    assert len(one_sigma) == 3

    at.radio(key="recon_ellipse").set_value("2σ").run()
    _, two_sigma = _marks(at)
    for point, small, large in zip(points, one_sigma, two_sigma):
        centre = np.asarray(point["at"])
        np.testing.assert_allclose(small[:-1].mean(axis=0), centre, atol=1e-6)  # last point closes it
        r1 = np.hypot(*(small - centre).T)
        r2 = np.hypot(*(large - centre).T)
        np.testing.assert_allclose(r2, 2 * r1, rtol=1e-3)

    at.radio(key="recon_ellipse").set_value("none").run()
    assert not _marks(at)[1]
    at.button(key="recon_clear").click().run()
    assert not at.exception and not _cards(at)


def test_wider_latent_space_projects_points_and_ellipses(app, app_checkpoints):
    at = app(app_checkpoints.wide.stem)
    at.run()
    at.button(key="recon_try").click().run()
    assert not at.exception
    assert any("principal components" in c.value and "exact projection" in c.value for c in at.caption)
    assert len(_marks(at)[1]) == 3


def test_test_set_is_scored_once_per_model(app, app_checkpoints, monkeypatch, digits):
    st.cache_data.clear()
    sizes: list[int] = []
    original = typicality.per_image_nelbo

    def counting(model, images, *args, **kwargs):
        sizes.append(len(images))
        return original(model, images, *args, **kwargs)

    monkeypatch.setattr(typicality, "per_image_nelbo", counting)
    at = app()
    at.run()
    at.button(key="recon_try").click().run()
    _upload(at, {"one.png": _save(Image.fromarray(digits[0]), "PNG")})
    at.select_slider(key="recon_ood").set_value(95.0).run()
    assert not at.exception
    model_dataset = read_info(app_checkpoints.z2).dataset
    n_test = len(load_test_set(model_dataset).test_images)
    assert sizes.count(n_test) == 1
    assert sizes.count(3) == 1 and sizes.count(4) == 2  # the uploads themselves are scored on every run


def test_a_very_simple_image_is_said_to_be_cheaper_than_nearly_every_test_image(app):
    """A straight stroke costs fewer nats than nearly every test digit: the page says so, naming the score it means
    (the sentence once printed a literal '{name}')."""
    stroke = np.zeros((28, 28), np.uint8)
    stroke[4:24, 13:15] = 255
    at = _upload(app(), {"stroke.png": _save(Image.fromarray(stroke), "PNG")})
    assert not at.exception
    (info,) = [i.value for i in at.info if "Among the cheapest" in i.value]
    assert info.startswith("−ELBO") and "so a low −ELBO is no proof of a digit" in info and "{" not in info
