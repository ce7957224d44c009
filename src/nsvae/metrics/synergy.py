"""Synergy of a representation about each ground-truth factor (the project's own metric).

For a factor v and the latents z = (z_1..z_d) of the encoder's posterior:

- S_max(z; v) = I(z; v) - I_max, with I_max = sum_y p(y) max_j I(z_j; v = y)
  (Williams & Beer 2010; the synergy measure of the Non-Syn VAE);
- WMS(z; v) = I(z; v) - sum_j I(z_j; v) (negative under redundancy);

both divided by H(v), so 1 means "everything the code knows about v is only
in combinations of latents" and 0 "no synergy". S_max counts a factor split
into a coarse and a fine part (posX = 8 * coarse + fine, each in its own
latent) as synergy: log 4 / log 32 = 0.4 of H there, where WMS gives 0.

**One estimator for every term.** Every information term is computed on one
random variable, z ~ q(z|x) with x uniform over a population, through the
posterior of v given the latents S in question (one latent, or all of them):
q(v | z_S) = sum_{m: v_m = v} q(z_S | x_m) / sum_m q(z_S | x_m), and
I(z_S; v) = H(v) - E[-log q(v | z_S)]. Two populations:

- ``reference="table"`` (the default whenever the posteriors of **every**
  image are known: a :class:`CodeTable` with logvar, as
  :func:`nsvae.metrics.evaluate` builds for finite noise-free datasets): the
  population is the whole dataset and q(v | z_S) is the model's exact class
  posterior. Single-latent terms and specific informations are integrals
  over a fine grid (:mod:`nsvae.metrics.mixture_grid`, error < 1e-3 nats, no
  sampling noise); the joint term averages -log q(v | z) over
  ``num_samples`` sampled points (Monte Carlo noise only), with
  q~ = (1 - 1e-3) q + 1e-3 p(v) against log 0 (costs at most 0.001 nats).
- ``reference="pool"`` (datasets that draw noise, or a plain
  ``represent_posterior`` function): the population is ``num_samples``
  random points, and each point is scored leave-one-out against the other
  points' posteriors: a cross-validated classifier, whose cross-entropy
  bounds I from below. A finite pool is sparse where a factor is
  carried by one latent among several others (no other point shares every
  class), and a kernel classifier on it overfits; so the pool estimate of
  I(z_S; v) is the best, by leave-one-out cross-entropy, of a small family of
  classifiers built from the same posteriors: the mixture with the prior,
  (1 - lam) q(v | z_S) + lam p(v) for lam in :data:`~nsvae.metrics.synergy_pool.PRIOR_WEIGHTS` (lam = 1
  is the constant classifier, I = 0), and, for the joint term, the latent
  subsets S along a backward elimination from all latents (every single
  latent included). Since every member uses only z, each is a lower bound of
  I(z; v); the joint is never below a single-latent term by construction.

The result records the reference actually used (``protocol["reference"]``)
and, per factor, every single-latent term and the latents of the joint term.
Estimates are not clipped: S_max a little below 0 is sampling noise, and
averages over runs stay unbiased.

The properties the tests prove, on both references (tests/metrics/
test_synergy_truth.py): a perfect code (one factor per latent) gives
|S_max|, |WMS| <= 0.01 and I(z; v) >= 0.98 H(v) for factors of 3 to 40
classes; an outlier point moves nothing by more than 0.01; a one-time pad
(v = z1 xor z2, z1 a fair coin) gives S_max, WMS >= 0.9; a factor copied into
two latents gives S_max ~ 0 and WMS ~ -1; a factor split into coarse and fine
latents gives S_max = log 4 / log 32 and WMS ~ 0.

**Training-time proxy**: the Non-Syn VAE's penalty on held-out points: the
mean KL(q(z_j|x) || N(0, 1)) per latent over the pool, the exact greedy scan
of ``nsvae.objectives.selection.greedy_select`` with ``omega``, and the KL of
the worst set (nats).
"""

from __future__ import annotations

import numpy as np

from ..objectives.selection import greedy_select  # numpy only: keeps the metrics torch-free
from .protocols import resolve
from .synergy_pool import pool_information
from .synergy_table import joint_information_full_table, table_grid, table_single_latent_information
from .utils import (
    CodePool,
    CodeTable,
    MetricInputError,
    check_ground_truth,
    check_posterior,
    check_score,
    make_pool,
)

