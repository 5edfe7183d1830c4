"""The app on the user's own images, in AppTest: a zip uploaded on the Train page becomes a dataset with its report
and is offered by the dataset pickers; a model of a 32×32 RGB imported set is shown in colour on Home, the Latent Map
(its tooltip atlas), Reconstruct, Interpolate and Compare; a classifier trained on request for that set then judges
its decoders on Compare."""
from __future__ import annotations

import gzip
import io
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from colour_sets import SHAPES, Store, shapes
from conftest import plane_data, served_file
from ui import background, classifier_request, shared, training
from vae_core import inference, preprocess
from vae_core.checkpoint import load_checkpoint
from vae_core.classifier import accuracy, find_classifier, load_classifier
from vae_core.cli import main
from vae_core.data import available_datasets, dataset_info, load_dataset, load_test_set, to_display
from vae_core.datasets import imported
from vae_core.importer import DATASETS_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "app_pages"
SET = "shapes"  # 32×32 RGB, four labelled classes


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def picture(at: AppTest, media, caption: str) -> np.ndarray:
    """The pixels of the one st.image of the last run whose caption starts with `caption`."""
    found = [url for image in at.get("image") for url, c in zip(image.value, image.captions) if c.startswith(caption)]
    assert len(found) == 1, (caption, [c for image in at.get("image") for c in image.captions])
    return np.asarray(Image.open(io.BytesIO(media(found[0]))))


def shrink(image: np.ndarray, scale: int) -> np.ndarray:
    """A nearest-neighbour upscale by `scale`, undone."""
    return image[::scale, ::scale]


def is_colour(image: np.ndarray) -> bool:
    """RGB pixels that are not all grey (R = G = B)."""
    return image.ndim == 3 and image.shape[2] == 3 and bool((np.ptp(image.astype(int), axis=2) > 8).any())


# --- Add your images (Train) --------------------------------------------------------------------------------------

def parts_zip() -> bytes:
    """A folder of 64×64 colour photos in three class subfolders, with junk the report must name."""
    images, labels = shapes(60, 64, 3, seed=3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (image, label) in enumerate(zip(images, labels)):
            z.writestr(f"parts/{SHAPES[label % 3]}/{i:03d}.png", png(image.transpose(1, 2, 0)))
        z.writestr("parts/disc/notes.png", b"a text file with an image's name\n")
        z.writestr("parts/triangle/empty.jpg", b"")
        z.writestr("__MACOSX/parts/._000.png", b"\x00\x05\x16\x07")
    return buf.getvalue()


@pytest.fixture
def train_page(imported_sets, tmp_path, monkeypatch):
    """The Train page over an empty checkpoint folder and an empty store of imported sets."""
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    monkeypatch.delenv("VAE_TRAINED_DIR", raising=False)
    training.registry().clear()
    shared.clear_datasets()
    at = AppTest.from_file(str(PAGES / "4_Train.py"), default_timeout=60)
    yield at
    training.registry().clear()


def test_a_zip_uploaded_on_train_becomes_a_dataset_with_its_report(train_page):
    at = train_page.run()
    assert not at.exception
    options = at.selectbox(key="_w.train.dataset").options
    assert "mnist-sample · 28×28 grey" in options and not any(o.startswith("My_parts") for o in options)
    assert at.radio(key="_w.train.arch").value == "mlp"  # the sample's 28×28 grey digits
    assert at.button(key="import.start").disabled  # nothing uploaded yet
    assert at.selectbox(key="import.side").value == at.selectbox(key="import.channels").value == 0  # automatic

    at.file_uploader(key="import.upload").set_value([("My parts (2).zip", parts_zip(), "application/zip")])
    at.run()
    at.selectbox(key="import.side").set_value(32)
    at.button(key="import.start").click().run()
    assert not at.exception and not at.main.error
    task = background.tasks().get("import:My_parts_2")  # named after the zip
    assert task is not None
    wait_for(lambda: not task.running)
    at.run()
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]

    (report,) = [s.value for s in at.success]
    assert report.startswith("Imported `My_parts_2`: 60 images") and "32×32 RGB, 3 classes" in report
    skipped = "\n".join(t.value for t in at.text)
    assert "notes.png" in skipped and "empty.jpg" in skipped  # each bad file named, with its reason
    assert at.expander[0].label == "Add your images"
    assert any(e.label == "3 files skipped" for e in at.expander)
    info = dataset_info("My_parts_2")
    assert info.image_shape == (3, 32, 32) and info.class_names == ("disc", "square", "triangle")
    data = load_dataset("My_parts_2")
    assert len(data.train_images) + len(data.test_images) == 60

    # in the pickers at once, and the form switched to it with the architecture its images want
    picker = at.selectbox(key="_w.train.dataset")
    assert "My_parts_2 · 32×32 RGB" in picker.options and picker.value == "My_parts_2"
    assert "My_parts_2" in available_datasets()
    assert at.radio(key="_w.train.arch").value == "conv"
    assert any(c.value.startswith("Convnet: 32×32×3 → 16×16×32 → 8×8×64 → 4×4×128") for c in at.caption)
    counts = at.dataframe[0].value  # the report's images per class
    assert list(counts["class"]) == ["disc", "square", "triangle"]
    assert counts["images"].sum() == 60 and (counts["images"] == counts["train"] + counts["test"]).all()
    assert counts["test"].sum() == len(data.test_images)
    assert list(at.dataframe[1].value["name"]) == ["My_parts_2"]  # the imported sets


