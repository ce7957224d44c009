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

from collections.abc import Iterable, Sequence

import numpy as np

from ._distribution import as_pmf, group_target_table, log_base, marginal, predictor_groups, union_axes
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
    arr, groups = _prepare(p, predictors)
    return _wms_nats(arr, groups) / log_base(base)


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
