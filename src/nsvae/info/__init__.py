"""Exact discrete information theory: entropies, synergy measures and PID.

A joint distribution is a numpy array ``p`` of shape ``(|X1|, ..., |Xn|, |Y|)``:
predictors on the leading axes, the target on the last axis. Every function
validates its input (finite, non-negative, sums to 1 within 1e-9; otherwise
``ValueError``) and returns bits unless ``base=`` says otherwise. Predictors
may be groups of axes: ``predictors=[(0,), (1, 2)]``.

>>> from nsvae import info
>>> p = info.gate("xor")
>>> [round(v, 12) for v in (info.mutual_information(p), info.s_max(p), info.s_vk(p))]
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._distribution import SUM_TOLERANCE, as_pmf, normalize, predictor_groups
from .estimate import CORRECTIONS, MEASURES, Estimate, counts_from_samples, estimate, estimate_from_samples
from .gates import GATES, gate
from .pid import PID, node_label, pid, redundancy_lattice
from .shannon import conditional_entropy, entropy, kl_divergence, mutual_information, specific_information
from .synergy import i_max, i_vk, s_max, s_vk, solve_i_vk, wms
from .vk_solver import VKSolution


def summary(p, predictors: Sequence[int | Iterable[int]] | None = None, *, base: float | str = 2) -> dict:
    """Every measure of ``p`` at once (what ``nsvae info`` prints), as plain Python values.

    Keys: ``mutual_information``, ``single`` (I(A_i; Y) per predictor),
    ``i_max``, ``s_max``, ``wms``, ``i_vk``, ``s_vk``, ``i_vk_certificate``
    (lower/upper bound and gap), ``pid`` (atoms by node label; only for 2-4
    predictors), ``predictors`` and ``base``.
    """
    arr = as_pmf(p, min_ndim=2)
    groups = predictor_groups(arr.ndim, predictors)
    whole = mutual_information(arr, groups, base=base)
    vk = solve_i_vk(arr, groups, base=base)
    result = {
        "predictors": [list(g) for g in groups],
        "base": base,
        "mutual_information": whole,
        "single": [mutual_information(arr, [g], base=base) for g in groups],
        "i_max": i_max(arr, groups, base=base),
        "s_max": s_max(arr, groups, base=base),
        "wms": wms(arr, groups, base=base),
        "i_vk": vk.value,
        "s_vk": max(0.0, whole - vk.value),
        "i_vk_certificate": {
            "lower_bound": vk.lower_bound,
            "upper_bound": vk.upper_bound,
            "gap": vk.gap,
            "max_constraint_violation": vk.max_constraint_violation,
        },
    }
    if 2 <= len(groups) <= 4:
        decomposition = pid(arr, groups, base=base)
        result["pid"] = dict(decomposition.atoms)
    return result


__all__ = [
    "CORRECTIONS",
    "GATES",
    "MEASURES",
    "PID",
    "SUM_TOLERANCE",
    "Estimate",
    "VKSolution",
    "as_pmf",
    "conditional_entropy",
    "counts_from_samples",
    "entropy",
    "estimate",
    "estimate_from_samples",
    "gate",
    "i_max",
    "i_vk",
    "kl_divergence",
    "mutual_information",
    "node_label",
    "normalize",
    "pid",
    "redundancy_lattice",
    "s_max",
    "s_vk",
    "solve_i_vk",
    "specific_information",
    "summary",
    "wms",
]
