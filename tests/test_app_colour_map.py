"""The Latent Map of a colour model in AppTest (a generated 32×32 RGB set, imported, and a small VAE trained on it for
one epoch): its points over both splits with colour tooltips, colour by −ELBO, a selection's panel (count, mean image
and decoded mean code in colour, the typicality strip, the CSV) and a picked point's neighbours in pixel space."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT, plane_data, plane_points, served_file
from vae_core import inference
from vae_core.checkpoint import load_checkpoint
from vae_core.cli import main
from vae_core.data import load_dataset, to_display
from vae_core.per_image import FIGURES, per_image_figures

PAGE = "../app_pages/1_Latent_Map.py"
SIDE, N_TRAIN, N_TEST = 32, 200, 60
MEAN_SCALE = 4  # ui.selection_panel.MEAN_SCALE


@pytest.fixture
def colour_map(imported_sets, tmp_path, monkeypatch):
    """(AppTest of the Latent Map with the colour model picked, the model, its dataset)."""
    import ui.shared

    imported_sets.add("rgb32", side=SIDE, channels=3, n_train=N_TRAIN, n_test=N_TEST, seed=5)
    folder = tmp_path / "models"
    folder.mkdir()
    assert main(["train", "--dataset", "rgb32", "--epochs", "1", "--latent-dim", "2", "--batch-size", "50",
                 "--hidden", "32", "--arch", "mlp", "--out", str(folder / "rgb.pt")]) == 0
    monkeypatch.setenv("VAE_CHECKPOINT_DIR", str(folder))
    monkeypatch.setattr(ui.shared, "CHECKPOINT_DIR", folder)
    ui.shared.clear_datasets()  # another test's set may be cached under the same name
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["selected_model"] = "rgb"
    yield at, load_checkpoint(folder / "rgb.pt")[0], load_dataset("rgb32")
    ui.shared.clear_datasets()


def _png(at: AppTest, media, caption: str) -> np.ndarray:
    """The pixels of the one st.image captioned `caption`."""
    (url,) = [u for e in at.get("image") for c, u in zip(e.captions, e.value) if c == caption]
    return np.asarray(Image.open(io.BytesIO(media(url))))


def _named(position: int) -> str:
    """How a strip's caption names the image at a point position (test first, then train)."""
    return f"#{position}" if position < N_TEST else f"#{position - N_TEST} train"


