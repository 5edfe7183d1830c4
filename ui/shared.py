"""What every page needs: the model picker, and cached models, datasets and test-set encodings.

All math lives in vae_core; this module only caches it for Streamlit and keeps choices across pages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from ui.session_keys import MODEL_PICKER, SELECTED_MODEL
from vae_core import inference, per_image
from vae_core.checkpoint import CheckpointError, CheckpointInfo, list_checkpoints, load_checkpoint
from vae_core.classifier import Classifier, find_classifier, load_classifier
from vae_core.data import DatasetUnavailable, ImageDataset, class_names, dataset_info, load_test_set
from vae_core.jobs import OWNER_NAME_KEY
from vae_core.importer import datasets_root, list_imported
from vae_core.models import LatentModel

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = Path(os.environ.get("VAE_CHECKPOINT_DIR", ROOT / "checkpoints"))
TRAINED_SUBDIR = "trained"  # git-ignored: models trained in the app must not dirty the working tree
DEFAULT_MODEL = "mnist_z2"


def stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _folder_stamp(folder: Path) -> tuple:
    """Changes whenever a checkpoint is added, replaced or removed, so cached listings refresh.

    Cached functions take it as `stamp`, not `_stamp`: Streamlit leaves parameters starting with '_' out of the cache key.
    """
    return tuple(sorted((p.name, stamp(p)) for p in folder.glob("*.pt"))) if folder.is_dir() else ()


@st.cache_data(show_spinner=False)
def _list(folder: str, stamp: tuple) -> tuple[list[CheckpointInfo], list[str]]:
    return list_checkpoints(folder)


def trained_dir() -> Path:
    """Where the app saves the models it trains: $VAE_TRAINED_DIR, else checkpoints/trained/ (git-ignored).

    A function, not a constant, so it follows CHECKPOINT_DIR when tests point that elsewhere."""
    return Path(os.environ.get("VAE_TRAINED_DIR") or CHECKPOINT_DIR / TRAINED_SUBDIR)


def shown_path(path: Path) -> str:
    """A path as the user should read it: relative to the app's folder when it lies inside."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def checkpoints() -> tuple[list[CheckpointInfo], list[str]]:
    """Every checkpoint: the shipped ones, then those trained in the app, plus errors for unreadable files."""
    infos, errors = [], []
    for folder in (CHECKPOINT_DIR, trained_dir()):
        found, failed = _list(str(folder), _folder_stamp(folder))
        infos += found
        errors += failed
    return infos, errors


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load(path: str, stamp: float) -> tuple[LatentModel, CheckpointInfo]:
    return load_checkpoint(path)


def load_model(info: CheckpointInfo) -> LatentModel:
    return _load(str(info.path), stamp(info.path))[0]


@st.cache_data(show_spinner=False, max_entries=4)
def _imported(stamp: int, root: str) -> dict[str, str]:
    return {m.name: m.sha for m in list_imported(root)}


def imported_content(name: str) -> str | None:
    """The content hash of the imported set called `name` now, None when there is none (a built-in name, or a set
    removed). Read from the store's manifests once per change of the store folder (an import or a removal renames a
    folder in or out of it, which changes its modification time)."""
    root = datasets_root()
    return _imported(stamp(root), str(root)).get(name)


@st.cache_resource(show_spinner="Loading data…", max_entries=8)
def _dataset(name: str, sha: str | None, content: str | None) -> tuple[ImageDataset | None, str | None]:
    try:
        return load_test_set(name, sha=sha), None
    except DatasetUnavailable as exc:
        return None, str(exc)


def dataset(name: str, sha: str | None = None) -> tuple[ImageDataset | None, str | None]:
    """The named dataset's own test split (full data on disk, else the bundled split), or None and the reason;
    given a checkpoint's `sha` (`CheckpointInfo.dataset_sha`), only the very images its model was trained on.
    Cached by what the store holds under that name, so a set imported, removed or imported again is read afresh.

    Never another dataset: a model is only ever shown images of the data it was trained on."""
    return _dataset(name, sha, imported_content(name))


def clear_datasets() -> None:
    """Forget the datasets loaded so far (tests that point the data folders elsewhere)."""
    _dataset.clear()
    _imported.clear()


SPLITS = ("test", "train")


def split_images(data: ImageDataset, split: str):
    """A split's images and labels (tensors as the dataset holds them)."""
    return (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)


