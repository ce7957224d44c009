"""Modularity and explicitness (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the
F-statistic loss", NeurIPS 2018), as implemented by disentanglement_lib.

- Modularity of code j, with m_jk the plug-in MI of the 20-bin code j and
  factor k: 1 - (sum_k m_jk^2 - max_k m_jk^2) / (max_k m_jk^2 (K - 1)); the
  score is the mean over **all** codes. A code with no information about any
  factor (max MI 0: a constant or dead code) scores 0 — disentanglement_lib
  reaches the same 0 through a 0/0 division and a NaN patch; here it is
  computed without the division.
- Explicitness of factor k: macro ROC-AUC (one-vs-rest per class) of a
  logistic regression from the whole code (scikit-learn < 0.22's
  ``LogisticRegression()``: liblinear, one-vs-rest, C = 1); mean over
  factors, on the training and the test points. Before the fit every latent
  is standardised with the **training** points' mean and standard deviation
  (numpy's, ddof 0), applied to both splits, as disentanglement_lib's
  ``normalize_data`` does: the L2 penalty (which liblinear also puts on the
  intercept) then weighs every latent alike whatever its scale. A latent that
  is constant over the training points (std 0, where disentanglement_lib
  divides by zero and the fit fails on NaN) is shifted to exactly 0 and not
  scaled: its training column is all zeros, so the fit gives it weight 0
  and it is ignored on both splits, as if the latent were left out. Classes
  absent from the evaluated split or from training are left out of the AUC
  average (disentanglement_lib fails on them).
"""

from __future__ import annotations

import numpy as np

from .beta_vae import make_linear_classifier
from .protocols import resolve
from .utils import (
    CodePool,
    MetricInputError,
    check_ground_truth,
    check_score,
    discrete_mutual_info,
    histogram_discretize,
    pool_or_sample,
)

REFERENCE = "Ridgeway & Mozer 2018 (NeurIPS); protocol of Locatello et al. 2019"


def modularity_per_code(mutual_information: np.ndarray) -> np.ndarray:
    """Per-code modularity from the MI matrix ``(d, K)``; 0 for codes with no information."""
    m = np.asarray(mutual_information, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise MetricInputError(f"modularity needs an MI matrix of d codes x K >= 2 factors, got shape {m.shape}")
    sq = m**2
    top = sq.max(axis=1)
    ok = top > 0
    out = np.zeros(m.shape[0])
    out[ok] = 1.0 - (sq[ok].sum(axis=1) - top[ok]) / (top[ok] * (m.shape[1] - 1))
    return out


def modularity(mutual_information: np.ndarray) -> float:
    return float(modularity_per_code(mutual_information).mean())


def macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> tuple[float, int]:
    """Mean one-vs-rest ROC-AUC over the classes that occur (and not only occur) in ``y``."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for c_idx, c in enumerate(classes):
        pos = y == c
        if pos.all() or not pos.any():
            continue
        aucs.append(roc_auc_score(pos, proba[:, c_idx]))
    if not aucs:
        return 0.5, 0
    return float(np.mean(aucs)), len(aucs)


def standardise_codes(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits scaled per latent by the training split's mean and std (ddof 0), in float64.

    A latent constant over the training split gets centre = its value and
    scale 1: its training column becomes exactly 0 (so a penalised linear
    fit gives it weight 0) instead of 0/0.
    """
    train = np.asarray(x_train, dtype=np.float64)
    test = np.asarray(x_test, dtype=np.float64)
    centre = train.mean(axis=0)
    scale = train.std(axis=0)
    constant = train.max(axis=0) == train.min(axis=0)  # exact test: a rounded mean of equal values may differ
    centre[constant] = train[0, constant]
    scale[constant] = 1.0
    return (train - centre) / scale, (test - centre) / scale


def explicitness_per_factor(x_train, y_train, x_test, y_test, seed: int) -> tuple[float, float]:
    """``(train AUC, test AUC)`` of one factor from codes already standardised by :func:`standardise_codes`."""
    if np.unique(y_train).size < 2:
        return 1.0, 1.0  # a single class is predicted perfectly
    model = make_linear_classifier("logistic_ovr", seed).fit(x_train, y_train)
    classes = model.classes_
    train, _ = macro_auc(y_train, model.predict_proba(x_train), classes)
    test, _ = macro_auc(y_test, model.predict_proba(x_test), classes)
    return train, test


def modularity_explicitness(
    data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides
) -> dict:
    """Modularity (mean over codes) and explicitness (mean AUC over factors, train and test)."""
    check_ground_truth(data, "modularity_explicitness")
    p = resolve("modularity_explicitness", protocol, overrides)
    src = pool_or_sample(data, represent, rng, pool, p["num_train"], p["num_test"])
    y_train, x_train = src.train(p["num_train"])
    y_test, x_test = src.test(p["num_test"])
    if y_train.shape[1] < 2:
        raise MetricInputError("modularity needs at least 2 ground-truth factors")
    mi = discrete_mutual_info(histogram_discretize(x_train, p["num_bins"]), y_train)
    per_code = modularity_per_code(mi)
    seed = int(rng.integers(2**31 - 1))
    z_train, z_test = standardise_codes(x_train, x_test)
    expl = np.array(
        [explicitness_per_factor(z_train, y_train[:, k], z_test, y_test[:, k], seed) for k in range(y_train.shape[1])]
    )
    result = {
        "metric": "modularity_explicitness",
        "modularity": float(per_code.mean()),
        "modularity_per_code": per_code.tolist(),
        "num_uninformative_codes": int((mi.max(axis=1) == 0).sum()),
        "explicitness_train": float(expl[:, 0].mean()),
        "explicitness_test": float(expl[:, 1].mean()),
        "explicitness_per_factor": dict(zip(data.factor_names, expl[:, 1].tolist())),
        "reference": REFERENCE,
        "protocol": p,
    }
    result["score"] = result["modularity"]
    return check_score(result, "modularity_explicitness")
