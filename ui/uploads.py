"""Uploaded images made into a model's inputs the way its dataset's images were made (vae_core.preprocess): MNIST's
digit normalisation for digit-like sets, else the importer's centre crop (or pad) to a square and resize, in the set's
colours; and what the pages say about it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from vae_core import preprocess
from vae_core.checkpoint import CheckpointInfo
from vae_core.data import DatasetUnavailable, dataset_info


@dataclass(frozen=True)
class UploadStyle:
    image_shape: tuple[int, int, int]  # (C, S, S), the model's
    digit_like: bool
    pad: bool

    @property
    def side(self) -> int:
        return self.image_shape[1]

    def steps(self) -> str:
        """One sentence on what happens to an upload."""
        c, s, _ = self.image_shape
        if self.digit_like:
            return (f"normalised like MNIST (grayscale, white on black, cropped, fitted into a box of {s * 20 // 28} px "
                    f"and centred by mass in {s}×{s})")
        square = ("padded to a square with its border's mean colour" if self.pad else "cropped to its centre square")
        return f"{square} and resized to {s}×{s} {'greyscale' if c == 1 else 'RGB'}, as the dataset's images were"


def style(info: CheckpointInfo) -> UploadStyle:
    """How uploads are made for the model `info` describes: its image shape, and its dataset's way (digit-like,
    padded) when the dataset is known here; a set removed since is taken as an imported one that was cropped."""
    shape = tuple(info.model_config.image_shape)
    try:
        known = dataset_info(info.dataset)
    except DatasetUnavailable:
        return UploadStyle(shape, digit_like=False, pad=False)
    return UploadStyle(shape, digit_like=known.digit_like and shape[0] == 1, pad=known.pad)


def preprocess_uploads(info: CheckpointInfo, files: Iterable[tuple[str, bytes]]
                       ) -> tuple[list[preprocess.PreprocessResult], list[str]]:
    """(results, one-line errors) for uploaded (name, bytes), made as the model's dataset was."""
    how = style(info)
    return preprocess.preprocess_many(files, how.image_shape, how.digit_like, how.pad)


def scale_for(side: int, target_px: int) -> int:
    """The whole-pixel upscale that shows an image of `side` px about `target_px` wide (at least 1)."""
    return max(1, round(target_px / side))
