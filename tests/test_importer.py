"""The user image-set importer on generated colour sets: every format, the junk a real folder or zip holds, the
normalisation rules, the split, the store's guarantees (nothing half-written, one dataset per name)."""
from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_sets import KNOWN, add_junk, encoded, known_image, make_colour_folder, shape
from vae_core import importer
from vae_core.importer import (ImportedDataError, ImportFailed, ImportLimits, find_imported, import_images,
                               list_imported, load_arrays, remove_imported)


def all_images(manifest) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_arrays(manifest)
    return (np.concatenate([arrays["train_images"], arrays["test_images"]]),
            np.concatenate([arrays["train_labels"], arrays["test_labels"]]))


@pytest.fixture
def colour_folder(tmp_path) -> tuple[Path, dict[str, int]]:
    folder = tmp_path / "shapes"
    return folder, make_colour_folder(folder)


def test_a_colour_folder_with_junk_imports_its_images_and_names_every_bad_file(tmp_path, colour_folder):
    folder, counts = colour_folder
    junk = add_junk(folder, tmp_path / "elsewhere" / "secret.png")
    os.symlink(folder / "circle" / "circle_0.png", folder / "square" / "alias.png")  # inside the folder: followed
    counts["square"] += 1
    calls = []
    report = import_images(folder, "shapes", root=tmp_path / "store", progress=lambda *a: calls.append(a))
    m = report.manifest

    assert {s.path: s.reason for s in report.skipped} == junk
    text = "\n".join(report.lines())
    for path, reason in junk.items():
        assert f"{path}: {reason}" in text
    assert "square/bomb.png: too many pixels (10,000 megapixels; the limit is 40)" in text  # from its header
    assert m.labelled and m.class_names == ("circle", "seven", "square")
    assert {name: c["train"] + c["test"] for name, c in m.class_counts.items()} == counts
    assert m.side == 32 and m.channels == 3  # most images are 36..60 px; tinted
    images, labels = all_images(m)
    assert images.shape == (sum(counts.values()), 3, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [counts[c] for c in m.class_names]

    # The known image after the centre crop and resize: black over white, no trace of the red bands cropped away.
    known = [i for i, img in enumerate(images) if (img[:, :12] == 0).all() and (img[:, 20:] == 255).all()]
    assert len(known) == 1 and m.class_names[labels[known[0]]] == "square"
    assert not ((images[known[0], 0] > 128) & (images[known[0], 1] < 64)).any()

    # Progress: every phase reaches its total, decoding counted image by image up to the number of candidates.
    decoding = [c for c in calls if c[2] == "decoding images"]
    assert decoding[0][:2] == (0, decoding[-1][1]) and decoding[-1][0] == decoding[-1][1] > 0
    assert calls[-1][0] == calls[-1][1] and calls[-1][2] == "saving"

    stored = json.loads((m.folder / "manifest.json").read_text())
    assert stored["source"] == str(folder.resolve()) and stored["sha"] == m.sha == m.folder.name
    assert {s["path"] for s in stored["skipped"]} == set(junk)
    assert not (tmp_path / "store" / "secret.png").exists()  # nothing of the symlink's target came along


@pytest.mark.parametrize("name, make, side_check", [
    ("png-rgb", lambda p: Image.new("RGB", (40, 40), (200, 30, 60)).save(p / "a.png"),
     lambda a: (a.transpose(1, 2, 0) == (200, 30, 60)).all()),
    ("webp-lossless", lambda p: Image.new("RGB", (40, 30), (10, 20, 250)).save(p / "a.webp", lossless=True),
     lambda a: (a.transpose(1, 2, 0) == (10, 20, 250)).all()),
    ("bmp", lambda p: Image.new("RGB", (30, 50), (0, 255, 0)).save(p / "a.bmp"),
     lambda a: (a.transpose(1, 2, 0) == (0, 255, 0)).all()),
    ("jpeg", lambda p: Image.new("RGB", (64, 48), (200, 100, 20)).save(p / "a.jpg", quality=95),
     lambda a: (np.abs(a.transpose(1, 2, 0).astype(int) - (200, 100, 20)) <= 3).all()),
    ("gif-first-frame", lambda p: Image.new("RGB", (40, 40), (0, 255, 0)).save(
        p / "a.gif", save_all=True, append_images=[Image.new("RGB", (40, 40), (255, 0, 0))]),
     lambda a: (a.transpose(1, 2, 0) == (0, 255, 0)).all()),
    ("cmyk-jpeg", lambda p: Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(p / "a.jpg", quality=95),
     lambda a: (a[0] > 230).all() and (a[1:] < 30).all()),
    ("rgba-on-white", lambda p: transparent_with_blue_square().save(p / "a.png"),
     lambda a: (a[:, :3, :3] == 255).all() and (a[:, 12:16, 12:16].transpose(1, 2, 0) == (0, 0, 255)).all()),
    ("exif-rotated", lambda p: rotated_jpeg(p / "a.jpg"),
     # stored: red over blue, orientation 6 (turn 90° clockwise to show) -> shown: blue left of red
     lambda a: (a[2, 10:18, 2:8] > 200).all() and (a[0, 10:18, 20:26] > 200).all()),
])
def test_each_format_and_colour_mode_reads_as_it_is_shown(tmp_path, name, make, side_check):
    (tmp_path / "src").mkdir()
    make(tmp_path / "src")
    report = import_images(tmp_path / "src", name, root=tmp_path / "store", side=28)
    images, labels = all_images(report.manifest)
    assert report.skipped == () and images.shape == (1, 3, 28, 28) and labels.tolist() == [-1]
    assert side_check(images[0])


def transparent_with_blue_square() -> Image.Image:
    img = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # invisible red: must not bleed into anything
    img.paste((0, 0, 255, 255), (10, 10, 30, 30))
    return img


def rotated_jpeg(path: Path) -> None:
    a = np.zeros((60, 40, 3), np.uint8)
    a[:30, :, 0] = 255
    a[30:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(path, quality=95, exif=exif)


@pytest.mark.parametrize("name, make, channels, value", [
    ("grey-png", lambda p: Image.new("L", (40, 40), 77).save(p / "a.png"), 1, 77),
    ("grey-saved-as-rgb-jpeg", lambda p: Image.new("RGB", (40, 40), (90, 90, 90)).save(p / "a.jpg", quality=95), 1, 90),
    ("palette-grey", lambda p: grey_palette_image(140).save(p / "a.png"), 1, 140),
    ("16-bit", lambda p: Image.fromarray(np.full((40, 40), 257 * 200, np.uint16)).save(p / "a.png"), 1, 200),
])
def test_grey_images_are_stored_with_one_channel(tmp_path, name, make, channels, value):
    (tmp_path / "src").mkdir()
    make(tmp_path / "src")
    m = import_images(tmp_path / "src", name, root=tmp_path / "store", side=28).manifest
    images, _ = all_images(m)
    assert m.channels == channels and images.shape == (1, 1, 28, 28)
    assert np.abs(images.astype(int) - value).max() <= 2


def test_sixteen_bit_images_use_their_whole_range(tmp_path):
    (tmp_path / "src").mkdir()
    a = np.zeros((40, 40), np.uint16)
    a[:, 20:] = 65535
    Image.fromarray(a).save(tmp_path / "src" / "a.png")
    assert Image.open(tmp_path / "src" / "a.png").mode.startswith("I")
    images, _ = all_images(import_images(tmp_path / "src", "deep", root=tmp_path / "store", side=28).manifest)
    assert (images[0, 0, :, :10] == 0).all() and (images[0, 0, :, 18:] == 255).all()  # not clipped to white


def grey_palette_image(value: int) -> Image.Image:
    img = Image.new("P", (40, 40), value)
    img.putpalette([g for g in range(256) for _ in range(3)])
    return img


@pytest.mark.parametrize("sizes, pad, side", [
    ([(40, 50)] * 4, False, 32),
    ([(100, 80)] * 4, False, 64),
    ([(20, 20)] * 4, False, 28),
    ([(100, 100)] * 3 + [(30, 30)] * 3, False, 64),  # half reach 64
    ([(100, 100)] * 3 + [(30, 30)] * 5, False, 28),  # most are 30 px: 32 would upscale them
    ([(100, 20)] * 4, False, 28),  # cropping keeps the shorter side
    ([(100, 20)] * 4, True, 64),  # padding keeps the longer one
])
def test_the_default_side_is_the_largest_that_most_images_reach(tmp_path, sizes, pad, side):
    (tmp_path / "src").mkdir()
    for i, size in enumerate(sizes):
        shape("circle", size, (200, 10, 10), (0, 0, 0)).save(tmp_path / "src" / f"{i}.png")
    assert import_images(tmp_path / "src", "sides", root=tmp_path / "store", pad=pad).manifest.side == side


def test_channels_default_to_grey_only_when_every_image_is_grey_and_follow_a_request(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("L", (40, 40), 30).save(src / "a.png")
    Image.new("RGB", (40, 40), (200, 200, 200)).save(src / "b.jpg")
    assert import_images(src, "grey", root=tmp_path / "s1").manifest.channels == 1
    forced = import_images(src, "grey3", root=tmp_path / "s2", channels=3).manifest
    images, _ = all_images(forced)
    assert forced.channels == 3 and (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()
    Image.new("RGB", (40, 40), (200, 40, 40)).save(src / "c.png")
    assert import_images(src, "mixed", root=tmp_path / "s3").manifest.channels == 3
    grey = import_images(src, "mixed1", root=tmp_path / "s4", channels=1).manifest
    images, _ = all_images(grey)
    assert grey.channels == 1 and sorted(int(img.mean()) for img in images) == [30, 88, 200]  # ITU-R 601-2 luma of the red


def test_pad_keeps_the_whole_image_and_crop_its_centre(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    a[:, 20:40] = (0, 255, 0)
    a[:, 40:] = (0, 0, 255)
    Image.fromarray(a).save(src / "wide.png")
    cropped, _ = all_images(import_images(src, "cropped", root=tmp_path / "s1", side=28).manifest)
    padded, _ = all_images(import_images(src, "padded", root=tmp_path / "s2", side=28, pad=True).manifest)
    assert (cropped[0, 1] == 255).all() and (cropped[0, [0, 2]] == 0).all()  # only the green centre
    middle = padded[0, :, 12:16]
    assert (middle[0, :, :5] > 200).all() and (middle[2, :, -5:] > 200).all() and (middle[1, :, 12:16] > 200).all()


def test_the_split_is_seeded_stratified_and_capped(tmp_path, colour_folder):
    folder, counts = colour_folder
    first = load_arrays(import_images(folder, "a", root=tmp_path / "s1", test_fraction=0.34).manifest)
    again = load_arrays(import_images(folder, "a", root=tmp_path / "s2", test_fraction=0.34).manifest)
    other = import_images(folder, "a", root=tmp_path / "s3", test_fraction=0.34, seed=1).manifest
    for key in first:
        assert np.array_equal(first[key], again[key])
    assert not np.array_equal(first["test_images"], load_arrays(other)["test_images"])
    # 19 images, 34 % -> 6 test images, two from each class (7 squares, 6 of each other class)
    assert np.bincount(first["test_labels"]).tolist() == [2, 2, 2] and len(first["train_labels"]) == 13
    capped = import_images(folder, "b", root=tmp_path / "s4", test_fraction=0.5,
                           limits=ImportLimits(max_test_images=2)).manifest
    assert (capped.n_train, capped.n_test) == (sum(counts.values()) - 2, 2)


def make_zip(path: Path, folder: Path, prefix: str = "myset/") -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, prefix + file.relative_to(folder).as_posix())


def test_a_zip_refuses_slip_absolute_symlink_and_bomb_entries_by_name_and_imports_the_rest(tmp_path, colour_folder):
    folder, counts = colour_folder
    archive = tmp_path / "shapes.zip"
    make_zip(archive, folder)
    png = encoded(shape("circle", (40, 40), (0, 200, 0), (0, 0, 0)), "PNG")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("../evil.png", png)
        zf.writestr("myset/circle/../../../evil2.png", png)
        zf.writestr("/etc/abs.png", png)
        zf.writestr("myset/circle/bomb.png", b"\0" * (20 << 20))
        link = zipfile.ZipInfo("myset/circle/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        for i in range(3):
            zf.writestr(f"__MACOSX/myset/circle/._circle_{i}.png", b"\0\5\26\7")
        zf.writestr("myset/seven/.DS_Store", b"\0")
        zf.writestr("myset/seven/broken.png", png[:40])
        zf.writestr("myset/seven/two\nlines.png", b"text")
    before = set(tmp_path.rglob("*"))
    report = import_images(archive, "zipped", root=tmp_path / "store")

    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {
        "../evil.png": "path leaving the folder ('..'), refused",
        "myset/circle/../../../evil2.png": "path leaving the folder ('..'), refused",
        "/etc/abs.png": "absolute path, refused",
        "myset/circle/bomb.png": "compression ratio of a zip bomb, refused",
        "myset/circle/link.png": "symbolic link, not followed",
        "__MACOSX/": "macOS metadata (__MACOSX)",
        "myset/seven/.DS_Store": "hidden file",
        "myset/seven/broken.png": "damaged or truncated",
        "myset/seven/two\nlines.png": "not an image",
    }
    assert "  myset/seven/two?lines.png: not an image" in report.lines()  # one line per file, whatever its name
    assert "  __MACOSX/: macOS metadata (__MACOSX) (3 entries)" in report.lines()
    m = report.manifest
    assert {name: c["train"] + c["test"] for name, c in m.class_counts.items()} == counts
    assert m.source == str(archive.resolve())
    assert {p for p in tmp_path.rglob("*") if "store" not in p.parts} == before  # nothing extracted anywhere


@pytest.mark.parametrize("limits, message", [
    (ImportLimits(max_files=5), "more than 5 files"),
    (ImportLimits(max_total_bytes=10_000), "more than the 1e-05 GB limit"),
])
def test_a_zip_over_the_count_or_size_limit_is_refused_in_one_line(tmp_path, colour_folder, limits, message):
    archive = tmp_path / "shapes.zip"
    make_zip(archive, colour_folder[0])
    with pytest.raises(ImportFailed, match=message) as caught:
        import_images(archive, "big", root=tmp_path / "store", limits=limits)
    assert "\n" not in str(caught.value) and not (tmp_path / "store").exists()


def test_a_folder_over_the_count_or_size_limit_or_with_oversized_files_is_refused(tmp_path, colour_folder):
    folder, _ = colour_folder
    with pytest.raises(ImportFailed, match="more than 5 files"):
        import_images(folder, "big", root=tmp_path / "store", limits=ImportLimits(max_files=5))
    with pytest.raises(ImportFailed, match="unpacks to"):
        import_images(folder, "big", root=tmp_path / "store", limits=ImportLimits(max_total_bytes=5_000))
    report = import_images(folder, "big", root=tmp_path / "store", limits=ImportLimits(max_file_bytes=1_000))
    too_large = {s.path for s in report.skipped if s.reason == "file too large"}
    assert too_large and all((folder / p).stat().st_size > 1_000 for p in too_large)
    assert report.manifest.n_train + report.manifest.n_test == sum(
        1 for p in folder.rglob("*.*") if p.stat().st_size <= 1_000)


def test_an_npz_of_colour_images_with_labels_and_class_names(tmp_path):
    images = np.zeros((12, 30, 40, 3), np.uint8)
    for i in range(12):
        images[i] = (i * 20, 255 - i * 20, 7)
    np.savez(tmp_path / "set.npz", images=images, labels=np.arange(12) % 3, class_names=np.array(["a", "b", "c"]))
    m = import_images(tmp_path / "set.npz", "arrays", root=tmp_path / "store", test_fraction=0.25).manifest
    stored, labels = all_images(m)
    assert (m.side, m.channels, m.class_names, m.n_test) == (28, 3, ("a", "b", "c"), 3)
    assert {name: c["test"] for name, c in m.class_counts.items()} == {"a": 1, "b": 1, "c": 1}
    for img, label in zip(stored, labels):
        i = int(img[0, 0, 0]) // 20
        assert (img.transpose(1, 2, 0) == (i * 20, 255 - i * 20, 7)).all() and label == i % 3


def test_an_npz_of_grey_images_without_labels_and_one_with_bare_labels(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    np.savez_compressed(tmp_path / "grey.npz", images=grey)
    m = import_images(tmp_path / "grey.npz", "grey", root=tmp_path / "store").manifest
    stored, labels = all_images(m)
    assert (m.side, m.channels, m.labelled) == (28, 1, False) and (labels == -1).all()
    assert sorted(map(bytes, stored.reshape(10, -1))) == sorted(map(bytes, grey.reshape(10, -1)))  # 28 px: as is
    np.savez(tmp_path / "bare.npz", images=grey, labels=np.array([5, 7] * 5))
    m = import_images(tmp_path / "bare.npz", "bare", root=tmp_path / "store").manifest
    assert m.class_names == ("5", "7") and sorted(all_images(m)[1].tolist()) == [0] * 5 + [1] * 5


def test_an_npz_whose_header_claims_more_than_it_holds_is_refused_before_loading(tmp_path, monkeypatch):
    np.savez(tmp_path / "liar.npz", images=np.zeros((4, 8, 8), np.uint8))
    with zipfile.ZipFile(tmp_path / "liar.npz") as zf:
        data = zf.read("images.npy")  # a 128-byte header padded with spaces, then 256 bytes of pixels
    header = data[:128].replace(b"(4, 8, 8)", b"(9999999, 8, 8)").replace(b" " * 6 + b"\n", b"\n")
    assert len(header) == 128
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as zf:
        zf.writestr("images.npy", header + data[128:])
    monkeypatch.setattr(importer.np, "load", None)  # must not be reached
    with pytest.raises(ImportFailed, match=r"images.npy declares \(9999999, 8, 8\) but holds 384 bytes"):
        import_images(tmp_path / "liar.npz", "liar", root=tmp_path / "store")


@pytest.mark.parametrize("arrays, message", [
    ({"pixels": np.zeros((2, 8, 8), np.uint8)}, "has no 'images' array"),
    ({"images": np.zeros((2, 8, 8), np.float32)}, "must be uint8"),
    ({"images": np.zeros((2, 8, 8, 2), np.uint8)}, "must be uint8"),
    ({"images": np.zeros((2, 8, 8), np.uint8), "labels": np.zeros(3, int)}, "one integer of 0 or more per image"),
    ({"images": np.zeros((2, 8, 8), np.uint8), "labels": np.array([0, 1]), "class_names": np.array(["x"])},
     "one per label value"),
    ({"images": np.array([None, None], dtype=object)}, "images.npy holds Python objects"),  # never unpickled
    ({"images": np.zeros((2, 1, 1), np.uint8)}, "at least 2×2"),
])
def test_a_malformed_npz_is_refused_in_one_line(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ImportFailed, match=message) as caught:
        import_images(tmp_path / "bad.npz", "bad", root=tmp_path / "store")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["", "a b", "../x", "x/y", "-x", "mnist", "Fashion-MNIST", "dsprites", "x" * 65])
def test_names_are_safe_and_never_a_built_in_one(tmp_path, colour_folder, name):
    with pytest.raises(ImportFailed):
        import_images(colour_folder[0], name, root=tmp_path / "store")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("source, message", [("missing", "does not exist"), ("notes.txt", "not a folder, a .zip"),
                                             ("fake.zip", "not a readable zip file"), ("empty", "holds no files")])
def test_a_source_that_is_not_one_is_refused(tmp_path, source, message):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "fake.zip").write_text("not a zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFailed, match=message):
        import_images(tmp_path / source, "x", root=tmp_path / "store")


def test_no_usable_image_raises_one_line_and_writes_nothing(tmp_path):
    src = tmp_path / "junk"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.png").write_bytes(b"")
    (src / "a" / "y.jpg").write_text("text")
    with pytest.raises(ImportFailed, match=r"no usable image in junk: 2 files skipped \(1 not an image, 1 empty \(0 bytes\)\)$") as caught:
        import_images(src, "junk", root=tmp_path / "store")
    assert "\n" not in str(caught.value) and not (tmp_path / "store").exists()


def test_the_report_names_the_first_twenty_problems_then_counts_the_rest(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(src / "good.png")
    for i in range(25):
        (src / f"bad{i:02d}.png").write_text("no")
    (src / ".DS_Store").write_bytes(b"\0")
    lines = import_images(src, "many", root=tmp_path / "store").lines()
    assert lines[1] == "skipped 26: 25 not an image, 1 hidden file"
    assert lines[2:22] == [f"  bad{i:02d}.png: not an image" for i in range(20)]  # real problems first
    assert lines[22].startswith("  … and 6 more, all listed in ") and lines[22].endswith("manifest.json")


@pytest.mark.parametrize("when", ["decoding images", "saving"])
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_import_leaves_nothing(tmp_path, colour_folder, when, error):
    store = tmp_path / "store"

    def progress(done, total, message):
        if message == when and done > 0:
            raise error("stop")

    with pytest.raises(error):
        import_images(colour_folder[0], "stopped", root=store, progress=progress)
    assert list_imported(store) == [] and [p.name for p in store.glob("*")] in ([], [".lock"])


def test_a_full_disk_while_saving_is_one_line_and_leaves_nothing(tmp_path, colour_folder, monkeypatch):
    def full(fp, array, allow_pickle):
        fp.write(b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(importer.np.lib.format, "write_array", full)
    with pytest.raises(ImportFailed, match="No space left on device"):
        import_images(colour_folder[0], "full", root=tmp_path / "store")
    assert list((tmp_path / "store").iterdir()) == []


def test_the_same_content_again_is_a_no_op_and_other_content_needs_replace(tmp_path, colour_folder):
    folder, _ = colour_folder
    store = tmp_path / "store"
    first = import_images(folder, "shapes", root=store)
    stamp = first.manifest.folder.stat().st_mtime_ns
    calls = []
    again = import_images(folder, "shapes", root=store, progress=lambda *a: calls.append(a[2]))
    assert again.unchanged and again.manifest == first.manifest and "decoding images" not in calls  # fingerprint
    os.utime(folder / KNOWN)  # a new time, the same pixels: decoded again, still nothing written
    assert import_images(folder, "shapes", root=store).unchanged
    assert first.manifest.folder.stat().st_mtime_ns == stamp and len(list_imported(store)) == 1

    with pytest.raises(ImportFailed, match="already imported as 'shapes'"):
        import_images(folder, "shapes-again", root=store)
    known_image().transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(folder / KNOWN)
    with pytest.raises(ImportFailed, match="'shapes' already holds other images"):
        import_images(folder, "shapes", root=store)
    replaced = import_images(folder, "shapes", root=store, replace=True)
    assert replaced.replaced == first.manifest and "replaced 'shapes'" in replaced.lines()[0]
    assert not first.manifest.folder.exists() and [m.sha for m in list_imported(store)] == [replaced.manifest.sha]


def test_list_find_remove_and_a_damaged_store(tmp_path, colour_folder):
    store = tmp_path / "store"
    m = import_images(colour_folder[0], "shapes", root=store).manifest
    (store / "0123456789abcdef").mkdir()
    (store / "0123456789abcdef" / "manifest.json").write_text("{not json")
    assert [x.name for x in list_imported(store)] == ["shapes"] and find_imported("shapes", store) == m
    assert find_imported("other", store) is None
    data = m.data_path.read_bytes()
    m.data_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImportedDataError, match="is damaged"):
        load_arrays(m)
    assert remove_imported("shapes", store) == m and not m.folder.exists() and list_imported(store) == []
    with pytest.raises(ImportedDataError, match="no imported dataset is named 'shapes'"):
        remove_imported("shapes", store)


def test_the_store_defaults_to_the_environment_then_the_repository(tmp_path, monkeypatch):
    monkeypatch.setenv(importer.DATASETS_DIR_ENV, str(tmp_path / "env"))
    assert importer.datasets_root() == tmp_path / "env"
    monkeypatch.delenv(importer.DATASETS_DIR_ENV)
    assert importer.datasets_root() == Path(importer.__file__).resolve().parent.parent / "datasets"