@st.cache_data(show_spinner="Encoding the images once for this model…", max_entries=16)
def _encode(path: str, stamp: float, dataset_name: str, sha: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    model, data = _load(path, stamp)[0], dataset(dataset_name, sha)[0]
    return inference.encode(model, *split_images(data, split))  # labels: a cvae is told each image's class


@st.cache_data(show_spinner="Scoring every image once for this model (−ELBO, KL, σ)…", max_entries=16)
def _figures(path: str, stamp: float, dataset_name: str, sha: str | None, split: str) -> dict[str, np.ndarray]:
    model, data = _load(path, stamp)[0], dataset(dataset_name, sha)[0]
    return per_image.per_image_figures(model, *split_images(data, split))


@st.cache_data(show_spinner="The classifier reads every image once…", max_entries=8)
def _confidence(dataset_name: str, sha: str | None, split: str,
                judge: tuple[str, float] | None) -> np.ndarray:
    """`judge` (the classifier's file and stamp) is in the key, so a classifier trained on request is used at once."""
    images = split_images(dataset(dataset_name, sha)[0], split)[0]
    return per_image.classifier_confidence(classifier(dataset_name), images)


@dataclass
class Selection:
    """The model chosen in the picker, with its data and the test set's encodings."""

    info: CheckpointInfo
    model: LatentModel
    data: ImageDataset | None  # None when the model's dataset is not to be had: pages then show decoder-only views
    data_notice: str | None  # why the data is missing
    mu: np.ndarray | None  # (N, d) posterior means of the test set
    sigma: np.ndarray | None

    def encodings(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(μ, σ) of a split's images (the test split's are `mu` and `sigma`), encoded once per model and split."""
        if split == "test":
            return self.mu, self.sigma
        return _encode(str(self.info.path), stamp(self.info.path), self.data.name, self.info.dataset_sha, split)

    def figure_names(self) -> tuple[str, ...]:
        """The vae_core.per_image figures this model has for its images."""
        return per_image.figure_names(self.model, judged=classifier(self.data.name) is not None)

    def figure(self, name: str, split: str) -> np.ndarray:
        """One of vae_core.per_image's figures for every image of a split: the model's computed once per model and
        split, the classifier's confidence once per dataset and split (it does not depend on the model)."""
        if name == "confidence":
            return _confidence(self.data.name, self.info.dataset_sha, split, classifier_file(self.data.name))
        return _figures(str(self.info.path), stamp(self.info.path), self.data.name, self.info.dataset_sha, split)[name]

    def splits(self) -> tuple[str, ...]:
        """The splits with images here (the bundled data has only the test split)."""
        if self.data is None:
            return ()
        return tuple(s for s in SPLITS if len(split_images(self.data, s)[1]))

    @property
    def latent_dim(self) -> int:
        return self.info.model_config.latent_dim

    @property
    def class_names(self) -> tuple[str, ...]:
        return model_class_names(self.info)

    @property
    def conditional(self) -> bool:
        return self.model.conditional


def model_class_names(info: CheckpointInfo) -> tuple[str, ...]:
    """The class names of a model's dataset, known even when its images are not (numbers for an imported set since
    removed)."""
    try:
        return class_names(info.dataset)
    except DatasetUnavailable:
        return tuple(str(c) for c in range(info.model_config.n_classes))


def kind_label(info: CheckpointInfo) -> str:
    """What kind of model, with the setting that defines it: "VAE β = 4", "denoising AE (mask:0.5)", …"""
    c = info.model_config
    label = info.model_class.label(c)
    if "beta" in info.model_class.settings and info.beta != 1:
        label += f" β = {info.beta:g}"
    if c.noise:
        label += f" ({c.noise})"
    if c.sparsity:
        label += f" (L1 λ = {c.sparsity:g})"
    return label


def shape_text(image_shape: tuple[int, int, int]) -> str:
    """(3, 32, 32) -> "32×32 RGB", (1, 28, 28) -> "28×28 grey"."""
    c, h, w = image_shape
    return f"{h}×{w} {'grey' if c == 1 else 'RGB' if c == 3 else f'{c}-channel'}"


def describe(info: CheckpointInfo) -> str:
    c = info.model_config
    if info.model_class.probabilistic:
        elbo = f"{info.test_elbo:.1f} nats" if info.test_elbo is not None else "not measured"
        score = f"test −ELBO {elbo}"
    else:
        recon = info.metrics.get("recon")
        score = f"test recon {recon:.1f} nats" if recon is not None else "test recon not measured"
    if "pca_angle" in info.metrics:  # a linear model: how close it came to PCA's subspace
        score += f" · {info.metrics['pca_angle']:.1f}° from PCA"
    how = "trained" if info.model_class.trainable else "imported"  # an imported model was trained elsewhere
    by = f" · {how} by {info.extra[OWNER_NAME_KEY]}" if info.extra.get(OWNER_NAME_KEY) else ""
    return (f"{kind_label(info)} · {info.dataset} ({shape_text(c.image_shape)}) · {c.arch.upper()} · "
            f"d = {c.latent_dim} · {score}{by}")


def classifier_file(dataset: str) -> tuple[str, float] | None:
    """The path and modification time of the classifier that judges decoded images of `dataset` (shipped, or trained
    into trained_dir()/classifier for the images the set holds now), or None when it has none. Looked up on every
    call, so one trained or a set imported again since is seen; caches of what it judged take this as their key."""
    try:
        path = find_classifier(dataset_info(dataset), trained_dir() / "classifier")
    except DatasetUnavailable:
        return None
    return None if path is None else (str(path), stamp(path))


def classifier(dataset: str) -> Classifier | None:
    """The classifier of `dataset` (see `classifier_file`), loaded once per file, or None when it has none."""
    found = classifier_file(dataset)
    return None if found is None else _classifier(*found)


@st.cache_resource(show_spinner=False)
def _classifier(path: str, stamp: float) -> Classifier | None:
    try:
        return load_classifier(path)[0]
    except CheckpointError:
        return None


def _picked() -> None:
    st.session_state[SELECTED_MODEL] = st.session_state[MODEL_PICKER]


def model_picker() -> CheckpointInfo | None:
    """Sidebar picker shared by every page; the choice lives in a plain session key so it survives page switches."""
    infos, errors = checkpoints()
    if not infos:
        st.sidebar.error(f"No checkpoints in {CHECKPOINT_DIR}. Train one on the Train page.")
        return None
    names = [i.name for i in infos]
    current = st.session_state.get(SELECTED_MODEL)
    if current not in names:
        current = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
    st.session_state[SELECTED_MODEL] = current
    by_name = {i.name: i for i in infos}
    if st.session_state.get(MODEL_PICKER) != current:
        # Chosen elsewhere (a page selecting the model it just trained, a removed file): seeded through the Session
        # State API, the only way Streamlit sends a keyed widget's new value to a browser that still shows the old one
        # (a new `index` is ignored once the widget exists, so the picker and the caption below would disagree).
        st.session_state[MODEL_PICKER] = current
    st.sidebar.selectbox(
        "Model", names, key=MODEL_PICKER, on_change=_picked,
        help="Every page shows the model chosen here; the line below describes it.",
    )
    info = by_name[current]
    st.sidebar.caption(describe(info))
    if errors:
        st.sidebar.warning(f"Skipped {len(errors)} unusable checkpoint file{'s' if len(errors) > 1 else ''}:\n"
                           + "\n".join(f"- {line}" for line in errors))
    return info


def current_selection() -> Selection | None:
    """Render the picker and return the chosen model with its data and encodings (all cached)."""
    info = model_picker()
    if info is None:
        return None
    model = load_model(info)
    data, notice = dataset(info.dataset, info.dataset_sha)
    if data is None:
        show_missing_data(info.dataset, notice)
        return Selection(info=info, model=model, data=None, data_notice=notice, mu=None, sigma=None)
    mu, sigma = _encode(str(info.path), stamp(info.path), data.name, info.dataset_sha, "test")
    return Selection(info=info, model=model, data=data, data_notice=None, mu=mu, sigma=sigma)


def open_page(name: str, title: str, caption: str | None = None) -> Selection:
    """The opening of a page that shows the chosen model: page config, picker, title and caption. Stops the run,
    saying why, while there is no model to show."""
    st.set_page_config(page_title=f"{name} · Latent Explorer", layout="wide")
    sel = current_selection()
    st.title(title)
    if caption:
        st.caption(caption)
    if sel is None:
        st.info("No model to show yet: train one on the Train page, or put a checkpoint in the checkpoints folder.")
        st.stop()
    return sel


def show_missing_data(name: str, notice: str) -> None:
    """The one notice a page shows when a model's own test images are missing; the how-to folds away."""
    st.warning(f"The test images of **{name}** are not available here, so this page shows only what the "
               "decoder draws (no test points, test images or typicality).")
    with st.expander("How to get the data"):
        st.markdown(f"{notice}\n\nDownload it once while online (the app does it by itself), or copy the IDX files "
                    "into `./data/<Name>/raw/` or point `$VAE_DATA_DIR` at a folder that holds them, then reload.")
