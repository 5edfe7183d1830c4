"""Disentanglement of a representation against known discrete factors (dSprites): MIG, the β-VAE score, the FactorVAE
score, DCI and SAP, following google-research/disentanglement_lib (evaluation/metrics/*.py, the settings of its
unsupervised study) except where noted:

- MIG (Chen et al. 2018): each code dimension binned into 20 equal-width bins over its range, discrete mutual
  information with each factor; per factor the gap between its two most informative dimensions over its entropy.
  As in the reference, a perfect code scores below 1 where a factor has more values than bins (dSprites'
  orientation has 40, positions 32): 0.90 for the dSprites factors themselves.
- β-VAE score (Higgins et al. 2017): a point is a factor k and the mean |z₁ − z₂| over 64 pairs sharing k's value;
  scikit-learn's logistic regression (today's lbfgs, allowed 1,000 iterations) predicts k; the score is its accuracy
  on held-out points (chance 1/F).
- FactorVAE score (Kim & Mnih 2018): dimensions divided by their standard deviation (those under 0.05 are dropped as
  collapsed), a batch of 64 sharing one factor's value votes for its least-varying dimension; majority-vote
  classifier, held-out accuracy (chance about 1/F).
- DCI (Eastwood & Williams 2018): an importance matrix from one tree ensemble per factor; disentanglement and
  completeness are 1 − the normalised entropy of its rows and columns, weighted by importance; informativeness is
  the ensemble's held-out accuracy (the reference's "informativeness_test", higher is better, not the paper's error).
  Where the reference fits scikit-learn's GradientBoostingClassifier (100 rounds of one depth-3 tree per class: 11,300
  trees for dSprites' 113 factor values; 12 to 22 min here on 6,667 codes of 10 dimensions, on a shared 2-core
  machine), this fits seeded extremely randomised trees (20 per factor, all features, leaves of at least 20 codes):
  1 to 2 s. D and C depend on the model that measures importance (the paper itself used two): on four synthetic codes
  of middling quality (bench/dci_importance.py) these trees' D came 0.005 to 0.10 above gradient boosting's
  (0.27–0.45; mean +0.06), C −0.02 to +0.10, informativeness within 0.03; on the image-moment code of
  bench/disentanglement_speed.py D 0.600 against 0.593. A random forest of 10 trees with the same leaves scattered
  −0.10 to +0.10.
- SAP (Kumar et al. 2018): per dimension and factor, the held-out accuracy of a linear SVM (C = 0.01, balanced
  classes) reading the factor from that one dimension; the mean gap between each factor's two best dimensions.
  Each dimension is standardised first (the reference feeds raw codes), so a rescaled code scores the same. With
  one linear classifier per dimension a factor's middle values are out of reach and the runner-up keeps its chance
  accuracy: the dSprites factors themselves score only 0.18 (3,000 codes) to 0.24 (10,000).

One set of codes serves all five: it is split (seeded) into 2/3 to fit on and 1/3 to score on. The reference samples
fresh images for every β-VAE and FactorVAE point (1,920,000 and 970,000 images); here the pairs and batches
sharing a factor's value are drawn from the codes at hand (`CodePool`). On a grid sampled uniformly, as dSprites' test
set is, a code with factor k = v is a uniform draw given k = v either way; `Rendered` draws fresh images the
reference's way for comparison (bench/disentanglement_speed.py).
"""
from __future__ import annotations

import time
from typing import Callable, Protocol, Sequence

import numpy as np
from scipy.stats import entropy
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

METRIC_KEYS = ("mig", "beta_vae_score", "factor_vae_score", "dci_disentanglement", "dci_completeness",
               "dci_informativeness", "sap")
MIG_BINS = 20
BATCH = 64  # images per β-VAE / FactorVAE point
TRAIN_POINTS, EVAL_POINTS = 10_000, 5_000  # β-VAE / FactorVAE points, as the reference
TRAIN_SHARE = 2 / 3  # of the codes, to fit on (the reference: 10,000 fit, 5,000 scored)
COLLAPSED_STD = 0.05  # FactorVAE: dimensions whose standard deviation is below this are left out
SAP_C = 0.01
FOREST_TREES, FOREST_MIN_LEAF = 20, 20  # DCI's extremely randomised trees
# A latent dimension is labelled by a factor when it holds at least this share of the factor's entropy, beyond what
# the binned estimate shows between independent variables on as many codes (`chance_info`).
LABEL_MIN_SHARE = 0.1


