"""IRS, the Interventional Robustness Score (Suter, Miladinović, Schölkopf & Bauer 2019, "Robustly disentangled
causal mechanisms: validating deep representations for interventional robustness", ICML 2019), as
disentanglement_lib's ``evaluation/metrics/irs.py`` computes it.

How much does latent j move when only the *other* factors change? For each
factor k and each of its values v, the points with v_k = v are an
intervention on v_k; within that group the latent's deviation from its group
mean is the nuisance the other factors cause. With

- ``max_dev_j`` = max over all points of |z_j - mean(z_j)| (the normaliser),
- ``dev_jk`` = the mean over the values v of v_k of the ``diff_quantile``
  quantile (numpy's linear interpolation) of |z_j - mean(z_j | v_k = v)|,

``IRS[j, k] = 1 - dev_jk / max_dev_j``; latent j's score is its best factor,
``max_k IRS[j, k]`` (that factor is its *parent*), and the IRS is the mean of
the latents' scores weighted by ``max_dev_j``. Constant latents are dropped
first; a code with none left scores 0.

Protocol (``default`` = disentanglement_lib's ``unsupervised_study_v1/metric_configs/irs.gin``): 10,000 points of
the mean code; the factors discretised by the study's ``histogram_discretizer`` with 20 bins (factors of up to 20
classes keep their classes; dSprites' orientation (40) and positions (32) are merged into 20 equal-width bins);
``diff_quantile`` = 0.99 (the default of ``compute_irs``). ``paper``: ``diff_quantile`` = 1.0, the maximum deviation,
which the reference's docstring names "the version in the paper". The gin file's ``batch_size`` = 16 is the encoding
batch and does not change the score, so it is not a protocol parameter.
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import (
    CodePool,
    MetricInputError,
    check_ground_truth,
    check_score,
    constant_dims,
    histogram_discretize,
    pool_or_sample,
)

REFERENCE = "Suter et al. 2019 (ICML); disentanglement_lib's irs.py and unsupervised_study_v1 irs.gin"


def active_dims(codes: np.ndarray) -> np.ndarray:
    """Mask of the latents that take more than one value over the rows.

    disentanglement_lib tests ``variance > 0``, which float rounding can make
    true for a constant column (the mean of equal values need not equal them);
    comparing the extremes is exact.
    """
    return ~constant_dims(np.asarray(codes, dtype=np.float64))


def irs_from_codes(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99) -> dict:
    """The IRS of ``codes`` (``(n, d)``, active latents only) against discrete ``factors`` (``(n, K)`` labels).

    Returns ``score`` (the weighted IRS), ``per_latent`` (``(d,)`` best-factor scores), ``parents`` (``(d,)``
    factor index of each latent's best score), ``irs_matrix`` (``(d, K)``) and ``max_deviations`` (``(d,)``).
    """
    z = np.asarray(codes, dtype=np.float64)
    f = np.asarray(factors)
    if z.ndim != 2 or f.ndim != 2 or len(z) != len(f):
        raise MetricInputError(f"irs needs codes (n, d) and factors (n, K) of the same n, got {z.shape} and {f.shape}")
    if not 0.0 <= diff_quantile <= 1.0:
        raise MetricInputError(f"irs: diff_quantile must lie in [0, 1], got {diff_quantile}")
    max_dev = np.abs(z - z.mean(axis=0)).max(axis=0)
    if (max_dev == 0).any():
        raise MetricInputError("irs_from_codes needs active latents only: drop constant columns first (active_dims)")
    deviation = np.zeros((z.shape[1], f.shape[1]))
    for k in range(f.shape[1]):
        values = np.unique(f[:, k])
        for v in values:
            group = z[f[:, k] == v]
            deviation[:, k] += np.quantile(np.abs(group - group.mean(axis=0)), diff_quantile, axis=0)
        deviation[:, k] /= len(values)
    irs_matrix = 1.0 - deviation / max_dev[:, None]
    per_latent = irs_matrix.max(axis=1)
    return {
        "score": float(np.average(per_latent, weights=max_dev)),
        "per_latent": per_latent,
        "parents": irs_matrix.argmax(axis=1),
        "irs_matrix": irs_matrix,
        "max_deviations": max_dev,
    }


def irs(data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides):
    """Interventional Robustness Score of the mean code (disentanglement_lib protocol).

    Returns ``score`` (the IRS), ``num_active_dims``, ``active_dims`` (indices), and for the active latents
    ``per_latent`` (best-factor score), ``parents`` (factor name), ``irs_matrix`` (active latents x factors),
    ``max_deviations``; and ``protocol``.
    """
    check_ground_truth(data, "irs")
    p = resolve("irs", protocol, overrides)
    factors, codes = pool_or_sample(data, represent, rng, pool, p["num_train"]).train(p["num_train"])
    active = active_dims(codes)
    result = {"metric": "irs", "score": 0.0, "num_active_dims": int(active.sum())}
    result["active_dims"] = np.flatnonzero(active).tolist()
    if active.any():
        labels = histogram_discretize(factors, p["num_bins"])
        core = irs_from_codes(labels, codes[:, active], p["diff_quantile"])
        names = list(data.factor_names)
        result.update(
            score=core["score"],
            per_latent=core["per_latent"].tolist(),
            parents=[names[i] for i in core["parents"]],
            irs_matrix=core["irs_matrix"].tolist(),
            max_deviations=core["max_deviations"].tolist(),
        )
    result.update(reference=REFERENCE, protocol=p)
    return check_score(result, "irs")