def test_a_bad_upload_says_so_in_one_line_and_the_page_goes_on(train_page):
    at = train_page.run()
    at.file_uploader(key="import.upload").set_value([("broken.zip", b"PK\x03\x04 not really a zip", "application/zip")])
    at.run()
    at.button(key="import.start").click().run()
    wait_for(lambda: not background.tasks().get("import:broken").running)
    at.run()
    assert not at.exception
    (error,) = [e.value for e in at.main.error]
    assert error.startswith("broken.zip is not a readable zip file") and "Traceback" not in error and "\n" not in error
    assert "broken" not in available_datasets()
    assert at.button(key="import.start")  # the form is back for another try


# --- A colour set on the pages ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def colour_models(tmp_path_factory):
    """A 32×32 RGB imported set with a conv VAE (d = 2) and a conv AE trained on it for one epoch by the CLI."""
    root = tmp_path_factory.mktemp("colour")
    folder = root / "checkpoints"
    folder.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATASETS_DIR_ENV, str(root / "store"))
        imported._load.cache_clear()
        manifest = Store(root / "store").add(SET, side=32, channels=3, n_train=400, n_test=100)
        for name, kind in (("shapes_vae", "vae"), ("shapes_ae", "ae")):
            assert main(["train", "--dataset", SET, "--kind", kind, "--epochs", "1", "--latent-dim", "2",
                         "--batch-size", "50", "--hidden", "32", "--out", str(folder / f"{name}.pt")]) == 0
        yield SimpleNamespace(root=root, folder=folder, manifest=manifest)
    imported._load.cache_clear()


