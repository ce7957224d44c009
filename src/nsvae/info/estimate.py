"""Estimating information measures from samples (e.g. spike counts).

Observations are integer arrays: one row per trial, one column per variable,
the target last (or passed separately). They are tallied into a contingency
table of counts; the *plug-in* estimate evaluates a measure on the empirical
distribution. Plug-in information estimates are biased upwards for small
samples, so every estimate also carries a bias correction and a bootstrap
confidence interval:

- ``"miller-madow"`` (Miller 1955): each entropy gets (m - 1) / (2N) nats,
  m being the number of occupied cells. Exact bookkeeping for I and WMS,
  which are sums of entropies; not defined for S_max, S_VK, I_max, I_VK.
- ``"quadratic"``: quadratic extrapolation (Strong, Koberle, de Ruyter van
  Steveninck & Bialek 1998; Panzeri et al. 2007): the plug-in on the whole
  data, on disjoint halves and on disjoint quarters is fitted with
  a + b/N + c/N^2 and ``a`` is the estimate. Works for every measure.
- ``"bootstrap"``: 2 * plug-in - mean of the bootstrap plug-ins (Efron 1979).
- ``"none"``: the plug-in itself.
- ``"auto"`` (default): Miller–Madow where it is defined, otherwise
  quadratic extrapolation.

The confidence interval is the spread of the nonparametric bootstrap
distribution of the plug-in (resampling trials with replacement, i.e. the
counts from a multinomial), centred on the corrected estimate:
``value + quantiles(theta*) - mean(theta*)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ._distribution import check_table_cells, group_target_table, log_base, predictor_groups, union_axes
from .synergy import _i_max_nats, _solve_i_vk_nats, _whole_nats, _wms_nats

MEASURES = ("mutual_information", "i_max", "s_max", "wms", "i_vk", "s_vk")
CORRECTIONS = ("auto", "none", "miller-madow", "quadratic", "bootstrap")
_MILLER_MADOW_MEASURES = ("mutual_information", "wms")


@dataclass(frozen=True)
class Estimate:
    """An information estimate from samples (values in the requested unit)."""

    measure: str
    value: float
    plugin: float
    correction: str
    ci_low: float
    ci_high: float
    confidence: float
    n_bootstrap: int
    n_samples: int

    def as_dict(self) -> dict:
        return asdict(self)


def counts_from_samples(samples, target=None, max_cells: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Tally observations into a contingency table.

    ``samples`` is ``(n_trials, n_variables)`` of integers with the target in
    the last column, or the predictors only when ``target`` (``(n_trials,)``)
    is given. Each column's distinct values become the symbols 0..k-1 of its
    axis in sorted order. Returns the counts table and each axis's values. A table of more than ``max_cells``
    cells (default :data:`MAX_TABLE_CELLS`) is refused before it is built.
    """
    x = _integer_array(samples, "samples")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"samples must be a 2-D array (trials x variables); got shape {x.shape}")
    if target is not None:
        y = _integer_array(target, "target")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"target must be 1-D with one entry per trial ({len(x)}); got shape {y.shape}")
        x = np.column_stack([x, y])
    if x.shape[1] < 2:
        raise ValueError("samples need at least two columns: predictors first, the target last")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 trials to estimate anything; got {x.shape[0]}")
    labels, codes = [], []
    for col in x.T:
        values, inverse = np.unique(col, return_inverse=True)
        labels.append(values)
        codes.append(inverse)
    shape = tuple(len(v) for v in labels)
    check_table_cells(shape, max_cells, "the counts table of these samples")
    flat = np.ravel_multi_index(tuple(codes), shape)
    counts = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape)
    return counts, labels


def _is_integral(arr: np.ndarray) -> bool:
    """Integer or boolean dtype, or floats that are all finite whole numbers."""
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return True
    return bool(np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


def _integer_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if not _is_integral(arr):
        raise ValueError(f"{name} must hold integer symbols (discretise continuous data first, e.g. with np.digitize)")
    return arr.astype(np.int64)


def _validate_counts(counts) -> np.ndarray:
    c = np.asarray(counts)
    if not _is_integral(c):
        raise ValueError("counts must be a table of non-negative integers")
    c = c.astype(np.int64)
    if c.ndim < 2:
        raise ValueError(f"counts needs predictor axes and a target axis (rank >= 2); got shape {c.shape}")
    if c.shape[-1] == 0 or c.size == 0:
        raise ValueError(f"counts has an empty axis: shape {c.shape}")
    if np.any(c < 0):
        raise ValueError("counts contains negative entries")
    if c.sum() < 2:
        raise ValueError(f"need at least 2 observations; the counts sum to {int(c.sum())}")
    return c


def _plugin_nats(measure: str, p: np.ndarray, groups) -> float:
    if measure == "mutual_information":
        return _whole_nats(p, groups)
    if measure == "i_max":
        return _i_max_nats(p, groups)
    if measure == "s_max":
        return max(0.0, _whole_nats(p, groups) - _i_max_nats(p, groups))
    if measure == "wms":
        return _wms_nats(p, groups)
    if measure in ("i_vk", "s_vk"):
        ivk = _solve_i_vk_nats(p, groups).value
        return ivk if measure == "i_vk" else max(0.0, _whole_nats(p, groups) - ivk)
    raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURES)}")


