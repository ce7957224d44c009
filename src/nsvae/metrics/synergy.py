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
  (1 - lam) q(v | z_S) + lam p(v) for lam in :data:`PRIOR_WEIGHTS` (lam = 1
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

import math
from collections.abc import Callable

import numpy as np

from ..objectives.selection import greedy_select  # numpy only: keeps the metrics torch-free
from .mixture_grid import class_densities_on_grid, specific_information_on_grid
from .protocols import resolve
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
_PRIOR_MIX = 1e-3
#: The population whose posteriors define q(v | z): the whole dataset when tabulated ("auto"), always, or a pool.
REFERENCES = ("auto", "table", "pool")
#: Prior weights lam of the pool classifiers (1 - lam) q(v | z_S) + lam p(v); 1 is the constant classifier.
PRIOR_WEIGHTS = (1e-3, 1e-2, 0.05, 0.2, 0.5, 1.0)


# -- the pool: leave-one-out posteriors of v given a subset of latents -------------------------------------


def _class_index(factors: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per factor, the class of each row as 0..|V|-1 and the plug-in p(v) of those classes."""
    inverse, priors = [], []
    for i in range(factors.shape[1]):
        _, inv, counts = np.unique(factors[:, i], return_inverse=True, return_counts=True)
        inverse.append(inv.reshape(-1))
        priors.append(counts / counts.sum())
    return inverse, priors


#: Log-kernel pieces held in memory at once (float32 elements, ~512 MB); larger pools recompute them per chunk.
_PIECES_BUDGET = 1 << 27


class PoolKernel:
    """Leave-one-out posteriors of v given a subset of latents, over one pool of n points.

    Point i (sample ``z[i]`` of posterior ``(mean[i], logvar[i])``) is scored
    against the posteriors of the other n - 1 points restricted to the
    latents of a subset S (a boolean mask over the d latents). The per-latent
    log-kernels log N(z_ij; mu_mj, sigma_mj^2) are computed once (float32)
    when they fit in memory, else per chunk of rows.
    """

    def __init__(self, z: np.ndarray, mean: np.ndarray, logvar: np.ndarray, chunk: int = 256):
        self.z, self.mean, self.logvar = z, mean, logvar
        self.n, self.d = mean.shape
        self.chunk = chunk
        # latent-major copies: the kernels are built one latent at a time over contiguous rows
        self._z_t, self._mean_t = np.ascontiguousarray(z.T), np.ascontiguousarray(mean.T)
        self._a_t, self._logvar_t = np.ascontiguousarray(np.exp(-logvar).T), np.ascontiguousarray(logvar.T)
        self._cached = None
        self._work: np.ndarray | None = None
        if self.d * self.n * self.n <= _PIECES_BUDGET:
            self._cached = np.empty((self.d, self.n, self.n), dtype=np.float32)
            for start in range(0, self.n, chunk):
                stop = min(self.n, start + chunk)
                self._pieces(start, stop, out=self._cached[:, start:stop])
            self._work = None  # the float64 buffer is only needed while filling the cache

    def _pieces(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """The float32 log-kernels of rows ``start:stop`` against every point, ``(d, stop - start, n)``.

        Computed in float64 in one reused buffer (no fresh allocation per
        chunk), then rounded to float32 into ``out``.
        """
        rows = stop - start
        if self._work is None or self._work.shape[1] < rows:
            self._work = np.empty((self.d, rows, self.n))
        work = self._work[:, :rows]
        # log N up to the constant -0.5 log 2 pi, which cancels in every ratio
        np.subtract(self._z_t[:, start:stop, None], self._mean_t[:, None, :], out=work)
        np.square(work, out=work)
        work *= self._a_t[:, None, :]
        work += self._logvar_t[:, None, :]
        work *= -0.5
        if out is None:
            out = np.empty(work.shape, dtype=np.float32)
        np.copyto(out, work, casting="same_kind")
        return out

    def own_posteriors(self, classes: list[np.ndarray], subsets: list[np.ndarray]) -> np.ndarray:
        """q(v_i | z_{i,S}) for each subset S (a boolean mask) and factor: ``(len(subsets), len(classes), n)``."""
        return self._evaluate(classes, [(np.asarray(m, dtype=bool), None) for m in subsets])

    def own_posteriors_without(self, classes: list[np.ndarray], base: np.ndarray, drop: list[int]) -> np.ndarray:
        """q(v_i | z_{i,S}) for S = ``base`` less one latent j, for each j in ``drop``."""
        return self._evaluate(classes, [(np.asarray(base, dtype=bool), j) for j in drop])

    def _evaluate(self, classes: list[np.ndarray], sets: list[tuple[np.ndarray, int | None]]) -> np.ndarray:
        n = self.n
        out = np.empty((len(sets), len(classes), n))
        onehots = []
        for inv in classes:
            oh = np.zeros((n, int(inv.max()) + 1), dtype=np.float32)
            oh[np.arange(n), inv] = 1.0
            onehots.append(oh)
        logk_buffer = np.empty((min(self.chunk, n), n), dtype=np.float32)
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            pieces = self._cached[:, start:stop] if self._cached is not None else self._pieces(start, stop)
            rows = np.arange(stop - start)
            logk = logk_buffer[: stop - start]
            sums: dict[bytes, np.ndarray] = {}  # the log-kernel of each distinct base set, summed once per chunk
            for s_idx, (mask, dropped) in enumerate(sets):
                key = mask.tobytes()
                if key not in sums:
                    sums[key] = _sum_pieces(pieces, mask)
                if dropped is not None:
                    np.subtract(sums[key], pieces[dropped], out=logk)
                else:
                    np.copyto(logk, sums[key])
                logk[rows, start + rows] = -np.inf  # leave one out
                logk -= logk.max(axis=1, keepdims=True)
                np.exp(logk, out=logk)
                norm = logk.sum(axis=1, dtype=np.float64)
                for k, (inv, oh) in enumerate(zip(classes, onehots)):
                    own = (logk @ oh)[rows, inv[start:stop]]
                    out[s_idx, k, start:stop] = own / norm
        return np.clip(out, 0.0, 1.0)


def _sum_pieces(pieces: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``pieces[mask].sum(axis=0)`` without copying the selected pieces: the same float32 additions, same order."""
    members = np.flatnonzero(mask)
    total = pieces[members[0]].copy()
    for j in members[1:]:
        total += pieces[j]
    return total


def eliminate_backward(
    kernel: PoolKernel,
    classes: list[np.ndarray],
    start: np.ndarray,
    first_step: np.ndarray,
    score: Callable[[int, np.ndarray, np.ndarray], float],
) -> None:
    """The backward elimination from the latents of ``start`` down to two latents, for every factor in lockstep.

    At each step factor i scores every set that drops one latent from its
    current set with ``score(i, own posteriors, mask)`` (a cross-entropy) and
    drops the latent of the smallest. ``first_step`` is
    ``kernel.own_posteriors_without(classes, start, members of start)``.
    Factors whose eliminations have reached the same set share one kernel
    evaluation; a factor's numbers do not depend on which others are
    computed with it, so this gives exactly the per-factor elimination.
    """
    k = len(classes)
    current = [start.copy() for _ in range(k)]
    step_scores: list[np.ndarray | None] = [first_step[:, i] for i in range(k)]
    while int(start.sum()) > 2 and int(current[0].sum()) > 2:
        groups: dict[bytes, list[int]] = {}
        for i in range(k):
            if step_scores[i] is None:
                groups.setdefault(current[i].tobytes(), []).append(i)
        for factors in groups.values():
            base = current[factors[0]]
            own = kernel.own_posteriors_without([classes[i] for i in factors], base, np.flatnonzero(base).tolist())
            for column, i in enumerate(factors):
                step_scores[i] = own[:, column]
        for i in range(k):
            members = np.flatnonzero(current[i]).tolist()
            ces = [score(i, own, _without(current[i], j)) for own, j in zip(step_scores[i], members)]
            current[i] = _without(current[i], members[int(np.argmin(ces))])
            step_scores[i] = None


def _best_prior_weight(own: np.ndarray, p_own: np.ndarray) -> tuple[np.ndarray, float]:
    """``(log q~(v_i | z) per point, lam)`` for the prior weight with the smallest cross-entropy."""
    best, best_ce, best_lam = None, math.inf, 1.0
    for lam in PRIOR_WEIGHTS:
        logq = np.log((1.0 - lam) * own + lam * p_own)
        ce = -float(logq.mean())
        if ce < best_ce - 1e-15:
            best, best_ce, best_lam = logq, ce, lam
    return best, best_lam


def pool_information(
    z: np.ndarray, mean: np.ndarray, logvar: np.ndarray, factors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray], list[dict]]:
    """The pool estimator: ``(I(z; v_k), H(v_k), specific informations (d, |V_k|), p(v_k), joint details)``.

    Single-latent terms: the best prior weight per latent and factor.
    Joint term: the best over the single latents, all latents, and the
    backward elimination from all latents (drop, at each step, the latent
    whose removal gives the smallest cross-entropy, down to two latents).
    Every cross-entropy is leave-one-out over the n points.
    """
    n, d = mean.shape
    classes, priors = _class_index(factors)
    k = len(classes)
    p_own = [priors[i][classes[i]] for i in range(k)]
    h_v = np.array([float(-(p * np.log(p)).sum()) for p in priors])
    # a latent whose posterior is the same for every point cancels from every q(v | z_S): leave it out
    varies = ~((np.ptp(mean, axis=0) == 0) & (np.ptp(logvar, axis=0) == 0))
    eye = np.eye(d, dtype=bool)
    kernel = PoolKernel(z, mean, logvar)
    singles = kernel.own_posteriors(classes, list(eye))
    if varies.sum() > 1:
        full = kernel.own_posteriors(classes, [varies])[0]
        first_step = kernel.own_posteriors_without(classes, varies, np.flatnonzero(varies).tolist())
    bests = [_BestSubset(p_own[i]) for i in range(k)]
    specs = []
    for i in range(k):
        spec = np.empty((d, len(priors[i])))
        counts = np.bincount(classes[i], minlength=len(priors[i]))
        for j in range(d):
            logq = bests[i].consider(singles[j, i], eye[j])[1]
            spec[j] = np.bincount(classes[i], weights=logq - np.log(p_own[i]), minlength=len(counts)) / counts
        specs.append(spec)
        if varies.sum() > 1:
            bests[i].consider(full[i], varies)
    if varies.sum() > 1:
        eliminate_backward(kernel, classes, varies, first_step, lambda i, own, mask: bests[i].consider(own, mask)[0])
    joint = np.array([h_v[i] - bests[i].ce for i in range(k)])
    details = [{"joint_latents": best.latents} for best in bests]
    return joint, h_v, specs, priors, details


def _without(mask: np.ndarray, j: int) -> np.ndarray:
    out = mask.copy()
    out[j] = False
    return out


class _BestSubset:
    """The classifier of smallest leave-one-out cross-entropy seen so far, and its latents."""

    def __init__(self, p_own: np.ndarray):
        self.p_own = p_own
        self.ce, self.latents = math.inf, None

    def consider(self, own: np.ndarray, mask: np.ndarray) -> tuple[float, np.ndarray]:
        logq, _ = _best_prior_weight(own, self.p_own)
        ce = -float(logq.mean())
        if ce < self.ce - 1e-9:  # a tie keeps the earlier (smaller) set
            self.ce, self.latents = ce, np.flatnonzero(mask).tolist()
        return ce, logq


# -- the table: the model's exact class posterior over the whole dataset ---------------------------------


def table_single_latent_information(
    table_mean: np.ndarray, table_logvar: np.ndarray, table_classes: list[np.ndarray], num_classes: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """Per factor, ``(specific information I(z_j; v = y) (d, |V|), p(y))`` over the whole table, on the grid.

    Exact integrals of the model's joint of (z_j, v) (x uniform over the
    table rows, z_j ~ q(z_j|x)) up to the grid's resolution; returns also
    whether a grid hit its size limit.
    """
    n, d = table_mean.shape
    specs = [np.empty((d, size)) for size in num_classes]
    p_vs: list[np.ndarray] = [np.zeros(size) for size in num_classes]
    limited = False
    for j in range(d):
        for i, (cls, size) in enumerate(zip(table_classes, num_classes)):
            grid, dens, lim = class_densities_on_grid(table_mean[:, j], table_logvar[:, j], cls, size)
            limited |= lim
            specs[i][j], _ = specific_information_on_grid(dens, float(grid[1] - grid[0]))
    for i, (cls, size) in enumerate(zip(table_classes, num_classes)):
        p_vs[i] = np.bincount(cls, minlength=size) / len(cls)
    return specs, p_vs, limited


def joint_information_full_table(
    z: np.ndarray,
    factors: np.ndarray,
    table_mean: np.ndarray,
    table_logvar: np.ndarray,
    table_factors: np.ndarray | None = None,
    grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    chunk: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(I^(z; v_k), H(v_k))`` per factor in nats, with the posterior of v_k given z under the whole dataset.

    The model's joint is x uniform over the N images of the table and
    z ~ q(z|x), so its exact class posterior is
    q(v | z) = sum_{m: v_m = v} q(z|x_m) / sum_m q(z|x_m), summed over **every**
    image (the scored point included: it belongs to the population).
    Scoring samples ``z`` (n, d) of uniformly drawn images with classes
    ``factors`` (n, K), I^ = H(v_k) - mean_i [-log q~(v_k(x_i) | z_i)] with
    q~ = (1 - 1e-3) q + 1e-3 p(v): a lower bound of I(z; v_k) that is tight
    up to the 1e-3 mixture (at most 0.001 nats) and Monte Carlo noise.

    The class sums need ``table_factors`` (N, K), or ``grid = (all_factor_sizes,
    exposed_axes)`` when the table is in row-major factor order (dSprites),
    which turns them into reshapes and sums. Memory: a few (chunk, N) arrays
    (float32 weights), about 0.3 GB for dSprites at chunk 32.
    """
    mean = np.asarray(table_mean, dtype=np.float64)
    n_table, d = mean.shape
    a = np.exp(-np.asarray(table_logvar, dtype=np.float64))
    ma = mean * a
    const = -0.5 * (mean * ma).sum(axis=1) - 0.5 * np.asarray(table_logvar, dtype=np.float64).sum(axis=1)
    k = factors.shape[1]
    if grid is not None:
        sizes, exposed = grid
        if int(np.prod(sizes)) != n_table:
            raise MetricInputError(f"synergy: the factor grid {sizes} does not match the table's {n_table} rows")
        priors = [np.full(sizes[axis], 1.0 / sizes[axis]) for axis in exposed]
    else:
        if table_factors is None or len(table_factors) != n_table:
            raise MetricInputError("synergy: the full-table joint term needs the factors of every table row")
        onehots, priors = [], []
        for i in range(k):
            values = np.asarray(table_factors[:, i])
            size = int(max(values.max(), factors[:, i].max())) + 1
            oh = np.zeros((n_table, size), dtype=np.float32)
            oh[np.arange(n_table), values] = 1.0
            onehots.append(oh)
            priors.append(oh.mean(axis=0).astype(np.float64))
    h_v = np.array([float(-(pv[pv > 0] * np.log(pv[pv > 0])).sum()) for pv in priors])
    ce = np.zeros(k)
    for start in range(0, len(z), chunk):
        zc = np.asarray(z[start : start + chunk], dtype=np.float64)
        fc = factors[start : start + chunk]
        rows = np.arange(len(zc))
        logk = -0.5 * (zc * zc) @ a.T + zc @ ma.T + const[None, :]
        logk -= logk.max(axis=1, keepdims=True)
        w = np.exp(logk.astype(np.float32))
        del logk
        total = w.sum(axis=1, dtype=np.float64)
        if grid is not None:
            wg = w.reshape(len(zc), *sizes)
        for i in range(k):
            if grid is not None:
                axis = exposed[i]
                others = tuple(ax + 1 for ax in range(len(sizes)) if ax != axis)
                sums = wg.sum(axis=others, dtype=np.float64)
            else:
                sums = (w @ onehots[i]).astype(np.float64)
            own = sums[rows, fc[:, i]] / total
            ce[i] -= np.log((1.0 - _PRIOR_MIX) * own + _PRIOR_MIX * priors[i][fc[:, i]]).sum()
    ce /= len(z)
    return h_v - ce, h_v


def _table_grid(data, n_table: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(all factor sizes, exposed axes)`` when the table's rows are the row-major factor grid, else ``None``."""
    sizes = getattr(data, "all_factor_sizes", None)
    exposed = getattr(data, "exposed_factors", None)
    if sizes is None or exposed is None or int(np.prod(sizes)) != n_table:
        return None
    probe = np.array([0, n_table - 1, n_table // 2, n_table // 3])
    expected = np.stack(np.unravel_index(probe, tuple(sizes)), axis=1)[:, list(exposed)]
    return (
        (tuple(int(s) for s in sizes), tuple(int(e) for e in exposed))
        if np.array_equal(data.factors_of(probe), expected)
        else None
    )


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
        "grid": _table_grid(data, len(table.codes)),
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
