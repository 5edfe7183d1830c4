"""The masked autoencoder's corruption, `patch:ρ:k`: exactly round(ρ·patches) whole patches hidden per image, in every
channel, for any image shape, repeatable with a generator; and the settings it accepts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.config import ConfigError, ModelConfig, parse_noise, parse_patch
from vae_core.corruption import corrupt, hidden_patches, hide_patches


def test_the_share_of_hidden_patches_is_exact_and_patches_are_hidden_whole():
    ones = torch.ones(40, 1, 28, 28)
    out = corrupt(ones, "patch:0.75:7", torch.Generator().manual_seed(0))
    blocks = out.view(40, 1, 4, 7, 4, 7)
    per_patch = blocks.amax(dim=(3, 5))
    assert torch.equal(blocks.amin(dim=(3, 5)), per_patch)  # each 7×7 patch is all hidden or all kept
    assert per_patch.sum(dim=(1, 2, 3)).tolist() == [4.0] * 40  # 16 patches, 12 hidden, in every image
    assert (out == 0).float().mean().item() == 0.75
    # different patches in different images
    assert len({tuple(p.flatten().tolist()) for p in per_patch}) > 20


def test_any_shape_all_channels_and_patches_cut_short_at_the_edges():
    x = torch.rand(16, 3, 30, 32) * 0.9 + 0.1  # no pixel is 0 before hiding
    out = hide_patches(x, 0.5, 7, torch.Generator().manual_seed(1))  # 5 × 5 patches, the last row and column 2 and 4 wide
    hidden = out[:, 0] == 0
    assert torch.equal(hidden, out[:, 1] == 0) and torch.equal(hidden, out[:, 2] == 0)
    assert torch.equal(out[~hidden.unsqueeze(1).expand_as(x)], x[~hidden.unsqueeze(1).expand_as(x)])
    for image in hidden:
        whole = [[image[r * 7:(r + 1) * 7, c * 7:(c + 1) * 7] for c in range(5)] for r in range(5)]
        states = [[bool(p.all()) for p in row] for row in whole]
        assert all(bool(p.all()) or not p.any() for row in whole for p in row)
        assert sum(map(sum, states)) == 12  # round(0.5 · 25): Python rounds 12.5 to the even 12
    assert torch.equal(out, hide_patches(x, 0.5, 7, torch.Generator().manual_seed(1)))
    assert not torch.equal(out, hide_patches(x, 0.5, 7, torch.Generator().manual_seed(2)))


def test_patch_noise_is_a_setting_of_the_denoising_kind():
    assert parse_noise("patch:0.75:7") == ("patch", 0.75) and parse_patch(" patch:0.75:7 ") == (0.75, 7)
    assert ModelConfig(kind="dae", noise="patch:0.75:7").noise == "patch:0.75:7"
    with pytest.raises(ConfigError, match="noise"):
        ModelConfig(kind="vae", noise="patch:0.75:7")


@pytest.mark.parametrize("text", ["patch:0.75", "patch:1:7", "patch:0:7", "patch:0.5:0", "patch:0.5:7.5",
                                  "patch:0.5:999", "patch:x:7", "patch:0.5:7:1"])
def test_bad_patch_noise_is_refused(text):
    with pytest.raises(ConfigError, match="patch"):
        parse_noise(text)


def test_hidden_patches_are_where_hide_patches_zeroes_and_a_tint_shows_them():
    from ui.images import HIDDEN_TINT, tint

    x = torch.rand(3, 1, 28, 28) + 0.1  # no pixel is 0 before hiding
    hidden = hidden_patches(x.shape, 0.75, 7, torch.Generator().manual_seed(3))
    assert hidden.shape == (3, 1, 28, 28) and hidden.float().mean().item() == pytest.approx(0.75)
    out = hide_patches(x, 0.75, 7, torch.Generator().manual_seed(3))
    assert torch.equal(out == 0, hidden.expand_as(out))
    shown = tint(out[:, 0].numpy(), hidden[:, 0].numpy())  # black hidden patches become the tint's colour
    assert shown.shape == (3, 28, 28, 3)
    assert np.allclose(shown[hidden[:, 0].numpy()], 0.6 * np.float32(HIDDEN_TINT))
    assert np.allclose(shown[~hidden[:, 0].numpy()], np.repeat(out[:, 0].numpy()[~hidden[:, 0].numpy()][:, None], 3, 1))
