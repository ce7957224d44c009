"""Chen et al.'s Mutual Information Gap with their estimator (Chen, Li, Grosse & Duvenaud 2018, "Isolating
Sources of Disentanglement in Variational Autoencoders", NeurIPS 2018; reference code
``rtqichen/beta-tcvae``, ``metric_helpers/mi_metric.py``).

The representation is the encoder's diagonal Gaussian posterior q(z|x) =
N(mean, exp(logvar)), given as ``represent_posterior(obs) -> (mean, logvar)``
(the **log-variance**: sigma = exp(logvar / 2). The original Non-Syn VAE
repository passed logvar where log sigma was expected, i.e. used sigma^2 as
the standard deviation; ``docs/reference/original-implementation.md`` §5.3).

With N the images of the whole dataset (every factor combination once):

- one sample z_n ~ q(z|x_n) per image;
- H(z_j) = -mean over ``num_samples`` random samples of log q(z_j), where
  q(z_j) = 1/N sum_n q(z_j | x_n) is the mixture of **all** N posteriors;
- H(z_j | v_k) = sum_v p(v) H(z_j | v_k = v), each term the same estimate
  restricted to the images with v_k = v (min(num_samples, N_v) samples against
  that slice's N_v posteriors);
- I(z_j; v_k) = max(0, H(z_j) - H(z_j | v_k)), normalised by H(v_k) = log |V_k|;
- MIG = mean over factors of the gap between the two largest normalised MIs.

``exclude_factors="auto"`` leaves out the dataset's nominal factors
(``data.nominal_factors``: unordered categories, e.g. the shape of dSprites
and of every dSprites variant), as the reference code leaves out dSprites'
shape; a dataset without that attribute has none. All entropies are in nats.

Densities: ``density="exact"`` (protocol ``paper``) sums every Gaussian at
every sample, as the reference code does (about 3.7e11 Gaussian evaluations
on dSprites: GPU work). ``density="grid"`` (protocol ``default``) evaluates
each 1-D mixture on a uniform grid whose spacing is at most a fifth of the
smallest posterior sigma: components are spread onto the grid (linear in the
mean, variance-matched between log-spaced sigma levels), each level is
convolved with its Gaussian in Fourier space (the kernel variance reduced by
the Delta^2/3 that the two linear interpolations add), and log q is read at
the samples by linear interpolation. The tests bound its entropy error
against ``exact``; docs/metrics.md gives the figures. The grid lives in
:mod:`nsvae.metrics.mixture_grid`, shared with the synergy metric.
"""

from __future__ import annotations

import math

import numpy as np

from .mixture_grid import mixture_logpdf_grid
from .protocols import resolve
from .utils import (
    CodePool,
    CodeTable,
    MetricInputError,
    check_ground_truth,
    check_posterior,
    check_score,
    encode_table,
    make_pool,
)

REFERENCE = "Chen et al. 2018, Isolating Sources of Disentanglement in VAEs (NeurIPS), reference estimator"
_LOG_2PI = math.log(2.0 * math.pi)
#: Whose posteriors make the mixtures: every image of the dataset (the reference), or a random pool of them.
POPULATIONS = ("dataset", "pool")


