"""Real browser: start a training, leave the Train page and come back, see it still running and further along,
then stop it and find the model saved."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"(\d+)% · epoch (\d+) of (\d+)")
EPOCHS = 400  # far more than the test waits for (the sample runs about 1 epoch a second here); it is stopped


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
    """(percent, epoch) from the progress bar's text, once training has reached its first epoch."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for text in page.get_by_text(PROGRESS).all_inner_texts():
            found = PROGRESS.search(text)
            if found:
                return int(found.group(1)), int(found.group(2))
        page.wait_for_timeout(250)
    raise AssertionError(f"no training progress shown within {timeout_s} s")


def test_training_goes_on_across_page_switches_and_stops(streamlit_server_factory, browser_page, tmp_path):
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py (the multipage entry point) is not there yet")
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(tmp_path), "VAE_OFFLINE": "1"})
    page = browser_page
    shots = Path(os.environ.get("TMPDIR", "/tmp"))
    page.goto(f"{server.url}/Train")
    start = page.get_by_role("button", name="Start training")
    start.wait_for(timeout=90_000)
    fill(page, "Hidden sizes", "64")
    fill(page, "Epochs", str(EPOCHS))
    fill(page, "Model name", "browser run")
    click(page, start)

    _, epoch_before = progress(page)
    page.screenshot(path=str(shots / "browser_train_running.png"))

    click(page, page.get_by_role("link", name="Compare Beta"))
    page.get_by_role("heading", name="Compare β").wait_for(timeout=60_000)
    page.get_by_text("Training in the background").wait_for(timeout=30_000)
    page.wait_for_timeout(2000)

    click(page, page.get_by_role("link", name="Train", exact=True))
    page.get_by_role("heading", name="Train a VAE").wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while (epoch_after := progress(page)[1]) <= epoch_before:
        assert time.monotonic() < deadline, "the training did not advance while the page was away"
        page.wait_for_timeout(500)
    assert epoch_after < EPOCHS
    # the settings came back with the page, although Streamlit dropped their widgets while it was away
    assert page.locator('input[aria-label="Hidden sizes"]').input_value() == "64"
    assert page.locator('input[aria-label="Epochs"]').input_value() == str(EPOCHS)

    click(page, page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop"))
    page.get_by_text("Stopped; saved browser_run.pt").wait_for(timeout=90_000)
    page.screenshot(path=str(shots / "browser_train_stopped.png"))
    assert (tmp_path / "browser_run.pt").exists()
    assert not page.get_by_text("Traceback").count()
