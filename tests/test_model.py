import pytest
import torch

from vae_core.config import ConfigError, ModelConfig, TrainConfig
from vae_core.models import build_model
from vae_core.models.vae import LOGVAR_MAX


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
