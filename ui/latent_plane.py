"""The live latent plane component (`ui/components/`): its Python side.

The model (its encoder and decoder as ONNX files, run by onnxruntime-web), the points, the numbers they are coloured
by and the images (in tiles of TILE_IMAGES, fetched when a point of theirs is first hovered) reach the browser as
static files named by their content hash (Streamlit's static serving, `static/cache/`), so a rerun sends only the plane
and a few URLs, and a browser downloads each once. Everything under the pointer (decoding, hover, pan, zoom, drawing a
lasso, the colour threshold, grid size, the drawing pad's encoding) runs in the browser; Python hears only of pins,
picks, finished selections (their polygons: vae_core.selection recounts them), the view once it rests, the drawn digit
and a conditional model's class.
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
from plotly.colors import sequential

from ui.plots import CLASS_COLORS
from ui.shared import Selection, split_images
from ui.latent_views import model_key
from vae_core.atomic import write_atomic
from vae_core.data import ImageDataset, to_display
from vae_core.export import browser_model
from vae_core.projection import LatentPlane

COMPONENT_DIR = Path(__file__).resolve().parent / "components"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # served at app/static/ (server.enableStaticServing)
CACHE_SUBDIR = "cache"
# Images per tooltip tile: a tile is their uint8 pixels in display layout, gzipped (10,000 MNIST digits make 40 tiles
# of ~45 KB; a 64×64 RGB set's tiles hold 3 MB of pixels, so none is fetched before it is needed).
TILE_IMAGES = 256
# The component's files, concatenated into one module with no static imports (each defines top-level names only;
# latent_plane.js exports). runtime.js imports onnxruntime-web from static/ort/ when a model is first shown.
SCRIPTS = ("pad.js", "runtime.js", "point_grid.js", "points_gl.js", "lasso.js", "gestures.js", "colormap.js",
           "latent_plane.js")
COLORMAP = tuple(sequential.Viridis)


def _source(name: str) -> str:
    return (COMPONENT_DIR / name).read_text(encoding="utf-8")


# Registered once per process.
_plane_component = st.components.v2.component(
    "latent_explorer.latent_plane",
    html=_source("latent_plane.html"),
    css=_source("latent_plane.css"),
    js="\n".join(_source(name) for name in SCRIPTS),
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


def tile_bytes(images: np.ndarray, t: int) -> bytes:
    """Tile `t` of uint8 `images` (N, C, H, W): images t·TILE_IMAGES onwards (at most TILE_IMAGES) in display layout,
    gzipped."""
    chosen = to_display(images[t * TILE_IMAGES:(t + 1) * TILE_IMAGES])
    return gzip.compress(chosen.tobytes(), compresslevel=1, mtime=0)


def tiles(data: ImageDataset, split: str) -> list[str]:
    """The URLs of the tooltip tiles of a split of `data`'s images, made once per dataset and split (every model of it
    shares them) and written in the background, so a large set never holds the page up."""
    return _tiles(data.name, data.sha, split, data)


@st.cache_resource(show_spinner=False, max_entries=8)
def _tiles(name: str, sha: str | None, split: str, _data: ImageDataset) -> list[str]:
    images = split_images(_data, split)[0].numpy()  # a view: each tile is laid out for display when it is written
    digest = _digest(repr(images.shape).encode(), images.tobytes())
    return [publish(f"tiles-{digest}-{t}.gz", lambda t=t: tile_bytes(images, t), background=True)
            for t in range(-(-len(images) // TILE_IMAGES))]


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()[:20]


def points_file(xy: np.ndarray, labels: np.ndarray, indices: np.ndarray | None = None,
                highlight: np.ndarray | None = None) -> tuple[str, bytes]:
    """The points as the browser reads them (latent_plane.js: lpPoints), and the name to publish them under: xy
    float32 (2n), then the image index of each in its split int32 (n) when given, labels uint8 (n), and a uint8
    highlight mask (n) when given. 70,000 points make a 630 kB file, fetched once; as base64 inside the page's data
    they were 840 kB, sent again with every rerun that changed anything else (1,000,000: 9.0 MB, 12 MB)."""
    parts = [np.ascontiguousarray(xy, "<f4").tobytes()]
    if indices is not None:
        parts.append(np.ascontiguousarray(indices, "<i4").tobytes())
    parts.append(np.ascontiguousarray(labels, np.uint8).tobytes())
    if highlight is not None:
        parts.append(np.ascontiguousarray(highlight, np.uint8).tobytes())
    blob = b"".join(parts)
    return f"points-{_digest(blob)}.bin", blob


@dataclass(frozen=True)
class ColorBy:
    """A number per point to colour by (the plane shows a colour bar and a threshold slider for it)."""

    name: str  # as the page's URL keeps it, e.g. "nelbo"
    label: str  # as the colour bar shows it, e.g. "−ELBO (nats)"
    values: np.ndarray  # (N,) one per point, in the points' order

    def to_json(self) -> dict[str, Any]:
        values = np.ascontiguousarray(self.values, "<f4")
        finite = values[np.isfinite(values)]
        lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5])) if len(finite) else (0.0, 1.0)
        url = publish(f"values-{_digest(values.tobytes())}.bin", values.tobytes)
        return {"name": self.name, "label": self.label, "url": url, "lo": lo, "hi": hi if hi > lo else lo + 1}


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
    pick: dict[str, Any] | None = None  # {"split", "index"} of a clicked point's image
    drawn: dict[str, Any] | None = None  # {"pixels" (H, W) float32, "mu", "klass"}: the pad's digit, kept
    klass: int | None = None  # a conditional model's class, picked in the component
    selection: dict[str, Any] | None = None  # {"key": plane_id, "shapes": [{"kind", "points"}, ...]}, kept
    view: dict[str, Any] | None = None  # {"cx", "cy", "span", "above"} once the view rests, kept


def plane_id(sel: Selection, plane: LatentPlane) -> str:
    """Names the model and the plane a selection's polygons were drawn on (they mean nothing on another)."""
    where = np.asarray(plane.origin, "<f4").tobytes() + np.asarray(plane.axes, "<f4").tobytes()
    return f"{sel.info.name}|{'/'.join(plane.labels)}|{hashlib.sha1(where).hexdigest()[:8]}"


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


