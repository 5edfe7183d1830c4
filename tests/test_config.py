import math

import pytest

from vae_core.config import (MAX_HIDDEN_LAYERS, MAX_HIDDEN_WIDTH, MAX_IMAGE_SIDE, MAX_LATENT_DIM, ConfigError,
                             ModelConfig, TrainConfig)


def test_the_limits_themselves_are_allowed():
    cfg = ModelConfig(latent_dim=MAX_LATENT_DIM, hidden=(MAX_HIDDEN_WIDTH,) * MAX_HIDDEN_LAYERS,
                      image_shape=(3, MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latent_dim=MAX_LATENT_DIM + 1), f"latent size must be at most {MAX_LATENT_DIM}"),
        (dict(latent_dim=100_000_000), f"latent size must be at most {MAX_LATENT_DIM}"),
        (dict(hidden=(100_000, 100_000)), f"of at most {MAX_HIDDEN_WIDTH} units each, got [100000, 100000]"),
        (dict(hidden=(16,) * (MAX_HIDDEN_LAYERS + 1)), f"at most {MAX_HIDDEN_LAYERS} hidden layers"),
        (dict(hidden=tuple(range(1, 10_001))), "got [1, 2, 3, 4, 5, 6, 7, 8, ...]"),  # cut short, not 10,000 numbers
        (dict(hidden=(16.5,)), "hidden sizes must be positive integers"),
        (dict(latent_dim=2.0), "latent size must be at least 1, got 2.0"),
        (dict(latent_dim=True), "latent size must be at least 1, got True"),
        (dict(image_shape=(1, 100_000, 100_000)), "image shape must be"),
        (dict(image_shape=(1, 28)), "image shape must be"),
        (dict(arch="conv", image_shape=(1, 28, 30)), "square images with an even side of at least 8"),
            (dict(arch="conv", image_shape=(3, 6, 6)), "square images with an even side of at least 8"),
            (dict(arch="conv", image_shape=(1, 27, 27)), "square images with an even side of at least 8"),
    ],
)
def test_model_configs_beyond_the_limits_are_refused(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        ModelConfig(**kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=math.inf), "learning rate must be a finite positive number, got inf"),
        (dict(lr=math.nan), "learning rate must be a finite positive number, got nan"),
        (dict(beta=math.inf), "beta must be a finite non-negative number, got inf"),
        (dict(beta=math.nan), "beta must be a finite non-negative number"),
        (dict(epochs="10"), "epochs must be a whole number, got '10'"),
        (dict(dataset=["mnist"]), "dataset must be a name"),
        (dict(adam_beta2=1.0), "Adam's beta2 must be a number in [0, 1), got 1.0"),
        (dict(adam_beta2=-0.1), "Adam's beta2 must be a number in [0, 1), got -0.1"),
        (dict(adam_beta2=math.nan), "Adam's beta2 must be a number in [0, 1), got nan"),
        (dict(adam_beta2="0.99"), "Adam's beta2 must be a number in [0, 1), got '0.99'"),
        (dict(lr_schedule="onecycle"), "choose one of constant, cosine, warmup_cosine"),
    ],
)
def test_train_configs_with_non_finite_or_mistyped_values_are_refused(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**kwargs)
    assert message in str(caught.value)


def test_from_dict_refuses_a_non_mapping():
    with pytest.raises(ConfigError, match="expected a mapping of settings, got list"):
        ModelConfig.from_dict([1, 2])
