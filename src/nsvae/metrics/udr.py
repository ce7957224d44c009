"""UDR, Unsupervised Disentanglement Ranking (Duan et al., ICLR 2020): models of one setting scored against each other.

UDR needs no labels. Its premise: the runs of one setting that disentangle
find the same factors (up to permutation and sign), the entangled ones each
find their own mix. For every ordered pair of models (i, j) it measures how
one-to-one the latents of model i map onto those of model j, and scores each
model by the median over the other models.

The protocol (disentanglement_lib's ``udr_sklearn`` and its gin defaults,
which the paper used; docs/metrics.md, 'UDR'):

1. one fixed sample of ``num_data_points`` = 1,000 observations, the same for
   every model (its factors drawn uniformly with the protocol's seed);
2. each model's representation is its posterior mean; each latent's KL to the
   prior, averaged over the sample, says whether it is informative
   (``kl > kl_threshold`` = 0.01);
3. each representation is standardised (zero mean, unit variance per latent)
   and its uninformative latents are set to zero;
4. for each ordered pair (i, j), a similarity matrix R (latents of i × latents
   of j): the absolute coefficients of a Lasso regression (alpha 0.1) from
   model i's code to model j's ("lasso", the default), or the absolute
   Spearman correlations ("spearman");
5. R restricted to the informative latents of both models gives the pair's
   score, the relative strength (:func:`relative_strength`): for each column,
   max² / sum; for each row, the same; the mean of the two means;
6. model i's score is the median of the pair scores (j, i) over j ≠ i.

:func:`udr_scores` takes the sample's posterior means and log-variances of
the models; :func:`udr_sample` encodes the fixed sample for one model, which
is all a finished run needs to keep for UDR (a study commits it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .utils import MetricInputError, RepresentPosterior, check_ground_truth, represent_posterior_factors

#: The published protocol (disentanglement_lib's gin defaults for ``udr_sklearn``).
DEFAULT_PROTOCOL: dict[str, Any] = {
    "num_data_points": 1000,
    "correlation": "lasso",
    "lasso_alpha": 0.1,
    "filter_low_kl": True,
    "kl_threshold": 0.01,
    "seed": 0,
}
CORRELATIONS = ("lasso", "spearman")


def relative_strength(matrix: np.ndarray) -> float:
    """The relative-strength score of a non-negative similarity matrix: for each column max² / sum, for each row
    the same (a column or row of zeros counts 0), the mean over columns and over rows, then their average. 1 for a
    permutation matrix; lower the more a latent spreads over several. NaN for an empty matrix."""
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2:
        raise MetricInputError(f"relative_strength needs a 2-d matrix, got shape {r.shape}")
    if r.size == 0:
        return float("nan")

    def side(axis: int) -> float:
        total = r.sum(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total > 0, r.max(axis=axis) ** 2 / np.where(total > 0, total, 1.0), 0.0)
        return float(ratio.mean())

    return (side(0) + side(1)) / 2.0


def spearman_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Spearman correlation| of every latent of ``a`` (rows) with every latent of ``b`` (columns); a constant
    latent correlates 0 with everything."""
    from scipy.stats import rankdata

    def ranks(x: np.ndarray) -> np.ndarray:
        r = rankdata(x, axis=0)
        r = r - r.mean(axis=0)
        norm = np.sqrt((r * r).sum(axis=0))
        return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)

    return np.abs(ranks(np.asarray(a, np.float64)).T @ ranks(np.asarray(b, np.float64)))


def lasso_matrix(a: np.ndarray, b: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """|coefficients| of a Lasso regression (``alpha``) of every latent of ``b`` on all latents of ``a``:
    rows are the latents of ``a``, columns those of ``b``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    model = Lasso(alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.asarray(a, np.float64), np.asarray(b, np.float64))
    coef = np.atleast_2d(model.coef_)  # (latents of b, latents of a)
    return np.abs(coef).T


def gaussian_kl(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Each latent's KL divergence from N(mean, exp(logvar)) to N(0, 1), averaged over the rows."""
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    return np.mean(0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0), axis=0)


def _standardised(mean: np.ndarray, informative: np.ndarray) -> np.ndarray:
    centred = mean - mean.mean(axis=0)
    sd = mean.std(axis=0)
    scaled = centred / np.where(sd > 0, sd, 1.0)  # a constant latent stays 0, as scikit-learn's StandardScaler
    return scaled * informative


