import numpy as np
import pytest
import torch

from vae_core import inference
from vae_core.config import ModelConfig
from vae_core.data import as_model_input
from vae_core.models import build_model
from vae_core.projection import decode_plane, slice_plane


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(latent_dim=4, hidden=(32,))).eval()


def test_grid_latents_span_the_square_top_row_first():
    z = inference.grid_latents(5, 4, dims=(1, 3), base=np.array([9, 9, 9, 9], np.float32))
    assert z.shape == (25, 4)
    assert np.all(z[:, [0, 2]] == 9)  # the slice keeps the other dims at the base vector
    grid = z.reshape(5, 5, 4)
    assert grid[0, 0, 1] == -3 and grid[0, 0, 3] == 3  # top-left is (x=-3, y=+3)
    assert grid[-1, -1, 1] == 3 and grid[-1, -1, 3] == -3


def test_grid_needs_two_distinct_dims():
    with pytest.raises(ValueError):
        inference.grid_latents(5, 4, dims=(2, 2))
    with pytest.raises(ValueError):
        inference.grid_latents(5, 1)


def test_decode_grid_is_one_batched_pass_matching_pointwise_decodes(model):
    grid = decode_plane(model, slice_plane(4, (0, 2)), 6)
    assert grid.shape == (6, 6, 28, 28)
    z = inference.grid_latents(6, 4, dims=(0, 2))
    np.testing.assert_allclose(grid[2, 3], inference.decode(model, z[2 * 6 + 3])[0], atol=1e-6)


def test_encode_and_reconstruct_uint8_and_float_agree(model):
    images = (torch.rand(7, 28, 28) * 255).to(torch.uint8)
    mu, sigma = inference.encode(model, images)
    mu_f, sigma_f = inference.encode(model, images.numpy() / 255.0)
    np.testing.assert_allclose(mu, mu_f, atol=1e-5)
    # a float image is encoded as it is, not rounded to 256 grey levels first
    between = np.full((1, 28, 28), 0.5 / 255, np.float32)
    assert not np.allclose(inference.encode(model, between)[0], inference.encode(model, np.zeros_like(between))[0])
    assert mu.shape == sigma.shape == (7, 4) and np.all(sigma > 0)
    recon = inference.reconstruct(model, images)
    np.testing.assert_allclose(recon, inference.decode(model, mu), atol=1e-6)


def test_as_model_input_scales_uint8_and_clamps_floats_without_rounding():
    x = as_model_input(np.array([[0, 51, 255]], np.uint8))  # one 2-D image
    assert x.shape == (1, 1, 1, 3) and x.dtype == torch.float32
    np.testing.assert_allclose(x.flatten(), [0.0, 0.2, 1.0])
    y = as_model_input(torch.tensor([[[-0.5, 0.5 / 255, 2.0]]], dtype=torch.float64))
    np.testing.assert_array_equal(y.flatten().numpy(), np.float32([0.0, 0.5 / 255, 1.0]))
    with pytest.raises(ValueError):
        as_model_input(np.zeros((2, 2, 1, 28, 28), np.float32))


def test_linear_and_spherical_interpolation_end_at_the_inputs():
    z0, z1 = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    for method in ("linear", "spherical"):
        path = inference.interpolate(z0, z1, 7, method)
        assert path.shape == (7, 3)
        np.testing.assert_allclose(path[0], z0, atol=1e-6)
        np.testing.assert_allclose(path[-1], z1, atol=1e-6)
    lin = inference.interpolate(z0, z1, 3, "linear")[1]
    slerp = inference.interpolate(z0, z1, 3, "spherical")[1]
    np.testing.assert_allclose(lin, [0.5, 1.0, 0.0], atol=1e-6)
    # the great-circle midpoint keeps away from the origin where the straight line dips
    assert np.linalg.norm(slerp) > np.linalg.norm(lin)
    with pytest.raises(ValueError):
        inference.interpolate(z0, z1, 1)


def test_prior_samples_are_seeded(model):
    a = inference.sample_prior(model, 4, seed=3)
    assert a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, inference.sample_prior(model, 4, seed=3))
    assert not np.array_equal(a, inference.sample_prior(model, 4, seed=4))


def test_nearest():
    assert inference.nearest(np.array([[0, 0], [5, 5], [1, 1]], np.float32), np.array([0.9, 1.2])) == 2
