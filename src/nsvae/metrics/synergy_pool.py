"""The pool estimator of the synergy metric (:mod:`nsvae.metrics.synergy`): leave-one-out posteriors of a factor v
given a subset of latents, over a finite pool of points.

Each pool point is scored against the other points' posteriors (a cross-validated kernel classifier, whose
cross-entropy bounds I(z_S; v) from below); the estimate is the best of a small family of classifiers built from
the same posteriors: mixtures with the prior (:data:`PRIOR_WEIGHTS`) and, for the joint term, the latent subsets
along a backward elimination from all latents (:func:`eliminate_backward`). UniBound (:mod:`.pid_bounds`) uses the
same pieces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

#: Prior weights lam of the pool classifiers (1 - lam) q(v | z_S) + lam p(v); 1 is the constant classifier.
PRIOR_WEIGHTS = (1e-3, 1e-2, 0.05, 0.2, 0.5, 1.0)


def class_index(factors: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


@dataclasses.dataclass
class PoolSetup:
    """What every pool estimate of one pool starts from (the synergy metric's :func:`pool_information` and
    UniBound's, :func:`nsvae.metrics.pid_bounds.pool_pid_information`): the classes and plug-in priors of each
    factor, H(v_k), the latents whose posterior varies, the kernel, each single latent's leave-one-out posteriors
    and, where two or more latents vary, those of all of them and of every set that drops one."""

    classes: list[np.ndarray]
    priors: list[np.ndarray]
    #: per factor, p(v) of each point's own class
    p_own: list[np.ndarray]
    h_v: np.ndarray
    #: a latent whose posterior is the same for every point cancels from every q(v | z_S): it is left out
    varies: np.ndarray
    eye: np.ndarray
    kernel: PoolKernel
    singles: np.ndarray
    full: np.ndarray | None
    first_step: np.ndarray | None

    @classmethod
    def of(cls, z: np.ndarray, mean: np.ndarray, logvar: np.ndarray, factors: np.ndarray) -> PoolSetup:
        d = mean.shape[1]
        classes, priors = class_index(factors)
        p_own = [priors[i][classes[i]] for i in range(len(classes))]
        h_v = np.array([float(-(p * np.log(p)).sum()) for p in priors])
        varies = ~((np.ptp(mean, axis=0) == 0) & (np.ptp(logvar, axis=0) == 0))
        eye = np.eye(d, dtype=bool)
        kernel = PoolKernel(z, mean, logvar)
        singles = kernel.own_posteriors(classes, list(eye))
        full = first_step = None
        if varies.sum() > 1:
            full = kernel.own_posteriors(classes, [varies])[0]
            first_step = kernel.own_posteriors_without(classes, varies, np.flatnonzero(varies).tolist())
        return cls(classes, priors, p_own, h_v, varies, eye, kernel, singles, full, first_step)

    @property
    def eliminates(self) -> bool:
        """Whether the joint term goes beyond the single latents (two or more latents vary)."""
        return self.full is not None

    def eliminate_backward(self, score: Callable[[int, np.ndarray, np.ndarray], float]) -> None:
        """:func:`eliminate_backward` from the latents that vary (only when :attr:`eliminates`)."""
        eliminate_backward(self.kernel, self.classes, self.varies, self.first_step, score)


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
    d = mean.shape[1]
    pool = PoolSetup.of(z, mean, logvar, factors)
    classes, priors, p_own = pool.classes, pool.priors, pool.p_own
    bests = [BestSubset(p_own[i]) for i in range(len(classes))]
    specs = []
    for i in range(len(classes)):
        spec = np.empty((d, len(priors[i])))
        counts = np.bincount(classes[i], minlength=len(priors[i]))
        for j in range(d):
            logq = bests[i].consider(pool.singles[j, i], pool.eye[j])[1]
            spec[j] = np.bincount(classes[i], weights=logq - np.log(p_own[i]), minlength=len(counts)) / counts
        specs.append(spec)
        if pool.eliminates:
            bests[i].consider(pool.full[i], pool.varies)
    if pool.eliminates:
        pool.eliminate_backward(lambda i, own, mask: bests[i].consider(own, mask)[0])
    joint = np.array([pool.h_v[i] - bests[i].ce for i in range(len(classes))])
    details = [{"joint_latents": best.latents} for best in bests]
    return joint, pool.h_v, specs, priors, details


def _without(mask: np.ndarray, j: int) -> np.ndarray:
    out = mask.copy()
    out[j] = False
    return out


class BestSubset:
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
