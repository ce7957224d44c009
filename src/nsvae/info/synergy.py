"""Synergy measures of a set of predictors about a target.

With predictors A_1..A_n (groups of axes; see :mod:`nsvae.info._distribution`)
and the whole X = A_1 u ... u A_n:

- I_max (Williams & Beer 2010, arXiv:1004.2515; the union information of
  Griffith & Koch 2014):  I_max = sum_y p(y) max_i I(A_i; Y=y),
  and S_max = I(X; Y) - I_max.  0 <= S_max <= I(X; Y).
- WMS, whole minus sum (Gat & Tishby 1999; Griffith & Koch 2014):
  WMS = I(X; Y) - sum_i I(A_i; Y).  May be negative (redundancy).
- I_VK, whole minus union (Griffith & Koch 2014, "Quantifying synergistic
  mutual information", in *Guided Self-Organization: Inception*):
  I_VK = min over q with q(A_i, Y) = p(A_i, Y) of I_q(X; Y), and
  S_VK = I(X; Y) - I_VK. Solved with a certificate by
  :mod:`nsvae.info.vk_solver`.

For disjoint groups, max(0, WMS) <= S_VK <= S_max <= I(X; Y).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.special import entr

from ._distribution import SUM_TOLERANCE, as_pmf, group_target_table, log_base, marginal, predictor_groups, union_axes
from .shannon import _mi_table_nats, _mi_tables_nats, _specific_information_nats
from .vk_solver import DEFAULT_GAP_NATS, VKSolution, solve_vk_nats

Predictors = Sequence[int | Iterable[int]] | None


def _prepare(p, predictors: Predictors):
    arr = as_pmf(p, min_ndim=2)
    groups = predictor_groups(arr.ndim, predictors)
    return arr, groups


def _i_max_nats(arr: np.ndarray, groups) -> float:
    py = arr.reshape(-1, arr.shape[-1]).sum(axis=0)
    spec = np.stack([_specific_information_nats(group_target_table(arr, g)) for g in groups])
    ok = py > 0
    return float(np.sum(py[ok] * spec[:, ok].max(axis=0)))


def i_max(p, predictors: Predictors = None, *, base: float | str = 2) -> float:
    """Union information I_max = sum_y p(y) max_i I(A_i; Y=y) (Williams & Beer 2010)."""
    arr, groups = _prepare(p, predictors)
    return _i_max_nats(arr, groups) / log_base(base)


def _whole_nats(arr: np.ndarray, groups) -> float:
    return _mi_table_nats(group_target_table(arr, union_axes(groups)))


def s_max(p, predictors: Predictors = None, *, base: float | str = 2) -> float:
    """Synergy S_max = I(X; Y) - I_max: the whole beyond the best part per outcome."""
    arr, groups = _prepare(p, predictors)
    return max(0.0, _whole_nats(arr, groups) - _i_max_nats(arr, groups)) / log_base(base)


def wms(p, predictors: Predictors = None, *, base: float | str = 2) -> float:
    """Whole-minus-sum synergy WMS = I(X; Y) - sum_i I(A_i; Y); negative under redundancy."""
    fast = _wms_fast_nats(p, predictors)
    if fast is not None:
        return fast / log_base(base)
    arr, groups = _prepare(p, predictors)
    return _wms_nats(arr, groups) / log_base(base)


#: The lean WMS path is used while its weight matrices stay this small (entries).
_WMS_PLAN_MAX_ENTRIES = 1 << 16


@functools.lru_cache(maxsize=128)
def _wms_plan(shape: tuple[int, ...], groups: tuple[tuple[int, ...], ...]):
    """Precomputed linear maps for WMS on tables of one shape (see ``_wms_fast_nats``).

    With P the table as an (x, y) matrix and J = [I | 1] (so P @ J = [P | p(x)]):

    - ``G`` (rows: the values of each group A_i, then one row of ones) maps
      P @ J to [p(a_i, y) | p(a_i)] per group and [p(y) | total] last;
    - ``w_joint`` and ``w_groups`` weigh entr() of P @ J and of G @ P @ J so
      that their weighted sum is WMS in nats:
      WMS = H(X) + H(Y) - H(X,Y) - sum_i [H(A_i) + H(Y) - H(A_i,Y)].

    None when the groups do not cover every predictor axis or the maps
    would be large (the general path handles those).
    """
    n_lead = len(shape) - 1
    if {ax for g in groups for ax in g} != set(range(n_lead)):
        return None
    nx, ny = math.prod(shape[:-1]), shape[-1]
    sizes = [math.prod(shape[a] for a in g) for g in groups]
    n_rows = sum(sizes) + 1
    if n_rows * nx + nx * (ny + 1) > _WMS_PLAN_MAX_ENTRIES:
        return None
    coords = np.indices(shape[:-1]).reshape(n_lead, nx)
    G = np.zeros((n_rows, nx))
    offset = 0
    for g, size in zip(groups, sizes):
        key = np.ravel_multi_index(tuple(coords[a] for a in g), tuple(shape[a] for a in g)) if g else 0
        G[offset + key, np.arange(nx)] = 1.0
        offset += size
    G[-1] = 1.0
    J = np.hstack([np.eye(ny), np.ones((ny, 1))])
    w_joint = np.zeros((nx, ny + 1))
    w_joint[:, :ny] = -1.0  # -H(X, Y)
    w_joint[:, ny] = 1.0  # +H(X)
    w_groups = np.zeros((n_rows, ny + 1))
    w_groups[:-1, :ny] = 1.0  # +H(A_i, Y)
    w_groups[:-1, ny] = -1.0  # -H(A_i)
    w_groups[-1, :ny] = 1.0 - len(groups)  # H(Y) - n H(Y); the total (last cell) has weight 0
    for a in (G, J, w_joint, w_groups):
        a.flags.writeable = False
    return nx, ny, J, G, w_joint, w_groups


def _wms_fast_nats(p, predictors: Predictors) -> float | None:
    """WMS in nats with a handful of numpy calls, or None to take the general path.

    On small tables the cost of WMS is numpy's per-call overhead, so the
    marginals come from two small matrix products with cached maps and all
    entropies from one ``entr`` call each on two arrays. Validation is folded
    in: ``entr`` is -inf for negative and infinite entries and NaN for NaN, and
    every joint cell carries weight -1, so an invalid table gives a
    non-finite result; the total mass is the last cell of the second product.
    Anything unusual (and every invalid input, so that the error message is
    the general one) returns None.
    """
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim < 2 or arr.size == 0:
        return None
    if predictors is None:
        groups = tuple((i,) for i in range(arr.ndim - 1))
    else:
        try:
            groups = tuple(predictor_groups(arr.ndim, predictors))
        except ValueError:
            return None
    plan = _wms_plan(arr.shape, groups)
    if plan is None:
        return None
    nx, ny, J, G, w_joint, w_groups = plan
    with np.errstate(all="ignore"):  # invalid input must reach the general path's message, not warn here
        joint = arr.reshape(nx, ny) @ J
        grouped = G @ joint
        value = float(np.vdot(w_joint, entr(joint))) + float(np.vdot(w_groups, entr(grouped)))
    if not math.isfinite(value) or abs(float(grouped[-1, -1]) - 1.0) > SUM_TOLERANCE - 1e-12:
        return None  # invalid or borderline: the general path validates (and raises)
    return value


def _wms_nats(arr: np.ndarray, groups) -> float:
    tables = [group_target_table(arr, union_axes(groups))] + [group_target_table(arr, g) for g in groups]
    mis = _mi_tables_nats(tables)
    return float(mis[0] - mis[1:].sum())


def solve_i_vk(
    p, predictors: Predictors = None, *, base: float | str = 2, gap_tol: float = DEFAULT_GAP_NATS
) -> VKSolution:
    """I_VK with its certificate: the optimal q, a primal value and a dual lower bound.

    ``gap_tol`` is the target duality gap in nats (default 1e-10, far inside
    the 1e-7 bit accuracy the library promises). See :class:`VKSolution`.
    """
    arr, groups = _prepare(p, predictors)
    return _solve_i_vk_nats(arr, groups, gap_tol).scaled(log_base(base))


def _solve_i_vk_nats(arr: np.ndarray, groups, gap_tol: float = DEFAULT_GAP_NATS) -> VKSolution:
    """The I_VK program on the joint of the groups' axes and the target (nats)."""
    axes = union_axes(groups)
    joint = marginal(arr, axes + (arr.ndim - 1,))
    # Re-index the groups onto the axes of the reduced joint.
    position = {ax: k for k, ax in enumerate(axes)}
    local = [tuple(position[a] for a in g) for g in groups]
    return solve_vk_nats(joint, local, gap_tol=gap_tol)


def i_vk(p, predictors: Predictors = None, *, base: float | str = 2) -> float:
    """Union information I_VK = min I_q(X; Y) s.t. q(A_i, Y) = p(A_i, Y) (Griffith & Koch 2014)."""
    return solve_i_vk(p, predictors, base=base).value


def s_vk(p, predictors: Predictors = None, *, base: float | str = 2) -> float:
    """Whole-minus-union synergy S_VK = I(X; Y) - I_VK."""
    arr, groups = _prepare(p, predictors)
    return max(0.0, _whole_nats(arr, groups) - _solve_i_vk_nats(arr, groups).value) / log_base(base)
