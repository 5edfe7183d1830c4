"""The Latent Map's view as the page's URL holds it, so a link reopens the same view: the model, the points shown and
their colouring, the projection, the view box and the colour threshold, the pin, the picked point and the selection.

    ?model=mnist_z2&points=both&color=nelbo&proj=two&view=-1.2,0.4,2.5&above=180&pin=0.5,-1&pick=train:123
     &sel=l:-1.5,0.2;-1,0.9;-0.7,0.1~b:0,0;1,0;1,1;0,1

Every value comes from whoever wrote the link: a part that does not parse is left out (the page's default stands).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from vae_core.selection import KINDS, parse_shapes

RESTORED_KEY = "_view_url_restored"  # set once a session has taken its view from the URL
MAX_PARAM = 20_000  # characters; a selection of 32 shapes of 400 vertices fits
PROJECTIONS = {"two": "Two dims", "pca": "PCA", "umap": "UMAP"}


def _number(v: float) -> str:
    return f"{v:.7g}"  # lasso.js rounds vertices to 7 digits: a link must not move them


def _numbers(text: str | None, count: int) -> list[float] | None:
    try:
        values = [float(v) for v in (text or "").split(",")]
    except ValueError:
        return None
    return values if len(values) == count and all(math.isfinite(v) for v in values) else None


def shapes_text(shapes: list[dict]) -> str:
    """A selection's shapes as one URL parameter: kind initial, then x,y pairs, shapes joined by ~."""
    return "~".join(s["kind"][0] + ":" + ";".join(f"{_number(x)},{_number(y)}" for x, y in s["points"])
                    for s in shapes)


def parse_shapes_text(text: str | None) -> list[dict] | None:
    """The shapes `shapes_text` wrote, or None when the text is not a usable selection."""
    if not text or len(text) > MAX_PARAM:
        return None
    by_initial = {k[0]: k for k in KINDS}
    shapes = []
    for part in text.split("~"):
        initial, _, pairs = part.partition(":")
        points = [_numbers(p, 2) for p in pairs.split(";")]
        if initial not in by_initial or any(p is None for p in points):
            return None
        shapes.append({"kind": by_initial[initial], "points": points})
    try:
        parse_shapes(shapes)
    except ValueError:
        return None
    return shapes


@dataclass
class MapView:
    """What a link to the Latent Map holds; None (or empty) parts are left out of it."""

    model: str | None = None
    points: str | None = None  # "test", "train" or "both"
    color: str | None = None  # "class" or a vae_core.per_image figure
    proj: str | None = None  # a key of PROJECTIONS
    dims: tuple[int, int] | None = None  # the two latent dims of a "two" projection when d > 2
    view: tuple[float, float, float] | None = None  # cx, cy, span
    above: float | None = None  # the colour threshold
    pin: tuple[float, float] | None = None
    pick: tuple[str, int] | None = None  # split, index
    sel: list[dict] = field(default_factory=list)

    def to_params(self) -> dict[str, str]:
        out = {"model": self.model, "points": self.points, "color": self.color, "proj": self.proj,
               "dims": None if self.dims is None else f"{self.dims[0]},{self.dims[1]}",
               "view": None if self.view is None else ",".join(map(_number, self.view)),
               "above": None if self.above is None else _number(self.above),
               "pin": None if self.pin is None else ",".join(map(_number, self.pin)),
               "pick": None if self.pick is None else f"{self.pick[0]}:{self.pick[1]}",
               "sel": shapes_text(self.sel) if self.sel else None}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> MapView:
        """What parses of a URL's parameters (the rest is left at None)."""
        p = {k: v for k, v in params.items() if isinstance(v, str) and len(v) <= MAX_PARAM}
        dims = _numbers(p.get("dims"), 2)
        view = _numbers(p.get("view"), 3)
        above = _numbers(p.get("above"), 1)
        pin = _numbers(p.get("pin"), 2)
        split, _, index = p.get("pick", "").partition(":")
        return cls(
            model=p.get("model"), points=p.get("points"), color=p.get("color"),
            proj=p.get("proj") if p.get("proj") in PROJECTIONS else None,
            dims=tuple(int(v) for v in dims) if dims and all(v == int(v) and v >= 0 for v in dims) else None,
            view=tuple(view) if view and view[2] > 0 else None,
            above=above[0] if above else None, pin=tuple(pin) if pin else None,
            pick=(split, int(index)) if split and index.isdigit() else None,
            sel=parse_shapes_text(p.get("sel")) or [])


def from_url_once() -> MapView | None:
    """The view in the URL the session was opened with, the first time a page asks in a session; else None."""
    if st.session_state.get(RESTORED_KEY):
        return None
    st.session_state[RESTORED_KEY] = True
    return MapView.from_params(st.query_params.to_dict())


def write(view: MapView) -> None:
    """Puts the view into the page's URL (only when it changed: each change is a message to the browser)."""
    params = view.to_params()
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
