"""Mutual Information Gap, discrete version (Chen et al. 2018 as implemented by disentanglement_lib).

MIG = mean over factors k of [I(z_a; v_k) - I(z_b; v_k)] / H(v_k), where a and
b are the latents with the largest and second largest MI with v_k. Here the
MI is the plug-in MI of the **mean** code binned into a 20-bin equal-width
histogram per latent, over 10,000 random points, and H(v_k) is the plug-in
entropy of the sampled factor (disentanglement_lib's ``mig.py``; all factors,
shape included on dSprites). Chen et al.'s own estimator (sampled codes,
continuous entropies, shape excluded) is :func:`nsvae.metrics.chen_mig`; the
two give very different numbers on the same model (docs/metrics.md).
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import (
    CodePool,
    MetricInputError,
    check_ground_truth,
    check_score,
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    pool_or_sample,
)

REFERENCE = (
    "Chen et al. 2018, Isolating Sources of Disentanglement in VAEs (NeurIPS); disentanglement_lib's discrete MIG"
)


def mig_from_mi(mi: np.ndarray, factor_entropy: np.ndarray) -> tuple[float, np.ndarray]:
    """``(MIG, per-factor normalised gaps)`` from an MI matrix ``(d, K)`` and factor entropies ``(K,)``.

    Factors with zero entropy (a single class) have no gap to normalise and
    are left out of the mean (their gap is reported as NaN-free 0 and flagged
    by the caller).
    """
    mi = np.asarray(mi, dtype=np.float64)
    if mi.ndim != 2 or mi.shape[0] < 2:
        raise MetricInputError(f"MIG needs an MI matrix (d >= 2 latents, K factors), got shape {mi.shape}")
    top = np.sort(mi, axis=0)[::-1]
    h = np.asarray(factor_entropy, dtype=np.float64)
    ok = h > 0
    if not ok.any():
        raise MetricInputError("MIG: every factor takes a single value in the sample; nothing to score")
    gaps = np.zeros(mi.shape[1])
    gaps[ok] = (top[0, ok] - top[1, ok]) / h[ok]
    return float(gaps[ok].mean()), gaps


def mig(data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides):
    """Discrete MIG of the mean code (disentanglement_lib protocol).

    Returns ``score`` (the MIG), ``per_factor`` (normalised gap per factor
    name), ``mutual_information`` (the ``(d, K)`` matrix in nats) and
    ``protocol``.
    """
    check_ground_truth(data, "mig")
    p = resolve("mig", protocol, overrides)
    factors, codes = pool_or_sample(data, represent, rng, pool, p["num_train"]).train(p["num_train"])
    if codes.shape[1] < 2:
        raise MetricInputError(f"mig needs at least 2 latent dimensions, the representation has {codes.shape[1]}")
    mi = discrete_mutual_info(histogram_discretize(codes, p["num_bins"]), factors)
    h = discrete_entropy(factors)
    score, gaps = mig_from_mi(mi, h)
    result = {
        "metric": "mig",
        "score": score,
        "per_factor": dict(zip(data.factor_names, gaps.tolist())),
        "mutual_information": mi.tolist(),
        "factor_entropy": h.tolist(),
        "units": "nats",
        "reference": REFERENCE,
        "protocol": p,
    }
    skipped = [n for n, hk in zip(data.factor_names, h) if hk <= 0]
    if skipped:
        result["skipped_factors"] = skipped
    return check_score(result, "mig")
