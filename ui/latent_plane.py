"""The live latent plane component (`ui/components/latent_plane.*`): its Python side.

The model (its encoder and decoder as ONNX files, run by onnxruntime-web) and the test images (in tiles of
TILE_IMAGES, fetched when a point of theirs is first hovered) reach the browser as static files named by their content
hash (Streamlit's static serving, `static/cache/`), so a rerun sends only the plane and the points, and a browser
downloads a model once. Everything under the pointer (decoding, hover, pan, zoom, grid size, the drawing pad's
encoding) runs in the browser; Python hears only of pins, picks, the drawn digit and a conditional model's class.
"""
from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import streamlit as st

from ui.plots import CLASS_COLORS
from ui.shared import Selection
from ui.latent_views import model_key
from vae_core.atomic import write_atomic
from vae_core.export import browser_model
from vae_core.projection import LatentPlane

COMPONENT_DIR = Path(__file__).resolve().parent / "components"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # served at app/static/ (server.enableStaticServing)
CACHE_SUBDIR = "cache"
# Test images per tooltip tile: a tile is their uint8 pixels in display layout, gzipped (10,000 MNIST digits make 40
# tiles of ~45 KB; a 64×64 RGB set's tiles hold 3 MB of pixels, so none is fetched before it is needed).
TILE_IMAGES = 256


def _source(name: str) -> str:
    return (COMPONENT_DIR / name).read_text(encoding="utf-8")


# Registered once per process; the pad's preprocessing and the model runtime are prepended so the component is one
# module with no static imports (it imports onnxruntime-web from static/ort/ when a model is first shown).
_plane_component = st.components.v2.component(
    "latent_explorer.latent_plane",
    html=_source("latent_plane.html"),
    css=_source("latent_plane.css"),
    js="\n".join(_source(name) for name in ("pad.js", "runtime.js", "latent_plane.js")),
    isolate_styles=False,  # tests and the benchmark find the stable test ids with plain DOM queries
)


def publish(name: str, payload: Callable[[], bytes], *, background: bool = False) -> str:
    """The URL of static/cache/<name>, written (atomically) the first time it is asked for. `name` must hold a content
    hash: the browser keeps what it fetched from such a URL for good. With `background`, the URL comes at once and a
    missing file is written by the background writer, in the order asked for; the browser asks again until it is
    there."""
    folder = STATIC_DIR / CACHE_SUBDIR
    target = folder / name
    if not target.exists():
        if background:
            _background.put(lambda: publish(name, payload))
        else:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(target, payload())
    return f"app/static/{CACHE_SUBDIR}/{name}"


# One thread writes what the browser may fetch later (a model's ONNX files: seconds to export; tooltip tiles), so no
# page waits for it. A daemon: the server's exit does not wait for files nobody will fetch.
_background: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()


def _write_in_background() -> None:
    while True:
        job = _background.get()
        try:
            job()
        except Exception:  # the file stays missing (the browser says so); the server and the other files go on
            logging.getLogger(__name__).exception("a file of the live plane could not be written")


threading.Thread(target=_write_in_background, name="latent-plane-files", daemon=True).start()


@st.cache_resource(show_spinner=False, max_entries=16)
def _model_payload(key: tuple, _sel: Selection) -> dict[str, Any]:
    exported = browser_model(_sel.model)
    onnx = functools.cache(exported.onnx)  # exported once, only when a file is not yet there (seconds)
    return {"sha": exported.sha, "spec": exported.spec,
            "encoder": publish(f"model-{exported.sha}-encoder.onnx", lambda: onnx()[0], background=True),
            "decoder": publish(f"model-{exported.sha}-decoder.onnx", lambda: onnx()[1], background=True)}


def model_payload(sel: Selection) -> dict[str, Any]:
    """The model's spec (inline) and the URLs of its encoder's and decoder's ONNX files."""
    return _model_payload(model_key(sel), sel)


def display_images(images: Any) -> np.ndarray:
    """Test images (N, H, W) or (N, C, H, W), uint8 or floats in [0, 1], as uint8 in display layout: (N, H, W) grey,
    (N, H, W, 3) colour."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images)


def tile_bytes(images: np.ndarray, t: int) -> bytes:
    """Tile `t` of display-layout uint8 `images`: images t·TILE_IMAGES onwards (at most TILE_IMAGES), gzipped."""
    return gzip.compress(images[t * TILE_IMAGES:(t + 1) * TILE_IMAGES].tobytes(), compresslevel=1, mtime=0)


@st.cache_resource(show_spinner=False, max_entries=8)
def _tiles(dataset: str, _sel: Selection) -> list[str]:
    """The URLs of the tooltip tiles of `dataset`'s test images, made once per dataset (every model of it shares them)
    and written in the background, so a large set never holds the page up."""
    images = display_images(_sel.data.test_images.numpy())
    digest = hashlib.sha256(repr(images.shape).encode() + images.tobytes()).hexdigest()[:20]
    return [publish(f"tiles-{digest}-{t}.gz", lambda t=t: tile_bytes(images, t), background=True)
            for t in range(-(-len(images) // TILE_IMAGES))]


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


@dataclass
class Mark:
    """Something a page draws on the plane, in plane coordinates: a path (`closed` for an outline, `dots` for its
    steps), or a labelled code at `at`."""

    path: list[list[float]] | None = None
    closed: bool = False
    dots: bool = False
    fill: str = ""
    at: list[float] | None = None
    color: str = "#000"
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "", False)}


@dataclass
class PlaneEvents:
    """What the browser reported in this rerun."""

    pin: dict[str, Any] | None = None  # {"x", "y", "z", "klass"}: a click on empty space (or Enter)
    pick: int | None = None  # the test index of a clicked point
    drawn: dict[str, Any] | None = None  # {"pixels" (H, W) float32, "mu", "klass"}: the pad's digit, kept
    klass: int | None = None  # a conditional model's class, picked in the component


def pinned_record(pin: Any, plane: LatentPlane) -> dict[str, Any] | None:
    """A pin reported by the browser as the page keeps it ({"x", "y", "z", "plane"}), with z recomputed from (x, y)
    on `plane` so a stale or malformed report cannot put a wrong-sized vector in the session; None if unusable."""
    try:
        x, y = float(pin["x"]), float(pin["y"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(x) and np.isfinite(y)):
        return None
    return {"x": x, "y": y, "z": plane.to_latent(np.array([x, y])).tolist(), "plane": tuple(plane.labels)}


def decode_drawn(value: dict[str, Any] | None, side: int = 28) -> dict[str, Any] | None:
    """The pad's report with its pixels as a float image; None for a cleared pad or a malformed report."""
    if not isinstance(value, dict) or not isinstance(value.get("pixels"), str):
        return None
    try:
        raw = np.frombuffer(base64.b64decode(value["pixels"], validate=True), np.uint8)
    except ValueError:
        return None
    if raw.size != side * side:
        return None
    return {**value, "pixels": raw.reshape(side, side).astype(np.float32) / 255.0}