@pytest.fixture
def colour_app(colour_models, tmp_path, monkeypatch):
    """AppTest of a page with the colour VAE picked; what the app trains (a classifier) goes to tmp_path."""
    monkeypatch.setenv(DATASETS_DIR_ENV, str(colour_models.root / "store"))
    monkeypatch.setenv("VAE_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setattr(shared, "CHECKPOINT_DIR", colour_models.folder)
    imported._load.cache_clear()
    shared.clear_datasets()

    def make(page: str, model: str = "shapes_vae") -> AppTest:  # page: its path in the repository
        at = AppTest.from_file(str(ROOT / page), default_timeout=90)
        at.session_state["selected_model"] = model
        return at

    yield make
    imported._load.cache_clear()


def test_reconstruct_makes_a_colour_upload_the_sets_way(colour_app, colour_models, media):
    at = colour_app("app_pages/3_Reconstruct.py").run()
    assert not at.exception
    assert any("cropped to its centre square and resized to 32×32 RGB" in c.value for c in at.caption)
    assert at.button(key="recon_try").label == "Try with 3 test images"  # not digits
    photo = shapes(1, 96, 3, seed=7)[0][0].transpose(1, 2, 0)
    wide = np.concatenate([photo[:, :24], photo, photo[:, -24:]], axis=1)  # 96×144: the centre square is the photo
    at.file_uploader(key="recon_uploads").set_value([("photo.png", png(wide), "image/png")])
    at.run()
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]

    expected = preprocess.preprocess_image(png(wide), "photo.png", (3, 32, 32), digit_like=False).image
    assert expected.shape == (32, 32, 3)
    shown = picture(at, media, "resized to 32×32")
    assert shown.shape == (96, 96, 3)  # upscaled 3× to about the thumbnail's 104 px
    assert np.array_equal(shrink(shown, 3), np.rint(expected * 255)) and is_colour(shown)
    # the reconstruction is the model's decode of the upload's posterior mean, in colour
    model, _ = load_checkpoint(colour_models.folder / "shapes_vae.pt")
    mu, _ = inference.encode(model, expected[None])
    recon = inference.decode(model, mu)[0]
    shown_recon = shrink(picture(at, media, "reconstruction"), 3)
    assert shown_recon.shape == (32, 32, 3)
    assert np.abs(shown_recon.astype(int) - np.rint(recon * 255).astype(int)).max() <= 1
    assert len(plane_data(at, "recon_plane")["marks"]) == 2  # its point and its ellipse on the map


def test_reconstruct_examples_are_the_sets_own_test_images(colour_app, media):
    at = colour_app("app_pages/3_Reconstruct.py").run()
    at.button(key="recon_try").click().run()
    assert not at.exception and not at.main.error
    data = load_test_set(SET)
    cards = [m.value for m in at.markdown if m.value.startswith("**") and ". test #" in m.value]
    assert len(cards) == 3 and "at 8× size" in cards[1]
    inputs = [np.asarray(Image.open(io.BytesIO(media(url)))) for image in at.get("image")
              for url, c in zip(image.value, image.captions) if c == "resized to 32×32"]
    for card, shown in zip(cards, inputs):  # as stored, and from 8× size back to nearly the same pixels
        index = int(card.split("#")[1].split(" ")[0])
        error = np.abs(shrink(shown, 3).astype(int) - to_display(data.test_images[index]).astype(int))
        if "8×" in card:  # Lanczos rings a little at the shapes' edges
            assert error.mean() < 4 and is_colour(shown), card  # another image differs by tens
        else:
            assert error.max() == 0 and is_colour(shown), card


def test_interpolate_draws_a_colour_strip_between_test_images(colour_app, colour_models, media):
    at = colour_app("app_pages/2_Interpolate.py").run()
    assert not at.exception and not at.main.error
    buttons = {b.proto.label: b.proto.url for b in at.get("download_button")}
    strip = np.asarray(Image.open(io.BytesIO(media(buttons["Strip (PNG)"]))).convert("RGB"))
    steps, scale = 10, 3  # 84 px per image: 32 px × 3
    assert strip.shape == (32 * scale, (steps * 32 + (steps - 1) * 2) * scale, 3)
    model, _ = load_checkpoint(colour_models.folder / "shapes_vae.pt")
    data = load_test_set(SET)
    mu, _ = inference.encode(model, data.test_images[:2])
    frames = inference.decode(model, inference.interpolate(mu[0], mu[1], steps, "linear"))
    first, last = shrink(strip[:, :32 * scale], scale), shrink(strip[:, -32 * scale:], scale)
    assert np.abs(first.astype(int) - np.rint(frames[0] * 255)).max() <= 1
    assert np.abs(last.astype(int) - np.rint(frames[-1] * 255)).max() <= 1
    thumb = picture(at, media, "test #0")
    assert np.array_equal(shrink(thumb, 4), to_display(data.test_images[0])) and is_colour(thumb)
    gif = Image.open(io.BytesIO(media(buttons["Morph (animated GIF)"])))
    assert gif.n_frames == steps and gif.size == (32 * 7, 32 * 7)


