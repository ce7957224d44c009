"""Shannon quantities of explicit joint distributions.

All functions take a joint pmf (target on the last axis, see
:mod:`nsvae.info._distribution`), validate it, and return values in the unit
given by ``base`` (default 2: bits).

References: Cover & Thomas, *Elements of Information Theory* (2nd ed., 2006),
ch. 2; specific information: DeWeese & Meister (1999), Williams & Beer (2010),
"Nonnegative decomposition of multivariate information", arXiv:1004.2515.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy.special import entr

from ._distribution import (
    as_pmf,
    group_target_table,
    log_base,
    marginal,
    predictor_groups,
    union_axes,
    xlogy_ratio,
)


def _entropy_nats(p: np.ndarray) -> float:
    return float(entr(p).sum())  # entr(x) = -x log x, with entr(0) = 0


def entropy(p, *, base: float | str = 2) -> float:
    """H(p) = -sum p log p of the whole table (all axes jointly)."""
    arr = as_pmf(p)
    return _entropy_nats(arr) / log_base(base)


def conditional_entropy(p, given: Iterable[int] | None = None, *, base: float | str = 2) -> float:
    """H(rest | given) = H(all axes) - H(given axes).

    ``given`` defaults to every predictor axis, which gives H(Y | X1..Xn).
    """
    arr = as_pmf(p, min_ndim=2 if given is None else 1)
    given_axes = tuple(range(arr.ndim - 1)) if given is None else tuple(sorted(set(int(a) for a in given)))
    for ax in given_axes:
        if not 0 <= ax < arr.ndim:
            raise ValueError(f"axis {ax} is out of range for a table of rank {arr.ndim}")
    h_joint = _entropy_nats(arr)
    h_given = _entropy_nats(marginal(arr, given_axes)) if given_axes else 0.0
    return (h_joint - h_given) / log_base(base)


def _mi_tables_nats(tables: list[np.ndarray]) -> np.ndarray:
    """I(A;Y) = H(A) + H(Y) - H(A,Y) in nats for each 2-D joint table (rows: A, columns: Y).

    All entropies go through one ``entr`` call and one segmented sum: on
    small tables the cost is numpy's per-call overhead, not arithmetic.
    """
    pieces = []
    for t in tables:
        pieces += [t.ravel(), np.add.reduce(t, axis=1), np.add.reduce(t, axis=0)]
    starts = np.cumsum([0] + [x.size for x in pieces[:-1]])
    h = np.add.reduceat(entr(np.concatenate(pieces)), starts).reshape(-1, 3)
    return np.maximum(h[:, 1] + h[:, 2] - h[:, 0], 0.0)


def _mi_table_nats(table: np.ndarray) -> float:
    """I(A;Y) in nats of one 2-D joint table (rows: A, columns: Y)."""
    return float(_mi_tables_nats([table])[0])


def mutual_information(p, predictors: Sequence[int | Iterable[int]] | None = None, *, base: float | str = 2) -> float:
    """I(X; Y) between the predictors jointly and the target (last axis).

    ``predictors`` (default: all leading axes) selects the predictor axes;
    groups are merged, so ``predictors=[0]`` gives I(X1; Y).
    """
    arr = as_pmf(p, min_ndim=2)
    groups = predictor_groups(arr.ndim, predictors)
    return _mi_table_nats(group_target_table(arr, union_axes(groups))) / log_base(base)


def kl_divergence(p, q, *, base: float | str = 2) -> float:
    """D(p || q) = sum p log(p / q); ``inf`` when p puts mass where q has none."""
    pa = as_pmf(p, name="p")
    qa = as_pmf(q, name="q")
    if pa.shape != qa.shape:
        raise ValueError(f"p and q must have the same shape; got {pa.shape} and {qa.shape}")
    if np.any((pa > 0) & (qa == 0)):
        return float("inf")
    return max(0.0, xlogy_ratio(pa, qa, pa)) / log_base(base)


def _specific_information_nats(table: np.ndarray) -> np.ndarray:
    """I(A; Y=y) = D(p(A|y) || p(A)) in nats for each column y of a 2-D joint table.

    NaN where p(y) = 0 (the conditional p(A|y) is undefined there).
    """
    pa = table.sum(axis=1)
    py = table.sum(axis=0)
    out = np.full(table.shape[1], np.nan)
    ok = py > 0
    cond = table[:, ok] / py[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            cond > 0, cond * (np.log(np.where(cond > 0, cond, 1.0)) - np.log(np.where(cond > 0, pa[:, None], 1.0))), 0.0
        )
    out[ok] = np.maximum(terms.sum(axis=0), 0.0)
    return out


def specific_information(p, i: int | Iterable[int], *, base: float | str = 2) -> np.ndarray:
    """Specific information I(A_i; Y=y) = D(p(A_i | Y=y) || p(A_i)) for every y.

    ``i`` is a predictor axis or a group of axes. Entries for outcomes with
    p(y) = 0 are NaN. ``sum_y p(y) I(A_i; Y=y) = I(A_i; Y)``.
    """
    arr = as_pmf(p, min_ndim=2)
    (group,) = predictor_groups(arr.ndim, [i])
    return _specific_information_nats(group_target_table(arr, group)) / log_base(base)
