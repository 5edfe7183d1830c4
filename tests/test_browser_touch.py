"""The Latent Map on a phone (390 × 844, touch, in Chromium): the plane and its panel stack without running off the
edge, a finger dragged over the plane decodes under it, a tap pins or picks, two fingers pan and pinch-zoom, and the
pad takes a finger. Touches go through the DevTools protocol (Input.dispatchTouchEvent), as a touch screen sends them."""
from __future__ import annotations

import numpy as np
import pytest

from browser_plane import PAD, PINNED, PLANE, PROBE, empty_spots, geometry, isolated_points, open_plane, probe

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(app_checkpoints, streamlit_server_factory, chromium):
    server = streamlit_server_factory({"VAE_CHECKPOINT_DIR": str(app_checkpoints.folder)})
    context = chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2)
    page = context.new_page()
    open_plane(page, server.url)
    page.locator(PLANE).scroll_into_view_if_needed()
    yield page, context.new_cdp_session(page)
    context.close()


def touch(cdp, kind: str, *points: tuple[float, float]) -> None:
    """touchStart / touchMove / touchEnd with fingers at page points (touchEnd: the fingers still down)."""
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i, "radiusX": 2, "radiusY": 2, "force": 1} for i, (x, y) in enumerate(points)]})


def lp(page, expression: str):
    return page.evaluate(f"() => {{ const lp = document.querySelector('.lp-root').__lp; return {expression}; }}")


def test_on_a_phone_the_plane_and_its_panel_stack_within_the_screen(phone):
    page, _ = phone
    widths = page.evaluate("""() => { const main = document.querySelector('[data-testid="stMain"]');
        return [document.documentElement.scrollWidth, innerWidth, main.scrollWidth, main.clientWidth]; }""")
    assert widths[0] <= widths[1] and widths[2] <= widths[3], widths  # nothing runs off the right edge
    boxes = {name: page.locator(sel).bounding_box() for name, sel in
             (("plane", PLANE), ("probe", PROBE), ("pad", PAD))}
    assert boxes["plane"]["x"] >= 0 and boxes["plane"]["x"] + boxes["plane"]["width"] <= PHONE["width"]
    for name in ("probe", "pad"):  # under the plane, not beside it
        assert boxes[name]["y"] >= boxes["plane"]["y"] + boxes["plane"]["height"]
        assert boxes[name]["x"] + boxes[name]["width"] <= PHONE["width"]


def test_a_finger_decodes_under_it_and_a_tap_pins_or_picks(phone):
    page, cdp = phone
    box = page.locator(PLANE).bounding_box()
    view = lp(page, "({...lp.view})")
    path = [(box["x"] + box["width"] * u, box["y"] + box["height"] * v)
            for u, v in zip(np.linspace(0.25, 0.75, 8), np.linspace(0.3, 0.6, 8))]
    touch(cdp, "touchStart", path[0])
    seen = []
    for p in path[1:]:
        touch(cdp, "touchMove", p)
        expected = page.evaluate("([x, y]) => { const lp = document.querySelector('.lp-root').__lp,"
                                 " r = lp.overlay.getBoundingClientRect(); return lp.latent(...lp.toPlane(x - r.left, y - r.top)); }",
                                 list(p))
        z = probe(page)[1]
        assert z == pytest.approx(expected, abs=1e-4)  # decoded where the finger is
        seen.append(tuple(z))
    touch(cdp, "touchEnd")
    assert len(set(seen)) == len(seen)
    assert lp(page, "({...lp.view})") == view  # one finger does not pan

    geom = geometry(page)
    (index, px, py), = isolated_points(geom, 1, gap_px=14)
    touch(cdp, "touchStart", (px, py))
    touch(cdp, "touchEnd")
    page.wait_for_function("i => document.body.innerText.includes('#' + i + ' · class')", arg=index, timeout=60_000)
    (x, y), = empty_spots(geom, 1)
    touch(cdp, "touchStart", (x, y))
    touch(cdp, "touchEnd")
    page.wait_for_function("() => /\\(x, y\\) = \\(/.test(document.body.innerText)", timeout=60_000)
    shown = [float(v) for v in PINNED.search(page.inner_text("body")).groups()]
    expected = page.evaluate("([x, y]) => { const lp = document.querySelector('.lp-root').__lp,"
                             " r = lp.overlay.getBoundingClientRect(); return lp.toPlane(x - r.left, y - r.top); }", [x, y])
    assert shown == pytest.approx(expected, abs=2e-3)


def test_two_fingers_pinch_zoom_and_pan(phone):
    page, cdp = phone
    box = page.locator(PLANE).bounding_box()
    cx, cy = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45
    under = page.evaluate("([x, y]) => { const lp = document.querySelector('.lp-root').__lp,"
                          " r = lp.overlay.getBoundingClientRect(); return lp.toPlane(x - r.left, y - r.top); }", [cx, cy])
    span = lp(page, "lp.view.span")
    touch(cdp, "touchStart", (cx - 20, cy), (cx + 20, cy))
    for d in np.linspace(20, 60, 6)[1:]:  # fingers spread to three times their distance: the view shows a third
        touch(cdp, "touchMove", (cx - d, cy), (cx + d, cy))
    touch(cdp, "touchEnd")
    assert lp(page, "lp.view.span") == pytest.approx(span / 3, rel=1e-6)
    still = page.evaluate("([x, y]) => { const lp = document.querySelector('.lp-root').__lp,"
                          " r = lp.overlay.getBoundingClientRect(); return lp.toPlane(x - r.left, y - r.top); }", [cx, cy])
    assert still == pytest.approx(under, abs=1e-4)  # the point between the fingers stayed there (to 1/50 px)

    before = lp(page, "({...lp.view})")
    touch(cdp, "touchStart", (cx - 30, cy), (cx + 30, cy))
    for k in range(1, 6):  # both fingers move 50 px to the right: the plane follows them
        touch(cdp, "touchMove", (cx - 30 + 10 * k, cy), (cx + 30 + 10 * k, cy))
    touch(cdp, "touchEnd")
    after = lp(page, "({...lp.view})")
    per_px = before["span"] / lp(page, "lp.area().w")
    assert after["span"] == pytest.approx(before["span"])
    assert after["cx"] == pytest.approx(before["cx"] - 50 * per_px) and after["cy"] == pytest.approx(before["cy"])


def test_the_pad_takes_a_finger(phone):
    page, cdp = phone
    pad = page.locator(PAD)
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    stroke = [(box["x"] + box["width"] * u, box["y"] + box["height"] * v) for u, v in
              ((0.25, 0.2), (0.5, 0.2), (0.75, 0.2), (0.6, 0.5), (0.45, 0.85))]
    touch(cdp, "touchStart", stroke[0])
    for p in stroke[1:]:
        touch(cdp, "touchMove", p)
    touch(cdp, "touchEnd")
    page.wait_for_function(f"() => document.querySelector('{PAD}').dataset.mu", timeout=10_000)
    page.wait_for_function("() => document.body.innerText.includes('costlier than')", timeout=60_000)