def test_compare_draws_colour_grids_and_offers_a_classifier(colour_app):
    at = colour_app("app_pages/5_Compare.py").run()
    at.multiselect(key="_w.compare.models").set_value(["shapes_ae", "shapes_vae"]).run()
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]
    captions = [c for image in at.get("image") for c in image.captions]
    for kind in ("decoded 12×12 grid", "samples from the prior", "the same 8 test inputs"):
        assert sum(c.startswith(kind) for c in captions) == 2, (kind, captions)
    assert not any("read as one class" in c for c in captions)  # no classifier judges shapes yet
    assert "prior samples read as a class" not in at.dataframe[0].value
    assert not [t for t in at.toggle if t.key == "compare.tint"]
    assert at.button(key=f"classifier-{SET}").label == f"Train a classifier for {SET}"


def test_a_classifier_trained_on_request_judges_the_set_on_compare(colour_app, tmp_path):
    at = colour_app("app_pages/5_Compare.py").run()
    at.multiselect(key="_w.compare.models").set_value(["shapes_ae", "shapes_vae"]).run()
    at.button(key=f"classifier-{SET}").click().run()
    assert not at.exception and not at.main.error
    task = background.tasks().get(classifier_request.task_key(SET))
    assert task is not None
    wait_for(lambda: not task.running)
    assert task.view().state == background.FINISHED, task.view().error
    at.run()
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]

    path = find_classifier(dataset_info(SET), tmp_path / "trained" / "classifier")
    assert path == tmp_path / "trained" / "classifier" / f"{SET}.pt"
    model, meta = load_classifier(path)
    data = load_test_set(SET)
    assert meta["dataset_sha"] == data.sha and model.image_shape == (3, 32, 32)
    assert accuracy(model, data.test_images, data.test_labels) == pytest.approx(meta["test_accuracy"])
    assert meta["test_accuracy"] > 0.5  # four shapes: chance is 25 %
    assert any(f"test accuracy {meta['test_accuracy']:.0%}" in s.value for s in at.success)

    assert not [b for b in at.button if b.key == f"classifier-{SET}"]  # asked once
    shares = at.dataframe[0].value["prior samples read as a class"]
    assert shares.between(0, 1).all()
    captions = [c for image in at.get("image") for c in image.captions]
    assert sum(f"read as one class by {SET}'s classifier" in c for c in captions) == 2
    at.toggle(key="compare.tint").set_value(True).run()
    assert not at.exception


def test_home_and_the_latent_map_show_the_colour_set(colour_app, media):
    at = colour_app("app.py").run()
    assert not at.exception and not at.main.error
    grid = picture(at, media, "What shapes_vae draws")
    assert grid.ndim == 3 and grid.shape[2] == 3  # the decoded tour in colour
    assert any("Images of 32×32 RGB" in c.value for c in at.caption)

    at = colour_app("app_pages/1_Latent_Map.py").run()
    assert not at.exception and not at.main.error
    data = plane_data(at)
    assert data["classes"] == list(SHAPES) and data["points"]["image_shape"] == [3, 32, 32]
    # the tooltips' tiles hold the test images in colour, TILE_IMAGES to a tile, in index order
    test = to_display(load_test_set(SET).test_images)
    tiles = [gzip.decompress(served_file(url).read_bytes()) for url in data["points"]["tiles"]["test"]]
    assert np.frombuffer(b"".join(tiles), np.uint8).reshape(test.shape).tolist() == test.tolist()
    assert test.ndim == 4 and test.shape[3] == 3
