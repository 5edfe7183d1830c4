"""The live plane's points in Chromium with the full MNIST (70,000 codes): a lasso selects exactly the points inside
it, the server's panel sums up the same images, the CSV round-trips; hover, pick and pin at 70,000 points."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.path import Path
from PIL import Image

from browser_plane import (PINNED, drag_path, empty_spots, geometry, isolated_points, open_plane, pin, plane_points,
                           selected, show_points, wait_for_selection_panel)
from vae_core.checkpoint import load_checkpoint
from vae_core.data import load_test_set
from vae_core.per_image import per_image_figures


@pytest.fixture
def full_plane(app_checkpoints, shared_data, streamlit_server_factory, browser_page):
    """The Latent Map of mnist_z2 over both splits of the full MNIST: (page, model, test + train images, labels)."""
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder),
                                       "VAE_DATA_DIR": str(shared_data)})
    model, info = load_checkpoint(app_checkpoints.z2)
    data = load_test_set(info.dataset, shared_data)
    images = np.concatenate([data.test_images.numpy(), data.train_images.numpy()])
    labels = np.concatenate([data.test_labels.numpy(), data.train_labels.numpy()])
    open_plane(browser_page, server.url)
    show_points(browser_page, "both", len(labels))
    return browser_page, model, images, labels


def ring(center: np.ndarray, rx: float, ry: float, n: int = 24) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return [(float(center[0] + rx * np.cos(a)), float(center[1] + ry * np.sin(a))) for a in t]


def test_a_lasso_selects_exactly_the_points_inside_and_the_panel_sums_them_up(full_plane, tmp_path):
    page, model, images, labels = full_plane
    xy, shown_labels = plane_points(page)
    assert (shown_labels == labels).all() and len(xy) == 70_000
    ones = np.median(xy[labels == 1], axis=0)  # the cluster of 1s

    page.click('[data-lp="tool-lasso"]')
    drag_path(page, ring(ones, 0.45, 0.3))
    shapes = page.evaluate("() => document.querySelector('.lp-root').__lp.shapes")
    assert len(shapes) == 1 and shapes[0]["kind"] == "lasso" and len(shapes[0]["points"]) > 20
    inside = np.flatnonzero(Path(np.asarray(shapes[0]["points"])).contains_points(xy.astype(np.float64)))
    chosen = selected(page)
    assert len(chosen) > 500 and np.array_equal(chosen, inside)  # exactly the points inside, none else
    assert (labels[chosen] == 1).mean() > 0.9
    wait_for_selection_panel(page, len(chosen))

    # the panel's mean input image is numpy's mean of the selected images (to the PNG's grey levels)
    figure = page.locator('[data-testid="stImage"]').filter(has_text="mean input image").locator("img")
    png = page.request.get(figure.get_attribute("src")).body()
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float64)[::4, ::4]
    expected = images[chosen].astype(np.float64).mean(axis=0)
    assert shown.shape == (28, 28) and np.abs(shown - expected).max() <= 0.5 + 1e-9

    # the CSV names the same images, with their codes and −ELBOs, at full precision (once the panel has scored every
    # image: the first selection of a model waits for that)
    page.wait_for_function("() => document.body.innerText.includes('most typical members')", timeout=600_000)
    with page.expect_download(timeout=120_000) as download:
        page.get_by_role("button", name="Selection as CSV").click()
    table = pd.read_csv(download.value.path())
    assert list(table.columns) == ["index", "split", "label", "mu_0", "mu_1", "sigma_0", "sigma_1", "nelbo"]
    position = np.where(table["split"] == "test", 0, 10_000) + table["index"].to_numpy()
    assert np.array_equal(position, chosen) and (table["label"].to_numpy() == labels[chosen]).all()
    from vae_core import inference
    mu, sigma = inference.encode(model, images[chosen])
    assert np.array_equal(table[["mu_0", "mu_1"]].to_numpy().astype(np.float32), xy[chosen])  # the codes drawn
    assert table[["mu_0", "mu_1"]].to_numpy() == pytest.approx(mu, abs=1e-5)
    assert table[["sigma_0", "sigma_1"]].to_numpy() == pytest.approx(sigma, rel=1e-4)
    assert table["nelbo"].to_numpy() == pytest.approx(per_image_figures(model, images[chosen])["nelbo"], rel=1e-6)

    # Shift adds a box: the union of both shapes
    zeros = np.median(xy[labels == 0], axis=0)
    page.click('[data-lp="tool-box"]')
    drag_path(page, [(zeros[0] - 0.3, zeros[1] - 0.3), (zeros[0] + 0.3, zeros[1] + 0.3)], shift=True)
    shapes = page.evaluate("() => document.querySelector('.lp-root').__lp.shapes")
    assert [s["kind"] for s in shapes] == ["lasso", "box"]
    (bx0, by0), _, (bx1, by1), _ = shapes[1]["points"]
    in_box = np.flatnonzero((xy[:, 0] > min(bx0, bx1)) & (xy[:, 0] < max(bx0, bx1)) &
                            (xy[:, 1] > min(by0, by1)) & (xy[:, 1] < max(by0, by1)))
    both = selected(page)
    assert len(in_box) > 100 and np.array_equal(both, np.union1d(inside, in_box))
    wait_for_selection_panel(page, len(both))
    page.locator('[data-testid="latent-plane"]').press("Escape")  # clears it, here and on the server
    page.wait_for_function("() => !document.body.innerText.includes('Selection: ')", timeout=60_000)
    assert len(selected(page)) == 0


def test_hover_pick_and_pin_keep_working_at_70000_points(full_plane):
    page, model, images, labels = full_plane
    geom = geometry(page)
    assert geom["n"] == 70_000
    targets = isolated_points(geom, 8, gap_px=9)
    assert len(targets) == 8
    identities = page.evaluate("(ids) => ids.map((i) => document.querySelector('.lp-root').__lp.identity(i))",
                               [i for i, _, _ in targets])
    rng = np.random.default_rng(1)
    for (index, px, py), who in zip(targets, identities):
        page.mouse.move(px + rng.uniform(-1, 1), py + rng.uniform(-1, 1))
        tip = page.locator('[data-lp="tip-text"]').inner_text()
        assert tip.startswith(f"#{who['index']} {who['split']} · {labels[index]}"), tip
        page.mouse.click(px + rng.uniform(-1, 1), py + rng.uniform(-1, 1))
        caption = f"#{who['index']}" + ("" if who["split"] == "test" else " (train)") + f" · class {labels[index]}"
        page.wait_for_function("c => document.body.innerText.includes(c)", arg=caption, timeout=60_000)
    geom = geometry(page)
    pixel = geom["view"]["span"] / geom["area"]["w"]
    spots = empty_spots(geom, 2, clearance_px=10)
    assert len(spots) == 2
    for px, py in spots:
        expected, _ = pin(page, px, py, timeout_ms=60_000)
        shown = [float(v) for v in PINNED.search(page.inner_text("body")).groups()]
        assert abs(shown[0] - expected[0]) <= pixel and abs(shown[1] - expected[1]) <= pixel


@pytest.fixture
def map_page(app_checkpoints, streamlit_server_factory, browser_page):
    """The Latent Map of the d = 2 model with its test split (bundled, or the full data's)."""
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    open_plane(browser_page, server.url)
    return browser_page


def colour_by(page, label: str) -> np.ndarray:
    """Chooses what the points are coloured by; returns the numbers the browser got."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Colour by").click()
    page.get_by_role("option", name=label).click()
    page.wait_for_function("label => { const r = document.querySelector('.lp-root'), lp = r.__lp;"
                           " return r.dataset.ready === '1' && lp.values && lp.data.color_by.label === label; }",
                           arg=label, timeout=300_000)
    return np.asarray(page.evaluate("() => Array.from(document.querySelector('.lp-root').__lp.values)"), np.float32)


def set_threshold(page, fraction: float) -> float:
    """Moves the colour bar's threshold to `fraction` of its range; returns the threshold the plane applied."""
    return page.evaluate("""(f) => { const s = document.querySelector('[data-lp=above]');
        s.value = String(+s.min + f * (s.max - s.min)); s.dispatchEvent(new Event('input'));
        return document.querySelector('.lp-root').__lp.above; }""", fraction)


def test_colour_by_shows_the_servers_figures_and_the_threshold_hides_the_rest(map_page, app_checkpoints):
    page = map_page
    values = colour_by(page, "−ELBO (nats)")
    model, info = load_checkpoint(app_checkpoints.z2)
    data = load_test_set(info.dataset)
    expected = per_image_figures(model, data.test_images, data.test_labels)["nelbo"]
    assert np.array_equal(values, expected.astype(np.float32))  # the server's figures, as float32
    assert page.locator('[data-lp="bar"]').is_visible() and not page.locator('[data-lp="legend"] .lp-chip').count()

    above = set_threshold(page, 0.6)
    shown = values >= above
    assert 0 < shown.sum() < len(values)
    assert int(page.evaluate("() => document.querySelector('.lp-root').dataset.shown")) == shown.sum()
    geom = geometry(page)
    hidden = [t for t in isolated_points(geom, 200, gap_px=8) if not shown[t[0]]][:3]
    visible = [t for t in isolated_points(geom, 200, gap_px=8) if shown[t[0]]][:3]
    assert hidden and visible
    for index, px, py in hidden:  # a hidden point is not there to hover
        page.mouse.move(px, py)
        assert page.evaluate("() => document.querySelector('.lp-root').__lp.hover") == -1
    for index, px, py in visible:  # a shown one says its number
        page.mouse.move(px, py)
        tip = page.locator('[data-lp="tip-text"]').inner_text()
        assert tip.startswith(f"#{index} · ") and "−ELBO (nats) " in tip
        assert float(tip.rsplit(" ", 1)[1]) == pytest.approx(values[index], abs=0.006)


def test_a_link_restores_the_view_and_the_selection_in_a_new_browser(map_page, chromium):
    page = map_page
    colour_by(page, "reconstruction error (nats)")
    above = set_threshold(page, 0.3)
    xy, labels = plane_points(page)
    page.click('[data-lp="tool-lasso"]')
    drag_path(page, ring(np.median(xy[labels == 0], axis=0), 0.6, 0.5))
    chosen = selected(page)
    wait_for_selection_panel(page, len(chosen))
    page.click('[data-lp="tool-pan"]')
    box = page.locator('[data-testid="latent-plane"]').bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.6)
    page.mouse.wheel(0, -400)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    view = page.evaluate("() => document.querySelector('.lp-root').__lp.viewState()")
    # The zoom and the pan reach the URL in separate reports: wait for the last one, all three numbers.
    page.wait_for_function("want => { const got = (new URLSearchParams(location.search).get('view') || '')"
                           ".split(',').map(Number); return got.length == 3 && "
                           "got.every((v, i) => Math.abs(v - want[i]) <= 1e-5 * Math.abs(want[i]) + 1e-9); }",
                           arg=[view["cx"], view["cy"], view["span"]], timeout=60_000)
    assert {"sel", "color", "above", "model"} <= set(page.evaluate("() => [...new URLSearchParams(location.search).keys()]"))
    shapes = page.evaluate("() => document.querySelector('.lp-root').__lp.shapes")

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = context.new_page()
        fresh.goto(page.evaluate("() => location.href"))  # what the wait above read, not Playwright's copy of it
        fresh.wait_for_function("() => document.querySelector('.lp-root')?.dataset.ready === '1' && "
                                "document.querySelector('.lp-root').__lp.values", timeout=300_000)
        restored = fresh.evaluate("() => document.querySelector('.lp-root').__lp.viewState()")
        assert restored == pytest.approx(view, rel=1e-5)
        assert restored["above"] == pytest.approx(above, rel=1e-5)
        assert fresh.evaluate("() => document.querySelector('.lp-root').__lp.shapes") == shapes
        assert np.array_equal(selected(fresh), chosen)
        wait_for_selection_panel(fresh, len(chosen))
        assert fresh.evaluate("() => document.querySelector('.lp-root').__lp.data.color_by.label") == \
            "reconstruction error (nats)"
    finally:
        context.close()
