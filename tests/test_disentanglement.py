"""The five disentanglement metrics on codes whose answer is known: the factors themselves, the same codes permuted and
rescaled, random codes, and a code mixing two factors whose MIG and SAP are worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from vae_core import dsprites as ds
from vae_core import disentanglement as dis

N = 3000


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    """Factor indices of N images drawn uniformly from the dSprites grid."""
    return ds.from_flat(np.random.default_rng(0).choice(ds.N_IMAGES, N, replace=False))


@pytest.fixture(scope="module")
def noisy_codes(factors) -> np.ndarray:
    """A middling code: the standardised factors plus noise, half of it turned into the other factors' dimensions, and
    three near-constant dimensions (collapsed units)."""
    rng = np.random.default_rng(1)
    z = (factors - factors.mean(0)) / factors.std(0) + 0.3 * rng.normal(size=factors.shape)
    mixed = z + 0.5 * z @ np.linalg.qr(rng.normal(size=(5, 5)))[0]
    return np.c_[mixed, 0.01 * rng.normal(size=(N, 3))]


def _scores(result: dict) -> dict[str, float]:
    return {k: result[k] for k in dis.METRIC_KEYS}


def test_the_factors_themselves_score_the_top_of_each_metric(factors):
    """β-VAE, FactorVAE and DCI reach 1. MIG reaches 0.9, not 1: as in disentanglement_lib, codes are binned into 20
    bins, so orientation's 40 values and the positions' 32 lose part of their entropy (log 20 of log 40 ≈ 0.81). SAP, with
    the reference's linear classifier on one dimension per factor, cannot single out the middle values of a factor
    (a linear score has no peak) and always leaves the runner-up dimension its chance accuracy: its ceiling is 0.18 on
    these 3,000 codes, 0.24 on 10,000 (the SVM's fixed C = 0.01 regularises fewer codes harder), random codes 0."""
    result = dis.disentanglement_metrics(factors.astype(float), factors, ds.FACTOR_NAMES)
    s = _scores(result)
    assert s["beta_vae_score"] == 1.0 and s["factor_vae_score"] == 1.0
    assert s["dci_disentanglement"] > 0.99 and s["dci_completeness"] > 0.99 and s["dci_informativeness"] > 0.99
    assert 0.87 < s["mig"] < 0.93
    assert 0.15 < s["sap"] < 0.3
    assert result["best_factor"] == list(ds.FACTOR_NAMES)
    assert result["mutual_info"].shape == (5, 5)
    assert np.allclose(np.diag(result["mutual_info"])[:2], 1.0)  # shape and scale fit in 20 bins whole


def test_a_permutation_and_a_rescaling_of_the_codes_change_nothing(factors, noisy_codes):
    rng = np.random.default_rng(2)
    order = rng.permutation(noisy_codes.shape[1])
    # Scales up to 4: the FactorVAE score leaves out dimensions spread less than 0.05 (collapsed units, in the prior's
    # units, as the reference does), and a collapsed dimension (0.01) scaled past that would be let in to vote.
    scaled = noisy_codes[:, order] * rng.uniform(0.2, 4, size=noisy_codes.shape[1]) + rng.normal(size=noisy_codes.shape[1])
    before = dis.disentanglement_metrics(noisy_codes, factors)
    after = dis.disentanglement_metrics(scaled, factors)
    a, b = _scores(before), _scores(after)
    assert 0.2 < a["mig"] < 0.8 and 0.2 < a["dci_disentanglement"] < 0.8  # a middling code, not a trivial one
    for key in ("mig", "factor_vae_score", "sap"):  # invariant by construction
        assert b[key] == pytest.approx(a[key], abs=1e-9), key
    for key in ("beta_vae_score", "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        # a logistic regression's penalty and a forest's feature order are not scale- or order-free
        assert b[key] == pytest.approx(a[key], abs=0.03), key
    assert np.allclose(after["mutual_info"], before["mutual_info"][order])
    assert [before["best_factor"][j] for j in order] == after["best_factor"]
    assert after["best_factor"].count(None) == 3  # the collapsed dimensions label nothing


def test_random_codes_score_near_zero_or_chance(factors):
    """MIG, SAP, D and C fall to about 0; the β-VAE and FactorVAE scores to the chance of guessing 1 of 5 factors;
    informativeness to the mean chance accuracy over the factors' values (about 0.12)."""
    s = _scores(dis.disentanglement_metrics(np.random.default_rng(3).normal(size=(N, 10)), factors))
    assert s["mig"] < 0.02 and s["sap"] < 0.02
    assert s["dci_disentanglement"] < 0.1 and s["dci_completeness"] < 0.1
    assert abs(s["beta_vae_score"] - 0.2) < 0.05 and abs(s["factor_vae_score"] - 0.2) < 0.1
    assert s["dci_informativeness"] < 0.2


def test_a_code_mixing_two_factors_scores_what_the_hand_computation_gives():
    """Two balanced binary factors, every combination 500 times; z₀ = f₀ + f₁ mixes both, z₁ = f₁ holds one.

    MIG. I(z₀; f₀) = H(f₀) − H(f₀ | z₀) = ln 2 − P(z₀ = 1)·ln 2 = ½ ln 2 (z₀ = 0 or 2 gives f₀ away, z₀ = 1 leaves it at
    even odds); I(z₁; f₀) = 0. So f₀'s gap is ½ ln 2 / ln 2 = ½. I(z₁; f₁) = ln 2 and I(z₀; f₁) = ½ ln 2 (by symmetry):
    f₁'s gap is also ½. MIG = ½.

    SAP. A threshold on z₀ predicts f₀ right at z₀ = 0 and 2 and half the time at z₀ = 1: accuracy ¾; z₁ says nothing of
    f₀: ½ (each z₁ value has f₀ at even odds). A threshold on z₁ predicts f₁ exactly: 1; on z₀: ¾. The gaps are ¾ − ½
    and 1 − ¾: SAP = ¼."""
    f = np.repeat(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]), 500, axis=0)
    z = np.c_[f[:, 0] + f[:, 1], f[:, 1]].astype(float)
    assert dis.mig(z, f) == pytest.approx(0.5, abs=1e-12)
    assert dis.sap(z, f, z, f) == pytest.approx(0.25, abs=1e-12)
    mi = dis.mutual_info(z, f)
    assert mi == pytest.approx(np.log(2) * np.array([[0.5, 0.5], [0.0, 1.0]]), abs=1e-12)