def _miller_madow_nats(measure: str, counts: np.ndarray, groups) -> float:
    """The Miller–Madow correction (to add to the plug-in), in nats."""
    n = counts.sum()

    def mi_correction(axes) -> float:
        table = group_target_table(counts, axes)
        m_a = np.count_nonzero(table.sum(axis=1))
        m_y = np.count_nonzero(table.sum(axis=0))
        m_ay = np.count_nonzero(table)
        return (m_a + m_y - m_ay - 1) / (2.0 * n)

    whole = mi_correction(union_axes(groups))
    if measure == "mutual_information":
        return whole
    return whole - sum(mi_correction(g) for g in groups)


def _split(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the trials, as counts tables."""
    flat = counts.ravel()
    half = rng.multivariate_hypergeometric(flat, int(flat.sum()) // 2)
    return half.reshape(counts.shape), (flat - half).reshape(counts.shape)


def _quadratic_extrapolation(measure, counts, groups, rng, repeats: int = 4) -> float:
    n = counts.sum()
    full = _plugin_nats(measure, counts / n, groups)
    halves, quarters, n_half, n_quarter = [], [], [], []
    for _ in range(repeats):
        for h in _split(counts, rng):
            halves.append(_plugin_nats(measure, h / h.sum(), groups))
            n_half.append(h.sum())
            for qtr in _split(h, rng):
                if qtr.sum() == 0:
                    continue
                quarters.append(_plugin_nats(measure, qtr / qtr.sum(), groups))
                n_quarter.append(qtr.sum())
    sizes = np.array([n, np.mean(n_half), np.mean(n_quarter)], dtype=float)
    values = np.array([full, np.mean(halves), np.mean(quarters)])
    design = np.column_stack([np.ones(3), 1.0 / sizes, 1.0 / sizes**2])
    return float(np.linalg.solve(design, values)[0])


def estimate(
    counts,
    measures: str | Sequence[str] = "mutual_information",
    *,
    predictors: Sequence[int | Iterable[int]] | None = None,
    correction: str = "auto",
    n_bootstrap: int = 500,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = None,
    base: float | str = 2,
) -> Estimate | dict[str, Estimate]:
    """Bias-corrected estimates with bootstrap confidence intervals from a counts table.

    ``counts`` has the layout of a joint pmf (predictors first, target last)
    but holds integer counts. ``measures`` is one name from
    :data:`MEASURES` (returns an :class:`Estimate`) or a list of names
    (returns a dict; the bootstrap resamples are shared). ``rng`` is a
    ``np.random.Generator`` or a seed; the same seed gives the same numbers,
    and a measure's value and interval do not depend on which other
    measures are asked for in the same call (the bootstrap and each
    measure's extrapolation draw from separate streams of that seed).
    """
    single = isinstance(measures, str)
    names = [measures] if single else list(measures)
    for name in names:
        if name not in MEASURES:
            raise ValueError(f"unknown measure {name!r}; choose one of {', '.join(MEASURES)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if correction == "miller-madow":
        bad = [m for m in names if m not in _MILLER_MADOW_MEASURES]
        if bad:
            raise ValueError(
                f"the Miller–Madow correction is defined for {', '.join(_MILLER_MADOW_MEASURES)} only, "
                f"not {', '.join(bad)}; use correction='quadratic' or 'bootstrap'"
            )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0; got {n_bootstrap}")
    if correction == "bootstrap" and n_bootstrap < 2:
        raise ValueError("correction='bootstrap' needs n_bootstrap >= 2")
    c = _validate_counts(counts)
    groups = predictor_groups(c.ndim, predictors)
    # Independent streams per use, derived from one seed: the bootstrap and
    # each measure's extrapolation splits do not depend on n_bootstrap or on
    # which other measures are asked for.
    root = int(np.random.default_rng(rng).integers(2**63))
    boot_rng = np.random.default_rng([root, 0])
    n = int(c.sum())
    p_hat = c / n
    scale = log_base(base)

    plugin = {m: _plugin_nats(m, p_hat, groups) for m in names}
    boot = {m: np.empty(n_bootstrap) for m in names}
    flat_p = p_hat.ravel()
    for b in range(n_bootstrap):
        resample = boot_rng.multinomial(n, flat_p).reshape(c.shape) / n
        for m in names:
            boot[m][b] = _plugin_nats(m, resample, groups)

    results = {}
    alpha = 1.0 - confidence
    for m in names:
        method = correction
        if method == "auto":
            method = "miller-madow" if m in _MILLER_MADOW_MEASURES else "quadratic"
        if method == "none":
            value = plugin[m]
        elif method == "miller-madow":
            value = plugin[m] + _miller_madow_nats(m, c, groups)
        elif method == "quadratic":
            value = _quadratic_extrapolation(m, c, groups, np.random.default_rng([root, 1 + MEASURES.index(m)]))
        else:  # bootstrap
            value = 2.0 * plugin[m] - float(boot[m].mean())
        if n_bootstrap >= 2:
            lo, hi = np.quantile(boot[m], [alpha / 2, 1 - alpha / 2])
            centre = float(boot[m].mean())
            ci = (value + lo - centre, value + hi - centre)
        else:
            ci = (float("nan"), float("nan"))
        results[m] = Estimate(
            measure=m,
            value=float(value) / scale,
            plugin=float(plugin[m]) / scale,
            correction=method,
            ci_low=float(ci[0]) / scale,
            ci_high=float(ci[1]) / scale,
            confidence=confidence,
            n_bootstrap=n_bootstrap,
            n_samples=n,
        )
    return results[names[0]] if single else results


def estimate_from_samples(samples, measures: str | Sequence[str] = "mutual_information", *, target=None, **kwargs):
    """:func:`estimate` on observations: rows are trials, the target is the last column
    (or ``target=``). Takes the same keyword arguments as :func:`estimate`."""
    counts, _ = counts_from_samples(samples, target)
    return estimate(counts, measures, **kwargs)
