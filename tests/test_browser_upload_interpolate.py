"""Real browser: uploads through the file input on the Reconstruct page, and two Latent Map clicks as the ends
of an interpolation (the `clicked_latents` hand-over between pages)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import CHROMIUM, StreamlitServer
from test_app_reconstruct import _bad_files, _good_files
from browser_plane import PINNED, PLANE, SEVEN, draw, empty_spots, geometry, open_plane, pin
from vae_core.data import load_dataset

SHOTS = Path(os.environ.get("TMPDIR", "/tmp"))


@pytest.fixture(scope="module")
def server(app_checkpoints, browser_runtime):
    """One app for both tests: starting Streamlit is most of their time."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (.ci/run installs it)")
    app = StreamlitServer({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    yield app
    app.stop()


def test_upload_good_and_bad_files(server, browser_page, tmp_path):
    digits = load_dataset("mnist-sample").test_images[:8, 0].numpy()  # as pictures: (N, H, W)
    good, bad = _good_files(digits), _bad_files(digits)
    paths = []
    for name, data in {**good, **bad}.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    page = browser_page
    page.goto(f"{server.url}/Reconstruct")
    page.wait_for_selector("text=Try with 3 test digits", timeout=120_000)
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(paths)
    last = list(good)[-1]
    page.wait_for_selector(f"text={len(good)}. {last}", timeout=120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "reconstruct_upload.png"))

    alerts = page.locator("[data-testid=stAlertContentError]").all_inner_texts()
    # the browser itself refuses a file over the widget's 10 MB limit, so it never reaches the page
    reached = [name for name in bad if name != "too big.png"]
    assert sorted(a for a in alerts if any(f"'{n}'" in a for n in reached)) == sorted(alerts)
    assert all(sum(f"'{n}'" in a for a in alerts) == 1 for n in reached), alerts
    assert "File must be 10.0MB or smaller" in page.locator("[data-testid=stFileUploader]").inner_text()
    for number, name in enumerate(good, start=1):
        assert page.locator(f"text={number}. {name}").count() == 1
    body = page.inner_text("body")
    assert "Traceback" not in body
    assert page.locator(PLANE).count() == 1  # the uploads on the live plane


def test_two_latent_map_pins_become_the_ends_of_a_path_and_a_drawn_digit_goes_to_reconstruct(server, browser_page):
    page = browser_page
    open_plane(page, server.url)
    for px, py in empty_spots(geometry(page), 2):
        pin(page, px, py)
    assert PINNED.search(page.inner_text("body"))

    # through the sidebar, not page.goto: a new page load would start a new session without the pins
    page.locator("[data-testid=stSidebarNav] a", has_text="Interpolate").click()
    page.wait_for_selector("text=Points clicked on the Latent Map", timeout=60_000)
    page.get_by_text("Points clicked on the Latent Map").click()
    # The run with test images already drew a Morph button and a plane, which stay while the new run draws: the
    # clicked path's heading is the new run's own.
    page.get_by_role("heading", name="second-last click → last click").wait_for(timeout=60_000)
    page.wait_for_selector("text=Morph (animated GIF)", timeout=60_000)
    page.wait_for_selector(PLANE, timeout=60_000)  # the path on the live plane
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "interpolate_clicked.png"))
    body = page.inner_text("body")
    assert "second-last click → last click" in body
    assert "Traceback" not in body

    # a digit drawn on the Latent Map's pad, sent to Reconstruct, is reconstructed there like an upload
    page.locator("[data-testid=stSidebarNav] a", has_text="Latent Map").click()
    draw(page, SEVEN)
    page.get_by_role("button", name="Send to Reconstruct").click()
    page.wait_for_selector("text=1. drawn digit 1.png", timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