REFERENCE = (
    "S_max: Williams & Beer 2010 (arXiv:1004.2515); WMS: Griffith & Koch 2014; "
    "Non-Syn VAE: Barrientos & Sootla 2018; estimator: docs/metrics.md"
)
#: The population whose posteriors define q(v | z): the whole dataset when tabulated ("auto"), always, or a pool.
REFERENCES = ("auto", "table", "pool")


def synergy_proxy(mean: np.ndarray, logvar: np.ndarray, omega: float) -> dict:
    """The Non-Syn VAE penalty on given posteriors: KL of the greedy worst set (nats, mean over points)."""
    kl = 0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0).mean(axis=0)
    best, worst = greedy_select(kl.tolist(), omega)
    return {
        "kl_per_dim": kl.tolist(),
        "best": best,
        "worst": worst,
        "kl_worst": float(kl[worst].sum()) if worst else 0.0,
        "kl_total": float(kl.sum()),
        "omega": omega,
    }


def synergy_from_posteriors(
    factors: np.ndarray,
    mean: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    num_samples: int | None = 2000,
    names=None,
    reference: dict | None = None,
) -> dict:
    """The synergy core on explicit posteriors of random points and their factor classes.

    ``factors`` (n, K), ``mean``/``logvar`` (n, d): the posteriors of n random
    points; the first ``num_samples`` of them are scored (one sample
    z ~ q(z|x) each). ``reference``: the whole dataset's posteriors
    (``mean``, ``logvar``, ``factors`` (N, K), optionally ``grid``) make the
    population the dataset (the table estimator); without it the population
    is the scored points themselves, each scored leave-one-out (the pool
    estimator). See the module docstring.
    """
    mu, lv = check_posterior(mean, logvar, len(factors))
    factors = np.asarray(factors)
    if mu.shape[1] < 2:
        raise MetricInputError("synergy among latents needs at least 2 latent dimensions")
    names = list(names) if names is not None else [f"factor_{i}" for i in range(factors.shape[1])]
    m = len(mu) if num_samples is None else min(int(num_samples), len(mu))
    if m < 2:
        raise MetricInputError(f"synergy needs at least 2 scored points, got {m}")
    z = mu[:m] + np.exp(0.5 * lv[:m]) * rng.standard_normal(mu[:m].shape)
    k = factors.shape[1]
    grid_limited = False
    if reference is None:
        joint, h_v, specs, p_vs, details = pool_information(z, mu[:m], lv[:m], factors[:m])
        estimator = "pool"
    else:
        ref_mean, ref_logvar = check_posterior(reference["mean"], reference["logvar"], None, "the reference table")
        ref_factors = np.asarray(reference["factors"])
        if ref_factors.shape != (len(ref_mean), k):
            raise MetricInputError(
                f"synergy: the reference factors must be ({len(ref_mean)}, {k}), got {ref_factors.shape}"
            )
        sizes = [int(max(ref_factors[:, i].max(), factors[:m, i].max())) + 1 for i in range(k)]
        joint, h_v = joint_information_full_table(
            z, factors[:m], ref_mean, ref_logvar, ref_factors, reference.get("grid")
        )
        specs, p_vs, grid_limited = table_single_latent_information(
            ref_mean, ref_logvar, [ref_factors[:, i] for i in range(k)], sizes
        )
        details = [{"joint_latents": list(range(mu.shape[1]))} for _ in range(k)]
        estimator = "table"
    per_factor, s_vals, w_vals = {}, [], []
    for i, name in enumerate(names):
        h = float(h_v[i])
        if h <= 1e-12:
            per_factor[name] = {"skipped": "the factor takes one value in the population"}
            continue
        spec, p_v = specs[i], p_vs[i]
        singles = spec @ p_v  # I(z_j; v) = sum_y p(y) I(z_j; v = y)
        i_max = float(p_v @ spec.max(axis=0))
        i_joint = float(joint[i])
        s = (i_joint - i_max) / h
        w = (i_joint - float(singles.sum())) / h
        per_factor[name] = {
            "s_max": s,
            "wms": w,
            "i_joint": i_joint,
            "i_max": i_max,
            "sum_single": float(singles.sum()),
            "max_single": float(singles.max()),
            "single": singles.tolist(),
            "entropy": h,
            "joint_latents": details[i]["joint_latents"],
            "estimator": estimator,
        }
        s_vals.append(s)
        w_vals.append(w)
    if not s_vals:
        raise MetricInputError("synergy: every factor takes a single value in the sample")
    return {
        "s_max": float(np.mean(s_vals)),
        "wms": float(np.mean(w_vals)),
        "per_factor": per_factor,
        "estimator": estimator,
        "grid_limited": bool(grid_limited),
    }


