"""The package's one summary over seeds: the mean and the sample standard deviation.

Every table and figure that shows "mean ± sd" over runs (``nsvae results``,
``nsvae study --summary``, the comparison report and its bars) reads it from
:func:`mean_sd`, so they agree on every input, the single run included: with
one value the sample standard deviation (n − 1 in the denominator) is
undefined, and :func:`mean_sd` says so with NaN rather than a 0 that would
read as "no spread".
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """``(mean, sample sd)`` of ``values`` (n − 1 in the denominator; NaN for a single value). Raises ValueError
    when there is none."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
