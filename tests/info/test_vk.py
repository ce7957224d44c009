"""The I_VK convex program: certificates, and a cross-check with an independent solver."""

import math
import warnings

import numpy as np
import pytest

from nsvae import info
from tests.conftest import random_pmf

BIT = math.log(2)


def _marginal_violation(q, p, groups):
    worst = 0.0
    for g in groups:
        drop_q = tuple(a for a in range(q.ndim - 1) if a not in g)
        worst = max(worst, float(np.abs(q.sum(axis=drop_q) - p.sum(axis=drop_q)).max()))
    return worst


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 2), (4, 4, 4), (2, 3, 2, 3), (3, 3, 3, 3)])
def test_certificate_is_tight_and_feasible(rng, shape):
    for _ in range(3):
        p = random_pmf(rng, shape)
        groups = [(i,) for i in range(len(shape) - 1)]
        sol = info.solve_i_vk(p)
        assert sol.lower_bound <= sol.value + 1e-15
        assert sol.gap <= 1e-9  # bits; the promise is 1e-7
        assert sol.upper_bound == sol.value
        q = sol.distribution
        assert q.shape == p.shape
        assert np.all(q >= 0) and q.sum() == pytest.approx(1.0, abs=1e-12)
        assert _marginal_violation(q, p, groups) <= 1e-12
        assert sol.max_constraint_violation <= 1e-12
        # The value is I_q(X;Y) of the returned distribution.
        assert info.mutual_information(q) == pytest.approx(sol.value, abs=1e-12)
        # I_VK lies between max_i I(X_i;Y) and I(X;Y).
        singles = [info.mutual_information(p, [g]) for g in groups]
        assert max(singles) - 1e-12 <= sol.value <= info.mutual_information(p) + 1e-12


def test_certificate_with_zeros(rng):
    for _ in range(5):
        p = random_pmf(rng, (3, 3, 3), zero_fraction=0.4)
        sol = info.solve_i_vk(p)
        assert sol.gap <= 1e-9
        assert sol.max_constraint_violation <= 1e-12


def test_units_scale():
    p = info.gate("and")
    assert info.i_vk(p, base="e") == pytest.approx(info.i_vk(p) * BIT, abs=1e-12)


def test_single_group_and_constant_target_are_closed_form(rng):
    p = random_pmf(rng, (3, 3, 2))
    sol = info.solve_i_vk(p, [(0, 1)])
    assert sol.newton_steps == 0 and sol.gap == 0
    assert sol.value == pytest.approx(info.mutual_information(p))
    const = np.zeros((2, 2, 3))
    const[:, :, 1] = 0.25
    assert info.i_vk(const) == 0.0 and info.s_vk(const) == 0.0


def _reference_i_vk_cvxpy(p, groups):
    """I_VK from a generic conic solver (Clarabel through cvxpy), in bits."""
    cp = pytest.importorskip("cvxpy")
    shape = p.shape
    nx = int(np.prod(shape[:-1]))
    ny = shape[-1]
    q = cp.Variable((nx, ny), nonneg=True)
    qx = cp.sum(q, axis=1, keepdims=True)
    constraints = []
    grid = np.indices(shape[:-1]).reshape(len(shape) - 1, -1)
    for g in groups:
        sub_shape = tuple(shape[a] for a in g)
        key = np.ravel_multi_index(tuple(grid[a] for a in g), sub_shape)
        agg = np.zeros((int(np.prod(sub_shape)), nx))
        agg[key, np.arange(nx)] = 1.0
        drop = tuple(a for a in range(len(shape) - 1) if a not in g)
        target = p.sum(axis=drop).reshape(-1, ny)
        constraints.append(agg @ q == target)
    # f(q) = sum q log(q / q_x) = sum rel_entr(q, q_x); I = H(Y) + f.
    objective = cp.Minimize(cp.sum(cp.rel_entr(q, qx @ np.ones((1, ny)))))
    problem = cp.Problem(objective, constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    py = p.reshape(-1, ny).sum(axis=0)
    hy = -float(np.sum(py[py > 0] * np.log(py[py > 0])))
    return (hy + problem.value) / BIT


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 3, 3), (2, 2, 2, 2), (3, 2, 2, 3)])
def test_agrees_with_a_generic_conic_solver(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        p = random_pmf(rng, shape)
        groups = [(i,) for i in range(len(shape) - 1)]
        sol = info.solve_i_vk(p)
        ref = _reference_i_vk_cvxpy(p, groups)
        # The reference must respect our certified lower bound (up to its own tolerance),
        # and our value must be within the reference's accuracy of it.
        assert ref >= sol.lower_bound - 1e-7
        assert sol.value == pytest.approx(ref, abs=1e-6)


def test_overlapping_groups_are_supported(rng):
    p = random_pmf(rng, (2, 2, 2, 2))
    sol = info.solve_i_vk(p, [(0, 1), (1, 2)])
    assert sol.gap <= 1e-9
    ref = _reference_i_vk_cvxpy(p, [(0, 1), (1, 2)])
    assert sol.value == pytest.approx(ref, abs=1e-6)


# A very sparse table (13 non-zero cells of 96) found by a stress run: the barrier path
# converges slowly here and no exactly feasible candidate beats p itself. The solver
# must say so (SolverAccuracyWarning) and still return a value between its bounds
# that is close to them, not the loose bound I_p(X; Y) (0.26 bits off).
SPARSE_CELLS = {
    (0, 0, 0, 3): 0.008657626609645032,
    (0, 1, 0, 1): 0.17642862901173947,
    (0, 2, 0, 1): 0.022739996845213575,
    (0, 2, 1, 0): 0.13195775194299508,
    (0, 3, 1, 0): 0.1212200701771504,
    (1, 0, 0, 0): 7.125315126951291e-05,
    (1, 0, 0, 1): 0.01844434664154599,
    (1, 0, 0, 2): 0.0993676220300093,
    (1, 0, 1, 2): 0.11910688037906075,
    (2, 0, 0, 3): 0.09586012688351249,
    (2, 1, 1, 2): 0.1161372804400399,
    (2, 2, 1, 2): 0.009147147952056907,
    (2, 2, 1, 3): 0.08086126793576166,
}


def test_sparse_table_is_reported_honestly():
    from nsvae.errors import SolverAccuracyWarning

    p = np.zeros((3, 4, 2, 4))
    for cell, value in SPARSE_CELLS.items():
        p[cell] = value
    p /= p.sum()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sol = info.solve_i_vk(p)
    gap_ok = sol.gap <= 1e-7
    assert gap_ok or any(issubclass(w.category, SolverAccuracyWarning) for w in caught)
    assert sol.lower_bound <= sol.value
    assert sol.value - sol.lower_bound <= 1e-6
    assert sol.max_constraint_violation <= 1e-6
    assert info.mutual_information(p) - sol.value > 0.25