def test_the_metrics_are_seeded_and_check_their_inputs(factors, noisy_codes):
    first = _scores(dis.disentanglement_metrics(noisy_codes, factors, seed=5))
    assert first == _scores(dis.disentanglement_metrics(noisy_codes, factors, seed=5))
    assert first != _scores(dis.disentanglement_metrics(noisy_codes, factors, seed=6))
    with pytest.raises(ValueError, match="one row per factor row"):
        dis.disentanglement_metrics(noisy_codes[:10], factors)


def test_on_few_codes_a_dimension_independent_of_every_factor_is_not_labelled(factors):
    """600 codes: the binned MI of pure noise with posX (32 values) is ~0.5 nats, 14 % of its entropy, above the 10 %
    labelling share; measured beyond chance_info it labels nothing, while the factors themselves keep their names."""
    few = factors[:600]
    noise = np.random.default_rng(3).normal(size=(600, 4))
    raw = dis.mutual_info(noise, few) / dis.factor_entropy(few)
    assert (raw.max(axis=1) >= dis.LABEL_MIN_SHARE).all()  # what the plain share would have called a factor
    assert np.allclose(dis.chance_info(few, 600)[3:], 31 * 19 / 1200)  # posX, posY: 32 values, 20 bins
    result = dis.disentanglement_metrics(np.hstack([few.astype(float), noise]), few, ds.FACTOR_NAMES)
    assert result["best_factor"] == [*ds.FACTOR_NAMES, None, None, None, None]
