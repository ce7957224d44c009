"""DCI: Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018, "A framework for the
quantitative evaluation of disentangled representations", ICLR 2018), as in disentanglement_lib.

One classifier per factor predicts its class from the whole code; its feature
importances form column k of the importance matrix R (d latents x K factors).

- disentanglement of code j: D_j = 1 - H_K(R[j, :] / sum_k R[j, k]) (entropy in base K);
  D = sum_j rho_j D_j with rho_j = sum_k R[j, k] / sum R.
- completeness of factor k: C_k = 1 - H_d(R[:, k] / sum_j R[j, k]) (base d);
  C = sum_k (sum_j R[j, k] / sum R) C_k.
- informativeness: the classifiers' accuracy (train and test), mean over factors.

disentanglement_lib adds 1e-11 to every entry before the entropies and uses
uniform importances when R is all zero; both are kept here so values match.
Protocol ``default`` = disentanglement_lib: 10,000 train / 5,000 test points,
``sklearn.ensemble.GradientBoostingClassifier()`` (100 trees of depth 3,
learning rate 0.1, one tree per class and stage: 113 x 100 trees on dSprites,
about 8 minutes of one CPU core here). ``model="hist_gbt"`` is a faster,
**non-standard** option: ``HistGradientBoostingClassifier`` with the same
100 stages of depth 3 and learning rate 0.1 (no early stopping), importances
= each feature's total split gain over all trees, normalised (scikit-learn
has no ``feature_importances_`` for it; this reads its fitted trees).
Numbers from the two models are not interchangeable; the result records
which one ran. ``n_jobs`` fits factors in parallel (same numbers).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy as _entropy

from .protocols import resolve
from .utils import CodePool, MetricInputError, check_ground_truth, check_score, pool_or_sample

REFERENCE = "Eastwood & Williams 2018 (ICLR); protocol of Locatello et al. 2019 (GBT importances)"
_EPS = 1e-11


def _check_importance(importance: np.ndarray) -> np.ndarray:
    r = np.asarray(importance, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
        raise MetricInputError(f"DCI needs an importance matrix of at least 2 latents x 2 factors, got {r.shape}")
    if not np.isfinite(r).all() or (r < 0).any():
        raise MetricInputError("importance matrix entries must be finite and non-negative")
    return r


def disentanglement_per_code(importance: np.ndarray) -> np.ndarray:
    r = _check_importance(importance)
    return 1.0 - _entropy(r.T + _EPS, base=r.shape[1])


def disentanglement(importance: np.ndarray) -> float:
    """Importance-weighted mean of the per-code disentanglement."""
    r = _check_importance(importance)
    per_code = disentanglement_per_code(r)
    if r.sum() == 0.0:
        r = np.ones_like(r)
    rho = r.sum(axis=1) / r.sum()
    return float(np.sum(per_code * rho))


def completeness_per_factor(importance: np.ndarray) -> np.ndarray:
    r = _check_importance(importance)
    return 1.0 - _entropy(r + _EPS, base=r.shape[0])


def completeness(importance: np.ndarray) -> float:
    """Importance-weighted mean of the per-factor completeness."""
    r = _check_importance(importance)
    per_factor = completeness_per_factor(r)
    if r.sum() == 0.0:
        r = np.ones_like(r)
    weight = r.sum(axis=0) / r.sum()
    return float(np.sum(per_factor * weight))


def _hist_gbt_importance(clf, d: int) -> np.ndarray:
    """Total split gain per feature over every tree of a fitted HistGradientBoostingClassifier, normalised."""
    predictors = getattr(clf, "_predictors", None)
    if predictors is None:
        raise MetricInputError("this scikit-learn's HistGradientBoostingClassifier hides its trees; use model='gbt'")
    gain = np.zeros(d)
    for stage in predictors:
        for tree in stage:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(gain, nodes["feature_idx"].astype(np.int64), np.maximum(nodes["gain"], 0.0))
    total = gain.sum()
    return gain / total if total > 0 else gain


def _fit_one(x_train, y, x_test, y_test, model: str, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

    if np.unique(y).size < 2:  # a factor with one class in the sample: nothing to predict
        return np.zeros(x_train.shape[1]), 1.0, float(np.mean(y_test == y[0]))
    from threadpoolctl import threadpool_limits

    # OpenMP threads (histogram GBT's fit and predict) on a shared machine cost far more than they give here
    with threadpool_limits(1):
        if model == "gbt":
            clf = GradientBoostingClassifier(random_state=seed).fit(x_train, y)
            imp = np.abs(clf.feature_importances_)
        elif model == "hist_gbt":
            clf = HistGradientBoostingClassifier(
                max_iter=100,
                learning_rate=0.1,
                max_depth=3,
                max_leaf_nodes=None,
                early_stopping=False,
                random_state=seed,
            ).fit(x_train, y)
            imp = _hist_gbt_importance(clf, x_train.shape[1])
        else:
            raise MetricInputError(f"unknown DCI model {model!r}; choose gbt (the protocol) or hist_gbt (fast option)")
        return imp, float(np.mean(clf.predict(x_train) == y)), float(np.mean(clf.predict(x_test) == y_test))


def importance_matrix(x_train, y_train, x_test, y_test, model: str = "gbt", seed: int = 0, n_jobs: int = 1):
    """``(R (d, K), train accuracies (K,), test accuracies (K,))`` from one classifier per factor."""
    k = y_train.shape[1]
    args = [(x_train, y_train[:, i], x_test, y_test[:, i], model, seed) for i in range(k)]
    if n_jobs == 1:
        fits = [_fit_one(*a) for a in args]
    else:
        from ..processes import worker_pool

        # largest factors first, so the pool stays busy; the project's own pool, whose workers die with this process
        # even on SIGKILL (joblib's loky workers outlived a killed evaluate at full CPU: docs/reliability.md)
        order = [int(i) for i in np.argsort([-np.unique(a[1]).size for a in args])]
        with worker_pool(min(n_jobs, k)) as pool:
            done = list(pool.map(_fit_one, *zip(*(args[i] for i in order), strict=True)))
        fits = [None] * k
        for i, f in zip(order, done):
            fits[i] = f
    r = np.stack([f[0] for f in fits], axis=1)
    return r, np.array([f[1] for f in fits]), np.array([f[2] for f in fits])


def dci(
    data,
    represent,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    n_jobs: int = 1,
    **overrides,
):
    """DCI disentanglement, completeness and informativeness (train/test accuracy).

    Returns ``disentanglement``, ``completeness``, ``informativeness_train``,
    ``informativeness_test``, ``importance_matrix`` (d x K) and ``protocol``.
    """
    check_ground_truth(data, "dci")
    p = resolve("dci", protocol, overrides)
    src = pool_or_sample(data, represent, rng, pool, p["num_train"], p["num_test"])
    y_train, x_train = src.train(p["num_train"])
    y_test, x_test = src.test(p["num_test"])
    if x_train.shape[1] < 2 or y_train.shape[1] < 2:
        raise MetricInputError(
            f"dci needs >= 2 latents and >= 2 factors, got {x_train.shape[1]} and {y_train.shape[1]}"
        )
    r, acc_train, acc_test = importance_matrix(
        x_train, y_train, x_test, y_test, p["model"], seed=int(rng.integers(2**31 - 1)), n_jobs=n_jobs
    )
    result = {
        "metric": "dci",
        "disentanglement": disentanglement(r),
        "completeness": completeness(r),
        "informativeness_train": float(acc_train.mean()),
        "informativeness_test": float(acc_test.mean()),
        "informativeness_per_factor": dict(zip(data.factor_names, acc_test.tolist())),
        "importance_matrix": r.tolist(),
        "reference": REFERENCE,
        "protocol": p,
    }
    result["score"] = result["disentanglement"]
    return check_score(result, "dci")