def latent_plane(
    sel: Selection, plane: LatentPlane, extent: float, *, key: str,
    xy: np.ndarray | None = None, labels: np.ndarray | None = None, indices: np.ndarray | None = None,
    class_names: tuple[str, ...] = (),
    decode: bool = True, pad: bool = False, grid_n: int = 15, show_grid: bool = True, prior_box: bool = False,
    klass: int | None = None, pinned: tuple[float, float] | None = None, picked: int | None = None,
    center: tuple[float, float] = (0.0, 0.0), axis_titles: tuple[str, str] | None = None, compact: bool = False,
    group: str | None = None,
    marks: tuple[Mark, ...] = (), on_pin: Callable[[], None] | None = None, on_pick: Callable[[], None] | None = None,
    on_drawn: Callable[[], None] | None = None, on_klass: Callable[[], None] | None = None,
) -> PlaneEvents:
    """Mounts the plane. `xy` (N, 2) are the points' plane coordinates, of test images `indices` (default 0..N-1;
    hover shows them); `decode` False shows points only (a UMAP view); `pad` adds the drawing pad; `compact` is for
    narrow columns (no toolbar, the probe below the plot); planes of one `group` decode the same spot together. Callbacks run before the rerun, like a
    widget's; read the values from `st.session_state[key]` there, or from the returned events. The view shows
    `center` ± `extent` (a UMAP view, with `axis_titles`, is not centred on 0)."""
    model = model_payload(sel)  # first: its files are the first the background writer makes
    points = None
    if xy is not None and len(xy):
        xy32, labels8 = np.ascontiguousarray(xy, "<f4"), np.ascontiguousarray(labels, np.uint8)
        points = {
            "xy": _b64(xy32), "labels": _b64(labels8),
            "key": hashlib.sha256(xy32.tobytes() + labels8.tobytes()
                                  + (b"" if indices is None else np.asarray(indices, "<i4").tobytes())).hexdigest()[:16],
            "indices": None if indices is None else _b64(np.asarray(indices, "<i4")),
            "tiles": _tiles(sel.data.name, sel) if sel.data is not None else None, "tile_images": TILE_IMAGES,
            "image_shape": list(sel.info.model_config.image_shape),
        }
    conditional = sel.info.model_class.conditional
    names = list(class_names) or [str(c) for c in range(max(sel.info.model_config.n_classes, 10))]
    data = {
        "name": sel.info.name,
        "model": model,
        "plane": {"origin": np.asarray(plane.origin, float).tolist(), "axes": np.asarray(plane.axes, float).tolist(),
                  "labels": list(plane.labels)},
        "view_key": f"{model_key(sel)}|{plane.labels}|{extent:.6g}|{center}|{hashlib.sha1(np.asarray(plane.origin).tobytes()).hexdigest()[:8]}",
        "extent": float(extent), "center": [float(center[0]), float(center[1])], "axis_titles": axis_titles,
        "prior_box": prior_box, "points": points, "classes": names,
        "colors": list(CLASS_COLORS), "decode": decode, "pad": pad, "grid_n": int(grid_n), "show_grid": show_grid,
        "class_picker": conditional and decode, "klass": int(klass or 0),
        "pinned": None if pinned is None else [float(pinned[0]), float(pinned[1])], "picked": picked,
        "marks": [m.to_json() for m in marks], "compact": compact, "group": group,
    }
    callbacks = {"on_pin_change": on_pin or _noop, "on_pick_change": on_pick or _noop,
                 "on_drawn_change": on_drawn or _noop, "on_klass_change": on_klass or _noop}
    result = _plane_component(key=key, data=data, default={"drawn": None, "klass": int(klass or 0)}, **callbacks)
    return PlaneEvents(pin=_get(result, "pin"), pick=_get(result, "pick"),
                       drawn=decode_drawn(_get(result, "drawn")), klass=_get(result, "klass"))


def _get(result: Any, name: str) -> Any:
    try:
        return result[name]
    except (KeyError, TypeError, AttributeError):
        return getattr(result, name, None)


def _noop() -> None:
    """A state or trigger is only reported back for names with a callback."""
