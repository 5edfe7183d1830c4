import pytest
import torch

from vae_core.config import ConfigError, ModelConfig, TrainConfig, default_arch
from vae_core.models import build_model
from vae_core.models.nets import conv_widths
from vae_core.models.vae import LOGVAR_MAX

# The conv VAE's parameters at 28 px as every conv checkpoint written before the depth followed the side holds them
# (two stride-2 convolutions, 64 × 7 × 7 features): a 28-px conv model must keep loading them unchanged.
CONV_28_LAYOUT = {
    "encoder.features.0.weight": (32, 1, 4, 4), "encoder.features.0.bias": (32,),
    "encoder.features.2.weight": (64, 32, 4, 4), "encoder.features.2.bias": (64,),
    "encoder.head.0.weight": (256, 3136), "encoder.head.0.bias": (256,),
    "encoder.head.2.weight": (8, 256), "encoder.head.2.bias": (8,),
    "decoder.body.0.weight": (256, 4), "decoder.body.0.bias": (256,),
    "decoder.body.2.weight": (3136, 256), "decoder.body.2.bias": (3136,),
    "decoder.deconv.0.weight": (64, 32, 4, 4), "decoder.deconv.0.bias": (32,),
    "decoder.deconv.2.weight": (32, 1, 4, 4), "decoder.deconv.2.bias": (1,),
}


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("latent_dim", [1, 2, 20])
def test_shapes(arch, latent_dim):
    model = build_model(ModelConfig(arch=arch, latent_dim=latent_dim, hidden=(32, 16)))
    x = torch.rand(3, 1, 28, 28)
    q = model.encode(x)
    assert q.mean.shape == q.logvar.shape == (3, latent_dim)
    assert model.decode(q.mean).shape == x.shape
    with torch.no_grad():
        images = model.decode_mean(torch.zeros(5, latent_dim))
    assert images.shape == (5, 1, 28, 28) and float(images.min()) >= 0 and float(images.max()) <= 1


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64), (1, 32, 32), (3, 28, 28)])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_any_image_shape_round_trips_through_the_networks(arch, shape, likelihood):
    model = build_model(ModelConfig(arch=arch, latent_dim=3, hidden=(32,), image_shape=shape, likelihood=likelihood))
    x = torch.rand(2, *shape)
    q = model.encode(x)
    assert q.mean.shape == (2, 3) and model.decode(q.mean).shape == x.shape
    terms = model.objective(x)
    assert terms.recon.shape == () and torch.isfinite(terms.loss)
    if likelihood == "gaussian":  # one learned variance per pixel of every channel
        assert model.log_var_x.shape == shape


def test_the_conv_depth_follows_the_side():
    assert conv_widths(28) == [32, 64]  # 28 → 14 → 7
    assert conv_widths(32) == [32, 64, 128]  # → 4
    assert conv_widths(64) == [32, 64, 128, 128]  # → 4, channels capped
    assert conv_widths(8) == [32] and conv_widths(6) == []
    encoder = build_model(ModelConfig(arch="conv", latent_dim=2, image_shape=(3, 64, 64))).encoder
    assert [m.out_channels for m in encoder.features if isinstance(m, torch.nn.Conv2d)] == [32, 64, 128, 128]
    assert encoder.head[0].in_features == 128 * 4 * 4


def test_a_28_px_conv_model_keeps_the_layout_of_every_conv_checkpoint():
    model = build_model(ModelConfig(arch="conv", latent_dim=4, hidden=(256,)))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == CONV_28_LAYOUT


def test_the_default_architecture_is_conv_for_colour_and_from_32_px():
    assert default_arch((1, 28, 28)) == ModelConfig.arch == "mlp"
    assert default_arch((3, 28, 28)) == default_arch((1, 32, 32)) == default_arch((3, 64, 64)) == "conv"


def test_logvar_is_unconstrained_in_range_but_clamped_for_safety():
    model = build_model(ModelConfig(latent_dim=2, hidden=(8,)))
    with torch.no_grad():
        last = model.encoder[1][-1]
        last.weight.zero_()
        last.bias[:] = torch.tensor([0.0, 0.0, -7.0, 500.0])
    logvar = model.encode(torch.rand(1, 1, 28, 28)).logvar
    assert logvar[0, 0].item() == pytest.approx(-7.0)  # negative values pass through: no softplus/ReLU
    assert logvar[0, 1].item() == LOGVAR_MAX


def test_gaussian_likelihood_has_learned_pixel_variance():
    model = build_model(ModelConfig(latent_dim=2, hidden=(8,), likelihood="gaussian"))
    assert model.log_var_x.shape == (1, 28, 28)


def test_configs_round_trip_through_dicts():
    cfg = ModelConfig(arch="conv", latent_dim=7, hidden=(64,), likelihood="gaussian")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    tcfg = TrainConfig(dataset="mnist", epochs=3, beta=4.0, kl_warmup=2)
    assert TrainConfig.from_dict(tcfg.to_dict()) == tcfg


@pytest.mark.parametrize(
    "kwargs", [dict(latent_dim=0), dict(arch="rnn"), dict(likelihood="poisson"), dict(hidden=()), dict(hidden=(0,))]
)
def test_bad_model_configs_are_refused(kwargs):
    with pytest.raises(ConfigError):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [dict(epochs=0), dict(beta=-1.0), dict(lr=0.0), dict(batch_size=0), dict(kl_warmup=-1), dict(lr_schedule="step")]
)
def test_bad_train_configs_are_refused(kwargs):
    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)
