"""The union information I_VK as a certified convex program.

Problem (Griffith & Koch 2014, "Quantifying synergistic mutual
information"; for two predictors it is the union information of
Bertschinger, Rauh, Olbrich, Jost & Ay 2014, "BROJA"):

    I_VK = min_q  I_q(X; Y)   subject to  q(A_i, Y) = p(A_i, Y)  for every predictor i.

Because q(Y) = p(Y) is fixed, I_q(X; Y) = H_p(Y) + f(q) with the convex
f(q) = sum_{x,y} q(x,y) log q(y|x). The Lagrange dual (derived in
``docs/information.md``) is

    max_lambda  sum_i sum_{a,y} p(a_i, y) lambda_i(a_i, y)
    subject to  log sum_y exp theta(x, y) <= 0  for every x,
    with theta(x, y) = sum_i lambda_i(a_i(x), y).

A cell (x, y) can carry mass only when p(a_i(x), y) > 0 for every i, so the
program lives on those *allowed* cells. We solve the dual with a log-barrier
Newton method (Boyd & Vandenberghe 2004, sec. 11.3), with a predictor step
along the central path between barrier stages. On the central path the
point q_t(x, y) = softmax_y(theta)(x) / (t * (-LSE_x)) matches the
marginals exactly; in the final stage we rebuild it from the dual's
conditionals softmax_y(theta) with weights from non-negative least squares
and polish it by iterative proportional fitting until it matches the
marginals to rounding error.

The result is a certificate: ``upper_bound`` is I_q of an explicit feasible
distribution q (returned), ``lower_bound`` is the dual value of an explicitly
feasible lambda, and the true minimum lies between them. Values are in nats
inside this module.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.linalg.lapack import dposv as _dposv
from scipy.special import entr

from ..errors import SolverAccuracyWarning
from . import vk_fast

#: Gap (nats) at which the solver stops: well inside the 1e-7 bit promise.
DEFAULT_GAP_NATS = 1e-10
#: Barrier parameter at the start and its growth factor per centring.
T0 = 100.0
MU = 1000.0
#: A candidate primal point must meet every marginal to within this.
FEASIBILITY_TOL = 1e-10
#: A candidate missing the marginals by at most this is kept as a fallback.
NEAR_MISS_TOL = 1e-6
#: The accuracy the library promises (1e-7 bits, in nats); a larger gap warns.
PROMISED_GAP_NATS = 1e-7 * math.log(2)


@dataclass(frozen=True)
class VKSolution:
    """A solved I_VK program with its certificate (values in the caller's unit).

    Attributes:
        value: I_VK, the objective at ``distribution`` (= ``upper_bound``).
        lower_bound: a dual bound; the true minimum lies in
            ``[lower_bound, upper_bound]``.
        upper_bound: I_q(X; Y) of the feasible ``distribution``.
        gap: ``upper_bound - lower_bound`` (>= 0 up to rounding).
        distribution: the minimiser q over the predictor axes used by any
            group (ascending) and the target.
        max_constraint_violation: max |q(A_i, Y) - p(A_i, Y)| of ``distribution``.
        newton_steps: Newton iterations taken (0 when solved in closed form).
    """

    value: float
    lower_bound: float
    upper_bound: float
    gap: float
    distribution: np.ndarray
    max_constraint_violation: float
    newton_steps: int

    def scaled(self, factor: float) -> VKSolution:
        """The same certificate with values divided by ``factor`` (unit change)."""
        return VKSolution(
            value=self.value / factor,
            lower_bound=self.lower_bound / factor,
            upper_bound=self.upper_bound / factor,
            gap=self.gap / factor,
            distribution=self.distribution,
            max_constraint_violation=self.max_constraint_violation,
            newton_steps=self.newton_steps,
        )


class _Problem:
    """Index bookkeeping for the allowed cells of one I_VK program."""

    def __init__(self, p: np.ndarray, groups: list[tuple[int, ...]]):
        # p: joint over (union axes..., y); groups index axes of p (not the target).
        self.p = p
        self.shape = p.shape
        ny = p.shape[-1]
        self.ny = ny
        grid_shape = p.shape
        allowed = np.ones(grid_shape, dtype=bool)
        var_index_grids = []
        self.marginals = []
        offset = 0
        costs = []
        for g in groups:
            drop = tuple(ax for ax in range(p.ndim - 1) if ax not in g)
            m = p.sum(axis=drop, keepdims=True) if drop else p
            self.marginals.append((drop, m))
            positive = m > 0
            allowed &= np.broadcast_to(positive, grid_shape)
            ids = np.full(m.shape, -1, dtype=np.int64)
            npos = int(positive.sum())
            ids[positive] = offset + np.arange(npos)
            costs.append(m[positive])
            offset += npos
            var_index_grids.append(np.broadcast_to(ids, grid_shape))
        self.n_vars = offset
        self.cost = np.concatenate(costs)
        flat_allowed = np.flatnonzero(allowed.ravel())
        self.cells = flat_allowed  # flat indices into the grid, x-major (y last)
        self.cols = np.stack([v.ravel()[flat_allowed] for v in var_index_grids], axis=1)
        x_of_cell = flat_allowed // ny
        self.x_ids, self.x_of_cell = np.unique(x_of_cell, return_inverse=True)
        self.n_x = len(self.x_ids)
        starts = np.flatnonzero(np.r_[True, np.diff(self.x_of_cell) != 0])
        self.starts = starts
        n_cells, n_groups = self.cols.shape
        self.n_groups = n_groups
        m = self.n_vars
        # Flat (k, l) positions of every pair of variables sharing a cell:
        # M^T diag(w) M is one bincount over them.
        self.pair_index = (self.cols[:, :, None] * m + self.cols[:, None, :]).ravel()
        # Flat (x, k) positions for U = S M diag(pi), the per-x gradient of LSE_x.
        self.xk_index = (self.x_of_cell[:, None] * m + self.cols).ravel()
        # An orthonormal basis of the directions of lambda that change theta
        # (the complement of the null space of M, from the spectrum of M^T M).
        gram = np.bincount(self.pair_index, minlength=m * m).reshape(m, m).astype(float)
        eigval, eigvec = np.linalg.eigh(gram)
        self.gauge_free = eigvec[:, eigval > 1e-9 * max(1.0, float(eigval[-1]))]
        # Flat (k, x) positions for the constraint matrix of q(x) given pi.
        self.var_x_index = (self.cols * self.n_x + self.x_of_cell[:, None]).ravel()

    # -- dual side ---------------------------------------------------------
    def theta(self, lam: np.ndarray) -> np.ndarray:
        return lam[self.cols].sum(axis=1)

    def lse(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-x log-sum-exp of theta over allowed y, and the per-cell softmax."""
        mx = np.maximum.reduceat(theta, self.starts)
        shifted = theta - mx[self.x_of_cell]
        # Cut weights below e^-250 to exactly zero: subnormal floats further
        # down slow every later BLAS call by orders of magnitude.
        e = np.where(shifted > -250.0, np.exp(np.maximum(shifted, -250.0)), 0.0)
        s = np.add.reduceat(e, self.starts)
        return mx + np.log(s), e / s[self.x_of_cell]

    # -- primal side -------------------------------------------------------
    def to_grid(self, q_cells: np.ndarray) -> np.ndarray:
        q = np.zeros(int(np.prod(self.shape)))
        q[self.cells] = q_cells
        return q.reshape(self.shape)

    def recover_primal(self, pi: np.ndarray, weights: np.ndarray, t: float) -> np.ndarray:
        """A feasible q(x, y) = w(x) pi(y | x) built from a dual point on the central path.

        There w(x) = 1 / (t (-LSE_x)), but that formula loses accuracy as t
        grows (LSE_x -> 0 in floating point). The marginal constraints are
        linear in w, so we keep the x whose weight stays well above the 1/t
        scale of inactive x, solve for their weights by non-negative least
        squares, and polish with iterative proportional fitting (IPF). If
        that fails to reach the marginals, IPF from the path weights is the
        fallback.
        """
        active = weights > 1.0 / np.sqrt(t)
        if np.any(active):
            m, k = self.n_vars, self.n_groups
            A = np.bincount(self.var_x_index, weights=np.repeat(pi, k), minlength=m * self.n_x).reshape(m, self.n_x)
            w = np.zeros_like(weights)
            w[active] = scipy.optimize.nnls(A[:, active], self.cost, maxiter=50 * int(active.sum()))[0]
            q = self.to_grid(w[self.x_of_cell] * pi)
            if q.sum() > 0:
                q = self.ipf(q / q.sum())
                if self.violation(q) <= FEASIBILITY_TOL:
                    return q
        q = self.to_grid(weights[self.x_of_cell] * pi)
        return self.ipf(q / q.sum())

    def violation(self, q: np.ndarray) -> float:
        worst = 0.0
        for drop, m in self.marginals:
            qm = q.sum(axis=drop, keepdims=True) if drop else q
            worst = max(worst, float(np.max(np.abs(qm - m))))
        return worst

    def ipf(self, q: np.ndarray, sweeps: int = 1000, tol: float = 1e-15) -> np.ndarray:
        """Iterative proportional fitting of q onto the marginal constraints."""
        for sweep in range(sweeps):
            for drop, m in self.marginals:
                qm = q.sum(axis=drop, keepdims=True) if drop else q
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.where(qm > 0, m / qm, 0.0)
                q = q * ratio
            if sweep % 4 == 3 and self.violation(q) <= tol:
                break
        return q


def conditional_entropy_term(q: np.ndarray) -> float:
    """f(q) = sum q(x,y) log q(y|x) = -H_q(Y|X) in nats (q over (x..., y))."""
    qx = q.sum(axis=-1, keepdims=True)
    mask = q > 0
    return float(np.sum(q[mask] * (np.log(q[mask]) - np.log(np.broadcast_to(qx, q.shape)[mask]))))


def mutual_information_nats(q: np.ndarray) -> float:
    """I_q(X; Y) in nats for q over (x..., y)."""
    qy = q.reshape(-1, q.shape[-1]).sum(axis=0)
    hy = -float(np.sum(qy[qy > 0] * np.log(qy[qy > 0])))
    return max(0.0, hy + conditional_entropy_term(q))  # I >= 0; clip rounding


def solve_vk_nats(
    p: np.ndarray,
    groups: list[tuple[int, ...]],
    *,
    gap_tol: float = DEFAULT_GAP_NATS,
    max_newton_steps: int = 500,
) -> VKSolution:
    """Solve the I_VK program for a joint ``p`` over (union axes..., y); nats.

    ``groups`` index axes of ``p`` and together cover every predictor axis.
    """
    py = np.add.reduce(p.reshape(-1, p.shape[-1]))
    hy = float(np.add.reduce(entr(py)))
    if np.count_nonzero(py) <= 1 or len(groups) == 1:
        # Closed forms: a constant target carries no information; a single
        # predictor group fixes q(A, Y) = p(A, Y) completely.
        value = mutual_information_nats(p)
        return VKSolution(value, value, value, 0.0, p.copy(), 0.0, 0)

    fast = _solve_fast(p, groups, hy, gap_tol, max_newton_steps)
    if fast is not None and fast.gap <= gap_tol:
        return fast
    # The fast path's bounds are valid even when its gap is too wide: the reference starts from them.
    prob = _Problem(p, groups)
    if prob.n_vars <= _SMALL_PROBLEM_VARS:
        # Multi-threaded BLAS on matrices this small is far slower than one
        # thread (thread wake-ups dominate): on the 2-core development
        # machine, one Newton step's Hessian product and solve at 128
        # variables took 6-10 ms with 2 threads and 0.5 ms with 1.
        with _blas_controller().limit(limits=1, user_api="blas"):
            return _solve(prob, hy, p, gap_tol, max_newton_steps, fast)
    return _solve(prob, hy, p, gap_tol, max_newton_steps, fast)


def _solve_fast(p: np.ndarray, groups, hy: float, gap_tol: float, max_newton_steps: int) -> VKSolution | None:
    """The lean solvers of :mod:`nsvae.info.vk_fast` for small problems; None if they do not apply.

    The primal-dual method runs first; if it does not certify ``gap_tol`` and the program is small
    enough, the lean barrier method runs too (both sets of bounds are valid: the best of each is
    kept). The result may still miss ``gap_tol``; the caller then runs the reference solver.
    """
    found = vk_fast.structure_for(p, groups)
    if found is None:
        return None
    st, marg = found
    budget = min(vk_fast.PD_MAX_STEPS, max_newton_steps)
    if st.K.size >= _PD_SINGLE_THREAD_ENTRIES:
        # As for the reference solver: one BLAS thread is faster on matrices of this size.
        with _blas_controller().limit(limits=1, user_api="blas"):
            res = vk_fast.solve_pd(st, marg, hy, gap_tol, FEASIBILITY_TOL, budget)
    else:  # far too small for BLAS threads, and the limit itself costs ~30 us
        res = vk_fast.solve_pd(st, marg, hy, gap_tol, FEASIBILITY_TOL, budget)
    lower, upper, q, violation, steps = res.lower, res.upper, res.q, res.violation, res.steps
    if upper - lower > gap_tol and st.M.size <= vk_fast.MAX_K_ENTRIES:
        res = vk_fast.solve(st, marg, hy, gap_tol, max_newton_steps, FEASIBILITY_TOL)
        steps += res.steps
        lower = max(lower, res.lower)
        if res.q is not None and res.upper < upper:
            upper, q, violation = res.upper, res.q, res.violation
    if q is None:
        return None
    if upper - lower > gap_tol:
        # I_VK >= I(A_i; Y) for every group, as in the reference solver.
        for k in range(len(groups)):
            lower = max(lower, _table_mi_nats(marg[st.group_rows[k] : st.group_rows[k + 1]]))
    return VKSolution(
        value=upper,
        lower_bound=min(lower, upper),
        upper_bound=upper,
        gap=max(upper - lower, 0.0),
        distribution=q,
        max_constraint_violation=violation,
        newton_steps=steps,
    )


def _table_mi_nats(table: np.ndarray) -> float:
    return mutual_information_nats(table)


#: Problems with at most this many dual variables run BLAS single-threaded.
_SMALL_PROBLEM_VARS = 512
#: The primal-dual fast path runs BLAS single-threaded from this many entries of K (cells x d) on.
_PD_SINGLE_THREAD_ENTRIES = 16384


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _solve(
    prob: _Problem, hy: float, p: np.ndarray, gap_tol: float, max_newton_steps: int, prior: VKSolution | None = None
) -> VKSolution:
    """The reference solver. ``prior``: certified bounds found before (by the fast path), which seed
    the best bounds kept here, so the answer (and its warning) is never worse than what was known."""
    cost = prob.cost
    # Strictly feasible start: every theta(x, y) <= -log(ny) - 1, so LSE_x <= -1.
    lam = np.zeros(prob.n_vars)
    first = prob.cols[:, 0]
    lam[np.unique(first)] = -np.log(prob.ny) - 1.0

    t = T0
    mu = MU
    steps = 0
    # Both bounds are valid wherever they come from: keep the best of each.
    lower = -np.inf
    upper, q_best = mutual_information_nats(p), p  # p itself is feasible
    if prior is not None:
        lower = prior.lower_bound
        if prior.upper_bound < upper:
            upper, q_best = prior.upper_bound, prior.distribution
    near_miss = None  # best candidate that misses the marginals by more than FEASIBILITY_TOL
    while True:
        final_phase = prob.n_x / t <= 10 * gap_tol
        # The Newton decrement over t bounds the dual suboptimality left by
        # imperfect centring, so a threshold proportional to t suffices (a
        # fixed tiny one would sit below the rounding floor of phi_t).
        stop_decrement = 1e-2 * gap_tol * t if final_phase else 1e-3
        lam, used, hessian = _centre(prob, lam, t, stop_decrement, max_newton_steps - steps)
        steps += used
        out_of_budget = steps >= max_newton_steps
        if final_phase or out_of_budget:
            g, pi = prob.lse(prob.theta(lam))
            # lam shifted by -max g is dual feasible with the max constraint tight.
            lower = max(lower, hy + float(cost @ lam) - float(np.max(g)))
            q = prob.recover_primal(pi, 1.0 / (t * (-g)), t)
            value = mutual_information_nats(q)
            violation = prob.violation(q)
            if value < upper and violation <= FEASIBILITY_TOL:
                upper, q_best = value, q
            elif violation <= NEAR_MISS_TOL and (near_miss is None or value < near_miss[0]):
                near_miss = (value, q)
            if upper - lower <= gap_tol or out_of_budget or prob.n_x / t < gap_tol * 1e-4:
                break
        lam = _predict(prob, lam, hessian, t, mu)
        t *= mu

    # I_VK >= I(A_i; Y) for every group: the constraints fix q(A_i, Y).
    for _, m in prob.marginals:
        lower = max(lower, mutual_information_nats(m.reshape(-1, m.shape[-1])))
    if upper - lower > PROMISED_GAP_NATS:
        note = "the value is an upper bound on I_VK"
        if near_miss is not None and near_miss[0] < upper:
            # No exactly feasible point beat p itself, but a nearly feasible
            # one did: report it (its violation is in the result) rather
            # than the much looser bound I_p(X; Y).
            upper, q_best = near_miss
            note = "the value comes from a distribution that misses the marginals by max_constraint_violation"
        warnings.warn(
            f"the I_VK solver stopped with a gap of {(upper - lower) / math.log(2):.2e} bits between its bounds "
            f"(more than the 1e-7 promised); {note}. Please report the distribution.",
            SolverAccuracyWarning,
            stacklevel=4,
        )
    return VKSolution(
        value=upper,
        lower_bound=min(lower, upper),
        upper_bound=upper,
        gap=max(upper - lower, 0.0),
        distribution=q_best,
        max_constraint_violation=prob.violation(q_best),
        newton_steps=steps + (prior.newton_steps if prior is not None else 0),
    )


def _barrier_value(prob: _Problem, lam: np.ndarray, t: float) -> float:
    g, _ = prob.lse(prob.theta(lam))
    if g.max() >= 0:
        return np.inf
    return -t * float(prob.cost @ lam) - float(np.sum(np.log(-g)))


def _centre(
    prob: _Problem, lam: np.ndarray, t: float, stop_decrement: float, budget: int
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Newton's method on phi_t(lam) = -t c.lam - sum_x log(-LSE_x(lam)).

    Returns the centred lam, the number of Newton steps used and the last
    Hessian (None if no step was taken).
    """
    m = prob.n_vars
    k = prob.n_groups
    used = 0
    H = None
    f0 = _barrier_value(prob, lam, t)
    while used < budget:
        g, pi = prob.lse(prob.theta(lam))
        inv_neg_g = 1.0 / (-g)
        w_cell = pi * inv_neg_g[prob.x_of_cell]
        grad = -t * prob.cost + np.bincount(prob.cols.ravel(), weights=np.repeat(w_cell, k), minlength=m)
        w_x = inv_neg_g**2 - inv_neg_g  # 1/g^2 + 1/g, the rank-one part of each x's Hessian
        H = np.bincount(prob.pair_index, weights=np.repeat(w_cell, k * k), minlength=m * m).reshape(m, m)
        U = np.bincount(prob.xk_index, weights=np.repeat(pi, k), minlength=prob.n_x * m).reshape(prob.n_x, m)
        H += (U.T * w_x) @ U
        # Newton in coordinates that exclude the gauge directions (moves of
        # lambda that leave theta unchanged, e.g. a constant shifted from one
        # group's lambda to another's): the Hessian is singular along them,
        # and a ridge large enough to matter distorts the genuinely flat
        # directions that appear at large t.
        Z = prob.gauge_free
        H = Z.T @ H @ Z
        _, step_r, info = _dposv(H, -(Z.T @ grad), lower=0, overwrite_a=0, overwrite_b=0)
        if info != 0:
            step_r = np.linalg.lstsq(H, -(Z.T @ grad), rcond=None)[0]
        step = Z @ step_r
        used += 1
        decrement = float(-grad @ step)
        if decrement <= stop_decrement:
            break
        # Backtracking: stay strictly feasible and decrease phi_t (Armijo).
        # Start from the step at which the linear model of LSE_x (exact to
        # first order; LSE is convex, so it is optimistic) would cover at
        # most 90% of each x's slack: this avoids most infeasible trials.
        slope = U @ step
        rising = slope > 0
        s = min(1.0, float(np.min(0.9 * (-g[rising]) / slope[rising]))) if np.any(rising) else 1.0
        while s >= 1e-6:
            cand = lam + s * step
            f1 = _barrier_value(prob, cand, t)
            if f1 <= f0 - 0.25 * s * decrement:
                break
            s *= 0.5
        if s < 1e-6:
            break
        lam, f0 = cand, f1
    return lam, used, H


def _predict(prob: _Problem, lam: np.ndarray, hessian: np.ndarray | None, t: float, mu: float) -> np.ndarray:
    """Extrapolate the central path from t to mu * t before re-centring.

    Along the path the dual point behaves like lam* + a / t, and
    d lam / d t = H^-1 c (differentiate t c = grad B(lam)), so the jump to
    mu t is t (1 - 1/mu) H^-1 c. Variables heading to -infinity (optima on
    the boundary) break the model, so the step is shortened until it stays
    feasible and lowers the barrier function at the new t; if no such step
    exists, the old point is kept.
    """
    if hessian is None:
        return lam
    Z = prob.gauge_free
    _, direction_r, info = _dposv(hessian, Z.T @ prob.cost, lower=0, overwrite_a=0, overwrite_b=0)
    if info != 0:
        return lam
    direction = (t * (1.0 - 1.0 / mu)) * (Z @ direction_r)
    new_t = mu * t
    f0 = _barrier_value(prob, lam, new_t)
    s = 1.0
    while s >= 1.0 / 64:
        cand = lam + s * direction
        if _barrier_value(prob, cand, new_t) < f0:
            return cand
        s *= 0.5
    return lam
