"""UniBound and the PID bounds of Tokui & Sato (ICLR 2022, arXiv:2108.13753).

For a factor y_k and a latent z_l, the partial information decomposition
(Williams & Beer 2010) of what the pair (z_l, z_\\l) -- one latent and all
the others -- knows about y_k has four non-negative atoms,

    I(y_k; z)     = U_l + U_\\l + R + S,
    I(y_k; z_l)   = U_l + R,
    I(y_k; z_\\l) = U_\\l + R,

with U_l = U(y_k; z_l \\ z_\\l) the information only z_l has, R the
redundancy, S the synergy. Three mutual informations fix the atoms up to one
free parameter (R, say), and non-negativity bounds each atom to an interval
of the same width, min(I_l, I_\\l) - max(0, I_l + I_\\l - I):

    max(0, I_l - I_\\l)        <= U_l <= min(I_l, I - I_\\l)
    max(0, I_l + I_\\l - I)    <= R   <= min(I_l, I_\\l)
    max(0, I - I_l - I_\\l)    <= S   <= min(I - I_l, I - I_\\l)

(I = I(y_k; z), I_l = I(y_k; z_l), I_\\l = I(y_k; z_\\l)). Tokui & Sato
call a representation disentangled when each factor is unique information
of one latent, and score it with the lower bound of that unique information:

    UniBound(z) = 1/K sum_k max_l max(0, I(y_k; z_l) - I(y_k; z_\\l)) / H(y_k).

These are the bounds and the metric as the authors' code computes them
(``beam2d/disen``, ``disen/evaluation/mi.py``: ``ulbo`` and ``uubo``; the
paper's text could not be read here, so no equation numbers are quoted; see
docs/metrics.md). ``unibound_upper`` is the same average of the upper bound
of U_l (the authors' "UniBound-U").

**Estimator**: the synergy metric's (:mod:`nsvae.metrics.synergy`): every
term I(y_k; z_S) = H(y_k) - E[-log q(y_k | z_S)] with q the class posterior
of the model's joint, over

- ``reference="table"`` (the posteriors of every image known): single-latent
  terms integrated on the grid of :mod:`nsvae.metrics.mixture_grid`; the
  joint and every all-but-one term by Monte Carlo over ``num_samples`` scored
  samples against every image (:func:`table_subset_information`: one pass,
  the per-latent log-kernels shared between the subsets);
- ``reference="pool"``: ``num_train`` random points scored leave-one-out,
  each term the best by cross-entropy of the prior-mixed kernel classifiers.
  The joint term is the synergy metric's (single latents, all latents, a
  backward elimination); I(y_k; z_\\l) is the best of the classifiers of that
  same family whose latents exclude l: z_\\l itself, the single latents
  other than l, every set the elimination scores that lacks l (no extra
  kernel evaluations). Each is a lower bound of its information; the bound
  on U_l subtracts one, so where the rest knows y_k only through many
  latents together a loose I(y_k; z_\\l) raises UniBound. The table is the
  reference to trust.

Estimates are differences of estimates: a bound can cross its partner by
the Monte Carlo noise (lower above upper by a few 0.001 nats); every
interval is clipped at 0 only.
"""

from __future__ import annotations

import math

import numpy as np

from .protocols import resolve
from .synergy import posterior_population
from .synergy_pool import BestSubset, PoolSetup
from .synergy_table import PRIOR_MIX, class_onehots, table_single_latent_information
from .utils import CodePool, MetricInputError, check_ground_truth, check_posterior, check_score

REFERENCE = (
    "Tokui & Sato 2022, Disentanglement Analysis with Partial Information Decomposition (ICLR; arXiv:2108.13753); "
    "PID: Williams & Beer 2010; estimator: the synergy metric's (docs/metrics.md)"
)


# -- the bounds: a pure function of three mutual informations ---------------------------------------------