def latent_plane(sel: Selection, plane: LatentPlane, extent: float, *, key: str,
                 on_pin: Callable[[], None] | None = None, on_pick: Callable[[], None] | None = None,
                 on_drawn: Callable[[], None] | None = None, on_klass: Callable[[], None] | None = None,
                 on_select: Callable[[], None] | None = None, on_view: Callable[[], None] | None = None,
                 **options: Any) -> PlaneEvents:
    """Mounts the plane (what it shows: `plane_data`'s options). Callbacks run before the rerun, like a widget's; read
    the values from `st.session_state[key]` there, or from the returned events; `on_view` hears where the view rests
    (without it the view is not reported)."""
    data = plane_data(sel, plane, extent, report_view=on_view is not None, **options)
    callbacks = {"on_pin_change": on_pin or _noop, "on_pick_change": on_pick or _noop,
                 "on_drawn_change": on_drawn or _noop, "on_klass_change": on_klass or _noop,
                 "on_selection_change": on_select or _noop, "on_view_change": on_view or _noop}
    klass = options.get("klass")
    result = _plane_component(key=key, data=data, default={"drawn": None, "klass": int(klass or 0)}, **callbacks)
    return PlaneEvents(pin=_get(result, "pin"), pick=_get(result, "pick"),
                       drawn=decode_drawn(_get(result, "drawn")), klass=_get(result, "klass"),
                       selection=_get(result, "selection"), view=_get(result, "view"))


