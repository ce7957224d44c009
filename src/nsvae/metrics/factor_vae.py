"""The FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", ICML 2018).

1. Global scale: the std of each code dimension over ``num_variance_estimate``
   random observations (the mean code); dimensions whose std is below
   ``prune_threshold`` have collapsed to the prior and are pruned.
2. One vote: pick a factor ``k`` uniformly, draw ``L`` observations that all
   share one random class of ``k`` (everything else random), encode, divide
   each active dimension's variance (ddof = 1) by its global variance and
   vote ``(argmin dimension, k)``.
3. The majority-vote classifier maps each dimension to the factor it got most
   training votes for (ties: the first factor); the score is its accuracy on
   separate evaluation votes.

Protocols: ``default`` = disentanglement_lib (L = 64, 10,000 / 5,000 votes,
10,000 points for the variances, prune std < 0.05); ``paper`` = L = 100 and 800
/ 800 votes (see docs/metrics.md for what is and is not checked).
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import CodePool, MetricInputError, check_ground_truth, check_score, pool_or_sample, represent_factors

REFERENCE = "Kim & Mnih 2018, Disentangling by Factorising (ICML); protocol of Locatello et al. 2019"


def majority_vote_accuracy(train_votes: np.ndarray, eval_votes: np.ndarray) -> tuple[float, float, np.ndarray]:
    """``(train accuracy, eval accuracy, classifier)`` of the majority-vote classifier.

    ``votes[k, j]`` counts votes ``(dimension j, factor k)``; the classifier
    maps dimension ``j`` to ``argmax_k train_votes[k, j]``.
    """
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(train_votes.shape[1])
    train = float(train_votes[classifier, cols].sum() / max(train_votes.sum(), 1))
    evals = float(eval_votes[classifier, cols].sum() / max(eval_votes.sum(), 1))
    return train, evals, classifier


def factor_vae_votes(
    data, represent, rng, num_votes: int, batch_size: int, global_var: np.ndarray, active: np.ndarray, chunk=256
) -> np.ndarray:
    """Vote matrix ``(num_factors, num_active_dims)``."""
    k = len(data.factor_sizes)
    votes = np.zeros((k, int(active.sum())), dtype=np.int64)
    scale = global_var[active]
    for start in range(0, num_votes, chunk):
        m = min(chunk, num_votes - start)
        y = rng.integers(0, k, size=m)
        f = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        rows = np.arange(m)
        f[rows, :, y] = f[rows, :1, y]
        z = represent_factors(data, represent, f.reshape(-1, k), rng, dim=len(global_var))
        z = z.reshape(m, batch_size, -1)[:, :, active]
        local = z.var(axis=1, ddof=1) / scale
        np.add.at(votes, (y, np.argmin(local, axis=1)), 1)
    return votes


def factor_vae_score(
    data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides
) -> dict:
    """FactorVAE score: accuracy of the majority-vote classifier on the argmin-normalised-variance votes.

    Returns ``score`` (= ``eval_accuracy``), ``train_accuracy``,
    ``num_active_dims``, ``active_dims``, ``chance`` and ``protocol``. With
    no active dimension the score is 0 (as disentanglement_lib), flagged by
    ``num_active_dims = 0``. ``pool`` supplies the codes for the global
    variances (its first ``num_variance_estimate`` training rows).
    """
    check_ground_truth(data, "factor_vae_score")
    p = resolve("factor_vae_score", protocol, overrides)
    if p["batch_size"] < 2:
        raise MetricInputError("factor_vae_score needs batch_size >= 2 to compute a variance")
    k = len(data.factor_sizes)
    source = pool_or_sample(data, represent, rng, pool, p["num_variance_estimate"])
    _, codes = source.train(p["num_variance_estimate"])
    global_var = codes.var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= p["prune_threshold"]
    result = {"metric": "factor_vae_score", "chance": 1.0 / k, "reference": REFERENCE}
    if not active.any():
        result.update(score=0.0, train_accuracy=0.0, eval_accuracy=0.0, num_active_dims=0, active_dims=[])
    else:
        train_votes = factor_vae_votes(data, represent, rng, p["num_train"], p["batch_size"], global_var, active)
        eval_votes = factor_vae_votes(data, represent, rng, p["num_eval"], p["batch_size"], global_var, active)
        train_acc, eval_acc, classifier = majority_vote_accuracy(train_votes, eval_votes)
        result.update(
            score=eval_acc,
            train_accuracy=train_acc,
            eval_accuracy=eval_acc,
            num_active_dims=int(active.sum()),
            active_dims=np.flatnonzero(active).tolist(),
            dimension_to_factor=[data.factor_names[c] for c in classifier],
        )
    result["protocol"] = p
    return check_score(result, "factor_vae_score")
