"""The numbers of a study: the final table over seeds and paired differences with bootstrap intervals.

Everything here reads the study's tables (``final.csv`` and ``results.csv``,
:mod:`nsvae.experiments.study`) as plain rows, so it can be checked by hand:

- :func:`final_table`: per method and metric, mean, sample standard deviation
  (ddof = 1) and n over seeds;
- :func:`paired_differences`: method A minus method B on the seeds both have
  (the same seed means the same initial weights, batches and noise streams),
  the mean difference and a percentile bootstrap interval over seeds
  (resampling the seeds with replacement, ``n_boot`` times, a fixed seed);
- :func:`sign_flip_p`: the exact paired sign-flip (permutation) test of those
  differences: under "the two methods are exchangeable on each seed" every
  difference is as likely to have either sign, so the p-value is the share of
  the 2^n sign assignments whose mean is at least as extreme as the observed;
- :func:`verdict`: "supported" when the interval lies wholly on the side the
  claim predicts **and** the one-sided exact test on that side gives
  p <= :data:`LEVEL`; "not supported" when both say the other side; and
  "undecided at this budget" otherwise.

Why both: with 3 to 5 seeds a percentile bootstrap interval is rough and too
narrow (it cannot be wider than the range of the differences: three
differences of one sign give an interval that excludes zero, which happens
one time in eight when there is no effect at all). The exact test states
what so few seeds can show: its smallest one-sided p-value is 2^-n, 0.125
for 3 seeds and 0.031 for 5, so no claim is decided with fewer than 5 seeds,
whatever the interval says. The tables state n and p beside every interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..markdown import markdown_table
from ..stats import mean_sd

KEYS = ("method", "seed", "step")
#: The level of the exact paired test a verdict needs (one-sided, on the side the verdict names).
LEVEL = 0.05
#: Up to this many seeds every sign assignment is enumerated; beyond, this many random ones (a fixed seed).
EXACT_UP_TO = 20


def metric_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numeric columns other than method, seed and step, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key, value in row.items():
            if key not in KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
                seen.setdefault(key, None)
    return list(seen)


def methods(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["method"]) for r in rows))


def final_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{method: {metric: (mean, sd, n)}}`` over the method's seeds (sd NaN for one seed)."""
    metrics = list(metric_columns(rows) if metrics is None else metrics)
    out: dict[str, dict[str, Any]] = {}
    for method in methods(rows):
        mine = [r for r in rows if r["method"] == method]
        entry = {}
        for metric in metrics:
            values = [float(r[metric]) for r in mine if _number(r.get(metric))]
            if values:
                entry[metric] = (*mean_sd(values), len(values))
        out[method] = entry
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def bootstrap_interval(
    values: Sequence[float], n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def sign_flip_p(differences: Sequence[float], alternative: str = "two-sided", n_random: int = 1 << 20) -> float:
    """The paired sign-flip test's p-value for ``differences`` (one per seed).

    ``alternative``: ``"greater"`` (the mean difference is above 0),
    ``"less"`` or ``"two-sided"``. Exact (all 2^n sign assignments) up to
    :data:`EXACT_UP_TO` seeds, else from ``n_random`` random assignments
    (fixed seed, the observed one counted).
    """
    x = np.abs(np.asarray(differences, dtype=np.float64))
    n = x.size
    if n == 0:
        raise ValueError("no differences")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', not {alternative!r}")
    observed = float(np.mean(differences))
    if n <= EXACT_UP_TO:
        bits = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
        means = ((1 - 2 * bits) * x).mean(axis=1)
    else:
        signs = np.random.default_rng(0).choice((-1.0, 1.0), size=(n_random, n))
        means = np.concatenate([(signs * x).mean(axis=1), [observed]])
    tol = 1e-12 * max(1.0, float(x.max()))  # equal means computed in a different order count as ties
    if alternative == "greater":
        return float(np.mean(means >= observed - tol))
    if alternative == "less":
        return float(np.mean(means <= observed + tol))
    return float(np.mean(np.abs(means) >= abs(observed) - tol))


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The two-sided Student-t interval of the mean of ``values`` (n - 1 degrees of freedom)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError("a t-interval needs at least 2 values")
    half = float(t.ppf(0.5 + level / 2.0, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return float(x.mean()) - half, float(x.mean()) + half


def t_bound(values: Sequence[float], level: float, upper: bool) -> float:
    """The one-sided Student-t confidence bound of the mean at ``level``: an upper bound when ``upper``."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise ValueError("a t-bound needs at least 2 values")
    half = float(t.ppf(level, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return float(x.mean()) + (half if upper else -half)


def effect_size(values: Sequence[float]) -> float:
    """The mean of the paired differences over their sample standard deviation (Cohen's d_z; NaN when the
    differences do not spread or n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return float("nan")
    sd, mean = float(x.std(ddof=1)), float(x.mean())
    # equal differences computed in different orders differ in the last bits: that is no spread
    return mean / sd if sd > 1e-12 * max(1.0, abs(mean)) else float("nan")


def paired_differences(
    rows: Sequence[Mapping[str, Any]],
    method: str,
    baselines: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """``method`` minus each baseline per metric, on their shared seeds: one dict per (baseline, metric) with
    ``mean``, ``low``, ``high`` (95% bootstrap), ``t_low``, ``t_high`` (95% Student t), ``effect_size``
    (mean / sd of the differences), ``n``, the per-seed ``differences`` and the sign-flip test's p-values
    ``p_greater``, ``p_less`` and ``p`` (two-sided)."""
    metrics = list(metric_columns(rows) if metrics is None else metrics)
    baselines = [b for b in (baselines or methods(rows)) if b != method]
    by_key = {(str(r["method"]), int(r["seed"])): r for r in rows}
    out = []
    for baseline in baselines:
        seeds = sorted(s for (m, s) in by_key if m == method and (baseline, s) in by_key)
        for metric in metrics:
            diffs = [
                float(by_key[(method, s)][metric]) - float(by_key[(baseline, s)][metric])
                for s in seeds
                if _number(by_key[(method, s)].get(metric)) and _number(by_key[(baseline, s)].get(metric))
            ]
            if not diffs:
                continue
            low, high = bootstrap_interval(diffs, n_boot=n_boot, seed=seed)
            t_low, t_high = t_interval(diffs) if len(diffs) > 1 else (float("nan"), float("nan"))
            out.append(
                {
                    "method": method,
                    "baseline": baseline,
                    "metric": metric,
                    "mean": float(np.mean(diffs)),
                    "low": low,
                    "high": high,
                    "t_low": t_low,
                    "t_high": t_high,
                    "effect_size": effect_size(diffs),
                    "n": len(diffs),
                    "differences": diffs,
                    "p_greater": sign_flip_p(diffs, "greater"),
                    "p_less": sign_flip_p(diffs, "less"),
                    "p": sign_flip_p(diffs, "two-sided"),
                }
            )
    return out


def verdict(low: float, high: float, higher_is_claimed: bool, p_greater: float, p_less: float) -> str:
    """The wording of a finding from a difference's bootstrap interval and sign-flip p-values (module docstring)."""
    p_claimed, p_other = (p_greater, p_less) if higher_is_claimed else (p_less, p_greater)
    claimed_side = low > 0 if higher_is_claimed else high < 0
    other_side = high < 0 if higher_is_claimed else low > 0
    if claimed_side and p_claimed <= LEVEL:
        return "supported"
    if other_side and p_other <= LEVEL:
        return "not supported"
    return "undecided at this budget"


def _markdown_table(
    corner: str, columns: Sequence[str], rows: Mapping[str, Mapping[str, Any]], cell: Callable[[Any], str]
) -> str:
    """A markdown table with a row per key of ``rows``, a column per ``columns``: ``cell(value)``, empty where
    the row has no value for that column."""
    body = [
        [name, *(cell(entry[column]) if column in entry else "" for column in columns)] for name, entry in rows.items()
    ]
    return markdown_table([corner, *columns], body)


def format_final_table(table: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], digits: int = 3) -> str:
    """A markdown table: one row per method, ``mean ± sd (n)`` per metric."""

    def cell(value: tuple[float, float, int]) -> str:
        mean, sd, n = value
        spread = "" if not np.isfinite(sd) else f" ± {sd:.{digits}f}"
        return f"{mean:.{digits}f}{spread} ({n})"

    return _markdown_table("method", metrics, table, cell)


def t_interval_text(d: Mapping[str, Any], digits: int = 3) -> str:
    """A paired difference's t-interval as ``[low, high]``, or "–" where it does not exist (n < 2)."""
    return f"[{d['t_low']:+.{digits}f}, {d['t_high']:+.{digits}f}]" if np.isfinite(d["t_low"]) else "–"


def effect_size_text(d: Mapping[str, Any]) -> str:
    """A paired difference's effect size, or "–" where it does not exist (n < 2, or differences all equal)."""
    return f"{d['effect_size']:+.2f}" if np.isfinite(d["effect_size"]) else "–"


def format_differences(diffs: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """A markdown table of paired differences: method − baseline, mean, the 95% bootstrap and Student-t
    intervals, the effect size (mean / sd), the two-sided sign-flip p, n."""
    header = [
        "difference", "metric", "mean", "95% bootstrap interval", "95% t-interval", "effect size",
        "sign-flip p (two-sided)", "n",
    ]  # fmt: skip
    body = []
    for d in diffs:
        t_part, size = t_interval_text(d, digits), effect_size_text(d)
        body.append(
            [
                f"{d['method']} − {d['baseline']}", d["metric"], f"{d['mean']:+.{digits}f}",
                f"[{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]", t_part, size, f"{d['p']:.3f}", str(d["n"]),
            ]
        )  # fmt: skip
    return markdown_table(header, body)


def detectable_effects(found: Sequence[Mapping[str, Any]], level: float = LEVEL) -> list[dict[str, Any]]:
    """For each metric of each finding: the sd of its paired differences and the minimal detectable effect at 80%
    power of the one-sided exact sign-flip test at ``level`` with its n seeds (:mod:`.looks`), in sds and in the
    metric's units."""
    from .looks import minimal_detectable_effect

    out = []
    for f in found:
        for d in f["differences"]:
            n = d["n"]
            sd = float(np.std(d["differences"], ddof=1)) if n > 1 else float("nan")
            in_sds = minimal_detectable_effect(n, level) if n > 1 else float("inf")
            out.append(
                {
                    "claim": f["claim"],
                    "metric": d["metric"],
                    "n": n,
                    "sd": sd,
                    "in_sds": in_sds,
                    "in_units": in_sds * sd,
                }
            )
    return out


def format_detectable_effects(rows: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """A markdown table of :func:`detectable_effects`."""
    header = ["claim", "metric", "n", "sd of the differences", "detectable effect (sds)", "detectable effect"]
    body = []
    for r in rows:
        sds = f"{r['in_sds']:.2f}" if np.isfinite(r["in_sds"]) else "none"
        units = f"{r['in_units']:.{digits}f}" if np.isfinite(r["in_units"]) else "none"
        body.append([r["claim"], r["metric"], str(r["n"]), f"{r['sd']:.{digits}f}", sds, units])
    return markdown_table(header, body)


def multiple_comparisons_note(n_claims: int, level: float = LEVEL) -> str:
    """One sentence on the claims tested side by side, each at its own one-sided ``level``."""
    bound = min(1.0, n_claims * level)
    return (
        f"{n_claims} claims are tested side by side, each at its own one-sided level {level:g} with no correction "
        f"across them: the chance that at least one of them is called supported when none holds is at most "
        f"{bound:.2f} ({n_claims} × {level:g}); a Bonferroni level of {level / n_claims:.4f} per claim would hold it "
        f"at {level:g}."
    )


#: The study's three claims: (name, method, baseline, metrics, whether a higher value is what the claim says).
#: Methods are named by their objective (the ``method`` key of a run's config).
CLAIMS: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    (
        "The Non-Syn VAE disentangles better than the VAE",
        "nonsyn",
        "vae",
        ("factor_vae_score", "mig", "dci"),
        True,
    ),
    ("The Non-Syn VAE lowers the measured synergy (than the VAE)", "nonsyn", "vae", ("synergy", "synergy.wms"), False),
    ("FactorVAE lowers synergy implicitly (than the VAE)", "factor_vae", "vae", ("synergy", "synergy.wms"), False),
)


def overall(verdicts: Sequence[str]) -> str:
    """A claim's verdict over its metrics: the common verdict when they agree, else undecided."""
    if verdicts and all(v == verdicts[0] for v in verdicts):
        return verdicts[0]
    return "undecided at this budget"


def findings(
    rows: Sequence[Mapping[str, Any]], settings: Mapping[str, str], n_boot: int = 10_000, seed: int = 0
) -> list[dict[str, Any]]:
    """Each claim of :data:`CLAIMS` tested on the final rows: ``settings`` maps an objective (``nonsyn``) to
    the study's setting of it (the ``method`` column). Claims whose methods the study lacks are left out."""
    out = []
    for claim, method, baseline, metrics, higher in CLAIMS:
        if method not in settings or baseline not in settings:
            continue
        present = [m for m in metrics if any(_number(r.get(m)) for r in rows)]
        diffs = paired_differences(rows, settings[method], [settings[baseline]], present, n_boot=n_boot, seed=seed)
        for d in diffs:
            d["verdict"] = verdict(d["low"], d["high"], higher, d["p_greater"], d["p_less"])
            d["p_claimed"] = d["p_greater"] if higher else d["p_less"]
        out.append(
            {
                "claim": claim,
                "differences": diffs,
                "verdict": overall([d["verdict"] for d in diffs]) if diffs else "no data yet",
            }
        )
    return out


def format_findings(found: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    lines = []
    for f in found:
        lines.append(f"- **{f['claim']}: {f['verdict']}.**")
        for d in f["differences"]:
            per_seed = ", ".join(f"{x:+.{digits}f}" for x in d["differences"])
            lines.append(
                f"  {d['metric']}: {d['method']} − {d['baseline']} = {d['mean']:+.{digits}f} "
                f"[{d['low']:+.{digits}f}, {d['high']:+.{digits}f}], one-sided p = {d['p_claimed']:.3f} "
                f"(the claimed side), n = {d['n']} (per seed: {per_seed}): {d['verdict']}"
            )
    return "\n".join(lines) + "\n"


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks, ties given their mean rank.
    NaN with fewer than 3 pairs or when either side is constant (no ranking to compare)."""
    from scipy.stats import rankdata

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("spearman needs two sequences of the same length")
    if a.size < 3:
        return float("nan")
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else float("nan")


def rank_correlations(
    rows: Sequence[Mapping[str, Any]], against: str, metrics: Sequence[str] | None = None
) -> dict[str, dict[str, tuple[float, int]]]:
    """``{metric: {"all runs": (rho, n), method: (rho, n), ...}}``: Spearman's rho of ``against`` with each other
    metric over every finished run pooled, then within each method over its seeds.

    Descriptive only: the pooled value mixes differences between methods with differences between seeds, and
    two metrics built from the same information terms (S_max and MIG both use single-latent informations)
    correlate partly by construction; no p-value is attached."""
    metrics = [m for m in (metric_columns(rows) if metrics is None else metrics) if m != against]
    groups = {"all runs": list(rows)} | {m: [r for r in rows if r["method"] == m] for m in methods(rows)}
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for metric in metrics:
        entry = {}
        for group, members in groups.items():
            pairs = [
                (float(r[against]), float(r[metric]))
                for r in members
                if _number(r.get(against)) and _number(r.get(metric))
            ]
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                entry[group] = (spearman(xs, ys), len(pairs))
        if entry:
            out[metric] = entry
    return out


def format_rank_correlations(corr: Mapping[str, Mapping[str, tuple[float, int]]], against: str, digits: int = 2) -> str:
    """A markdown table: one row per metric, ``rho (n)`` over all runs and within each method."""
    groups = list(dict.fromkeys(g for entry in corr.values() for g in entry))

    def cell(value: tuple[float, int]) -> str:
        rho, n = value
        return f"{rho:+.{digits}f} ({n})" if np.isfinite(rho) else f"– ({n})"

    return _markdown_table(f"{against} vs", groups, corr, cell)
