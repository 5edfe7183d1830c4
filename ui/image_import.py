"""The Train page's "Add your images": a zip of the user's images imported as a dataset (vae_core.importer, exactly as
`python -m vae_core data add` imports it) in the background with a progress bar, its report, and the list of
imported sets with a way to remove one. A new set is in every dataset picker at once (the pickers read the store on
every run; ui.shared reloads a set whose content changed)."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ui import background, shared, training
from vae_core.importer import (DEFAULT_TEST_FRACTION, RESERVED_NAMES, SIDES, ImportedDataError, ImportReport,
                               Manifest, import_images, list_imported, remove_imported, validate_name)

TASK_KEY = "import.task"  # the background task of this session's last import
ANNOUNCED_KEY = "import.announced"  # the import whose dataset the Train form was last switched to
FALLBACK_NAME = "my-images"
AUTOMATIC = 0  # the importer decides (None to it); not None here: a selectbox shows a None value as "no choice"
SIDE_CHOICES = (AUTOMATIC, *SIDES)
CHANNEL_CHOICES = (AUTOMATIC, 1, 3)
CHANNEL_LABELS = {AUTOMATIC: "automatic (grey when every image is)", 1: "greyscale", 3: "RGB (colour)"}


def suggested_name(filename: str) -> str:
    """A dataset name made from an upload's file name ("Parts photos (2).zip" -> "Parts_photos_2")."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(filename).stem).strip("_.-")[:64]
    return stem if stem and stem.lower() not in RESERVED_NAMES else FALLBACK_NAME


def upload_limit_mb() -> int:
    """The app's upload limit (Streamlit's server.maxUploadSize), which bounds the zip."""
    return int(st.get_option("server.maxUploadSize"))


def upload_file_name(filename: str) -> str:
    """The name an upload is written under, so that the importer's messages name the file the user chose: its last
    path part, printable, at most 100 characters, ending in .zip ("upload.zip" when nothing usable is left)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[-100:].strip()
    if base in ("", ".", ".."):
        base = "upload.zip"
    return base if base.lower().endswith(".zip") else f"{base}.zip"


def _work(folder: Path, path: Path, name: str, options: dict):
    def work(progress: background.Progress) -> ImportReport:
        try:
            return import_images(path, name, progress=progress, source_name=path.name, **options)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return work


def start_import(data: bytes, filename: str, name: str, options: dict) -> str:
    """Write the uploaded zip under its own name into a private temp folder and import it in the background; the
    task's key. ImportFailed for a name the importer would refuse, TaskBusy while an import under that name runs."""
    validate_name(name)
    folder = Path(tempfile.mkdtemp(prefix="vae-upload-"))
    path = folder / upload_file_name(filename)
    key = f"import:{name}"
    try:
        path.write_bytes(data)
        background.tasks().start(key, f"Importing {path.name} as {name}", _work(folder, path, name, options),
                                 expected=(ImportedDataError,))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return key


def _form() -> None:
    st.markdown("A **.zip** of a folder of images: one subfolder per class gives the classes and their names (a flat "
                "folder is one set without labels). PNG, JPEG, WebP, BMP or GIF, any size, greyscale or colour. Each "
                "image is made square and resized once here; files that are not usable images are skipped and named "
                f"in the report. At most {upload_limit_mb():,} MB.")
    upload = st.file_uploader("Zip of your images", type=["zip"], key="import.upload")
    c_name, c_side, c_channels, c_test = st.columns([2, 2, 2, 1])
    suggested = suggested_name(upload.name) if upload is not None else FALLBACK_NAME
    name = c_name.text_input("Dataset name", key="import.name", placeholder=suggested, max_chars=64,
                             help="Letters, digits, '_', '.' and '-'; empty: the zip's name.").strip() or suggested
    side = c_side.selectbox("Side (px)", SIDE_CHOICES, key="import.side",
                            format_func=lambda s: "automatic" if s == AUTOMATIC else f"{s}×{s}",
                            help="Automatic: the largest of 28, 32 and 64 that at least half the images reach "
                                 "without upscaling.")
    channels = c_channels.selectbox("Colours", CHANNEL_CHOICES, key="import.channels", format_func=CHANNEL_LABELS.get)
    test_fraction = c_test.number_input("Test share", 0.01, 0.9, DEFAULT_TEST_FRACTION, 0.05, key="import.test",
                                        format="%.2f", help="Held out as the test split, drawn within each class "
                                                            "(at most 10,000 images).")
    pad = st.checkbox("Pad each image to a square (with its border's colour) instead of cropping its centre",
                      key="import.pad", help="Keeps the whole image, e.g. for long objects photographed on a "
                                             "plain background.")
    if st.button("Import", key="import.start", type="primary", disabled=upload is None):
        try:
            key = start_import(upload.getvalue(), upload.name, name,
                               {"side": side or None, "channels": channels or None,
                                "test_fraction": float(test_fraction), "pad": pad})
        except (ImportedDataError, background.TaskBusy) as exc:
            st.error(str(exc))
            return
        except OSError as exc:  # the temp folder: a full disk, say
            st.error(f"{upload_file_name(upload.name)} could not be stored for the import ({exc.strerror or exc})")
            return
        st.session_state[TASK_KEY] = key
        st.rerun()  # the section redraws with the progress bar


