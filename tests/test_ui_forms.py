import numpy as np
import pytest

from ui.forms import parse_betas, parse_hidden, smooth
from vae_core.config import ConfigError


def test_parse_hidden_and_betas():
    assert parse_hidden("512, 256") == (512, 256)
    assert parse_hidden(" 64 ") == (64,)
    assert parse_betas("0.5, 1 2,4, 1") == (0.5, 1.0, 2.0, 4.0)
    for bad in ("", "a, 3", "0", "-4", "9000"):
        with pytest.raises(ConfigError):
            parse_hidden(bad)
    for bad in ("", "x", "-1", "nan"):
        with pytest.raises(ConfigError):
            parse_betas(bad)


def test_smooth_is_the_bias_corrected_moving_average():
    assert np.allclose(smooth([5.0] * 20), 5.0)
    out = smooth([10.0, 0.0, 0.0], weight=0.5)
    # avg_t = 0.5·avg_{t-1} + 0.5·x_t from 0, divided by 1 − 0.5^(t+1)
    assert out == pytest.approx([10.0, 2.5 / 0.75, 1.25 / 0.875])
