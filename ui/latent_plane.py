"""The live latent plane component (`ui/components/latent_plane.*`): its Python side.

The model and the test images reach the browser as static files named by their content hash (Streamlit's static
serving, `static/cache/`), so a rerun sends only the plane and the points, and a browser downloads a model once.
Everything under the pointer (decoding, hover, pan, zoom, grid size, the drawing pad's encoding) runs in the
browser; Python hears only of pins, picks, the drawn digit and a conditional model's class.
"""
from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import streamlit as st
from PIL import Image

from ui.plots import CLASS_COLORS
from ui.shared import Selection
from ui.latent_views import model_key
from vae_core.atomic import write_atomic
from vae_core.export import UnsupportedLayer, browser_model
from vae_core.projection import LatentPlane

COMPONENT_DIR = Path(__file__).resolve().parent / "components"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # served at app/static/ (server.enableStaticServing)
CACHE_SUBDIR = "cache"
ATLAS_COLUMNS = 100  # test images per row of the tooltip atlas: 10,000 digits make a 2800×2800 PNG


def _source(name: str) -> str:
    return (COMPONENT_DIR / name).read_text(encoding="utf-8")


# Registered once per process; the forward pass is prepended so the component is one module with no imports.
_plane_component = st.components.v2.component(
    "latent_explorer.latent_plane",
    html=_source("latent_plane.html"),
    css=_source("latent_plane.css"),
    js=_source("forward.js") + "\n" + _source("latent_plane.js"),
    isolate_styles=False,  # tests and the benchmark find the stable test ids with plain DOM queries
)


def publish(name: str, payload: Callable[[], bytes]) -> str:
    """The URL of static/cache/<name>, written (atomically) the first time it is asked for. `name` must hold a content
    hash: the browser keeps what it fetched from such a URL for good."""
    folder = STATIC_DIR / CACHE_SUBDIR
    target = folder / name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(target, payload())
    return f"app/static/{CACHE_SUBDIR}/{name}"


@st.cache_resource(show_spinner=False, max_entries=16)
def _model_payload(key: tuple, _sel: Selection) -> dict[str, Any] | None:
    try:
        exported = browser_model(_sel.model)
    except UnsupportedLayer:  # an imported ONNX model: the plane shows its points, and the server decodes its pins
        return None
    url = publish(f"model-{exported.sha}.bin", lambda: exported.weights)
    return {"url": url, "sha": exported.sha, "spec": exported.spec}


def model_payload(sel: Selection) -> dict[str, Any] | None:
    """The model's ops (inline) and the URL of its weights; None when the browser's forward pass cannot run it."""
    return _model_payload(model_key(sel), sel)


def atlas_png(images: np.ndarray, columns: int = ATLAS_COLUMNS) -> bytes:
    """(N, H, W) images in [0, 1] (or uint8) as one grey PNG, `columns` per row, in index order."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)
    n, h, w = images.shape
    rows = -(-n // columns)
    sheet = np.zeros((rows * h, columns * w), np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = images[i]
    buf = io.BytesIO()
    Image.fromarray(sheet, "L").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


@st.cache_resource(show_spinner=False, max_entries=8)
def _atlas(dataset: str, _sel: Selection) -> str:
    """The URL of the tooltip atlas of `dataset`'s test images, made once per dataset (every model of it shares it)."""
    images = _sel.data.test_images.numpy()
    images = images.reshape(len(images), *images.shape[-2:])
    if images.dtype != np.uint8:
        images = np.clip(np.rint(images * 255), 0, 255).astype(np.uint8)
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:20]
    return publish(f"atlas-{digest}-{ATLAS_COLUMNS}.png", lambda: atlas_png(images))


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
    class_names: tuple[str, ...] = (), colors: tuple[str, ...] = CLASS_COLORS,
    decode: bool = True, pad: bool = False, grid_n: int = 15, show_grid: bool = True, prior_box: bool = False,
    klass: int | None = None, pinned: tuple[float, float] | None = None, picked: int | None = None,
    center: tuple[float, float] = (0.0, 0.0), axis_titles: tuple[str, str] | None = None, compact: bool = False,
    group: str | None = None,
    marks: tuple[Mark, ...] = (), on_pin: Callable[[], None] | None = None, on_pick: Callable[[], None] | None = None,
    on_drawn: Callable[[], None] | None = None, on_klass: Callable[[], None] | None = None,
) -> PlaneEvents:
    """Mounts the plane. `xy` (N, 2) are the points' plane coordinates, of test images `indices` (default 0..N-1;
    hover shows them), coloured by `labels` indexing `colors` and named by `class_names`; `decode` False shows points only (a UMAP view); `pad` adds the drawing pad; `compact` is for
    narrow columns (no toolbar, the probe below the plot); planes of one `group` decode the same spot together. Callbacks run before the rerun, like a
    widget's; read the values from `st.session_state[key]` there, or from the returned events. The view shows
    `center` ± `extent` (a UMAP view, with `axis_titles`, is not centred on 0)."""
    points = None
    if xy is not None and len(xy):
        xy32, labels8 = np.ascontiguousarray(xy, "<f4"), np.ascontiguousarray(labels, np.uint8)
        points = {
            "xy": _b64(xy32), "labels": _b64(labels8),
            "key": hashlib.sha256(xy32.tobytes() + labels8.tobytes()
                                  + (b"" if indices is None else np.asarray(indices, "<i4").tobytes())).hexdigest()[:16],
            "indices": None if indices is None else _b64(np.asarray(indices, "<i4")),
            "atlas": _atlas(sel.data.name, sel) if sel.data is not None else None,
            "atlas_cols": ATLAS_COLUMNS, "image_shape": list(sel.info.model_config.image_shape),
        }
    conditional = sel.info.model_class.conditional
    names = list(class_names) or [str(c) for c in range(max(sel.info.model_config.n_classes, 10))]
    data = {
        "name": sel.info.name,
        "model": model_payload(sel),
        "plane": {"origin": np.asarray(plane.origin, float).tolist(), "axes": np.asarray(plane.axes, float).tolist(),
                  "labels": list(plane.labels)},
        "view_key": f"{model_key(sel)}|{plane.labels}|{extent:.6g}|{center}|{hashlib.sha1(np.asarray(plane.origin).tobytes()).hexdigest()[:8]}",
        "extent": float(extent), "center": [float(center[0]), float(center[1])], "axis_titles": axis_titles,
        "prior_box": prior_box, "points": points, "classes": names,
        "colors": list(colors), "decode": decode, "pad": pad, "grid_n": int(grid_n), "show_grid": show_grid,
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
