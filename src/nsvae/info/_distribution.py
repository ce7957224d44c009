"""Validation of joint distributions and bookkeeping of predictor groups.

A joint distribution is an array ``p`` of shape ``(|X1|, ..., |Xn|, |Y|)``:
predictors on the leading axes, the target on the last axis. A *predictor*
(the set ``A_i`` of the seed talk) is a tuple of leading axes; by default
each leading axis is a predictor of its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

#: How far from 1 the total mass of a distribution may be.
SUM_TOLERANCE = 1e-9
#: The most cells a joint table may have: 2**24 (16.8 million) is 128 MiB per float64 copy, and the measures,
#: the estimators' bootstrap and the S_VK solver make several copies and cost more than linearly in it. A table
#: of many predictors grows as the product of their symbol counts (2 rows of 27 binary predictors: 2**28 cells),
#: so its size is checked before it is allocated (:func:`check_table_cells`); ``max_cells`` raises the limit.
MAX_TABLE_CELLS = 2**24


def check_table_cells(shape: Sequence[int], max_cells: int | None = None, what: str = "the joint table") -> None:
    """Raise ValueError before a table of ``shape`` is built when it has more than ``max_cells`` cells (default
    :data:`MAX_TABLE_CELLS`), naming its axes and how to raise the limit."""
    limit = MAX_TABLE_CELLS if max_cells is None else int(max_cells)
    cells = math.prod(int(n) for n in shape)  # Python integers: no overflow however many axes
    if cells > limit:
        axes = " x ".join(str(int(n)) for n in shape)
        raise ValueError(
            f"{what} would have {cells:,} cells ({axes} symbols per axis), more than the limit of {limit:,} "
            f"(8 bytes each per copy): merge symbols or predictors, or raise the limit (--max-cells N)"
        )


Group = tuple[int, ...]


def log_base(base: float | str) -> float:
    """Natural log of the unit's base: 2 (bits), ``e``/``"e"`` (nats), 10 (hartleys)..."""
    if isinstance(base, str):
        if base.lower() in ("e", "nat", "nats"):
            return 1.0
        if base.lower() in ("bit", "bits"):
            return math.log(2.0)
        try:
            base = float(base)
        except ValueError:
            raise ValueError(f"base must be a number > 0 other than 1, or 'e'; got {base!r}") from None
    base = float(base)
    if not math.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(f"base must be a number > 0 other than 1, or 'e'; got {base!r}")
    return math.log(base)


def as_pmf(p, *, name: str = "p", min_ndim: int = 1, normalize: bool = False) -> np.ndarray:
    """Return ``p`` as a float64 array after checking it is a probability table.

    Raises ``ValueError`` naming the problem (rank, empty axes, NaN/inf,
    negative entries, total mass) and, for the total mass, the fix.
    With ``normalize=True`` a non-negative table of positive total mass is
    rescaled to sum to one instead of being rejected.
    """
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    if arr.ndim < min_ndim:
        need = "predictor axes followed by a target axis" if min_ndim >= 2 else "at least one axis"
        raise ValueError(f"{name} has rank {arr.ndim} but needs rank >= {min_ndim} ({need}); got shape {arr.shape}")
    if arr.ndim >= 1 and arr.shape[-1] == 0:
        raise ValueError(f"{name} has an empty target (last) axis: shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} has an empty axis: shape {arr.shape}")
    # Fast path: one sum and one min decide validity; the slow searches for
    # the offending index run only when something is wrong.
    total = float(arr.sum())
    if not math.isfinite(total):
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad) == 0:
            raise ValueError(f"{name} has entries so large that their sum overflows")
        raise ValueError(f"{name} contains NaN or infinite entries (first at index {tuple(int(i) for i in bad[0])})")
    if float(arr.min()) < 0:
        bad = np.argwhere(arr < 0)[0]
        raise ValueError(
            f"{name} contains negative entries (first at index {tuple(int(i) for i in bad)}: "
            f"{arr[tuple(bad)]:g}); probabilities must be >= 0"
        )
    if normalize:
        if total <= 0:
            raise ValueError(f"{name} has zero total mass and cannot be normalised")
        return arr / total
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise ValueError(
            f"{name} sums to {total:.12g}, not 1 (tolerance {SUM_TOLERANCE:g}); "
            "normalise it first (nsvae.info.normalize(p), or --normalize on the command line)"
        )
    return arr


def normalize(p) -> np.ndarray:
    """Rescale a non-negative table (counts, unnormalised weights) to sum to one."""
    return as_pmf(p, name="table", normalize=True)


def predictor_groups(ndim: int, predictors: Sequence[int | Iterable[int]] | None) -> list[Group]:
    """Normalise ``predictors`` into a list of sorted axis tuples.

    ``None`` means one predictor per leading axis. An entry may be an int
    (one axis) or an iterable of ints (a group of axes, jointly one
    predictor). Groups must be non-empty, use leading axes only, and be
    distinct; they may overlap.
    """
    n_leading = ndim - 1
    if predictors is None:
        if n_leading < 1:
            raise ValueError("the distribution has no predictor axes (it needs rank >= 2)")
        return [(i,) for i in range(n_leading)]
    groups: list[Group] = []
    for entry in predictors:
        axes = (entry,) if isinstance(entry, (int, np.integer)) else tuple(entry)
        if not axes:
            raise ValueError("a predictor group is empty; every group needs at least one axis")
        for ax in axes:
            if not isinstance(ax, (int, np.integer)) or not 0 <= int(ax) < n_leading:
                raise ValueError(
                    f"predictor axis {ax!r} is not a predictor axis; valid axes are 0..{n_leading - 1} "
                    "(the last axis is the target)"
                )
        if len(set(axes)) != len(axes):
            raise ValueError(f"predictor group {axes} repeats an axis")
        group = tuple(sorted(int(a) for a in axes))
        if group in groups:
            raise ValueError(f"predictor group {group} is given twice")
        groups.append(group)
    if not groups:
        raise ValueError("predictors is empty; give at least one predictor")
    return groups


def union_axes(groups: Sequence[Group]) -> Group:
    """All predictor axes used by any group, ascending."""
    return tuple(sorted({ax for g in groups for ax in g}))


def marginal(p: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """Marginal of ``p`` over the axes ``keep`` (kept in ascending order)."""
    kept = set(keep)
    drop = tuple(ax for ax in range(p.ndim) if ax not in kept)
    return np.add.reduce(p, axis=drop) if drop else p


def group_target_table(p: np.ndarray, group: Sequence[int]) -> np.ndarray:
    """The joint of predictor group ``group`` and the target as a 2-D table ``(|A|, |Y|)``."""
    m = marginal(p, tuple(group) + (p.ndim - 1,))
    return m.reshape(-1, p.shape[-1])


def xlogy_ratio(num: np.ndarray, den: np.ndarray, weight: np.ndarray) -> float:
    """sum(weight * log(num / den)) over cells with weight > 0, in nats."""
    mask = weight > 0
    return float(np.sum(weight[mask] * (np.log(num[mask]) - np.log(den[mask]))))
