"""The data sources, one file each; `vae_core.data` is the facade the rest of the code uses.

A new source is a new file here defining a `DataSource` and one line in SOURCES. Sources are asked in this order, so
a built-in name can never be taken over by an imported set.
"""
from __future__ import annotations

from . import dsprites, imported, mnist, sample
from .base import DataSource

SOURCES: tuple[DataSource, ...] = (sample.SOURCE, mnist.SOURCE, dsprites.SOURCE, imported.SOURCE)

__all__ = ["SOURCES", "DataSource"]
