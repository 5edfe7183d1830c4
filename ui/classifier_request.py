"""A classifier trained on request for a labelled dataset that has none (an imported set, usually): the judge of decoded
images behind Compare's tinted grids and the share of prior samples read as a class. Trained in the background
(ui.background) as `python -m vae_core classifier` trains it, and saved where `ui.shared.classifier` finds it."""
from __future__ import annotations

import streamlit as st

from ui import background, shared
from vae_core.classifier import accuracy, classifier_path, default_epochs, fit_classifier, save_classifier
from vae_core.data import DatasetUnavailable, available_datasets, dataset_info, load_dataset


def wanted(dataset: str) -> bool:
    """Whether `dataset` could have a classifier and has none: labelled, two classes or more, its training images here
    (MNIST and the sample have the shipped one, so this never shows for them)."""
    if shared.classifier_file(dataset) is not None:
        return False
    try:
        info = dataset_info(dataset)
    except DatasetUnavailable:
        return False
    return info.labelled and len(info.class_names) >= 2 and dataset in available_datasets()


def _work(dataset: str, sha: str | None):
    def work(progress: background.Progress) -> float:
        progress(0, 0, "loading the images")
        data = load_dataset(dataset)
        if data.sha != sha:
            raise DatasetUnavailable(f"{dataset} was imported again meanwhile; ask for its classifier again")
        epochs = default_epochs(len(data.train_images))

        def on_epoch(epoch: int, test_accuracy: float) -> None:
            progress(epoch, epochs, f"epoch {epoch} of {epochs} done, test accuracy {test_accuracy:.1%}")

        progress(0, epochs, f"training on {len(data.train_images):,} images")
        model = fit_classifier(data, epochs=epochs, on_epoch=on_epoch)
        test_accuracy = accuracy(model, data.test_images, data.test_labels)
        path = classifier_path(data.family or data.name, shared.trained_dir() / "classifier")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_classifier(path, model, data, test_accuracy)
        return test_accuracy

    return work


def task_key(dataset: str) -> str:
    return f"classifier:{dataset}:{dataset_info(dataset).sha}"


def offer(dataset: str) -> None:
    """For a dataset that `wanted` a classifier: a button that trains one in the background, its progress while it
    trains (for everyone who looks at the dataset meanwhile), and why it failed if it did; once trained here, its
    test accuracy. Nothing otherwise."""
    try:
        key = task_key(dataset)
    except DatasetUnavailable:  # a set removed since its models were trained
        return
    task = background.tasks().get(key)
    if task is not None and task.view().state == background.FINISHED:
        st.success(f"{dataset}'s classifier is trained: test accuracy {task.view().result:.0%}.")
        return
    if not wanted(dataset):
        return
    if task is not None and task.running:
        background.follow(key)
        return
    if task is not None and task.view().error:
        st.error(task.view().error)
    if st.button(f"Train a classifier for {dataset}", key=f"classifier-{dataset}",
                 help=f"A small convnet learns to tell {dataset}'s classes apart from its training images, in the "
                      "background. It then judges what the decoders draw: the grids are tinted where "
                      "it is unsure, and the share of prior samples it reads as one class is measured."):
        try:
            background.tasks().start(key, f"Training the classifier of {dataset}",
                                     _work(dataset, dataset_info(dataset).sha),
                                     expected=(DatasetUnavailable, ValueError, OSError))
        except background.TaskBusy:
            pass  # someone else asked for it a moment ago: follow theirs
        st.rerun()
