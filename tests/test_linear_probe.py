"""A linear autoencoder trained with squared error spans PCA's subspace, measured by the largest principal angle on
real MNIST digits (the bundled sample); an untrained decoder is far from it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.data import load_dataset, to_float
from vae_core.linear_probe import largest_principal_angle, principal_subspace


def _digits(n: int = 400) -> np.ndarray:
    return to_float(load_dataset("mnist-sample").train_images[:n]).flatten(1).numpy()


def _linear_autoencoder(x: np.ndarray, d: int, steps: int, seed: int = 0) -> np.ndarray:
    """x -> W₂(W₁x + b₁) + b₂ fitted by full-batch Adam on the mean squared error; returns the decoder weight W₂ (D, d)."""
    torch.manual_seed(seed)
    data = torch.as_tensor(x)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], d), torch.nn.Linear(d, x.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(data), data).backward()
        opt.step()
    return net[1].weight.detach().double().numpy()


def test_a_linear_autoencoder_spans_the_principal_subspace():
    x = _digits()
    weight = _linear_autoencoder(x, d=6, steps=800)  # 1.7° here; 5.4° after 600 steps, 0.6° after 1,000
    angle = largest_principal_angle(weight, x)
    assert angle < 5.0, angle
    # its columns are not the principal axes themselves: only the subspace is shared
    axes = principal_subspace(x, 6)
    cosines = np.abs((weight / np.linalg.norm(weight, axis=0)).T @ axes)
    assert cosines.max(axis=1).min() < 0.99
    # an untrained (random) decoder is nowhere near it
    assert largest_principal_angle(_linear_autoencoder(x, d=6, steps=0), x) > 80.0


def test_the_angle_of_the_subspace_itself_is_zero_and_shapes_are_checked():
    x = _digits(200)
    basis = principal_subspace(x, 4)
    mixed = basis @ np.random.default_rng(0).normal(size=(4, 4))  # another basis of the same subspace
    assert largest_principal_angle(mixed, x) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="decoder weight"):
        largest_principal_angle(basis[:100], x)