def pid_bounds(i_single, i_rest, i_joint) -> dict[str, np.ndarray]:
    """Bounds of the PID atoms of (y; z_l, z_\\l) from I(y; z_l), I(y; z_\\l) and I(y; z).

    ``i_single`` and ``i_rest`` broadcast against ``i_joint`` (e.g. ``(K, d)``
    against ``(K, 1)``). Returns ``unique``, ``redundancy``, ``synergy``, each
    a pair of arrays ``(lower, upper)``, clipped at 0; any unit.
    """
    i1 = np.asarray(i_single, dtype=np.float64)
    i2 = np.asarray(i_rest, dtype=np.float64)
    i = np.asarray(i_joint, dtype=np.float64)

    def pair(lo, hi):
        return np.maximum(lo, 0.0), np.maximum(hi, 0.0)

    return {
        "unique": pair(i1 - i2, np.minimum(i1, i - i2)),
        "redundancy": pair(i1 + i2 - i, np.minimum(i1, i2)),
        "synergy": pair(i - i1 - i2, np.minimum(i - i1, i - i2)),
    }


def unibound_from_information(i_single, i_rest, i_joint, entropy) -> dict:
    """UniBound and the per-factor bounds from the information terms (nats): the core of the metric.

    ``i_single``, ``i_rest``: ``(K, d)``, I(y_k; z_l) and I(y_k; z_\\l);
    ``i_joint``, ``entropy``: ``(K,)``. Everything returned is normalised by
    H(y_k). Per factor: UniBound's latent l* (the largest lower bound of
    unique information; ties, as when it is 0 everywhere, to the larger
    I(y_k; z_l)) and the three intervals there; the largest lower bounds of
    redundancy and synergy over all splits l (``max_redundancy_lower``,
    ``max_synergy_lower``: how much of y_k some latent shares with, or needs
    from, the rest); per latent, every bound. Aggregates: means over factors
    (``redundancy_lower`` and ``synergy_lower`` of the per-factor maxima).
    Factors with H = 0 are skipped (``None``).
    """
    i1 = np.asarray(i_single, dtype=np.float64)
    i2 = np.asarray(i_rest, dtype=np.float64)
    ij = np.asarray(i_joint, dtype=np.float64)
    h = np.asarray(entropy, dtype=np.float64)
    if i1.ndim != 2 or i1.shape[1] < 1 or i2.shape != i1.shape or ij.shape != (i1.shape[0],) or h.shape != ij.shape:
        raise MetricInputError(
            f"unibound: information terms of shapes (K, d), (K, d), (K,), (K,) expected; got "
            f"{i1.shape}, {i2.shape}, {ij.shape}, {h.shape}"
        )
    used = h > 1e-12
    if not used.any():
        raise MetricInputError("unibound: every factor takes a single value in the sample")
    safe_h = np.where(used, h, 1.0)[:, None]
    b = {atom: (lo / safe_h, hi / safe_h) for atom, (lo, hi) in pid_bounds(i1, i2, ij[:, None]).items()}
    u_lo = b["unique"][0]
    best = np.array([np.lexsort((-i1[k], -u_lo[k]))[0] for k in range(len(h))])
    per = []
    for k in range(len(h)):
        if not used[k]:
            per.append(None)
            continue
        at = int(best[k])
        entry = {"unibound": float(u_lo[k, at]), "latent": at}
        entry.update({atom: [float(b[atom][0][k, at]), float(b[atom][1][k, at])] for atom in b})
        entry["max_redundancy_lower"] = float(b["redundancy"][0][k].max())
        entry["max_synergy_lower"] = float(b["synergy"][0][k].max())
        entry["per_latent"] = {
            f"{atom}_{side}": b[atom][j][k].tolist() for atom in b for j, side in enumerate(("lower", "upper"))
        }
        per.append(entry)
    return {
        "unibound": float(u_lo[used, best[used]].mean()),
        "unibound_upper": float(b["unique"][1][used].max(axis=1).mean()),
        "redundancy_lower": float(b["redundancy"][0][used].max(axis=1).mean()),
        "synergy_lower": float(b["synergy"][0][used].max(axis=1).mean()),
        "per_factor": per,
    }


# -- the table: several latent subsets in one pass over every image ---------------------------------------


#: Per-latent log-kernel pieces of one chunk held at once (float32 elements, 256 MB); the chunk shrinks to fit.
_PIECES_BUDGET = 1 << 26


