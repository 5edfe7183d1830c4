"""Generated labelled image sets of any side and channel count, for tests and benchmarks: a filled shape (disc,
square, triangle or ring, the class) of one colour on a background of another, at a random place and size. Made in
numpy (10,000 64×64 images in 19 s, 12,000 32×32 in 7 s on the loaded 2-core machine), so nothing is downloaded.

`Store` imports such sets into a store of the test's own (the `imported_sets` fixture points $VAE_DATASETS_DIR at it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPES = ("disc", "square", "triangle", "ring")


def shapes(n: int, side: int, channels: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, channels, side, side), labels int64 (n,)), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), n)
    r = (rng.uniform(0.18, 0.32, (n, 1, 1)) * side).astype(np.float32)
    cy, cx = (rng.uniform(0.35, 0.65, (2, n, 1, 1)) * side).astype(np.float32)
    y, x = np.mgrid[:side, :side].astype(np.float32) + 0.5
    masks = np.empty((n, side, side), bool)
    for k in range(len(SHAPES)):  # each image's own shape only
        i = labels == k
        dy, dx, rk = y - cy[i], x - cx[i], r[i]
        dist = np.hypot(dy, dx)
        masks[i] = (dist <= rk if k == 0 else
                    (np.abs(dy) <= rk * 0.85) & (np.abs(dx) <= rk * 0.85) if k == 1 else
                    (dy <= rk * 0.8) & (dy >= -rk) & (np.abs(dx) <= (dy + rk) * 0.6) if k == 2 else
                    (dist <= rk) & (dist >= rk * 0.55))
    background = rng.uniform(0, 0.45, (n, channels, 1, 1)).astype(np.float32)
    foreground = rng.uniform(0.55, 1.0, (n, channels, 1, 1)).astype(np.float32)
    swap = rng.random(n) < 0.5  # light on dark or dark on light
    background[swap], foreground[swap] = foreground[swap].copy(), background[swap].copy()
    noise = rng.normal(0, 0.03, (n, channels, side, side)).astype(np.float32)
    images = np.where(masks[:, None], foreground, background) + noise
    return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8), labels.astype(np.int64)


class Store:
    """An imported-datasets store in `root` that tests fill with generated sets through the importer itself (an .npz
    of the images, labels and class names: `import_images` keeps such pixels as they are)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, name: str, side: int, channels: int, n_train: int = 400, n_test: int = 100, seed: int = 0,
            labelled: bool = True, pad: bool = False):
        """Import `n_train + n_test` generated images as `name` (replacing a set of that name); its manifest."""
        from vae_core.importer import import_images

        images, labels = shapes(n_train + n_test, side, channels, seed)
        source = self.root.parent / f"{name}-{seed}.npz"
        arrays = {"labels": labels, "class_names": np.array(SHAPES)} if labelled else {}
        np.savez(source, images=images.transpose(0, 2, 3, 1), **arrays)
        return import_images(source, name, side=side, channels=channels, test_fraction=n_test / (n_train + n_test),
                             pad=pad, replace=True, root=self.root).manifest

    def remove(self, name: str) -> None:
        from vae_core.importer import remove_imported

        remove_imported(name, self.root)
