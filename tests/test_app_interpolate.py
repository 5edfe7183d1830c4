"""The Interpolate page in AppTest: endpoints from test images, clicked points and uploads; the strip, the GIF, the path."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import plane_data

from ui.images import to_png_bytes
from vae_core.data import load_dataset

PAGE = "../app_pages/2_Interpolate.py"
STRIP_SCALE, PADDING = 3, 2


@pytest.fixture
def app(page_app):
    return lambda model=None: page_app(PAGE, model, timeout=60)


def _downloads(at: AppTest, media) -> tuple[Image.Image, Image.Image]:
    buttons = {b.proto.label: b.proto.url for b in at.get("download_button")}
    return (Image.open(io.BytesIO(media(buttons["Strip (PNG)"]))),
            Image.open(io.BytesIO(media(buttons["Morph (animated GIF)"]))))


def _path(at: AppTest) -> np.ndarray:
    (mark,) = [m for m in plane_data(at, "interp_plane")["marks"] if m.get("dots")]
    return np.asarray(mark["path"])


def _strip_width(steps: int) -> int:
    return (steps * 28 + (steps - 1) * PADDING) * STRIP_SCALE


def test_default_test_images_give_a_strip_gif_and_path(app, media):
    at = app()
    at.run()
    assert not at.exception
    strip, gif = _downloads(at, media)
    assert strip.size == (_strip_width(10), 28 * STRIP_SCALE)
    assert gif.n_frames == 10
    assert len(_path(at)) == 10


@pytest.mark.parametrize("steps", [2, 30])
def test_steps_bounds(app, media, steps):
    at = app()
    at.run()
    slider = at.slider(key="interp_steps")
    assert (slider.min, slider.max) == (2, 30)
    slider.set_value(steps).run()
    assert not at.exception
    strip, gif = _downloads(at, media)
    assert strip.size == (_strip_width(steps), 28 * STRIP_SCALE)
    assert gif.n_frames == steps


def test_linear_path_is_straight_and_spherical_bends(app, media, app_checkpoints):
    at = app(app_checkpoints.z2.stem)  # the clicks below are 2-D
    at.session_state["clicked_latents"] = [np.array([-2.0, 0.5], np.float32), np.array([0.5, 2.0], np.float32)]
    at.run()
    at.radio(key="interp_source").set_value("Points clicked on the Latent Map").run()
    linear = _path(at)
    linear_frames = _frames(_downloads(at, media)[1])
    at.radio(key="interp_method").set_value("spherical").run()
    assert not at.exception
    spherical = _path(at)
    np.testing.assert_allclose(spherical[[0, -1]], linear[[0, -1]], atol=1e-5)
    steps = np.diff(linear, axis=0)
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), atol=1e-5)  # even steps on a line
    # equal-norm ends: slerp runs along the circle through them at an even angular speed
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), np.sqrt(4.25), rtol=1e-5)
    angles = np.arctan2(spherical[:, 1], spherical[:, 0])
    np.testing.assert_allclose(np.diff(angles), np.diff(angles)[0], atol=1e-5)  # even steps around the origin
    assert np.abs(np.diff(angles)).sum() > 0.5
    spherical_frames = _frames(_downloads(at, media)[1])
    assert len(spherical_frames) == len(linear_frames) == 10
    assert any(not np.array_equal(a, b) for a, b in zip(linear_frames[1:-1], spherical_frames[1:-1]))


def _frames(gif: Image.Image) -> list[np.ndarray]:
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("L")))
    return frames


def test_random_image_of_a_class(app):
    at = app()
    at.run()
    at.radio(key="interp_how_A").set_value("Random of a class").run()
    at.selectbox(key="interp_class_A").set_value(3).run()
    first = at.get("image")[0].captions[0]
    assert first.endswith("(3)")
    drawn = {first}
    for _ in range(3):
        at.button(key="interp_draw_A").click().run()
        caption = at.get("image")[0].captions[0]
        assert caption.endswith("(3)")
        drawn.add(caption)
    assert not at.exception and len(drawn) > 1


def test_clicked_points(app, app_checkpoints, media):
    at = app()
    at.run()
    at.radio(key="interp_source").set_value("Points clicked on the Latent Map").run()
    assert any("Click two points" in i.value for i in at.info)
    assert not at.get("download_button")

    at.session_state["clicked_latents"] = [np.array([9.0, 9.0, 9.0], np.float32),  # from a model with d = 3
                                           np.array([-1.0, 0.5], np.float32), np.array([1.5, -0.5], np.float32)]
    at.run()
    assert not at.exception
    path = _path(at)
    np.testing.assert_allclose(path[[0, -1]], [[-1.0, 0.5], [1.5, -0.5]], atol=1e-5)
    assert _downloads(at, media)[1].n_frames == 10

    at.session_state["clicked_latents"] = [np.array([1.0, 2.0, 3.0], np.float32)]
    at.run()
    assert any("Click two points" in i.value for i in at.info)


def test_uploaded_endpoints(app, media):
    test = load_dataset("mnist-sample").test_images[:, 0]  # as pictures: (N, H, W)
    at = app()
    at.run()
    at.radio(key="interp_source").set_value("Uploaded images").run()
    assert not at.exception and not at.get("download_button")
    at.file_uploader(key="interp_upload_A").set_value(("seven.png", to_png_bytes(test[0].numpy(), 4), "image/png"))
    at.file_uploader(key="interp_upload_B").set_value(("not really.png", b"hello, I am text", "image/png"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "not really.png" in at.error[0].value
    assert not at.get("download_button")

    at.file_uploader(key="interp_upload_B").set_value(("two.png", to_png_bytes(255 - test[1].numpy(), 4), "image/png"))
    at.run()
    assert not at.exception and not at.error
    strip, gif = _downloads(at, media)
    assert strip.size == (_strip_width(10), 28 * STRIP_SCALE) and gif.n_frames == 10
    assert at.subheader[0].value == "seven.png → two.png"


def test_wider_latent_space_draws_in_the_pca_plane(app, app_checkpoints, media):
    at = app(app_checkpoints.wide.stem)
    at.run()
    assert not at.exception
    assert any("principal components" in c.value for c in at.caption)
    assert len(_path(at)) == 10 and _downloads(at, media)[1].n_frames == 10