def show_report(report: ImportReport) -> None:
    """The outcome: one line, the images per class as bars, the skipped files folded away (the first 20 named)."""
    m = report.manifest
    lines = report.lines()
    colour = "greyscale" if m.channels == 1 else "RGB"
    verb = "Already imported, unchanged:" if report.unchanged else "Replaced" if report.replaced else "Imported"
    classes = f"{len(m.class_names)} classes" if m.labelled else "no classes (a flat folder)"
    st.success(f"{verb} `{m.name}`: {m.n_train + m.n_test:,} images ({m.n_train:,} train, {m.n_test:,} test), "
               f"{m.side}×{m.side} {colour}, {classes}, in {report.seconds:.1f} s. It is in the dataset list of the "
               "settings below and of every page.")
    if m.labelled:  # a table rather than a chart: every class named, however many there are
        counts = pd.DataFrame([{"class": name, "images": c["train"] + c["test"], "train": c["train"],
                                "test": c["test"]} for name, c in m.class_counts.items()])
        st.dataframe(counts, hide_index=True, height=min(400, 38 + 35 * len(counts)), column_config={
            "images": st.column_config.ProgressColumn(format="%d", min_value=0, max_value=int(counts["images"].max()),
                                                      width="medium")})
    if m.skipped:
        with st.expander(f"{len(m.skipped):,} file{'s' if len(m.skipped) > 1 else ''} skipped"):
            st.text("\n".join(lines[1:]))  # file names are the user's: shown as plain text, never as markdown


def _outcome(key: str) -> None:
    task = background.tasks().get(key)
    if task is None:
        return
    view = task.view()
    if view.running:
        background.follow(key, cancel_label="Cancel the import")
    elif view.state == background.FAILED:
        st.error(view.error)
    elif view.state == background.CANCELLED:
        st.info("Import cancelled; nothing was written.")
    elif view.state == background.FINISHED:
        show_report(view.result)
        name = view.result.manifest.name
        if st.session_state.get(ANNOUNCED_KEY) != (key, view.result.manifest.sha):
            # Once per import: the Train form switches to the new set (and so to its default architecture).
            st.session_state[ANNOUNCED_KEY] = (key, view.result.manifest.sha)
            st.session_state["train.dataset"] = name
            st.session_state.pop(training.widget_key("train.dataset"), None)


def _trained_on(manifest: Manifest) -> list[str]:
    return [i.name for i in shared.checkpoints()[0] if i.dataset == manifest.name and i.dataset_sha == manifest.sha]


def _training_on(name: str) -> str | None:
    """The title of the job training on the set `name` now, if one does."""
    job = training.registry().active()
    if job is not None and any(run.train_config.dataset == name for run in job.spec.runs):
        return job.spec.title
    return None


def imported_sets() -> None:
    """The imported sets as a table, and Remove for one of them (refused while a job trains on it)."""
    sets = list_imported()
    if not sets:
        return
    st.markdown("**Imported sets on this server**")
    st.dataframe(pd.DataFrame([{"name": m.name, "images": m.n_train + m.n_test, "train": m.n_train, "test": m.n_test,
                                "classes": len(m.class_names) if m.labelled else 0,
                                "size": shared.shape_text(m.image_shape), "skipped": len(m.skipped),
                                "from": m.source, "imported": m.created} for m in sets]),
                 hide_index=True, width="stretch")
    by_name = {m.name: m for m in sets}
    c_set, c_sure, c_remove = st.columns([2, 3, 1], vertical_alignment="bottom")
    name = c_set.selectbox("Remove a set", list(by_name), key="import.remove_name")
    models = _trained_on(by_name[name])
    sure = c_sure.checkbox(f"Yes, remove {name}", key=f"import.remove_sure.{name}")
    if models:  # under the row: a checkbox's label is cut to one line
        st.caption(f"{len(models)} model{'s' if len(models) > 1 else ''} trained on {name} ({', '.join(models[:5])}"
                   f"{', …' if len(models) > 5 else ''}) will then show only what their decoder draws.")
    if c_remove.button("Remove", key="import.remove", disabled=not sure, width="stretch"):
        busy = _training_on(name)
        if busy is not None:
            st.error(f"'{busy}' is training on {name}: stop it or wait for it to finish before removing the set.")
            return
        try:
            remove_imported(name)
        except ImportedDataError as exc:
            st.error(str(exc))
            return
        st.toast(f"Removed {name}.")
        st.rerun()  # every dataset list drops it


def section() -> None:
    """"Add your images" for the Train page: the form, the import under way or its report, the imported sets."""
    key = st.session_state.get(TASK_KEY)
    task = background.tasks().get(key) if key else None
    with st.expander("Add your images", expanded=task is not None):
        if task is not None:
            _outcome(key)
        if task is None or not task.running:
            _form()
        imported_sets()
