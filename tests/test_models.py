"""The model family: each kind's objective against a hand computation, and the registry."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import shipped_checkpoint
from vae_core.checkpoint import load_checkpoint
from vae_core.config import ConfigError, ModelConfig, parse_noise
from vae_core.corruption import corrupt
from vae_core.models import AE, CVAE, DAE, KINDS as REGISTRY, TRAINABLE_KINDS, VAE, build_model, model_class

SMALL = dict(latent_dim=3, hidden=(16,))
LINEAR = dict(hidden=(), likelihood="gaussian")  # what a linear autoencoder takes


def _x(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log Bernoulli(x; sigmoid(logits)) per image, written out."""
    p = torch.sigmoid(logits)
    return -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)


def test_every_registered_kind_builds_and_knows_what_it_can_do():
    # the kinds a configuration may name are the registry's trainable ones; imported kinds are read from their files
    assert TRAINABLE_KINDS == ("ae", "dae", "vae", "cvae", "linear_ae")
    assert [k for k, cls in REGISTRY.items() if not cls.trainable] == ["onnx_vae", "onnx_ae"]
    extra = {"dae": {"noise": "mask:0.3"}, "cvae": {"n_classes": 10}, "linear_ae": LINEAR}
    assert [(model_class(k).probabilistic, model_class(k).conditional) for k in REGISTRY] == [
        (False, False), (False, False), (True, False), (True, True), (False, False), (True, False), (False, False)]
    assert [model_class(k).settings for k in REGISTRY] == [
        ("sparsity",), ("noise", "sparsity"), ("beta", "kl_warmup"), ("beta", "kl_warmup"), (), (), ()]
    assert [model_class(k).short_title for k in REGISTRY] == [
        "AE", "denoising AE", "VAE", "conditional VAE", "linear AE", "imported VAE", "imported AE"]
    assert [k for k in REGISTRY if model_class(k).linear] == ["linear_ae"]
    with pytest.raises(ConfigError, match="unknown kind of model 'gan'; choose one of ae, dae, vae, cvae, linear_ae"):
        model_class("gan")
    for kind in TRAINABLE_KINDS:
        for arch in model_class(kind).architectures:
            model = build_model(ModelConfig(kind=kind, arch=arch, **{**SMALL, **extra.get(kind, {})}))
            assert model.kind == kind and isinstance(model, REGISTRY[kind])
            y = torch.arange(4) % 10
            z = model.encode(_x(4), y).mean
            assert z.shape == (4, 3)
            assert model.decode_mean(z, y).shape == (4, 1, 28, 28)


def test_ae_objective_is_the_reconstruction_alone_plus_its_l1_penalty():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="ae", **SMALL))
    x = _x()
    terms = model.objective(x, kl_weight=5.0, mc_samples=3)  # neither means anything to a deterministic code
    z = model.encoder(x)
    recon = _bce(model.decoder(z).view(-1, 1, 28, 28), x).mean()
    assert terms.recon.item() == pytest.approx(recon.item(), rel=1e-5)
    assert terms.loss.item() == pytest.approx(recon.item(), rel=1e-5) and terms.kl.item() == 0
    assert model.encode(x).logvar is None  # a point, not a distribution
    sparse = build_model(ModelConfig(kind="ae", sparsity=0.1, **SMALL))
    sparse.load_state_dict(model.state_dict())
    assert sparse.objective(x).loss.item() == pytest.approx(recon.item() + 0.1 * z.abs().sum(1).mean().item(), rel=1e-5)


def test_dae_corrupts_the_input_and_not_the_target():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="dae", noise="mask:0.5", **SMALL))
    x = _x()
    torch.manual_seed(7)
    terms = model.objective(x)
    torch.manual_seed(7)
    noisy = corrupt(x, "mask:0.5")
    assert (noisy != x).any()
    by_hand = _bce(model.decoder(model.encoder(noisy)).view(-1, 1, 28, 28), x).mean()  # clean target
    against_noisy = _bce(model.decoder(model.encoder(noisy)).view(-1, 1, 28, 28), noisy).mean()
    assert terms.recon.item() == pytest.approx(by_hand.item(), rel=1e-6)
    # an untrained decoder says ~0.5 everywhere, so the two targets differ by little, but far more than float noise
    assert abs(terms.recon.item() - against_noisy.item()) > 1000 * abs(terms.recon.item() - by_hand.item()) + 0.05


@pytest.mark.parametrize("nu", [0.1, 0.5, 0.8])
def test_mask_noise_zeroes_pixels_at_its_rate(nu):
    ones = torch.ones(50, 1, 28, 28)
    rate = (corrupt(ones, f"mask:{nu}", torch.Generator().manual_seed(0)) == 0).float().mean().item()
    assert rate == pytest.approx(nu, abs=0.01)  # 39,200 pixels: the standard error is below 0.003


def test_gaussian_noise_is_added_and_clipped():
    x = torch.full((20, 1, 28, 28), 0.5)
    noisy = corrupt(x, "gauss:0.3", torch.Generator().manual_seed(0))
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.1)  # little clipped around 0.5
    assert torch.equal(corrupt(x, ""), x)