def table_subset_information(
    z: np.ndarray,
    factors: np.ndarray,
    table_mean: np.ndarray,
    table_logvar: np.ndarray,
    drop: list[list[int]],
    table_factors: np.ndarray | None = None,
    grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    chunk: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """``(I(z_S; v_k) (len(drop), K), H(v_k))`` in nats, S = all latents but ``drop[s]``, over the whole table.

    The estimator of :func:`nsvae.metrics.synergy_table.joint_information_full_table`
    (the model's class posterior over every image, the scored samples ``z``
    drawn from the posteriors of images with classes ``factors``, q~ = (1 -
    1e-3) q + 1e-3 p(v)) for several subsets at once: per chunk of samples
    the per-latent log-kernels log N(z_j; mu_mj, sigma_mj^2) are computed
    once (float32: they are summed and differenced only), and each subset's
    log-kernel is their sum less the pieces of its dropped latents; the
    subsets share the samples. ``drop=[[]]`` is the joint term; ``[[], [0],
    [1], ...]`` the joint and every all-but-one term. Per subset and sample:
    one exp over the N rows and the class sums (two passes on a factor grid,
    ``grid = (all factor sizes, exposed axes)``; else a product with one-hot
    ``table_factors``). Memory: d x chunk x N float32 pieces (the chunk shrinks
    to keep them under 256 MB) and a few (chunk, N) arrays.
    """
    mean = np.asarray(table_mean, dtype=np.float64)
    logvar = np.asarray(table_logvar, dtype=np.float64)
    n_table, d = mean.shape
    a = np.exp(-logvar)
    k = factors.shape[1]
    drop = [sorted({int(j) for j in s}) for s in drop]
    if any(j < 0 or j >= d for s in drop for j in s):
        raise MetricInputError(f"unibound: latent indices to drop must be in 0..{d - 1}, got {drop}")
    if grid is not None:
        sizes, exposed = tuple(int(x) for x in grid[0]), tuple(int(x) for x in grid[1])
        if int(np.prod(sizes)) != n_table:
            raise MetricInputError(f"unibound: the factor grid {sizes} does not match the table's {n_table} rows")
        priors = [np.full(sizes[axis], 1.0 / sizes[axis]) for axis in exposed]
        # the class sums in two passes: the grid's axes split into a leading and a trailing block
        cut = min(range(1, len(sizes) + 1), key=lambda m: max(math.prod(sizes[:m]), math.prod(sizes[m:])))
    else:
        if table_factors is None or len(table_factors) != n_table:
            raise MetricInputError("unibound: the table terms need the factors of every table row")
        onehots, priors = class_onehots(table_factors, factors)
    h_v = np.array([float(-(pv[pv > 0] * np.log(pv[pv > 0])).sum()) for pv in priors])
    ce = np.zeros((len(drop), k))
    chunk = max(1, min(int(chunk), _PIECES_BUDGET // max(1, d * n_table)))
    mu32, a32, half_lv = mean.astype(np.float32), a.astype(np.float32), (0.5 * logvar).astype(np.float32)
    for start in range(0, len(z), chunk):
        zc = np.asarray(z[start : start + chunk], dtype=np.float32)
        fc = factors[start : start + chunk]
        c = len(zc)
        rows = np.arange(c)
        # log N up to -0.5 log 2 pi, which cancels in every ratio
        pieces = zc.T[:, :, None] - mu32.T[:, None, :]
        pieces *= pieces
        pieces *= -0.5 * a32.T[:, None, :]
        pieces -= half_lv.T[:, None, :]
        total = pieces.sum(axis=0)
        for s, dropped in enumerate(drop):
            logk = total - pieces[dropped].sum(axis=0) if dropped else total.copy()
            logk -= logk.max(axis=1, keepdims=True)
            w = np.exp(logk, out=logk)
            if grid is not None:
                w3 = w.reshape(c, math.prod(sizes[:cut]), -1)
                lead = w3.sum(axis=2, dtype=np.float64).reshape(c, *sizes[:cut])
                trail = w3.sum(axis=1, dtype=np.float64).reshape(c, *sizes[cut:])
                norm = lead.reshape(c, -1).sum(axis=1)
            else:
                norm = w.sum(axis=1, dtype=np.float64)
            for i in range(k):
                if grid is None:
                    sums = (w @ onehots[i]).astype(np.float64)
                elif exposed[i] < cut:
                    sums = lead.sum(axis=tuple(ax + 1 for ax in range(cut) if ax != exposed[i]))
                else:
                    block = len(sizes) - cut
                    sums = trail.sum(axis=tuple(ax + 1 for ax in range(block) if ax != exposed[i] - cut))
                own = sums[rows, fc[:, i]] / norm
                ce[s, i] -= np.log((1.0 - PRIOR_MIX) * own + PRIOR_MIX * priors[i][fc[:, i]]).sum()
            del logk, w
        del pieces, total
    ce /= len(z)
    return h_v[None, :] - ce, h_v


# -- the pool: the synergy metric's family of leave-one-out classifiers, with l taken out -----------------


def pool_pid_information(
    z: np.ndarray, mean: np.ndarray, logvar: np.ndarray, factors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """The pool estimator: ``(I(y_k; z_l) (K, d), I(y_k; z_\\l) (K, d), I(y_k; z) (K,), H(y_k), details)``.

    Singles: the best prior weight per latent and factor. Joint: as
    :func:`nsvae.metrics.synergy_pool.pool_information` (the best over the single
    latents, the latents that vary and a backward elimination from them down
    to two latents). I(y_k; z_\\l): the best of the same classifiers whose
    latents exclude l: z_\\l itself (the elimination's first step scores every
    all-but-one set), the single latents other than l, and every set the
    elimination scores that lacks l. Every cross-entropy is leave-one-out over
    the n points; the joint is exactly the synergy metric's.
    """
    d = mean.shape[1]
    pool = PoolSetup.of(z, mean, logvar, factors)
    k, h_v = len(pool.classes), pool.h_v
    i_single = np.empty((k, d))
    bests = [BestSubset(pool.p_own[i]) for i in range(k)]
    rest_ce = np.full((k, d), math.inf)  # per factor and l, the best cross-entropy of a classifier on a set without l
    for i in range(k):
        for j in range(d):
            ce = bests[i].consider(pool.singles[j, i], pool.eye[j])[0]
            i_single[i, j] = h_v[i] - ce
            _offer(rest_ce[i], pool.eye[j], ce)
        if pool.eliminates:
            _offer(rest_ce[i], pool.varies, bests[i].consider(pool.full[i], pool.varies)[0])
    if pool.eliminates:  # the synergy metric's elimination, step for step

        def score(i: int, own: np.ndarray, mask: np.ndarray) -> float:
            return _offer(rest_ce[i], mask, bests[i].consider(own, mask)[0])

        pool.eliminate_backward(score)
    joint = np.array([h_v[i] - bests[i].ce for i in range(k)])
    rest_ce = np.minimum(rest_ce, h_v[:, None])  # the constant classifier (I = 0) is always in the family
    i_rest = h_v[:, None] - rest_ce
    details = [{"joint_latents": best.latents} for best in bests]
    return i_single, i_rest, joint, h_v, details


def _offer(rest_ce: np.ndarray, mask: np.ndarray, ce: float) -> float:
    """A classifier on the latents of ``mask`` is one of y from z_\\l for every l outside the mask."""
    outside = ~mask
    rest_ce[outside] = np.minimum(rest_ce[outside], ce)
    return ce


# -- the metric ---------------------------------------------------------------------------------------------


def unibound_from_posteriors(
    factors: np.ndarray,
    mean: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    num_samples: int | None = 500,
    names=None,
    reference: dict | None = None,
) -> dict:
    """The UniBound core on explicit posteriors of random points (n, d) and their factor classes (n, K).

    With ``reference`` (the whole dataset's ``mean``, ``logvar``, ``factors``
    and optionally ``grid``) the table estimator scores the first
    ``num_samples`` points (one sample z ~ q(z|x) each); without it every
    point is scored leave-one-out against the others (the pool estimator).
    Returns the result of :func:`unibound_from_information` plus the terms
    per factor (nats) and the ``estimator`` used.
    """
    mu, lv = check_posterior(mean, logvar, len(factors))
    factors = np.asarray(factors)
    if mu.shape[1] < 2:
        raise MetricInputError("unibound needs at least 2 latent dimensions (one latent against the rest)")
    names = list(names) if names is not None else [f"factor_{i}" for i in range(factors.shape[1])]
    d, k = mu.shape[1], factors.shape[1]
    grid_limited = False
    if reference is None:
        if len(mu) < 2:
            raise MetricInputError(f"unibound needs at least 2 points, got {len(mu)}")
        z = mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape)
        i_single, i_rest, i_joint, h_v, details = pool_pid_information(z, mu, lv, factors)
        estimator = "pool"
    else:
        m = len(mu) if num_samples is None else min(int(num_samples), len(mu))
        if m < 2:
            raise MetricInputError(f"unibound needs at least 2 scored samples, got {m}")
        z = mu[:m] + np.exp(0.5 * lv[:m]) * rng.standard_normal(mu[:m].shape)
        ref_mean, ref_logvar = check_posterior(reference["mean"], reference["logvar"], None, "the reference table")
        ref_factors = np.asarray(reference["factors"])
        if ref_factors.shape != (len(ref_mean), k) or ref_mean.shape[1] != d:
            raise MetricInputError(
                f"unibound: the reference must hold ({len(ref_mean)}, {k}) factors and {d} latents, got "
                f"{ref_factors.shape} and {ref_mean.shape[1]}"
            )
        drop = [[]] + [[j] for j in range(d)]
        terms, h_v = table_subset_information(
            z, factors[:m], ref_mean, ref_logvar, drop, ref_factors, reference.get("grid")
        )
        i_joint, i_rest = terms[0], terms[1:].T
        sizes = [int(max(ref_factors[:, i].max(), factors[:m, i].max())) + 1 for i in range(k)]
        specs, p_vs, grid_limited = table_single_latent_information(
            ref_mean, ref_logvar, [ref_factors[:, i] for i in range(k)], sizes
        )
        i_single = np.stack([spec @ p_v for spec, p_v in zip(specs, p_vs)])
        details = [{"joint_latents": list(range(d))} for _ in range(k)]
        estimator = "table"
    core = unibound_from_information(i_single, i_rest, i_joint, h_v)
    per_factor = {}
    for i, name in enumerate(names):
        entry = core["per_factor"][i]
        if entry is None:
            per_factor[name] = {"skipped": "the factor takes one value in the population"}
            continue
        per_factor[name] = {
            **entry,
            "i_joint": float(i_joint[i]),
            "i_single": i_single[i].tolist(),
            "i_rest": i_rest[i].tolist(),
            "entropy": float(h_v[i]),
            "joint_latents": details[i]["joint_latents"],
            "estimator": estimator,
        }
    return {**core, "per_factor": per_factor, "estimator": estimator, "grid_limited": bool(grid_limited)}


def unibound(
    data,
    represent_posterior,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    **overrides,
) -> dict:
    """Tokui & Sato's UniBound: the mean over factors of the best lower bound of unique information / H(y_k).

    ``represent_posterior(obs) -> (mean, logvar)`` or a posterior
    :class:`CodeTable`; ``pool`` (with ``logvar``) supplies the points.
    Returns ``score`` (UniBound), ``unibound_upper`` (the same average of the
    upper bound), ``redundancy_lower`` and ``synergy_lower`` (the means over
    factors of the largest lower bounds of R and S over the latents, / H) and
    ``per_factor`` (UniBound's latent and the bounds there, per latent every
    bound, every term in nats). See the module docstring.
    """
    check_ground_truth(data, "unibound")
    p = resolve("unibound", protocol, overrides)
    pool, reference = posterior_population(
        "unibound", data, represent_posterior, rng, p, pool, p["num_samples"], p["num_train"]
    )
    need = p["num_samples"] if reference is not None else p["num_train"]
    core = unibound_from_posteriors(
        pool.factors[:need], pool.codes[:need], pool.logvar[:need], rng, need, data.factor_names, reference
    )
    result = {
        "metric": "unibound",
        "score": core["unibound"],
        "unibound": core["unibound"],
        "unibound_upper": core["unibound_upper"],
        "redundancy_lower": core["redundancy_lower"],
        "synergy_lower": core["synergy_lower"],
        "per_factor": core["per_factor"],
        "grid_limited": core["grid_limited"],
        "units": "fractions of H(y_k); raw terms in nats",
        "reference": REFERENCE,
        "protocol": dict(p, reference=core["estimator"]),
    }
    return check_score(result, "unibound")
