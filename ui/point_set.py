"""The images a plane shows as points: whole splits of the chosen model's dataset, one after another (test first),
with their codes, labels and per-image figures, and the way from a point's position back to its image."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ui.shared import Selection, split_images


@dataclass(frozen=True, eq=False)
class PointSet:
    sel: Selection
    splits: tuple[str, ...]  # in the order their points come

    @cached_property
    def counts(self) -> tuple[int, ...]:
        return tuple(len(split_images(self.sel.data, s)[1]) for s in self.splits)

    @property
    def segments(self) -> tuple[tuple[str, int], ...]:
        """((split, count), ...), as ui.latent_plane takes them."""
        return tuple(zip(self.splits, self.counts))

    def __len__(self) -> int:
        return sum(self.counts)

    def _joined(self, parts) -> np.ndarray:
        return np.concatenate(list(parts)) if len(parts) > 1 else np.asarray(parts[0])

    @cached_property
    def mu(self) -> np.ndarray:
        return self._joined([self.sel.encodings(s)[0] for s in self.splits])

    @cached_property
    def sigma(self) -> np.ndarray:
        return self._joined([self.sel.encodings(s)[1] for s in self.splits])

    @cached_property
    def labels(self) -> np.ndarray:
        return self._joined([split_images(self.sel.data, s)[1].numpy() for s in self.splits])

    def figure(self, name: str) -> np.ndarray:
        """A vae_core.per_image figure of every point (Selection.figure: computed once, on first use)."""
        return self._joined([self.sel.figure(name, s) for s in self.splits])

    def identity(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The split (names) and the index in it of each point position."""
        positions = np.asarray(positions, np.int64)
        starts = np.cumsum([0, *self.counts])
        which = np.searchsorted(starts, positions, side="right") - 1
        return np.asarray(self.splits)[which], positions - starts[which]

    def position(self, split: str, index: int) -> int | None:
        """Where the image `index` of `split` is among the points, None if it is not shown."""
        if split not in self.splits:
            return None
        k = self.splits.index(split)
        return sum(self.counts[:k]) + index if 0 <= index < self.counts[k] else None

    def images(self, positions: np.ndarray) -> np.ndarray:
        """The images (uint8, as the dataset holds them) at these point positions, in their order."""
        positions = np.asarray(positions, np.int64)
        split, index = self.identity(positions)
        out = None
        for s in self.splits:
            rows = np.flatnonzero(split == s)
            if not len(rows):
                continue
            chosen = split_images(self.sel.data, s)[0][index[rows]].numpy()
            if out is None:
                out = np.empty((len(positions), *chosen.shape[1:]), chosen.dtype)
            out[rows] = chosen
        if out is None:
            return np.zeros((0, *split_images(self.sel.data, self.splits[0])[0].shape[1:]), np.uint8)
        return out