@pytest.mark.parametrize("text", ["mask:1", "mask:0", "gauss:-1", "salt:0.2", "mask", "gauss:x"])
def test_bad_noise_is_refused(text):
    with pytest.raises(ConfigError):
        parse_noise(text)


def test_vae_objective_is_the_negative_elbo():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="vae", **SMALL))
    x = _x()
    torch.manual_seed(3)
    terms = model.objective(x, kl_weight=0.25)
    torch.manual_seed(3)
    mu, logvar = model.encoder(x).chunk(2, dim=-1)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = _bce(model.decoder(z).view(-1, 1, 28, 28), x).mean()
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)).mean()
    assert terms.recon.item() == pytest.approx(recon.item(), rel=1e-5)
    assert terms.kl.item() == pytest.approx(kl.item(), rel=1e-5)
    assert terms.loss.item() == pytest.approx(recon.item() + 0.25 * kl.item(), rel=1e-5)


def test_cvae_decoding_depends_on_the_label_and_needs_one():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", n_classes=10, **SMALL))
    z = torch.randn(1, 3)
    images = torch.cat([model.decode_mean(z, torch.tensor([c])) for c in range(10)])
    assert all(not torch.allclose(images[a], images[b]) for a in range(10) for b in range(a + 1, 10))
    one_hot = F.one_hot(torch.tensor([4]), 10).float()
    by_hand = torch.sigmoid(model.decoder(torch.cat([z, one_hot], 1))).view(1, 1, 28, 28)
    assert torch.allclose(images[4:5], by_hand)
    with pytest.raises(ValueError, match="label"):
        model.decode(z)


def test_kind_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown kind"):
        ModelConfig(kind="gan")
    with pytest.raises(ConfigError, match="noise"):
        ModelConfig(kind="dae")
    with pytest.raises(ConfigError, match="noise"):
        ModelConfig(kind="vae", noise="mask:0.5")
    with pytest.raises(ConfigError, match="classes"):
        ModelConfig(kind="cvae")
    with pytest.raises(ConfigError, match="sparsity|autoencoders"):
        ModelConfig(kind="vae", sparsity=0.1)
    assert ModelConfig.from_dict(ModelConfig(kind="dae", noise="gauss:0.3").to_dict()).noise == "gauss:0.3"


def test_checkpoints_from_before_kinds_load_as_vaes():
    model, info = load_checkpoint(shipped_checkpoint("mnist_z2"))
    assert info.model_config.kind == "vae" and info.model_class is VAE and info.model_class.probabilistic
    rebuilt = build_model(info.model_config)
    assert type(rebuilt) is VAE
    rebuilt.load_state_dict(model.state_dict())  # the same parameter names as the first release
    z = torch.randn(4, 2)
    assert torch.allclose(rebuilt.eval().decode_mean(z), model.eval().decode_mean(z))
    assert math.isfinite(rebuilt.objective(_x(4)).loss.item())
    assert issubclass(CVAE, VAE) and issubclass(DAE, AE)


def test_the_linear_autoencoder_is_two_affine_maps_fitted_by_squared_error():
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="linear_ae", latent_dim=3, **LINEAR))
    assert [type(m).__name__ for m in model.modules() if not list(m.children())] == ["Flatten", "Linear", "Linear"]
    assert "log_var_x" not in model.state_dict()  # its variance is the kind's, not a weight a file could change
    x = _x()
    enc, dec = model.encoder[1][0], model.decoder[0]
    means = (x.flatten(1) @ enc.weight.T + enc.bias) @ dec.weight.T + dec.bias
    # −log N(x; x̂, σ²) with σ² = 0.1: the squared error / 0.2 plus 784 · ½ log(2π · 0.1), unclamped
    nll = ((x.flatten(1) - means).pow(2).sum(1) / 0.2 + 784 * 0.5 * math.log(2 * math.pi * 0.1)).mean()
    terms = model.objective(x)
    assert terms.loss.item() == pytest.approx(nll.item(), rel=1e-5) and terms.kl.item() == 0
    assert torch.equal(model.decoder_weight(), dec.weight)
    shown = model.decode_mean(model.encode(x).mean)  # what the pages show: the means clamped into [0, 1]
    assert torch.allclose(shown, means.view_as(x).clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("settings, message", [
    ({"hidden": (64,), "likelihood": "gaussian"}, "has no hidden layers"),
    ({"hidden": (), "likelihood": "bernoulli"}, "takes the likelihood gaussian"),
    ({"hidden": (), "likelihood": "gaussian", "arch": "conv"}, "takes the architecture mlp"),
    ({"hidden": (), "likelihood": "gaussian", "sparsity": 0.1}, "no L1 sparsity"),
])
def test_the_linear_autoencoder_refuses_what_it_does_not_take(settings, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(kind="linear_ae", **settings)
    with pytest.raises(ConfigError, match="hidden sizes must be positive"):  # every other kind needs them
        ModelConfig(kind="ae", hidden=())
