"""Real browser: the Latent Map's training history plays in the page itself. Play from the start moves the time
slider through the recorded moments without a rerun and ends at the trained model; the slider picks a moment."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def current_value(page):
    """The slider's "epoch …" label (plotly draws it as the first slider label, above the ticks)."""
    return page.locator(".slider-label", has_text="epoch ").first


def current(page) -> str:
    return (current_value(page).text_content() or "").strip()


def test_the_history_plays_in_the_browser(streamlit_server_factory, browser_page, tmp_path):
    subprocess.run([sys.executable, "-m", "vae_core", "train", "--dataset", "mnist-sample", "--epochs", "2",
                    "--hidden", "32", "--batch-size", "250", "--out", str(tmp_path / "tiny_hist.pt")],
                   cwd=ROOT, check=True, capture_output=True)
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(tmp_path), "VAE_OFFLINE": "1"})
    page = browser_page
    page.goto(f"{server.url}/Latent_Map")
    section = page.get_by_text("Training history: replay")
    section.wait_for(timeout=120_000)
    section.click()
    current_value(page).wait_for(state="attached", timeout=120_000)
    assert current(page) == "epoch 2"  # it opens on the trained model
    page.get_by_text("From the start").click()
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen.add(current(page))
        if len(seen) > 3 and current(page) == "epoch 2":
            break
        page.wait_for_timeout(100)
    # the playback passed through moments inside the first epoch and came back to the end, all in the browser
    assert len(seen) >= 4, seen
    assert current(page) == "epoch 2", seen
    assert any(label.startswith("epoch 0.") for label in seen), seen
    assert "Error" not in server.output() and "Traceback" not in server.output()
