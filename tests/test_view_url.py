"""The Latent Map's view in its URL: written as the view changes, read back by a new session, and anything in a link
that does not parse left out."""
from __future__ import annotations

import pytest

from conftest import plane_data
from ui.view_url import MAX_PARAM, MapView, parse_shapes_text, shapes_text

LASSO = {"kind": "lasso", "points": [[-1.5, 0.25], [-1.0, 0.875], [-0.75, 0.125]]}
BOX = {"kind": "box", "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
PAGE = "../app_pages/1_Latent_Map.py"


def test_a_view_round_trips_through_its_parameters():
    view = MapView(model="mnist_z2", points="both", color="nelbo", proj="two", dims=(3, 0), view=(-1.2, 0.4, 2.5),
                   above=180.5, pin=(0.5, -1.0), pick=("train", 123), sel=[LASSO, BOX])
    params = view.to_params()
    assert params["sel"] == "l:-1.5,0.25;-1,0.875;-0.75,0.125~b:0,0;1,0;1,1;0,1"
    assert MapView.from_params(params) == view
    assert MapView().to_params() == {} and MapView.from_params({}) == MapView()


@pytest.mark.parametrize("params", [
    {"view": "1,2"}, {"view": "1,2,-3"}, {"view": "1,nan,3"}, {"view": "a,b,c"}, {"pin": "1"}, {"pin": "inf,0"},
    {"dims": "1.5,2"}, {"dims": "-1,2"}, {"pick": "train:-3"}, {"pick": "train:x"}, {"pick": ":4"}, {"proj": "tsne"},
    {"sel": "l:0,0;1,1"}, {"sel": "x:0,0;1,0;1,1"}, {"sel": "l:0,0;1,0;1,q"}, {"sel": "b:" + "0,0;" * 500 + "1,1"},
    {"sel": "l:0,0;1,0;1,1" * (MAX_PARAM // 10)}, {"above": "1,2"},
])
def test_what_does_not_parse_is_left_out(params):
    assert MapView.from_params({"model": "m", **params}) == MapView(model="m")


def test_shapes_text_keeps_the_seven_digits_the_browser_reports():
    text = shapes_text([{"kind": "lasso", "points": [[0.12345678, -2.0], [1e-7, 3.0], [2.0, 2.0]]}])
    assert text == "l:0.1234568,-2;1e-07,3;2,2"
    assert parse_shapes_text(text)[0]["points"][0] == [0.1234568, -2.0]


def test_a_link_opened_in_a_new_session_restores_the_view(page_app):
    at = page_app(PAGE)
    at.run()
    pid = plane_data(at)["plane_id"]
    link = MapView(model=at.session_state["selected_model"], points="test", color="recon", view=(-0.5, 0.75, 2.0),
                   above=120.0, pin=(0.5, -1.0), pick=("test", 42), sel=[BOX])
    fresh = page_app(PAGE)
    del fresh.session_state["selected_model"]  # a new browser: nothing chosen but what the link says
    for k, v in link.to_params().items():
        fresh.query_params[k] = v
    fresh.run()
    assert not fresh.exception
    data = plane_data(fresh)
    assert data["plane_id"] == pid and data["color_by"]["name"] == "recon"
    assert data["view"] == {"cx": -0.5, "cy": 0.75, "span": 2.0, "above": 120.0} and data["above"] == 120.0
    assert data["pinned"] == pytest.approx([0.5, -1.0]) and data["picked"] == 42
    assert data["selection"] == {"key": pid, "shapes": [BOX]}
    assert any(m.value.startswith("**Selection: ") for m in fresh.markdown)
    url = {k: v[-1] if isinstance(v, list) else v for k, v in fresh.query_params.items()}
    assert MapView.from_params(url) == link  # and the URL still says so