def plane_data(
    sel: Selection, plane: LatentPlane, extent: float, *,
    xy: np.ndarray | None = None, labels: np.ndarray | None = None, indices: np.ndarray | None = None,
    segments: tuple[tuple[str, int], ...] | None = None, highlight: np.ndarray | None = None,
    class_names: tuple[str, ...] = (), colors: tuple[str, ...] = CLASS_COLORS,
    color_by: ColorBy | None = None,
    decode: bool = True, pad: bool = False, grid_n: int = 15, show_grid: bool = True, prior_box: bool = False,
    klass: int | None = None, pinned: tuple[float, float] | None = None, picked: int | None = None,
    select: bool = False, selection: list[dict] | None = None, view: dict[str, float] | None = None,
    center: tuple[float, float] = (0.0, 0.0), axis_titles: tuple[str, str] | None = None, compact: bool = False,
    group: str | None = None, marks: tuple[Mark, ...] = (), report_view: bool = False,
) -> dict[str, Any]:
    """What the plane is sent. `xy` (N, 2) are the points' plane coordinates; `segments` ((split, count), ...) say which
    split each run of them comes from (default: all test images), `indices` each one's image index in its split
    (default: its position in its run); hover shows test images. `highlight` (N,) bool marks points the page wants
    seen (the rest fade). `labels` index `colors` (named by `class_names`), unless `color_by` colours them by a
    number. `decode` False shows points only (a UMAP view); `pad` adds the drawing pad; `compact` is for narrow
    columns (no toolbar, the probe below the plot); planes of one `group` decode the same spot together. `picked` is
    a point's position in `xy`. `select` offers lasso and box selection; `selection` is the one to show (shapes as
    reported for this `plane_id`). `view` ({"cx", "cy", "span", "above"}, e.g. from the page's URL) is where the
    view (and the colour threshold) starts, else it shows `center` ± `extent` (a UMAP view, with `axis_titles`, is
    not centred on 0)."""
    model = model_payload(sel)  # first: its files are the first the background writer makes
    points = None
    if xy is not None and len(xy):
        name, blob = points_file(xy, labels, indices, None if highlight is None else np.asarray(highlight, bool))
        segments = segments or (("test", len(xy)),)
        starts = np.cumsum([0, *(count for _, count in segments)])
        points = {
            "url": publish(name, lambda: blob), "n": len(xy), "indices": indices is not None,
            "highlight": highlight is not None,
            "segments": [{"split": split, "start": int(s0), "count": int(count)}
                         for (split, count), s0 in zip(segments, starts)],
            "tiles": {} if sel.data is None else {split: tiles(sel.data, split) for split, _ in segments},
            "tile_images": TILE_IMAGES, "image_shape": list(sel.info.model_config.image_shape),
        }
    conditional = sel.info.model_class.conditional
    names = list(class_names) or [str(c) for c in range(max(sel.info.model_config.n_classes, 10))]
    pid = plane_id(sel, plane)
    data = {
        "name": sel.info.name,
        "model": model,
        "plane": {"origin": np.asarray(plane.origin, float).tolist(), "axes": np.asarray(plane.axes, float).tolist(),
                  "labels": list(plane.labels)},
        "view_key": f"{model_key(sel)}|{pid}|{extent:.6g}|{center}",
        "plane_id": pid, "view": view, "report_view": report_view,
        "extent": float(extent), "center": [float(center[0]), float(center[1])], "axis_titles": axis_titles,
        "prior_box": prior_box, "points": points, "classes": names,
        "colors": list(colors), "colormap": list(COLORMAP),
        "color_by": None if color_by is None or points is None else color_by.to_json(),
        "above": None if view is None else view.get("above"),
        "decode": decode, "pad": pad, "grid_n": int(grid_n), "show_grid": show_grid,
        # the pad asks for what the set holds: MNIST's pipeline centres digits, other grey sets take any drawing
        "pad_title": "Draw a digit" if sel.data is None or sel.data.digit_like else "Draw an image",
        "class_picker": conditional and decode, "klass": int(klass or 0),
        "pinned": None if pinned is None else [float(pinned[0]), float(pinned[1])], "picked": picked,
        "select": select and points is not None,
        "selection": {"key": pid, "shapes": selection} if selection else None,
        "marks": [m.to_json() for m in marks], "compact": compact, "group": group,
    }
    return data


def _get(result: Any, name: str) -> Any:
    try:
        return result[name]
    except (KeyError, TypeError, AttributeError):
        return getattr(result, name, None)


def _noop() -> None:
    """A state or trigger is only reported back for names with a callback."""