def test_a_colour_model_shows_every_point_colours_them_and_sums_up_a_selection(colour_map, media):
    at, model, data = colour_map
    at.session_state["lm_points"] = "both"
    at.run()
    assert not at.exception
    sent = plane_data(at)
    assert sent["points"]["image_shape"] == [3, SIDE, SIDE]
    assert [(s["split"], s["count"]) for s in sent["points"]["segments"]] == [("test", N_TEST), ("train", N_TRAIN)]
    images = np.concatenate([data.test_images.numpy(), data.train_images.numpy()])
    labels = np.concatenate([data.test_labels.numpy(), data.train_labels.numpy()])
    xy = plane_points(sent).xy
    assert xy == pytest.approx(inference.encode(model, images, labels)[0], abs=1e-5)  # d = 2: the plane is μ
    # a hovered point's image comes from its split's tile, in colour (H, W, 3)
    tile = served_file(sent["points"]["tiles"]["train"][0])
    assert gzip.decompress(tile.read_bytes()) == to_display(data.train_images.numpy()).tobytes()

    at.selectbox(key="lm_color").set_value("nelbo").run()
    assert not at.exception
    color_by = plane_data(at)["color_by"]
    values = np.fromfile(ROOT / "static" / color_by["url"].removeprefix("app/static/"), "<f4")
    nelbo = per_image_figures(model, images, labels)["nelbo"]
    assert color_by["label"] == FIGURES["nelbo"] and values == pytest.approx(nelbo.astype(np.float32), rel=1e-6)

    # a box over the left half of the codes, as the browser reports it
    x0, x1 = float(xy[:, 0].min()) - 1, float(np.median(xy[:, 0]))
    y0, y1 = float(xy[:, 1].min()) - 1, float(xy[:, 1].max()) + 1
    chosen = np.flatnonzero((xy[:, 0] > x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] < y1))
    at.session_state["latent_map_selection"] = {"key": sent["plane_id"], "shapes": [
        {"kind": "box", "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}]}
    at.run()
    assert not at.exception
    n_test = int((chosen < N_TEST).sum())
    assert any(m.value.startswith(f"**Selection: {len(chosen)} images** ({n_test} test, {len(chosen) - n_test} train)")
               for m in at.markdown)
    # the mean input image in colour: numpy's mean of the selected images, to the PNG's levels
    mean = _png(at, media, "mean input image")
    assert mean.shape == (SIDE * MEAN_SCALE, SIDE * MEAN_SCALE, 3)
    expected = to_display(images[chosen].astype(np.float64).mean(axis=0))
    assert np.abs(mean[::MEAN_SCALE, ::MEAN_SCALE] - expected).max() <= 0.5 + 1e-9
    decoded = _png(at, media, "decoded mean code")
    drawn = inference.decode(model, xy[chosen].astype(np.float64).mean(axis=0).astype(np.float32))[0]
    assert decoded.shape == mean.shape and np.abs(decoded[::MEAN_SCALE, ::MEAN_SCALE] - 255 * drawn).max() <= 1
    # the typicality strip: the 8 lowest and 8 highest −ELBOs of the selection, each image in colour
    strip = [e for e in at.get("image") if len(e.captions) == 16]
    assert len(strip) == 1
    by_nelbo = np.argsort(nelbo[chosen], kind="stable")
    order = np.concatenate([by_nelbo[:8], by_nelbo[::-1][:8]])
    assert [c.split(" · ")[0] for c in strip[0].captions] == [_named(p) for p in chosen[order]]
    first = np.asarray(Image.open(io.BytesIO(media(strip[0].value[0]))))
    assert first.shape == (2 * SIDE, 2 * SIDE, 3) and (first[::2, ::2] == to_display(images[chosen[order[0]]])).all()

    # the CSV: the same images, with their splits, codes and −ELBOs
    (button,) = [b for b in at.get("download_button") if b.proto.label == "Selection as CSV"]
    table = pd.read_csv(io.BytesIO(media(button.proto.deferred_file_id)))
    assert list(table.columns) == ["index", "split", "label", "mu_0", "mu_1", "sigma_0", "sigma_1", "nelbo"]
    position = np.where(table["split"] == "test", 0, N_TEST) + table["index"].to_numpy()
    assert np.array_equal(position, chosen) and (table["label"].to_numpy() == labels[chosen]).all()
    assert np.array_equal(table[["mu_0", "mu_1"]].to_numpy().astype(np.float32), xy[chosen])
    assert table["nelbo"].to_numpy() == pytest.approx(nelbo[chosen], rel=1e-7)


def test_a_picked_colour_image_shows_its_nearest_neighbours_in_pixel_space(colour_map):
    at, model, data = colour_map
    at.session_state["lm_points"] = "both"
    at.session_state["latent_map_picked"] = {"split": "train", "index": 7}
    at.run()
    assert not at.exception
    assert plane_data(at)["picked"] == N_TEST + 7
    assert any(c == f"#7 (train) · class {data.class_names[int(data.train_labels[7])]}"
               for e in at.get("image") for c in e.captions)
    strips = [e for e in at.get("image") if len(e.captions) == 8 and all(c.count(" · ") == 2 for c in e.captions)]
    assert len(strips) == 2
    images = np.concatenate([data.test_images.numpy(), data.train_images.numpy()]).reshape(N_TEST + N_TRAIN, -1)
    distance = np.linalg.norm(images.astype(np.float64) - images[N_TEST + 7], axis=1)
    nearest = [p for p in np.argsort(distance, kind="stable") if p != N_TEST + 7][:8]
    assert [c.split(" · ")[0] for c in strips[1].captions] == [_named(p) for p in nearest]
