"""Real browser: start a training, leave the Train page and come back, see it still running and further along,
then stop it, find the model saved and selected in the picker, and the server's log quiet."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"(\d+)% · epoch (\d+) of (\d+)")
# The most epochs the page allows, at batch 16 (250 steps an epoch on the sample): minutes of training even on a
# GPU, so the run is still going when Stop is pressed; the test checks that it is rather than assuming a speed.
EPOCHS, BATCH = 500, 16
LOG_NOISE = ("missing ScriptRunContext", "streamlit run")  # what a process re-importing the page script prints


def click(page, locator) -> None:
    locator.hover()
    page.wait_for_timeout(100)
    locator.click()


def fill(page, label: str, value: str) -> None:
    field = page.locator(f'input[aria-label="{label}"]')
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(400)


def progress(page, timeout_s: float = 60) -> tuple[int, int]:
    """(percent, epoch) from the live view's progress bar, once training has reached its first epoch; the lines of
    "Also on this server" ('second · by Ben · 3% · epoch 2 of 500') are other people's runs, never read."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for text in page.get_by_text(PROGRESS).filter(has_not_text=" · by ").all_inner_texts():
            found = PROGRESS.search(text)
            if found:
                return int(found.group(1)), int(found.group(2))
        page.wait_for_timeout(50)
    raise AssertionError(f"no training progress shown within {timeout_s} s")


def start_training(page, url: str, name: str) -> None:
    """Open the Train page, fill in a small model that trains for minutes, and press Start."""
    page.goto(f"{url}/Train")
    start = page.get_by_role("button", name="Start training")
    start.wait_for(timeout=90_000)
    fill(page, "Hidden sizes", "64")
    fill(page, "Epochs", str(EPOCHS))
    fill(page, "Batch size", str(BATCH))
    fill(page, "Model name", name)
    click(page, start)


def page_stop_button(page):
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop")


def stop_training(page, saved_name: str) -> None:
    """Press the page's Stop and wait for the saved model to be announced."""
    stop = page_stop_button(page)
    assert stop.is_enabled(), "the training ended before Stop was pressed"
    click(page, stop)
    page.get_by_text(f"Stopped; saved {saved_name}").wait_for(timeout=90_000)


def picker(page):
    return page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")


def test_training_goes_on_across_page_switches_and_stops(streamlit_server_factory, browser_page, tmp_path, app_checkpoints):
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py (the multipage entry point) is not there yet")
    from playwright.sync_api import expect
    # one model to start with, so the picker names another model before the new one is selected
    (tmp_path / app_checkpoints.z2.name).symlink_to(app_checkpoints.z2.resolve())
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(tmp_path), "VAE_OFFLINE": "1"})
    page = browser_page
    shots = Path(os.environ.get("TMPDIR", "/tmp"))
    start_training(page, server.url, "browser run")
    assert picker(page).input_value() == app_checkpoints.z2.stem

    _, epoch_before = progress(page)
    page.screenshot(path=str(shots / "browser_train_running.png"))
    # The live view redraws every second; Streamlit's own header Stop (which would stop only a redraw) stays hidden.
    for _ in range(30):
        assert not page.get_by_test_id("stStatusWidget").is_visible()
        page.wait_for_timeout(100)

    click(page, page.get_by_role("link", name="Compare"))
    page.get_by_role("heading", name="Compare models").wait_for(timeout=60_000)
    page.get_by_text("Training in the background").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)

    click(page, page.get_by_role("link", name="Train", exact=True))
    page.get_by_role("heading", name="Train a model").wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while progress(page)[1] <= epoch_before:
        assert time.monotonic() < deadline, "the training did not advance while the page was away"
        page.wait_for_timeout(500)
    # the settings came back with the page, although Streamlit dropped their widgets while it was away
    assert page.locator('input[aria-label="Hidden sizes"]').input_value() == "64"
    assert page.locator('input[aria-label="Epochs"]').input_value() == str(EPOCHS)

    stop_training(page, "browser_run.pt")
    page.screenshot(path=str(shots / "browser_train_stopped.png"))
    assert (tmp_path / "trained" / "browser_run.pt").exists()
    assert not page.get_by_text("Traceback").count()
    # the picker shows the model the page selected (the caption under it already described it)
    expect(picker(page)).to_have_value("browser_run", timeout=10_000)
    expect(page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").first).to_contain_text("mnist-sample")
    log = Path(server.log.name).read_text()
    assert not [line for line in log.splitlines() if any(noise in line for noise in LOG_NOISE)]


def test_a_server_shut_down_mid_training_saves_the_model_and_exits_cleanly(streamlit_server_factory, browser_page,
                                                                            tmp_path):
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py (the multipage entry point) is not there yet")
    from vae_core.checkpoint import read_info

    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(tmp_path), "VAE_OFFLINE": "1"})
    start_training(browser_page, server.url, "shut down")
    progress(browser_page)
    server.proc.terminate()  # SIGTERM, as a service manager or Ctrl-C ends the server
    assert server.proc.wait(60) == 0
    assert read_info(tmp_path / "trained" / "shut_down.pt").extra["status"] == "stopped"
    assert "terminate called" not in Path(server.log.name).read_text()
