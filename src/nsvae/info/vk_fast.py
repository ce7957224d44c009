"""A lean solver for small I_VK programs (the fast path of :mod:`nsvae.info.vk_solver`).

Same dual, barrier and certificate as the reference solver
(``vk_solver._solve``; the mathematics is in ``docs/information.md``), but
organised for tables of a few dozen to a few hundred cells, where numpy's
per-call overhead, not arithmetic, is the cost:

- **Dense, cached structure.** The map from the gauge-free coordinates r of
  lambda to theta is one dense matrix ``K`` (cells x d), built once per
  (shape, groups, allowed cells) and cached; so are the group indicator
  matrices used for marginals, IPF and the primal recovery.
- **Few numpy calls per Newton step.** theta lives on the (x, y) grid with
  disallowed cells fixed at -inf; every iterate is strictly dual feasible, so
  theta < 0 and log-sum-exp needs no max-shift (theta is clipped at -600 so
  that no subnormal weight reaches BLAS). One Hessian serves both the
  corrector and the predictor (two right-hand sides of one Cholesky solve).
- **Predictor-corrector.** Once the point is centred (Newton decrement
  <= 1e-2), the same iteration moves t to mu t with the combined step
  Newton(t) + t (1 - 1/mu) H^-1 c (the central path modelled as
  lambda* + a/t), so the Hessian of the last centring step also serves the
  predictor. (Smaller, adaptive growth factors were tried: they took more
  Newton steps in total, not fewer.)

The result carries the same certificate: an explicit feasible q (upper bound)
and an explicitly feasible dual point (lower bound). The caller falls back to
the reference solver whenever this one does not certify the requested gap.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.optimize
from scipy.linalg.lapack import dposv as _dposv
from scipy.special import entr

#: Use the lean path while cells x (dual variables) is at most this (4x4x4: 2048, 3x3x3x3: 2187).
#: Larger programs (e.g. 6x6x6: 15552, 7x7x7) were measured slower here than with the reference solver.
MAX_K_ENTRIES = 4096
#: theta is clipped here before exp (e^-600 ~ 1e-261 is a normal float).
THETA_FLOOR = -600.0
#: Barrier parameter at the start and its growth factor per stage (as the reference solver).
T0 = 100.0
MU = 1000.0
#: Newton decrement below which a point counts as centred (and t grows).
CENTRED = 1e-2


class _Structure:
    """Everything about one I_VK program that depends only on the shape, groups and allowed cells."""

    def __init__(self, shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...], allowed: np.ndarray):
        n_lead = len(shape) - 1
        ny = shape[-1]
        nx_full = math.prod(shape[:-1])
        allowed = allowed.reshape(nx_full, ny)
        rows = np.flatnonzero(allowed.any(axis=1))  # x with at least one allowed y
        self.shape, self.ny, self.rows, self.nx = shape, ny, rows, len(rows)
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
        frozen = (self.off, self.M, self.K, self.KT, self.K3, self.floor, self.r0, self.Z, self.stacked)
        for a in (*frozen, self.full_stacked):
            a.flags.writeable = False

    @property
    def n_cells(self) -> int:
        return self.nx * self.ny


@functools.lru_cache(maxsize=64)
def _structure(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...], allowed_bytes: bytes) -> _Structure:
    allowed = np.frombuffer(allowed_bytes, dtype=bool).reshape(shape)
    return _Structure(shape, groups, allowed)


def structure_for(p: np.ndarray, groups) -> tuple[_Structure, np.ndarray] | None:
    """The cached structure of the program for ``p`` and its stacked marginal table, or None if too large."""
    shape = p.shape
    ny = shape[-1]
    nx_full = math.prod(shape[:-1])
    key_groups = tuple(tuple(g) for g in groups)
    # Allowed cells: p(a_i(x), y) > 0 for every group. Computed with the full
    # indicator matrices of a cached structure when possible, else directly.
    P = p.reshape(nx_full, ny)
    allowed = np.ones((nx_full, ny), dtype=bool)
    for g in key_groups:
        drop = tuple(ax for ax in range(p.ndim - 1) if ax not in g)
        m = p.sum(axis=drop, keepdims=True) if drop else p
        allowed &= np.broadcast_to(m > 0, shape).reshape(nx_full, ny)
    if not allowed.any():
        return None
    n_cells = int(np.count_nonzero(allowed.any(axis=1))) * ny
    n_vars_bound = sum(math.prod(shape[a] for a in g) for g in key_groups) * ny
    if n_cells * n_vars_bound > MAX_K_ENTRIES:
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
    q = _polish(st, q / total, marg, c_full)
    viol = _violation(st, q, marg)
    if viol > 1e-14:
        q = _ipf(st, q, marg, tol)
        viol = _violation(st, q, marg)
    if viol > tol:
        return None, math.inf, viol
    qy = st.ones_x @ q
    qx = q @ st.ones_y
    value = max(0.0, float(entr(qy).sum()) + float(entr(qx).sum()) - float(entr(q).sum()))
    # hy (of p) and H(qy) agree to the feasibility tolerance; the certificate uses q's own I_q.
    grid = np.zeros((math.prod(st.shape[:-1]), st.ny))
    grid[st.rows] = q
    return grid.reshape(st.shape), value, viol


def _polish(st: _Structure, q: np.ndarray, marg: np.ndarray, c_full: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Newton's method for the marginals: q <- q exp(theta(mu)), the I-projection of q onto them.

    Solves M^T (q exp(K mu)) = c for the gauge-free mu; a step costs one
    d x d Cholesky solve and converges quadratically from the NNLS weights,
    where IPF needs hundreds of sweeps on boundary optima. Zero cells stay
    zero and positive cells positive. Returns the best iterate (IPF is the
    caller's fallback).
    """
    K, Z = st.K, st.Z
    flat = q.ravel()
    best, best_viol = q, _violation(st, q, marg)
    for _ in range(iterations):
        if best_viol <= 1e-16:
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
    return best


def _violation(st: _Structure, q: np.ndarray, marg: np.ndarray) -> float:
    return float(np.abs(st.stacked @ q - marg).max())


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
