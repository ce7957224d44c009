"""DCI-ES: DCI with explicitness E and size S (Eastwood, Nicolicioiu, von Kügelgen, Kekić, Träuble, Dittadi &
Schölkopf 2023, "DCI-ES: An Extended Disentanglement Framework with Connections to Identifiability", ICLR 2023),
as the authors' code computes it (andreinicolicioiu/DCI-ES: ``src/loss_capacity/train_model_random_forest.py``,
``metrics/explitcitness.py``, ``src/simple_gather.py``, ``configs/random_forest/``).

**Probes and the loss-capacity curve.** For every capacity c (a random forest
of 100 trees with ``max_depth`` = c, all else scikit-learn's defaults) one
probe per factor predicts the factor from the whole code. A nominal factor
(``data.nominal_factors``, e.g. dSprites' shape) is classified and its loss
is 1 - test accuracy; an ordered factor is regressed on its class index and
its loss is 1 - test R². The authors' capacities are the depths 1, 2, 3, 4,
8, 10, 12, 14, 16, 18, 20, 32, used on a linear axis.

**Explicitness** of factor k (:func:`explicitness_from_curve`): the curve is
first made non-increasing (each loss replaced by the lowest loss at that
capacity or below), then

    E_k = 1 - AULCC_k / Z_k,   AULCC_k = ∫ (loss(c) - min loss) dc  (trapezoids),
    Z_k = ½ (c_max - c_min) ℓ_b,k,

the area of the triangle from the baseline loss at the smallest capacity to a
zero loss at the largest (the code's comment: "we assume l* = 0"). The
baseline ℓ_b is the loss of a probe that ignores the code: 1 - 1/|V_k| for a
classified factor (the authors' table for dSprites, MPI3D and Cars3D), 1 for
a regressed one. E = 1 when the smallest probe already reaches the curve's
lowest loss; E = 0 for a straight fall from the baseline to 0; E < 0 is
possible when the curve stays high and falls late. E measures how easily the
information is read out, not how much there is: a code that knows nothing
has a flat curve and E near 1 (its I is near 0). ``explicitness`` is the mean
over factors.

**D, C, I** (Eastwood & Williams 2018, :mod:`.dci`) come from the probe of the
capacity with the best mean test score, as ``simple_gather.py`` picks them:
the forests' impurity importances form R (d × K); I is that probe's mean
test score (accuracy or R²).

**Size** S = K / L, the number of factors over the number of code dimensions:
1 for a code of the factors' own size, smaller for a larger code. The authors'
code does not compute S; this is the paper's definition as recalled (not
checked against the PDF here, see docs/metrics.md).

Not implemented: the authors' MLP and random-Fourier-feature probes (they
need a neural-network trainer; metrics stay numpy/scikit-learn), and their
SAGE importances (an option beside the impurity importances).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .dci import completeness, disentanglement
from .protocols import resolve
from .utils import CodePool, MetricInputError, check_ground_truth, check_score, pool_or_sample

REFERENCE = "Eastwood et al. 2023, DCI-ES (ICLR); the authors' code andreinicolicioiu/DCI-ES (random-forest probes)"


def running_minimum(losses: Sequence[float]) -> np.ndarray:
    """Each loss replaced by the lowest loss at that capacity or a smaller one: a more capable probe family
    contains the smaller ones, so the curve never rises."""
    return np.minimum.accumulate(np.asarray(losses, dtype=np.float64))


def explicitness_from_curve(capacities: Sequence[float], losses: Sequence[float], baseline_loss: float) -> float:
    """E of one factor's loss-capacity curve (module docstring): ``capacities`` increasing, one loss each."""
    c = np.asarray(capacities, dtype=np.float64)
    loss = running_minimum(losses)
    if c.ndim != 1 or c.shape != loss.shape or c.size < 2:
        raise MetricInputError(f"a loss-capacity curve needs >= 2 capacities and one loss each, got {c.shape}")
    if not (np.diff(c) > 0).all():
        raise MetricInputError(f"the capacities must increase strictly, got {c.tolist()}")
    if not np.isfinite(loss).all():
        raise MetricInputError("the loss-capacity curve holds non-finite losses")
    if not baseline_loss > 0:
        raise MetricInputError(f"the baseline loss must be positive, got {baseline_loss}")
    above_lowest = loss - loss.min()
    area = float(np.sum(0.5 * (above_lowest[:-1] + above_lowest[1:]) * np.diff(c)))
    triangle = 0.5 * (c[-1] - c[0]) * baseline_loss
    return 1.0 - area / triangle


def size_score(num_factors: int, num_latents: int) -> float:
    """S = K / L."""
    if num_factors < 1 or num_latents < 1:
        raise MetricInputError(f"size needs >= 1 factor and >= 1 latent, got {num_factors} and {num_latents}")
    return num_factors / num_latents


def baseline_losses(factor_sizes: Sequence[int], classified: Sequence[bool]) -> np.ndarray:
    """The loss of a probe that ignores the code: 1 - 1/|V| when classified (chance accuracy of a uniform factor),
    1 when regressed (R² of the mean)."""
    return np.array([1.0 - 1.0 / size if cls else 1.0 for size, cls in zip(factor_sizes, classified)])