def discrete(factors: np.ndarray) -> np.ndarray:
    """Factor values or indices (N, F) -> class indices (N, F): each column's distinct values, in order."""
    f = np.asarray(factors)
    if f.ndim != 2:
        raise ValueError(f"factors must be (N, F), got shape {f.shape}")
    return np.stack([np.unique(f[:, k], return_inverse=True)[1].ravel() for k in range(f.shape[1])], axis=1)


def _binned(codes: np.ndarray, bins: int) -> np.ndarray:
    """disentanglement_lib's histogram discretiser: equal-width bins over each dimension's range."""
    return np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T], axis=1)


def mutual_info(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """(d, F): I(z_j; f_k) in nats between each binned code dimension and each factor."""
    z, f = _binned(np.asarray(codes, dtype=np.float64), bins), discrete(factors)
    return np.array([[mutual_info_score(f[:, k], z[:, j]) for k in range(f.shape[1])] for j in range(z.shape[1])])


def chance_info(factors: np.ndarray, n: int, bins: int = MIG_BINS) -> np.ndarray:
    """(F,): the mutual information in nats the binned estimate expects between a code dimension independent of
    factor k and the factor on n codes, (bins − 1)(values_k − 1) / 2n (the χ² bias of the plug-in estimate): on 600
    codes ~0.5 nats for a 32-valued position, 14 % of its entropy, which `mutual_info` alone would take for a factor
    a dimension holds."""
    f = discrete(factors)
    values = np.array([len(np.unique(f[:, k])) for k in range(f.shape[1])])
    return (bins - 1) * (values - 1) / (2 * n)


def factor_entropy(factors: np.ndarray) -> np.ndarray:
    """(F,): H(f_k) in nats."""
    f = discrete(factors)
    return np.array([entropy(np.bincount(f[:, k])) for k in range(f.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> float:
    """Mutual information gap: mean over factors of (largest − second largest I(z_j; f_k)) / H(f_k)."""
    return _mig(mutual_info(codes, factors, bins), factor_entropy(factors))


def _mig(mi: np.ndarray, h: np.ndarray) -> float:
    top = np.sort(np.vstack([mi, np.zeros((1, mi.shape[1]))]), axis=0)[::-1]  # a single dimension's runner-up is 0
    return float(np.mean((top[0] - top[1]) / h))


def sap(codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray) -> float:
    """Separated attribute predictability: per factor, the gap between the held-out accuracies of its two best single-
    dimension linear classifiers, averaged over factors."""
    f_train, f_test = _discrete_pair(factors_train, factors_test)
    d, n_factors = codes_train.shape[1], f_train.shape[1]
    acc = np.zeros((d, n_factors))
    for j in range(d):
        x_train, x_test = _standard(codes_train[:, j:j + 1], codes_test[:, j:j + 1])
        for k in range(n_factors):
            if np.ptp(x_train) == 0:  # a constant dimension predicts the majority class at best: as the reference's SVM
                acc[j, k] = np.mean(f_test[:, k] == np.bincount(f_train[:, k]).argmax())
                continue
            model = LinearSVC(C=SAP_C, class_weight="balanced").fit(x_train, f_train[:, k])
            acc[j, k] = np.mean(model.predict(x_test) == f_test[:, k])
    top = np.sort(np.vstack([acc, np.zeros((1, n_factors))]), axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))


def _standard(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred and scaled by the training part: LinearSVC's regularised intercept otherwise makes its accuracy depend
    on where a code sits and how wide it is (the reference feeds raw codes; a rescaled code should score the same)."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def forest(seed: int) -> ExtraTreesClassifier:
    """DCI's importance model here (the module docstring says why not the reference's gradient boosting)."""
    return ExtraTreesClassifier(n_estimators=FOREST_TREES, min_samples_leaf=FOREST_MIN_LEAF, max_features=None,
                                random_state=seed)


def dci(codes_train: np.ndarray, factors_train: np.ndarray, codes_test: np.ndarray, factors_test: np.ndarray,
        seed: int = 0, model: Callable[[int], object] = forest) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (held-out accuracy) from one classifier per factor with
    `feature_importances_`, made by `model(seed)` (disentanglement_lib: sklearn's GradientBoostingClassifier)."""
    f_train, f_test = _discrete_pair(factors_train, factors_test)
    d, n_factors = codes_train.shape[1], f_train.shape[1]
    importance, accuracy = np.zeros((d, n_factors)), []
    for k in range(n_factors):
        classifier = model(seed + k).fit(codes_train, f_train[:, k])
        importance[:, k] = np.abs(classifier.feature_importances_)
        accuracy.append(np.mean(classifier.predict(codes_test) == f_test[:, k]))
    return {"dci_disentanglement": _weighted_one_minus_entropy(importance),
            "dci_completeness": _weighted_one_minus_entropy(importance.T),
            "dci_informativeness": float(np.mean(accuracy))}


def _weighted_one_minus_entropy(importance: np.ndarray) -> float:
    """Rows: 1 − entropy of each row's importance over the columns (base: their number), weighted by the row's share
    of all importance; disentanglement_lib's disentanglement (rows = codes) and completeness (rows = factors)."""
    if importance.shape[1] == 1:
        return 1.0
    per_row = 1.0 - entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance.sum(1) if importance.sum() > 0 else np.ones(len(importance))
    return float(np.sum(per_row * weights / weights.sum()))


def _discrete_pair(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = discrete(np.concatenate([np.asarray(train), np.asarray(test)]))
    return both[:len(train)], both[len(train):]


# --- the two metrics that need codes sharing a factor ---------------------------------------------------------------

class FixedFactorCodes(Protocol):
    """Where the β-VAE and FactorVAE scores get codes of images that share one factor's value."""

    n_factors: int

    def pairs(self, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two (n, d) code arrays, row i of both sharing factor k's value (a random value per row)."""

    def batch(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, d) codes all sharing one random value of factor k."""

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, d) codes of random images (the global spread)."""


class CodePool:
    """Codes of images with known factors, drawn from as the images a generator would render: a code given k = v is a
    uniform draw among the pool's codes with k = v (the pool itself a uniform sample of the factor grid)."""

    def __init__(self, codes: np.ndarray, factors: np.ndarray) -> None:
        self.codes = np.asarray(codes, dtype=np.float64)
        f = discrete(factors)
        self.n_factors = f.shape[1]
        self._order = [np.argsort(f[:, k], kind="stable") for k in range(self.n_factors)]
        self._value = [f[order, k] for k, order in enumerate(self._order)]
        self._start = [np.searchsorted(v, v) for v in self._value]  # each sorted position's group start
        self._count = [np.bincount(v)[v] for v in self._value]

    def pairs(self, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pos = rng.integers(len(self.codes), size=n)  # anchors, as positions in k's sorted order
        start, count = self._start[k][pos], self._count[k][pos]
        # the partner: another member of the anchor's group (the anchor itself only when it is alone there)
        other = start + np.floor(rng.random(n) * np.maximum(count - 1, 1)).astype(np.int64)
        other += (other >= pos) & (count > 1)
        return self.codes[self._order[k][pos]], self.codes[self._order[k][other]]

    def batch(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        anchor = rng.integers(len(self.codes))
        start, count = self._start[k][anchor], self._count[k][anchor]
        return self.codes[self._order[k][start + rng.integers(count, size=n)]]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.codes[rng.integers(len(self.codes), size=n)]


class Rendered:
    """Fresh images, disentanglement_lib's way: factor indices drawn uniformly from the grid, `render` (factor indices
    (n, F) -> images) and `encode` (images -> codes (n, d))."""

    def __init__(self, factor_sizes: Sequence[int], render: Callable[[np.ndarray], np.ndarray],
                 encode: Callable[[np.ndarray], np.ndarray]) -> None:
        self.sizes, self.render, self.encode = np.asarray(factor_sizes), render, encode
        self.n_factors = len(self.sizes)

    def _codes(self, factors: np.ndarray) -> np.ndarray:
        return np.asarray(self.encode(self.render(factors)), dtype=np.float64)

    def pairs(self, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        a, b = rng.integers(0, self.sizes, size=(n, self.n_factors)), rng.integers(0, self.sizes, size=(n, self.n_factors))
        b[:, k] = a[:, k]
        return self._codes(a), self._codes(b)

    def batch(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        f = rng.integers(0, self.sizes, size=(n, self.n_factors))
        f[:, k] = f[0, k]
        return self._codes(f)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._codes(rng.integers(0, self.sizes, size=(n, self.n_factors)))


def _beta_vae_points(source: FixedFactorCodes, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(source.n_factors, size=n)
    points = []
    for k in labels:
        z1, z2 = source.pairs(int(k), BATCH, rng)
        points.append(np.abs(z1 - z2).mean(0))
    return np.array(points), labels


def beta_vae_score(train: FixedFactorCodes, test: FixedFactorCodes, seed: int = 0,
                   n_train: int = TRAIN_POINTS, n_eval: int = EVAL_POINTS) -> float:
    """Held-out accuracy of a logistic regression telling which factor a batch of pairs shared."""
    rng = np.random.default_rng(seed)
    x_train, y_train = _beta_vae_points(train, n_train, rng)
    x_eval, y_eval = _beta_vae_points(test, n_eval, rng)
    # max_iter above the default 100, which leaves lbfgs unconverged on codes of a few units' spread
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(x_train, y_train)
    return float(model.score(x_eval, y_eval))


def _factor_vae_votes(source: FixedFactorCodes, n: int, scale: np.ndarray, active: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    votes = np.zeros((source.n_factors, len(scale)), dtype=np.int64)
    for k in rng.integers(source.n_factors, size=n):
        variance = source.batch(int(k), BATCH, rng)[:, active].var(0, ddof=1) / scale[active] ** 2
        votes[k, np.flatnonzero(active)[np.argmin(variance)]] += 1
    return votes


def factor_vae_score(train: FixedFactorCodes, test: FixedFactorCodes, seed: int = 0,
                     n_train: int = TRAIN_POINTS, n_eval: int = EVAL_POINTS, n_variance: int = 10_000) -> float:
    """Held-out accuracy of the majority-vote classifier from a batch's least-varying (scaled) dimension to its
    fixed factor; 0 when every dimension has collapsed."""
    rng = np.random.default_rng(seed)
    scale = train.sample(n_variance, rng).std(0, ddof=1)
    active = scale >= COLLAPSED_STD
    if not active.any():
        return 0.0
    classifier = _factor_vae_votes(train, n_train, scale, active, rng).argmax(0)  # dimension -> factor
    votes = _factor_vae_votes(test, n_eval, scale, active, rng)
    return float(votes[classifier, np.arange(len(scale))].sum() / votes.sum())


# --- all of them -------------------------------------------------------------------------------------------------------

def disentanglement_metrics(codes: np.ndarray, factors: np.ndarray, factor_names: Sequence[str] | None = None,
                            seed: int = 0) -> dict:
    """The five metrics of `codes` (N, d) — a VAE's posterior means — against discrete `factors` (N, F) of the same
    images (values or indices), seeded. Returns the seven figures of METRIC_KEYS as floats, plus:
    "mutual_info" (d, F), the share of each factor's entropy each dimension holds, I(z_j; f_k) / H(f_k) in [0, 1]
    (the heat map); "factor_names"; "best_factor", per dimension the name of the factor it holds most of, or None when
    it holds under LABEL_MIN_SHARE of any (a traversal row's label); "seconds", the time each metric took (DCI's three
    figures come from one fit, timed as "dci")."""
    z, f = np.asarray(codes, dtype=np.float64), discrete(factors)
    if z.ndim != 2 or len(z) != len(f):
        raise ValueError(f"codes must be (N, d) with one row per factor row, got {z.shape} and {f.shape}")
    names = tuple(factor_names) if factor_names is not None else tuple(f"factor {k}" for k in range(f.shape[1]))
    start = time.perf_counter()
    perm = np.random.default_rng(seed).permutation(len(z))
    cut = int(round(len(z) * TRAIN_SHARE))
    fit, score = perm[:cut], perm[cut:]
    h = np.maximum(factor_entropy(f), 1e-12)
    share = mutual_info(z, f) / h
    pool_fit, pool_score = CodePool(z[fit], f[fit]), CodePool(z[score], f[score])
    result: dict = {"mig": _mig(share, np.ones(f.shape[1]))}
    seconds = {"mig": time.perf_counter() - start}
    for key, compute in (
        ("beta_vae_score", lambda: beta_vae_score(pool_fit, pool_score, seed)),
        ("factor_vae_score", lambda: factor_vae_score(pool_fit, pool_score, seed)),
        ("dci", lambda: dci(z[fit], f[fit], z[score], f[score], seed)),
        ("sap", lambda: sap(z[fit], f[fit], z[score], f[score])),
    ):
        start = time.perf_counter()
        value = compute()
        result.update(value if isinstance(value, dict) else {key: value})
        seconds[key] = time.perf_counter() - start
    result["mutual_info"] = share
    result["factor_names"] = names
    beyond_chance = share - chance_info(f, len(z)) / h
    result["best_factor"] = [names[k] if beyond_chance[j, k] >= LABEL_MIN_SHARE else None
                             for j, k in enumerate(beyond_chance.argmax(1))]
    result["seconds"] = seconds
    return result
