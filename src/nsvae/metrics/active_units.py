"""Active units (Burda, Grosse & Salakhutdinov 2016, "Importance weighted autoencoders", ICLR 2016).

A latent unit is active when A_j = Var_x E_q[z_j | x] exceeds 0.01: the
variance over random observations of the posterior mean. Pass the posterior
mean as ``represent``.
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import CodePool, MetricInputError, check_score, pool_or_sample

REFERENCE = "Burda et al. 2016, Importance Weighted Autoencoders (ICLR)"


def active_units(
    data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides
) -> dict:
    """``num_active``, ``active`` (indices), ``variances`` (ddof = 1) and ``fraction_active``."""
    p = resolve("active_units", protocol, overrides)
    if pool is None and not hasattr(data, "sample_factors"):
        raise MetricInputError("active_units draws observations through sample_factors; pass a pool of codes instead")
    _, codes = pool_or_sample(data, represent, rng, pool, p["num_train"]).train(p["num_train"])
    if len(codes) < 2:
        raise MetricInputError("active_units needs at least 2 points")
    var = codes.var(axis=0, ddof=1)
    active = var > p["threshold"]
    result = {
        "metric": "active_units",
        "num_active": int(active.sum()),
        "fraction_active": float(active.mean()),
        "active": np.flatnonzero(active).tolist(),
        "variances": var.tolist(),
        "reference": REFERENCE,
        "protocol": p,
    }
    result["score"] = float(result["num_active"])
    return check_score(result, "active_units")