def mixture_logpdf_exact(points: np.ndarray, mean: np.ndarray, logvar: np.ndarray, chunk_elems: int = 1 << 22):
    """log of (1/M) sum_m N(points; mean_m, exp(logvar_m)) for 1-D points, summed exactly."""
    x = np.asarray(points, dtype=np.float64)
    mu = np.asarray(mean, dtype=np.float64)
    inv_s = np.exp(-0.5 * np.asarray(logvar, dtype=np.float64))
    log_inv_s = np.log(inv_s)
    out = np.empty(len(x))
    step = max(1, chunk_elems // max(len(mu), 1))
    for start in range(0, len(x), step):
        t = (x[start : start + step, None] - mu[None, :]) * inv_s[None, :]
        ld = log_inv_s[None, :] - 0.5 * t * t
        m = ld.max(axis=1, keepdims=True)
        out[start : start + step] = m[:, 0] + np.log(np.exp(ld - m).sum(axis=1))
    return out - math.log(len(mu)) - 0.5 * _LOG_2PI


def _entropy(samples, mean, logvar, density: str) -> tuple[float, bool]:
    if density == "exact":
        return float(-mixture_logpdf_exact(samples, mean, logvar).mean()), False
    if density == "grid":
        lp, limited = mixture_logpdf_grid(samples, mean, logvar)
        return float(-lp.mean()), limited
    raise MetricInputError(f"unknown density {density!r}; choose grid or exact")


def resolve_excluded(data, exclude) -> tuple[str, ...]:
    """The factor names to leave out: the dataset's nominal factors for ``"auto"``, else ``exclude`` checked."""
    names = tuple(data.factor_names)
    if exclude == "auto":
        nominal = set(getattr(data, "nominal_factors", ()))
        return tuple(name for name in names if name in nominal)
    exclude = tuple(exclude or ())
    unknown = [e for e in exclude if e not in names]
    if unknown:
        raise MetricInputError(f"chen_mig: unknown factor(s) to exclude {unknown}; factors are {list(names)}")
    return exclude


def chen_mig_from_posteriors(
    mean: np.ndarray,
    logvar: np.ndarray,
    factors: np.ndarray,
    factor_sizes,
    rng: np.random.Generator,
    num_samples: int = 10000,
    density: str = "grid",
) -> dict:
    """Chen's MIG core on explicit posteriors of every image (``(N, d)``) and their factors (``(N, K)``)."""
    mu, lv = check_posterior(mean, logvar, None)
    n, d = mu.shape
    factors = np.asarray(factors)
    if factors.shape != (n, len(factor_sizes)):
        raise MetricInputError(f"factors must be ({n}, {len(factor_sizes)}), got {factors.shape}")
    if d < 2:
        raise MetricInputError("chen_mig needs at least 2 latent dimensions")
    z = mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape)
    limited = False

    def entropies(rows: np.ndarray) -> np.ndarray:
        nonlocal limited
        pick = rows if len(rows) <= num_samples else rng.choice(rows, size=num_samples, replace=False)
        out = np.empty(d)
        for j in range(d):
            out[j], lim = _entropy(z[pick, j], mu[rows, j], lv[rows, j], density)
            limited |= lim
        return out

    h_marg = entropies(np.arange(n))
    k = len(factor_sizes)
    h_cond = np.zeros((d, k))
    for i in range(k):
        values = np.unique(factors[:, i])
        for v in values:
            rows = np.flatnonzero(factors[:, i] == v)
            h_cond[:, i] += len(rows) / n * entropies(rows)
    mi = np.maximum(h_marg[:, None] - h_cond, 0.0)
    h_v = np.log(np.asarray(factor_sizes, dtype=np.float64))
    normed = np.divide(mi, h_v[None, :], out=np.zeros_like(mi), where=h_v[None, :] > 0)
    top = np.sort(normed, axis=0)[::-1]
    gaps = top[0] - top[1]
    return {
        "gaps": gaps,
        "mutual_information": mi,
        "marginal_entropy": h_marg,
        "conditional_entropy": h_cond,
        "grid_limited": limited,
    }


def chen_mig(
    data,
    represent_posterior,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    **overrides,
) -> dict:
    """Chen et al.'s MIG on sampled codes of the whole dataset (or of a random sample of it).

    ``represent_posterior(obs) -> (mean, logvar)``, or a :class:`CodeTable`
    encoded with a posterior (what :func:`nsvae.metrics.evaluate` passes).
    With the protocol parameter ``population = "pool"`` the mixture runs
    over the first ``num_samples`` points of a random pool (``pool``, with
    its posterior, or one drawn here) instead of every image: the cheap
    estimate of the learning curves, which the final evaluation replaces by
    the whole dataset. Returns ``score``, ``per_factor`` gaps,
    ``mutual_information`` (d x K' nats, K' the used factors),
    ``factors_used`` and ``protocol``.
    """
    check_ground_truth(data, "chen_mig")
    p = resolve("chen_mig", protocol, overrides)
    if p["population"] not in POPULATIONS:
        raise MetricInputError(f"chen_mig: population must be one of {', '.join(POPULATIONS)}, got {p['population']!r}")
    excluded = resolve_excluded(data, p["exclude_factors"])
    used = [i for i, name in enumerate(data.factor_names) if name not in excluded]
    if not used:
        raise MetricInputError("chen_mig: every factor is excluded")
    sizes = [data.factor_sizes[i] for i in used]
    if p["population"] == "pool":
        n = int(p["num_samples"])
        if pool is None:
            pool = make_pool(data, None, rng, n, represent_posterior=represent_posterior)
        elif pool.logvar is None:
            raise MetricInputError("chen_mig needs posteriors: the shared pool holds no logvar")
        factors, mean = pool.train(n)
        logvar = pool.logvar[:n]
        core = chen_mig_from_posteriors(mean, logvar, factors[:, used], sizes, rng, n, p["density"])
    else:
        if not hasattr(data, "factors_of") or not hasattr(data, "observations_at"):
            raise MetricInputError(
                "chen_mig needs a finite dataset that lists every image (factors_of, observations_at), "
                'or the protocol parameter population = "pool"'
            )
        table = represent_posterior
        if not isinstance(table, CodeTable):
            table = encode_table(data, represent_posterior=represent_posterior)
        if table.logvar is None:
            raise MetricInputError("chen_mig needs posteriors: pass represent_posterior(obs) -> (mean, logvar)")
        factors = data.factors_of(np.arange(len(data)))[:, used]
        core = chen_mig_from_posteriors(table.codes, table.logvar, factors, sizes, rng, p["num_samples"], p["density"])
    names = [data.factor_names[i] for i in used]
    result = {
        "metric": "chen_mig",
        "score": float(core["gaps"].mean()),
        "per_factor": dict(zip(names, core["gaps"].tolist())),
        "factors_used": names,
        "mutual_information": core["mutual_information"].tolist(),
        "marginal_entropy": core["marginal_entropy"].tolist(),
        "grid_limited": bool(core["grid_limited"]),
        "units": "nats",
        "reference": REFERENCE,
        "protocol": dict(p, exclude_factors=list(excluded)),
    }
    return check_score(result, "chen_mig")
