"""Lean solvers for small I_VK programs (the fast path of :mod:`nsvae.info.vk_solver`).

Two methods on the same dual and with the same certificate as the reference
solver (``vk_solver._solve``; the mathematics is in ``docs/information.md``),
organised for tables of a few dozen to a few hundred cells, where numpy's
per-call overhead, not arithmetic, is the cost:

- :func:`solve_pd`, tried first: a primal-dual interior-point method
  (Mehrotra predictor-corrector) on the dual with slacks s(x) and
  multipliers w(x) = q(x). It takes 5-12 iterations where the barrier
  method takes 25-50, and its multipliers give the primal point directly.
- :func:`solve`, the fallback: the reference's log-barrier path-following,
  with a predictor-corrector step between barrier stages.

Shared:

- **Dense, cached structure.** The map from the gauge-free coordinates r of
  lambda to theta is one dense matrix ``K`` (cells x d), built once per
  (shape, groups, allowed cells) and cached; so are the group indicator
  matrices used for marginals, IPF and the primal recovery.
- **Few numpy calls per Newton step.** theta lives on the (x, y) grid with
  disallowed cells fixed at -inf; theta is clipped at -600 so that no
  subnormal weight reaches BLAS (this can only raise the computed LSE, so
  lower bounds stay valid).

Every result carries a certificate: an explicit feasible q (upper bound)
and an explicitly feasible dual point (lower bound). The caller falls back
to the reference solver whenever these do not certify the requested gap.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.optimize
from scipy.linalg.lapack import dposv as _dposv
from scipy.linalg.lapack import dpotrf as _dpotrf
from scipy.linalg.lapack import dpotrs as _dpotrs
from scipy.special import entr

#: Run the lean barrier method (the fallback of the primal-dual one) while cells x (dual variables) is at
#: most this (4x4x4: 2048, 3x3x3x3: 2187). Larger programs (e.g. 6x6x6: 15552, 7x7x7) were measured
#: slower with it than with the reference solver.
MAX_K_ENTRIES = 4096
#: theta is clipped here before exp (e^-600 ~ 1e-261 is a normal float).
THETA_FLOOR = -600.0
#: Barrier parameter at the start and its growth factor per stage (as the reference solver).
T0 = 100.0
MU = 1000.0
#: Newton decrement below which a point counts as centred (and t grows).
CENTRED = 1e-2
#: Primal-dual method: theta is clipped here from above (an iterate that gets there has diverged),
#: the fraction of the distance to the boundary a step may go, and its iteration budget.
THETA_CEIL = 300.0
PD_STEP_FRACTION = 0.99
PD_MAX_STEPS = 30
RES_FLOOR = 1e-4
RP_LIMIT = 1.0
#: Use the primal-dual method while cells x (dual variables) is at most this (10x10x10: 200,000).
#: Up to 10x10x10 it measured 1.7-10x less CPU time than the reference solver (6x6x6, 8x8x8,
#: 10x10x10, 4x4x4x4, 3x3x3x3x3, 5x5x15); the dense K grows as cells x variables beyond that.
PD_MAX_K_ENTRIES = 1 << 18

_vmin = np.minimum.reduce
_vmax = np.maximum.reduce
_vadd = np.add.reduce


class _Structure:
    """Everything about one I_VK program that depends only on the shape, groups and allowed cells."""

    def __init__(self, shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...], allowed: np.ndarray):
        n_lead = len(shape) - 1
        ny = shape[-1]
        nx_full = math.prod(shape[:-1])
        allowed = allowed.reshape(nx_full, ny)
        rows = np.flatnonzero(allowed.any(axis=1))  # x with at least one allowed y
        self.shape, self.ny, self.rows, self.nx = shape, ny, rows, len(rows)
        self.nx_full = nx_full
        coords = np.indices(shape[:-1]).reshape(n_lead, nx_full)[:, rows]
        # Per group: the value a_i(x) of each active x, and an indicator matrix (|A_i| x nx).
        self.keys, self.indicators, self.sizes = [], [], []
        for g in groups:
            size = math.prod(shape[a] for a in g)
            key = np.ravel_multi_index(tuple(coords[a] for a in g), tuple(shape[a] for a in g))
            ind = np.zeros((size, self.nx))
            ind[key, np.arange(self.nx)] = 1.0
            self.keys.append(key)
            self.indicators.append(ind)
            self.sizes.append(size)
        self.stacked = np.vstack(self.indicators)  # (sum |A_i|) x nx
        self.group_rows = np.cumsum([0] + self.sizes)
        # Group marginal tables of the *full* joint: rows of the full (x, y) matrix.
        full_coords = np.indices(shape[:-1]).reshape(n_lead, nx_full)
        self.full_stacked = np.zeros((self.group_rows[-1], nx_full))
        for k, g in enumerate(groups):
            key = np.ravel_multi_index(tuple(full_coords[a] for a in g), tuple(shape[a] for a in g))
            self.full_stacked[self.group_rows[k] + key, np.arange(nx_full)] = 1.0
        # Dual variables: one per (group, a, y) with p(a, y) > 0, i.e. per positive
        # entry of the stacked marginal table (positions in its flat order).
        allowed_act = allowed[rows]
        positive = (self.stacked @ allowed_act) > 0  # p(a_i, y) > 0 <=> some allowed cell uses it
        self.var_pos = np.flatnonzero(positive.ravel())
        m = len(self.var_pos)
        var_id = np.full(positive.size, -1)
        var_id[self.var_pos] = np.arange(m)
        var_id = var_id.reshape(positive.shape)
        cell_x, cell_y = np.nonzero(allowed_act)
        M = np.zeros((self.nx * ny, m))
        for k in range(len(groups)):
            M[cell_x * ny + cell_y, var_id[self.group_rows[k] + self.keys[k][cell_x], cell_y]] = 1.0
        eigval, eigvec = np.linalg.eigh(M.T @ M)
        self.Z = eigvec[:, eigval > 1e-9 * max(1.0, float(eigval[-1]))]
        self.M = M  # cells x m: which dual variables each cell uses
        self.K = M @ self.Z  # cells x d, the map r -> theta
        self.KT = np.ascontiguousarray(self.K.T)
        self.d = self.K.shape[1]
        self.K3 = self.K.reshape(self.nx, ny, self.d)
        self.floor = np.where(allowed_act, THETA_FLOOR, -np.inf)
        self.off = np.where(allowed_act, 0.0, -np.inf)
        # Strictly feasible start: theta = -log|Y| - 1 on every allowed cell.
        first = np.zeros(m)
        first[var_id[self.group_rows[0] : self.group_rows[1]][positive[self.group_rows[0] : self.group_rows[1]]]] = (
            -math.log(ny) - 1.0
        )
        self.r0 = self.Z.T @ first
        self.ones_y = np.ones(ny)
        self.ones_x = np.ones(self.nx)
        # Primal-dual method: theta is clipped into [THETA_FLOOR, ceil] per cell, which also puts
        # -inf on the disallowed cells (their K rows are zero), so theta = K r needs no offset.
        self.ceil = np.where(allowed_act, THETA_CEIL, -np.inf)
        self.allowed_all = bool(allowed_act.all())
        frozen = (self.off, self.M, self.K, self.KT, self.K3, self.floor, self.r0, self.Z, self.stacked, self.ceil)
        for a in (*frozen, self.full_stacked):
            a.flags.writeable = False

    @property
    def n_cells(self) -> int:
        return self.nx * self.ny


@functools.lru_cache(maxsize=64)
def _structure(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...], allowed_bytes: bytes) -> _Structure:
    allowed = np.frombuffer(allowed_bytes, dtype=bool).reshape(shape)
    return _Structure(shape, groups, allowed)


#: Structures of full-support tables, by (shape, groups): False where the program is too large.
_DENSE: dict = {}


def structure_for(p: np.ndarray, groups, limit: int | None = None) -> tuple[_Structure, np.ndarray] | None:
    """The cached structure of the program for ``p`` and its stacked marginal table, or None if too large.

    ``limit`` bounds cells x dual variables (default ``PD_MAX_K_ENTRIES``).
    """
    limit = PD_MAX_K_ENTRIES if limit is None else limit
    shape = p.shape
    ny = shape[-1]
    nx_full = math.prod(shape[:-1])
    key_groups = tuple(tuple(g) for g in groups)
    P = p.reshape(nx_full, ny)
    n_vars_bound = sum(math.prod(shape[a] for a in g) for g in key_groups) * ny
    if _vmin(P, axis=None) > 0:
        # Full support (the common case): every cell is allowed; one dict look-up instead of
        # building the allowed mask and hashing it.
        if nx_full * ny * n_vars_bound > limit:
            return None
        key = (shape, key_groups)
        st = _DENSE.get(key)
        if st is None:
            if len(_DENSE) >= 64:
                _DENSE.clear()
            st = _DENSE[key] = _structure(shape, key_groups, np.ones(shape, dtype=bool).tobytes())
        return st, st.full_stacked @ P
    # Allowed cells: p(a_i(x), y) > 0 for every group.
    allowed = np.ones((nx_full, ny), dtype=bool)
    for g in key_groups:
        drop = tuple(ax for ax in range(p.ndim - 1) if ax not in g)
        m = p.sum(axis=drop, keepdims=True) if drop else p
        allowed &= np.broadcast_to(m > 0, shape).reshape(nx_full, ny)
    if not allowed.any():
        return None
    n_cells = int(np.count_nonzero(allowed.any(axis=1))) * ny
    if n_cells * n_vars_bound > limit:
        return None
    st = _structure(shape, key_groups, allowed.tobytes())
    marg = st.full_stacked @ P  # (sum |A_i|) x ny: every group's marginal table
    return st, marg


class Result:
    """What the lean solver found (nats); ``q`` is on the full grid."""

    __slots__ = ("lower", "upper", "q", "violation", "steps")

    def __init__(self, lower, upper, q, violation, steps):
        self.lower, self.upper, self.q, self.violation, self.steps = lower, upper, q, violation, steps


def solve(st: _Structure, marg: np.ndarray, hy: float, gap_tol: float, max_steps: int, feas_tol: float) -> Result:
    """Path-following on the dual barrier; returns the best certified bounds found."""
    with np.errstate(all="ignore"):  # infeasible trial points give log(<=0): handled, not warned
        return _solve(st, marg, hy, gap_tol, max_steps, feas_tol)


def _lse(st: _Structure, theta: np.ndarray):
    """Per-x log-sum-exp of theta (grid, -inf off the allowed cells) and the per-x softmax."""
    e = np.exp(np.maximum(theta, st.floor))
    s = e @ st.ones_y
    return np.log(s), e / s[:, None]


def _barrier(st: _Structure, theta: np.ndarray, t: float, cr_dot: float) -> float:
    e = np.exp(np.maximum(theta, st.floor))
    # log(-log s) is NaN or -inf wherever s >= 1 (infeasible): the value is then not < anything.
    return -t * cr_dot - float(np.log(-np.log(e @ st.ones_y)) @ st.ones_x)


def _solve(st: _Structure, marg: np.ndarray, hy: float, gap_tol: float, max_steps: int, feas_tol: float) -> Result:
    """Barrier path-following. Every iterate is strictly dual feasible (theta < 0), so log-sum-exp
    needs no max-shift. Once the point is centred (Newton decrement <= 1e-2), the same iteration
    moves t to mu t with the combined step Newton(t) + t (1 - 1/mu) H^-1 c (the central path
    modelled as lambda* + a/t), so the Hessian of the last centring step also serves the
    predictor. (Smaller, adaptive growth factors took more Newton steps in total, not fewer.)
    """
    c_full = marg.ravel()[st.var_pos]
    cr = st.Z.T @ c_full
    mass0 = float(marg[: st.group_rows[1]].sum())  # sum of group 1's costs (= total mass)
    K, KT, K3 = st.K, st.KT, st.K3
    nx, ny = st.nx, st.ny
    rhs = np.empty((st.d, 2), order="F")
    rhs[:, 1] = cr

    r = st.r0.copy()
    theta = (K @ r).reshape(nx, ny) + st.off  # -inf off the allowed cells; steps keep it (K is 0 there)
    t = T0
    t_final = nx / (10.0 * gap_tol)  # the final phase: check the certificate from here on
    t_stop = nx / (1e-4 * gap_tol)
    lower, upper, q_best, viol_best = -math.inf, math.inf, None, math.inf
    steps = 0
    while steps < max_steps:
        g, pi = _lse(st, theta)
        inv = -1.0 / g
        U = (pi[:, None, :] @ K3)[:, 0, :]  # nx x d: gradient of LSE_x
        grad = U.T @ inv - t * cr
        w_x = inv * inv - inv
        H = (KT * (pi * inv[:, None]).ravel()) @ K + (U.T * w_x) @ U
        rhs[:, 0] = -grad
        _, sol, info = _dposv(H, rhs, lower=0, overwrite_a=1, overwrite_b=0)
        steps += 1
        if info != 0:
            break
        newton, tangent = sol[:, 0], sol[:, 1]
        decrement = float(-grad @ newton)
        final = t >= t_final
        if final and decrement <= max(1e-2 * gap_tol * t, 1e-6):
            # Certificate: lambda shifted by -max LSE is dual feasible.
            lower = max(lower, hy + float(cr @ r) - float(g.max()) * mass0)
            q, value, viol = _recover(st, marg, c_full, pi, inv / t, t, feas_tol)
            if q is not None and value < upper:
                upper, q_best, viol_best = value, q, viol
            if upper - lower <= gap_tol or t >= t_stop:
                break
        if decrement <= CENTRED and t < t_stop:
            # Predictor-corrector: the Newton step at t plus the path's move to MU t.
            new_t = min(MU * t, t_stop)
            step = newton + (t * (1.0 - t / new_t)) * tangent
        else:
            new_t = t
            step = newton
        # Step length: at most 90% of every x's slack by the (optimistic) linear model of LSE_x.
        k_step = (K @ step).reshape(nx, ny)
        worst = float((U @ step * inv).max())  # max_x slope_x / slack_x
        s = min(1.0, 0.9 / worst) if worst > 0 else 1.0
        cr_step = float(cr @ step)
        cr_r = float(cr @ r)
        f0 = -new_t * cr_r + float(np.log(inv) @ st.ones_x)
        accepted = False
        while s >= 1e-8:
            cand = theta + s * k_step
            f1 = _barrier(st, cand, new_t, cr_r + s * cr_step)
            if new_t == t:
                ok = f1 <= f0 - 0.25 * s * decrement
            else:
                ok = f1 < f0
            if ok:
                accepted = True
                break
            s *= 0.5
        if not accepted:
            break
        r = r + s * step
        theta = cand
        t = new_t
    return Result(lower, upper, q_best, viol_best, steps)


def solve_pd(st: _Structure, marg: np.ndarray, hy: float, gap_tol: float, feas_tol: float, max_steps: int) -> Result:
    """Primal-dual interior-point method on the dual; returns the best certified bounds found."""
    with np.errstate(all="ignore"):  # a diverging iterate gives inf/NaN: detected, not warned
        return _solve_pd(st, marg, hy, gap_tol, feas_tol, max_steps)


def _solve_pd(st: _Structure, marg: np.ndarray, hy: float, gap_tol: float, feas_tol: float, max_steps: int) -> Result:
    """Mehrotra predictor-corrector on max c.r s.t. g_x(r) = LSE_x(K r) <= 0, with slacks s and multipliers w.

    The KKT system of the dual is c = sum_x w_x grad g_x, g + s = 0, w s = 0 with w, s >= 0; its
    multipliers w(x) are the primal weights q(x), so q = w(x) softmax_y(theta) comes for free. The
    iterates need not be dual feasible (s is a variable, g + s is a residual): the lower bound shifts
    lambda_1 by -max_x g_x, which makes any point feasible. Newton on the perturbed system
    (w s = sigma mu) reduces to one d x d system with the matrix
        H = sum_x w_x hess g_x + U^T diag(w/s) U = A^T diag(v) A,
        A = [K; U], v = [w(x) pi(y|x) per cell; w/s - w per x], U = rows grad g_x,
    factorised once per iteration for both the affine and the corrector right-hand side; then
    z = [s; w] moves by dz = z0 + B dr with B = [-U; (w/s) U]. This takes 5-12 iterations where the
    barrier method takes 25-50 damped Newton steps. Every operation is one numpy call on a
    preallocated buffer where possible, with ``out`` passed positionally where numpy allows it (keyword parsing
    is measurable here): on these sizes the per-call overhead is the cost.
    """
    c_full = marg.ravel()[st.var_pos]
    cr = st.Z.T @ c_full
    mass0 = float(_vadd(marg[: st.group_rows[1]], axis=None))  # sum of group 1's costs (= total mass)
    K, K3, ceil, clip_above = st.K, st.K3, st.ceil, not st.allowed_all
    nx, ny, d = st.nx, st.ny, st.d
    n_cells = nx * ny
    exp, log, maximum, minimum, matmul = np.exp, np.log, np.maximum, np.minimum, np.matmul
    multiply, divide, add, negative, absolute = np.multiply, np.divide, np.add, np.negative, np.abs
    vmin, vmax, dot = _vmin, _vmax, np.dot
    # Buffers. A = [K; U] (the batched matmul writes U in place); B = [-U; (w/s) U]; z = [s; w];
    # R = [Rd; Rp], the residuals, so that one abs and one max give the largest.
    A = np.empty((n_cells + nx, d))
    A[:n_cells] = K
    U = A[n_cells:]
    U3 = U.reshape(nx, 1, d)
    B = np.empty((2 * nx, d))
    B_top, B_bottom = B[:nx], B[nx:]
    v = np.empty(n_cells + nx)
    v_cells = v[:n_cells].reshape(nx, ny)
    v_x = v[n_cells:]
    z = np.empty(2 * nx)
    s, w = z[:nx], z[nx:]
    z0 = np.empty(2 * nx)
    z0_top, z0_bottom = z0[:nx], z0[nx:]
    dz = np.empty(2 * nx)
    dz_top, dz_bottom = dz[:nx], dz[nx:]
    R = np.empty(d + nx)
    Rd, Rp = R[:d], R[d:]
    winv = np.empty(nx)
    winv_col = winv[:, None]
    w_col = w[:, None]
    theta = np.empty((nx, ny))
    theta_flat = theta.reshape(-1)
    e = np.empty((nx, ny))
    pi3 = e.reshape(nx, 1, ny)
    ones_y = st.ones_y

    r = st.r0.copy()
    matmul(K, r, theta_flat)
    # Start: theta <= -log|Y| - 1 on every allowed cell, so s = -g >= 1; w uniform (q(x) sums to 1).
    maximum(theta, THETA_FLOOR, out=e)
    minimum(e, ceil, out=e)
    exp(e, e)
    ssum = e @ ones_y
    g = log(ssum)
    negative(g, s)
    w.fill(1.0 / nx)

    lower, upper, q_best, viol_best = -math.inf, math.inf, None, math.inf
    steps = 0
    while True:
        pi = divide(e, ssum[:, None], e)
        matmul(pi3, K3, U3)
        np.subtract(cr, w @ U, Rd)
        add(g, s, Rp)
        mu = dot(w, s) / nx
        gmax = vmax(g)
        if not (mu < math.inf and gmax < THETA_CEIL):
            break  # diverged (NaN, or theta clipped from above): the caller falls back
        # Estimated gap: w.s plus the lower bound's shift; the dual residual must be small for the
        # projection of w pi onto the marginals to be a small change.
        if nx * mu + max(gmax, 0.0) <= gap_tol and vmax(absolute(Rd)) <= 1e-8:
            # Certificate: lambda_1 shifted by -max g is dual feasible (no theta was clipped from above).
            lower = max(lower, hy + float(cr @ r) - float(gmax) * mass0)
            q, value, viol = _recover_pd(st, marg, c_full, pi, w, feas_tol)
            if q is not None and value < upper:
                upper, q_best, viol_best = value, q, viol
            if upper - lower <= gap_tol:
                break
        if steps >= max_steps:
            break
        steps += 1
        divide(w, s, winv)
        multiply(pi, w_col, v_cells)
        np.subtract(winv, w, v_x)
        H = (A.T * v) @ A
        L, info = _dpotrf(H, lower=0, clean=0, overwrite_a=0)
        if info != 0:
            # Late on the path H is ill-conditioned (w/s spans many orders): a ridge far below the
            # scale of the step keeps the factorisation; the residuals are still driven to zero.
            L, info = _dpotrf(H + np.diag(np.full(d, 1e-13 * float(H.diagonal().max()))), lower=0, clean=0)
            if info != 0:
                break
        negative(U, B_top)
        multiply(winv_col, U, B_bottom)
        negative(Rp, z0_top)  # ds = -Rp - U dr
        multiply(winv, Rp, z0_bottom)
        z0_bottom -= w  # dw = (w/s) Rp - w + (w/s) U dr
        # Affine (predictor) direction: sigma = 0.
        b = Rd - z0_bottom @ U
        dr = _dpotrs(L, b, lower=0)[0]
        add(z0, B @ dr, dz)
        ratio = vmin(dz / z)
        a = 1.0 if ratio >= -1.0 else -1.0 / ratio
        zt = z + a * dz
        mu_aff = dot(zt[:nx], zt[nx:]) / nx
        # Mehrotra's centring target, but not below a fraction of the residuals: if w s reaches
        # zero before the residuals do, the steps shrink to nothing and the iteration stalls.
        residual = vmax(absolute(R))
        target = max((mu_aff / mu) ** 3 * mu, RES_FLOOR * residual)
        # Corrector: the target and the second-order term ds dw of the affine step.
        corr = (target - dz_top * dz_bottom) / s
        dr = _dpotrs(L, b - corr @ U, lower=0)[0]
        add(z0, B @ dr, dz)
        dz_bottom += corr
        ratio = vmin(dz / z)
        # Fraction to the boundary: 0.99, closer to 1 as mu vanishes (a faster end game).
        eta = max(PD_STEP_FRACTION, 1.0 - 10.0 * mu)
        a = 1.0 if ratio >= -eta else -eta / ratio
        # Globalisation: g is convex, so the step overshoots the linear model of g + s; where that
        # error would exceed max(residual, RP_LIMIT), the step is halved (an extra log-sum-exp per try).
        limit = max(residual, RP_LIMIT)
        while True:
            r_new = r + a * dr
            matmul(K, r_new, theta_flat)
            maximum(theta, THETA_FLOOR, out=e)
            if clip_above:
                minimum(e, ceil, out=e)  # -inf on the disallowed cells
            exp(e, e)
            ssum = e @ ones_y
            g = log(ssum)
            if vmax(g + (s + a * dz_top)) <= limit or a < 1e-3:
                break
            a *= 0.5
        r = r_new
        z += a * dz
    return Result(lower, upper, q_best, viol_best, steps)


def _recover_pd(st: _Structure, marg, c_full, pi, w, tol: float):
    """The feasible q nearest to w(x) pi(y|x) (Newton polish onto the marginals, IPF as fallback); its I_q."""
    q = pi * w[:, None]
    total = _vadd(q, axis=None)
    if not total > 0:
        return None, math.inf, math.inf
    q /= total
    q, viol = _polish(st, q, marg, c_full, known_off=True)
    if viol > 1e-14:
        q = _ipf(st, q, marg, tol)
        viol = _violation(st, q, marg)
    if viol > tol:
        return None, math.inf, viol
    return _to_grid(st, q), _mi(st, q), viol


def _mi(st: _Structure, q: np.ndarray) -> float:
    """I_q(X; Y) in nats of q on the active rows (the certificate uses q's own I_q)."""
    value = _vadd(entr(st.ones_x @ q)) + _vadd(entr(q @ st.ones_y)) - _vadd(entr(q), axis=None)
    return max(0.0, float(value))


def _to_grid(st: _Structure, q: np.ndarray) -> np.ndarray:
    if st.nx == st.nx_full:
        return q.reshape(st.shape)
    grid = np.zeros((st.nx_full, st.ny))
    grid[st.rows] = q
    return grid.reshape(st.shape)


def _recover(st: _Structure, marg, c_full, pi, weights, t: float, tol: float):
    """A feasible q = w(x) pi(y|x): NNLS weights on the active x, polished onto the marginals; its I_q (nats)."""
    active = weights > 1.0 / math.sqrt(t)
    if not active.any():
        return None, math.inf, math.inf
    # Column x of A: pi(.|x) placed at the rows (i, a_i(x), .) of the stacked marginal table.
    A = (st.stacked[:, None, :] * pi.T[None, :, :]).reshape(-1, st.nx)
    w = np.zeros(st.nx)
    n_act = int(active.sum())
    w[active] = scipy.optimize.nnls(A[:, active], marg.ravel(), maxiter=50 * n_act)[0]
    q = w[:, None] * pi
    total = float(q.sum())
    if not total > 0:
        return None, math.inf, math.inf
    q, viol = _polish(st, q / total, marg, c_full)
    if viol > 1e-14:
        q = _ipf(st, q, marg, tol)
        viol = _violation(st, q, marg)
    if viol > tol:
        return None, math.inf, viol
    # hy (of p) and H(qy) agree to the feasibility tolerance; the certificate uses q's own I_q.
    return _to_grid(st, q), _mi(st, q), viol


def _polish(
    st: _Structure, q: np.ndarray, marg: np.ndarray, c_full: np.ndarray, iterations: int = 6, known_off: bool = False
) -> tuple[np.ndarray, float]:
    """Newton's method for the marginals: q <- q exp(theta(mu)), the I-projection of q onto them.

    Solves M^T (q exp(K mu)) = c for the gauge-free mu; a step costs one
    d x d Cholesky solve and converges quadratically from the NNLS weights,
    where IPF needs hundreds of sweeps on boundary optima. Zero cells stay
    zero and positive cells positive. Returns the best iterate and its
    violation (IPF is the caller's fallback); it stops at 1e-15, far below
    the 1e-12 the results promise. ``known_off``: q is known to miss the
    marginals (skips measuring it first).
    """
    K, Z = st.K, st.Z
    flat = q.ravel()
    best, best_viol = q, (math.inf if known_off else _violation(st, q, marg))
    for _ in range(iterations):
        if best_viol <= 1e-15:
            break
        residual = Z.T @ (c_full - flat @ st.M)  # the marginals, as dual-variable entries
        H = (st.KT * flat) @ K
        _, step, info = _dposv(H, residual, lower=0, overwrite_a=1, overwrite_b=0)
        if info != 0:
            break
        flat = flat * np.exp(K @ step)
        cand = flat.reshape(q.shape)
        viol = _violation(st, cand, marg)
        if not viol < best_viol:
            break
        best, best_viol = cand, viol
    return best, best_viol


def _violation(st: _Structure, q: np.ndarray, marg: np.ndarray) -> float:
    return float(_vmax(np.abs(st.stacked @ q - marg), axis=None))


def _ipf(st: _Structure, q: np.ndarray, marg: np.ndarray, tol: float, sweeps: int = 1000) -> np.ndarray:
    """Iterative proportional fitting of q (active x rows) onto every group's marginal table."""
    bounds = st.group_rows
    for sweep in range(sweeps):
        for k, (ind, key) in enumerate(zip(st.indicators, st.keys)):
            target = marg[bounds[k] : bounds[k + 1]]
            current = ind @ q
            ratio = np.where(current > 0, target / np.where(current > 0, current, 1.0), 0.0)
            q = q * ratio[key]
        if sweep % 2 == 1 and _violation(st, q, marg) <= 1e-15:
            break
    return q