def udr_scores(
    means: Sequence[np.ndarray],
    logvars: Sequence[np.ndarray],
    correlation: str = "lasso",
    lasso_alpha: float = 0.1,
    filter_low_kl: bool = True,
    kl_threshold: float = 0.01,
) -> dict[str, Any]:
    """UDR of several models from their posterior on one shared sample (module docstring).

    ``means[i]``, ``logvars[i]``: model i's ``(n, d_i)`` posterior on the same n observations. Returns
    ``model_scores`` (one per model: the median of its pair scores), ``pairwise`` (``[i][j]``: the score of the
    pair (i, j), NaN on the diagonal) and ``informative`` (each model's count of latents with KL above the
    threshold)."""
    if correlation not in CORRELATIONS:
        raise MetricInputError(f"udr: correlation must be one of {CORRELATIONS}, got {correlation!r}")
    if len(means) != len(logvars) or len(means) < 2:
        raise MetricInputError("udr scores models against each other: it needs at least 2 models' posteriors")
    n = np.asarray(means[0]).shape[0]
    reps, masks = [], []
    for i, (mean, logvar) in enumerate(zip(means, logvars, strict=True)):
        mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
        if mean.ndim != 2 or mean.shape != logvar.shape or mean.shape[0] != n:
            raise MetricInputError(
                f"udr: model {i}'s mean and logvar must both be ({n}, d) (one row per shared observation), got "
                f"{mean.shape} and {logvar.shape}"
            )
        if not (np.isfinite(mean).all() and np.isfinite(logvar).all()):
            raise MetricInputError(f"udr: model {i}'s posterior holds NaN or infinite values")
        kl = gaussian_kl(mean, logvar)
        # disentanglement_lib zeroes latents with KL <= 0.01 whatever the threshold, and masks by the threshold
        reps.append(_standardised(mean, kl > 0.01))
        masks.append(kl > kl_threshold)
    k = len(reps)
    pairwise = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            if correlation == "lasso":
                matrix = lasso_matrix(reps[i], reps[j], lasso_alpha)
            else:
                matrix = spearman_matrix(reps[i], reps[j])
            if filter_low_kl:
                matrix = matrix[masks[i]][:, masks[j]]
            pairwise[i, j] = relative_strength(matrix)
    model_scores = [float(np.median(np.delete(pairwise[:, i], i))) for i in range(k)]
    return {
        "model_scores": model_scores,
        "pairwise": [[None if np.isnan(v) else float(v) for v in row] for row in pairwise],
        "informative": [int(m.sum()) for m in masks],
    }


def udr_sample(
    data: Any, represent_posterior: RepresentPosterior, num_data_points: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """One model's posterior on UDR's fixed sample: ``factors``, ``mean`` and ``logvar`` (float32) of
    ``num_data_points`` observations whose factors are drawn uniformly with ``seed``, the same for every model of
    the dataset. All that UDR needs of a model."""
    check_ground_truth(data, "udr")
    if num_data_points < 2:
        raise MetricInputError(f"udr: num_data_points must be at least 2, got {num_data_points}")
    rng = np.random.default_rng(seed)
    factors = data.sample_factors(num_data_points, rng)
    mean, logvar = represent_posterior_factors(data, represent_posterior, factors, rng)
    return {
        "factors": np.asarray(factors, dtype=np.int64),
        "mean": mean.astype(np.float32),
        "logvar": logvar.astype(np.float32),
    }


def udr_by_setting(samples: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """UDR under the published protocol (:data:`DEFAULT_PROTOCOL`) of every model, scored against the other models
    of its setting (the runs that differ only in their seed).

    ``samples``: ``{setting: [(model name, its udr_sample), ...]}``. Returns ``{model: {"setting", "udr",
    "informative"}}``; a setting with fewer than two models has none (UDR compares a model with its setting's other
    seeds). The samples of one setting must be of one fixed sample: their ``factors`` must agree."""
    out: dict[str, dict[str, Any]] = {}
    for setting, models in samples.items():
        if len(models) < 2:
            continue
        first = np.asarray(models[0][1]["factors"])
        for name, sample in models[1:]:
            if not np.array_equal(np.asarray(sample["factors"]), first):
                raise MetricInputError(
                    f"udr: {name} was encoded on another sample than {models[0][0]} (their factors differ); "
                    "export both with the same protocol"
                )
        found = udr_scores(
            [s["mean"] for _, s in models],
            [s["logvar"] for _, s in models],
            correlation=DEFAULT_PROTOCOL["correlation"],
            lasso_alpha=DEFAULT_PROTOCOL["lasso_alpha"],
            filter_low_kl=DEFAULT_PROTOCOL["filter_low_kl"],
            kl_threshold=DEFAULT_PROTOCOL["kl_threshold"],
        )
        for (name, _), score, informative in zip(models, found["model_scores"], found["informative"], strict=True):
            out[name] = {"setting": setting, "udr": score, "informative": informative}
    return out
