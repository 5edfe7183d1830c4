"""What the app's text fields and charts need: hidden sizes and β lists typed as text, and smoothed curves."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from vae_core.config import MAX_HIDDEN_WIDTH, ConfigError


def parse_hidden(text: str) -> tuple[int, ...]:
    """'512, 256' -> (512, 256)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"hidden sizes must be whole numbers separated by commas, e.g. 512, 256 (got {text!r})") from None
    if not sizes or any(s < 1 or s > MAX_HIDDEN_WIDTH for s in sizes):
        raise ConfigError(f"hidden sizes must be between 1 and {MAX_HIDDEN_WIDTH}, e.g. 512, 256 (got {text!r})")
    return sizes


def parse_betas(text: str) -> tuple[float, ...]:
    """'0.5, 1, 2' -> (0.5, 1.0, 2.0): non-negative, duplicates dropped, in the order given."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        betas = tuple(dict.fromkeys(float(p) for p in parts))
    except ValueError:
        raise ConfigError(f"β values must be numbers separated by commas, e.g. 0.5, 1, 2, 4, 8 (got {text!r})") from None
    if not betas or any(not (math.isfinite(b) and b >= 0) for b in betas):
        raise ConfigError(f"give at least one β, each a non-negative number (got {text!r})")
    return betas


def smooth(values: np.ndarray | list[float], weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction, as TensorBoard draws it: the first points are not pulled
    to 0 (pandas' adjusted EWM is exactly that)."""
    return pd.Series(np.asarray(values, dtype=np.float64)).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()
