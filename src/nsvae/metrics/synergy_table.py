"""The table estimator of the synergy metric (:mod:`nsvae.metrics.synergy`): the model's exact class posterior over
the whole dataset (every image's posterior known, a :class:`~nsvae.metrics.utils.CodeTable`).

Single-latent terms and specific informations are integrals over a fine grid (:mod:`.mixture_grid`); the joint term
averages -log q~(v | z) over sampled points, with q~ = (1 - :data:`PRIOR_MIX`) q + :data:`PRIOR_MIX` p(v) against
log 0. UniBound (:mod:`.pid_bounds`) uses the same pieces.
"""

from __future__ import annotations

import numpy as np

from .mixture_grid import class_densities_on_grid, specific_information_on_grid
from .utils import MetricInputError

#: Weight of the prior p(v) mixed into the table's class posterior, against log 0 (costs at most 0.001 nats).
PRIOR_MIX = 1e-3


def table_single_latent_information(
    table_mean: np.ndarray, table_logvar: np.ndarray, table_classes: list[np.ndarray], num_classes: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """Per factor, ``(specific information I(z_j; v = y) (d, |V|), p(y))`` over the whole table, on the grid.

    Exact integrals of the model's joint of (z_j, v) (x uniform over the
    table rows, z_j ~ q(z_j|x)) up to the grid's resolution; returns also
    whether a grid hit its size limit.
    """
    n, d = table_mean.shape
    specs = [np.empty((d, size)) for size in num_classes]
    p_vs: list[np.ndarray] = [np.zeros(size) for size in num_classes]
    limited = False
    for j in range(d):
        for i, (cls, size) in enumerate(zip(table_classes, num_classes)):
            grid, dens, lim = class_densities_on_grid(table_mean[:, j], table_logvar[:, j], cls, size)
            limited |= lim
            specs[i][j], _ = specific_information_on_grid(dens, float(grid[1] - grid[0]))
    for i, (cls, size) in enumerate(zip(table_classes, num_classes)):
        p_vs[i] = np.bincount(cls, minlength=size) / len(cls)
    return specs, p_vs, limited


def joint_information_full_table(
    z: np.ndarray,
    factors: np.ndarray,
    table_mean: np.ndarray,
    table_logvar: np.ndarray,
    table_factors: np.ndarray | None = None,
    grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    chunk: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(I^(z; v_k), H(v_k))`` per factor in nats, with the posterior of v_k given z under the whole dataset.

    The model's joint is x uniform over the N images of the table and
    z ~ q(z|x), so its exact class posterior is
    q(v | z) = sum_{m: v_m = v} q(z|x_m) / sum_m q(z|x_m), summed over **every**
    image (the scored point included: it belongs to the population).
    Scoring samples ``z`` (n, d) of uniformly drawn images with classes
    ``factors`` (n, K), I^ = H(v_k) - mean_i [-log q~(v_k(x_i) | z_i)] with
    q~ = (1 - 1e-3) q + 1e-3 p(v): a lower bound of I(z; v_k) that is tight
    up to the 1e-3 mixture (at most 0.001 nats) and Monte Carlo noise.

    The class sums need ``table_factors`` (N, K), or ``grid = (all_factor_sizes,
    exposed_axes)`` when the table is in row-major factor order (dSprites),
    which turns them into reshapes and sums. Memory: a few (chunk, N) arrays
    (float32 weights), about 0.3 GB for dSprites at chunk 32.
    """
    mean = np.asarray(table_mean, dtype=np.float64)
    n_table, d = mean.shape
    a = np.exp(-np.asarray(table_logvar, dtype=np.float64))
    ma = mean * a
    const = -0.5 * (mean * ma).sum(axis=1) - 0.5 * np.asarray(table_logvar, dtype=np.float64).sum(axis=1)
    k = factors.shape[1]
    if grid is not None:
        sizes, exposed = grid
        if int(np.prod(sizes)) != n_table:
            raise MetricInputError(f"synergy: the factor grid {sizes} does not match the table's {n_table} rows")
        priors = [np.full(sizes[axis], 1.0 / sizes[axis]) for axis in exposed]
    else:
        if table_factors is None or len(table_factors) != n_table:
            raise MetricInputError("synergy: the full-table joint term needs the factors of every table row")
        onehots, priors = class_onehots(table_factors, factors)
    h_v = np.array([float(-(pv[pv > 0] * np.log(pv[pv > 0])).sum()) for pv in priors])
    ce = np.zeros(k)
    for start in range(0, len(z), chunk):
        zc = np.asarray(z[start : start + chunk], dtype=np.float64)
        fc = factors[start : start + chunk]
        rows = np.arange(len(zc))
        logk = -0.5 * (zc * zc) @ a.T + zc @ ma.T + const[None, :]
        logk -= logk.max(axis=1, keepdims=True)
        w = np.exp(logk.astype(np.float32))
        del logk
        total = w.sum(axis=1, dtype=np.float64)
        if grid is not None:
            wg = w.reshape(len(zc), *sizes)
        for i in range(k):
            if grid is not None:
                axis = exposed[i]
                others = tuple(ax + 1 for ax in range(len(sizes)) if ax != axis)
                sums = wg.sum(axis=others, dtype=np.float64)
            else:
                sums = (w @ onehots[i]).astype(np.float64)
            own = sums[rows, fc[:, i]] / total
            ce[i] -= np.log((1.0 - PRIOR_MIX) * own + PRIOR_MIX * priors[i][fc[:, i]]).sum()
    ce /= len(z)
    return h_v - ce, h_v


def table_grid(data, n_table: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(all factor sizes, exposed axes)`` when the table's rows are the row-major factor grid, else ``None``."""
    sizes = getattr(data, "all_factor_sizes", None)
    exposed = getattr(data, "exposed_factors", None)
    if sizes is None or exposed is None or int(np.prod(sizes)) != n_table:
        return None
    probe = np.array([0, n_table - 1, n_table // 2, n_table // 3])
    expected = np.stack(np.unravel_index(probe, tuple(sizes)), axis=1)[:, list(exposed)]
    return (
        (tuple(int(s) for s in sizes), tuple(int(e) for e in exposed))
        if np.array_equal(data.factors_of(probe), expected)
        else None
    )


def class_onehots(table_factors: np.ndarray, factors: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per factor, the one-hot classes of every table row (float32 ``(n_table, |V|)``, ``|V|`` covering the
    table's and the sample's classes) and the table's class frequencies p(v): the class sums of a table whose rows
    are not the factor grid."""
    onehots, priors = [], []
    n_table = len(table_factors)
    for i in range(factors.shape[1]):
        values = np.asarray(table_factors[:, i])
        size = int(max(values.max(), factors[:, i].max())) + 1
        onehot = np.zeros((n_table, size), dtype=np.float32)
        onehot[np.arange(n_table), values] = 1.0
        onehots.append(onehot)
        priors.append(onehot.mean(axis=0).astype(np.float64))
    return onehots, priors