def posterior_population(
    metric: str, data, represent_posterior, rng, p: dict, pool: CodePool | None, need_table: int, need_pool: int
) -> tuple[CodePool, dict | None]:
    """``(pool of posteriors, whole-table reference or None)`` for a metric built on this module's estimator.

    Checks the protocol's ``reference``, ``num_train`` and ``num_samples``;
    the reference is the whole table when ``reference`` allows it and
    ``represent_posterior`` is a :class:`CodeTable` with logvar. The pool
    (given, or drawn with ``rng``) must hold ``need_table`` points with a
    table reference and ``need_pool`` without.
    """
    if p["reference"] not in REFERENCES:
        raise MetricInputError(f"{metric}: reference must be one of {REFERENCES}, got {p['reference']!r}")
    for key in ("num_train", "num_samples"):
        if not isinstance(p[key], (int, np.integer)) or isinstance(p[key], bool) or p[key] < 2:
            raise MetricInputError(f"{metric}: {key} must be an integer >= 2, got {p[key]!r}")
    table = represent_posterior if isinstance(represent_posterior, CodeTable) else None
    has_table = table is not None and table.logvar is not None
    if p["reference"] == "table" and not has_table:
        raise MetricInputError(
            f"{metric}: reference='table' needs the posteriors of every image (a CodeTable with logvar); "
            "use evaluate(), which encodes finite noise-free datasets once, or reference='pool'"
        )
    use_table = p["reference"] != "pool" and has_table
    need = need_table if use_table else need_pool
    if pool is None or pool.logvar is None:
        if table is not None:
            pool = make_pool(data, represent_posterior, rng, need)
        else:
            pool = make_pool(data, None, rng, need, represent_posterior=represent_posterior)
    if pool.logvar is None:
        raise MetricInputError(f"{metric} needs posteriors: pass represent_posterior(obs) -> (mean, logvar)")
    if pool.num_train < need:
        raise MetricInputError(f"{metric} needs {need} pool points, the pool has {pool.num_train}")
    if not use_table:
        return pool, None
    reference = {
        "mean": table.codes,
        "logvar": table.logvar,
        "factors": data.factors_of(np.arange(len(table.codes))),
        "grid": table_grid(data, len(table.codes)),
    }
    return pool, reference


def synergy(
    data,
    represent_posterior,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    **overrides,
) -> dict:
    """Normalised S_max and WMS of the latents about each factor, and the greedy-worst-set KL proxy.

    ``represent_posterior(obs) -> (mean, logvar)`` or a posterior
    :class:`CodeTable`; ``pool`` (with ``logvar``) supplies the points.
    Returns ``score`` (mean normalised S_max), ``s_max``, ``wms``,
    ``per_factor`` and ``proxy``.
    """
    check_ground_truth(data, "synergy")
    p = resolve("synergy", protocol, overrides)
    need = max(p["num_train"], p["num_samples"])
    pool, reference = posterior_population("synergy", data, represent_posterior, rng, p, pool, need, need)
    n = p["num_samples"]
    core = synergy_from_posteriors(
        pool.factors[:n], pool.codes[:n], pool.logvar[:n], rng, n, data.factor_names, reference=reference
    )
    mean, logvar = pool.codes[: p["num_train"]], pool.logvar[: p["num_train"]]
    result = {
        "metric": "synergy",
        "score": core["s_max"],
        "s_max": core["s_max"],
        "wms": core["wms"],
        "per_factor": core["per_factor"],
        "proxy": synergy_proxy(mean, logvar, p["omega"]),
        "grid_limited": core["grid_limited"],
        "units": "fractions of H(v_k); raw terms in nats",
        "reference": REFERENCE,
        "protocol": dict(p, reference=core["estimator"]),
    }
    return check_score(result, "synergy")