def _forest(classify: bool, depth: int, num_trees: int, seed: int, n_jobs: int):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    kind = RandomForestClassifier if classify else RandomForestRegressor
    return kind(n_estimators=num_trees, max_depth=depth, random_state=seed, n_jobs=n_jobs)


def probe_scores(x_train, y_train, x_test, y_test, classify: bool, depth: int, num_trees: int, seed: int, n_jobs=1):
    """``(importances (d,), train score, test score)`` of one forest probe; scores are accuracy or R²."""
    if np.unique(y_train).size < 2:  # one class in the sample: nothing to learn, predicted exactly
        return np.zeros(x_train.shape[1]), 1.0, 1.0
    target_train = y_train if classify else y_train.astype(np.float64)
    target_test = y_test if classify else y_test.astype(np.float64)
    model = _forest(classify, depth, num_trees, seed, n_jobs).fit(x_train, target_train)
    importance = np.abs(model.feature_importances_)
    return importance, float(model.score(x_train, target_train)), float(model.score(x_test, target_test))


def loss_capacity_curves(
    x_train,
    y_train,
    x_test,
    y_test,
    classified: Sequence[bool],
    depths: Sequence[int],
    num_trees: int = 100,
    seed: int = 0,
    n_jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Every probe of every capacity: ``importance`` (capacities, d, K), ``train_score`` and ``test_score``
    (capacities, K)."""
    d, k = x_train.shape[1], y_train.shape[1]
    importance = np.zeros((len(depths), d, k))
    train = np.zeros((len(depths), k))
    test = np.zeros((len(depths), k))
    for i, depth in enumerate(depths):
        for j in range(k):
            importance[i, :, j], train[i, j], test[i, j] = probe_scores(
                x_train, y_train[:, j], x_test, y_test[:, j], bool(classified[j]), int(depth), num_trees, seed, n_jobs
            )
    return {"importance": importance, "train_score": train, "test_score": test}


def dci_es(
    data,
    represent,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    n_jobs: int = 1,
    **overrides,
):
    """DCI-ES: explicitness (``score``), size, and D, C, I of the best probe (module docstring).

    Returns ``explicitness``, ``explicitness_per_factor``, ``size``, ``disentanglement``, ``completeness``,
    ``informativeness_train``/``_test``, ``best_max_depth``, ``loss_capacity`` (capacities and each factor's
    test losses before the running minimum), ``baseline_loss`` and ``probe`` per factor, ``importance_matrix``
    (d x K, of the best probe) and ``protocol``. ``n_jobs`` grows each forest's trees in parallel (same numbers).
    """
    check_ground_truth(data, "dci_es")
    p = resolve("dci_es", protocol, overrides)  # checks the depths and hands them back as a tuple of ints
    depths = p["max_depths"]
    src = pool_or_sample(data, represent, rng, pool, p["num_train"], p["num_test"])
    y_train, x_train = src.train(p["num_train"])
    y_test, x_test = src.test(p["num_test"])
    if x_train.shape[1] < 2 or y_train.shape[1] < 2:
        raise MetricInputError(
            f"dci_es needs >= 2 latents and >= 2 factors, got {x_train.shape[1]} and {y_train.shape[1]}"
        )
    nominal = set(getattr(data, "nominal_factors", ()))
    classified = [name in nominal for name in data.factor_names]
    baseline = baseline_losses(data.factor_sizes, classified)
    curves = loss_capacity_curves(
        x_train,
        y_train,
        x_test,
        y_test,
        classified,
        depths,
        int(p["num_trees"]),
        seed=int(rng.integers(2**31 - 1)),
        n_jobs=n_jobs,
    )
    losses = 1.0 - curves["test_score"]  # (capacities, K)
    per_factor = np.array([explicitness_from_curve(depths, losses[:, j], baseline[j]) for j in range(len(baseline))])
    best = int(np.argmax(curves["test_score"].mean(axis=1)))  # the first of equals, as numpy's argmax
    r = curves["importance"][best]
    names = list(data.factor_names)
    result = {
        "metric": "dci_es",
        "explicitness": float(per_factor.mean()),
        "explicitness_per_factor": dict(zip(names, per_factor.tolist())),
        "size": size_score(y_train.shape[1], x_train.shape[1]),
        "disentanglement": disentanglement(r),
        "completeness": completeness(r),
        "informativeness_train": float(curves["train_score"][best].mean()),
        "informativeness_test": float(curves["test_score"][best].mean()),
        "best_max_depth": depths[best],
        "loss_capacity": {"max_depths": list(depths), "test_loss": dict(zip(names, losses.T.tolist()))},
        "baseline_loss": dict(zip(names, baseline.tolist())),
        "probe": {n: "classification (accuracy)" if c else "regression (R^2)" for n, c in zip(names, classified)},
        "importance_matrix": r.tolist(),
        "reference": REFERENCE,
        "protocol": p,
    }
    result["score"] = result["explicitness"]
    return check_score(result, "dci_es")
