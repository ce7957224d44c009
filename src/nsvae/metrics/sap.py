"""SAP, the Separated Attribute Predictability score (Kumar, Sattigeri & Balakrishnan 2018, "Variational
inference of disentangled latent concepts from unlabeled observations", ICLR 2018).

A score matrix S (d latents x K factors) says how well each latent alone
predicts each factor; SAP = mean over factors of the gap between the best and
second best latent.

- ``continuous_factors=False`` (disentanglement_lib's study setting, the
  ``default`` protocol): S[j, k] = test accuracy of
  ``LinearSVC(C=0.01, class_weight="balanced")`` trained on latent j alone.
  Gives small numbers (about 0.0-0.1 on trained dSprites models).
- ``continuous_factors=True`` (the ``paper`` protocol, Kumar et al.'s
  regression case): S[j, k] = squared correlation of latent j with the
  factor's class index on the training points (0 when the latent's variance
  is below 1e-12). Gives about 0.5 on the same models (Lin et al. 2020).
"""

from __future__ import annotations

import warnings

import numpy as np

from .protocols import resolve
from .utils import CodePool, MetricInputError, check_ground_truth, check_score, pool_or_sample

REFERENCE = "Kumar et al. 2018 (ICLR); protocol of Locatello et al. 2019"


def top_two_gap(score_matrix: np.ndarray) -> float:
    """Mean over factors (columns) of the largest minus the second largest entry."""
    s = np.asarray(score_matrix, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        raise MetricInputError(f"SAP needs a score matrix of at least 2 latents, got shape {s.shape}")
    top = np.sort(s, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def squared_correlation_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """S[j, k] = cov(z_j, v_k)^2 / (var z_j var v_k), 0 where either variance is below 1e-12."""
    z = codes - codes.mean(axis=0)
    v = factors - factors.mean(axis=0)
    n = len(z) - 1
    cov = z.T @ v / n
    var_z = (z * z).sum(axis=0) / n
    var_v = (v * v).sum(axis=0) / n
    denom = var_z[:, None] * var_v[None, :]
    ok = (var_z[:, None] > 1e-12) & (var_v[None, :] > 1e-12)
    return np.where(ok, cov**2 / np.where(ok, denom, 1.0), 0.0)


def svm_accuracy_matrix(x_train, y_train, x_test, y_test, seed: int) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    d, k = x_train.shape[1], y_train.shape[1]
    s = np.zeros((d, k))
    for j in range(d):
        for i in range(k):
            y = y_train[:, i]
            if np.unique(y).size < 2:
                s[j, i] = float(np.mean(y_test[:, i] == y[0]))
                continue
            clf = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(x_train[:, j : j + 1], y)
            s[j, i] = float(np.mean(clf.predict(x_test[:, j : j + 1]) == y_test[:, i]))
    return s


def sap(data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides):
    """SAP score. Returns ``score``, ``score_matrix`` (d x K) and ``protocol``."""
    check_ground_truth(data, "sap")
    p = resolve("sap", protocol, overrides)
    src = pool_or_sample(data, represent, rng, pool, p["num_train"], 0 if p["continuous_factors"] else p["num_test"])
    y_train, x_train = src.train(p["num_train"])
    if x_train.shape[1] < 2:
        raise MetricInputError(f"sap needs at least 2 latent dimensions, got {x_train.shape[1]}")
    if p["continuous_factors"]:
        s = squared_correlation_matrix(x_train, y_train.astype(np.float64))
    else:
        y_test, x_test = src.test(p["num_test"])
        s = svm_accuracy_matrix(x_train, y_train, x_test, y_test, seed=int(rng.integers(2**31 - 1)))
    result = {
        "metric": "sap",
        "score": top_two_gap(s),
        "score_matrix": s.tolist(),
        "reference": REFERENCE,
        "protocol": p,
    }
    return check_score(result, "sap")
