"""A study decided in looks: the level split, t-intervals, effect sizes, the minimal detectable effect, four verdicts.

study-authors (docs/results.md) decides its claims at two looks, after 5 and after 8 seeds per method, by the
exact paired sign-flip test of :mod:`.study_analysis`. This module holds the design's numbers and rule:

- :data:`LOOKS`: ``(seeds per method, one-sided level)`` of each look. The levels add up to at most 0.05
  (a Bonferroni split, valid whatever the dependence between the looks), so each claim's one-sided
  false-positive rate over both looks stays at most 0.05. Look 1 gets 1/32, the smallest one-sided p-value
  five seeds can give (all five differences on one side): any smaller level could never decide. Look 2 gets
  the rest, 0.05 - 1/32 = 0.01875; with 8 seeds the p-values are multiples of 1/256, so it decides at
  p <= 4/256 and the two looks spend 12/256 = 0.047 in all.
- :func:`t_interval` and :func:`t_bound`: Student-t intervals of the mean difference. At n = 5 the
  percentile bootstrap interval cannot be wider than the range of the differences and under-covers; the
  t-interval is about twice as wide and is reported beside it.
- :func:`effect_size`: the mean paired difference over its standard deviation (Cohen's d_z).
- :func:`sign_flip_power` and :func:`minimal_detectable_effect`: the power of the one-sided exact sign-flip
  test at a look when the paired differences are normal with mean delta and sd sigma, and the smallest
  delta / sigma it detects with 80% power. At n = 5 and level 1/32 the test decides only when all five
  differences share the claimed sign, so the power is Phi(delta / sigma)^5 and the effect is
  Phi^-1(0.8^(1/5)) = 1.710 sds, a closed form the tests check the simulation against.
- :func:`look_verdict`: "supported" when the one-sided exact test on the claimed side gives p <= the look's
  level; "not supported" when the test on the opposite side does; "no effect larger than X" when neither
  and the claimed-side end of the one-sided (1 - level) t-bound falls short of X, the minimal detectable
  effect fixed before the runs (the data exclude every effect that the design could have detected);
  "undecided" otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .study_analysis import effect_size, effect_size_text, sign_flip_p, t_bound, t_interval, t_interval_text

__all__ = [
    "LOOKS",
    "POWER",
    "effect_size",
    "look_verdict",
    "minimal_detectable_effect",
    "sign_flip_power",
    "t_bound",
    "t_interval",
]

#: ``(seeds per method, one-sided level)`` of each look of a study decided in looks (module docstring).
LOOKS: tuple[tuple[int, float], ...] = ((5, 1 / 32), (8, 0.05 - 1 / 32))
#: The power the minimal detectable effect is stated at.
POWER = 0.8

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
UNDECIDED = "undecided"
NO_EFFECT_PREFIX = "no effect larger than"


def _sign_means(n: int) -> np.ndarray:
    """The ``(n, 2^n)`` matrix of every sign assignment, divided by n: ``d @ it`` is every sign-flipped mean."""
    bits = (np.arange(1 << n)[None, :] >> np.arange(n)[:, None]) & 1
    return (1 - 2 * bits).astype(np.float64) / n


def _rejects(draws: np.ndarray, alpha: float) -> np.ndarray:
    """Per row of ``draws`` (paired differences), whether the exact one-sided ("greater") sign-flip test
    rejects at ``alpha``: the share of sign assignments whose mean is at least the observed one."""
    signs = _sign_means(draws.shape[1])
    out = np.empty(draws.shape[0], dtype=bool)
    for start in range(0, draws.shape[0], 8192):  # in blocks: 8 seeds give 256 means per draw
        block = draws[start : start + 8192]
        observed = block.mean(axis=1, keepdims=True)
        p = (np.abs(block) @ signs >= observed - 1e-12).mean(axis=1)
        out[start : start + 8192] = p <= alpha + 1e-15
    return out


def _standard_draws(n: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((draws, n))


def sign_flip_power(effect: float, n: int, alpha: float, draws: int = 100_000, seed: int = 0) -> float:
    """The power of the one-sided exact sign-flip test at level ``alpha`` with ``n`` paired differences drawn
    from N(effect, 1) (``effect`` in sds of the differences), from ``draws`` simulated studies (fixed seed)."""
    if n > 16:
        raise ValueError("the exact test's power is simulated for up to 16 seeds")
    return float(_rejects(_standard_draws(n, draws, seed) + effect, alpha).mean())


def minimal_detectable_effect(
    n: int, alpha: float, power: float = POWER, draws: int = 100_000, seed: int = 0, tol: float = 1e-4
) -> float:
    """The smallest effect (mean / sd of the paired differences) the one-sided exact sign-flip test detects with
    ``power`` at level ``alpha`` and ``n`` seeds. The same draws for every candidate effect make the power
    monotone in it, so bisection finds it. Infinite when the level is below the test's smallest p (2^-n)."""
    if alpha < 2.0**-n:
        return float("inf")
    base = _standard_draws(n, draws, seed)
    low, high = 0.0, 1.0
    while _rejects(base + high, alpha).mean() < power:
        low, high = high, 2.0 * high
    while high - low > tol:
        mid = (low + high) / 2.0
        if _rejects(base + mid, alpha).mean() >= power:
            high = mid
        else:
            low = mid
    return high


def look_verdict(differences: Sequence[float], higher_is_claimed: bool, alpha: float, detectable: float) -> str:
    """The verdict on one metric at one look (module docstring). ``differences``: method minus baseline per
    seed; ``detectable``: the minimal detectable effect fixed before the runs, in the metric's units (> 0)."""
    p_greater, p_less = sign_flip_p(differences, "greater"), sign_flip_p(differences, "less")
    p_claimed, p_other = (p_greater, p_less) if higher_is_claimed else (p_less, p_greater)
    if p_claimed <= alpha:
        return SUPPORTED
    if p_other <= alpha:
        return NOT_SUPPORTED
    if len(differences) >= 2:
        bound = t_bound(differences, 1.0 - alpha, upper=higher_is_claimed)
        if (bound < detectable) if higher_is_claimed else (bound > -detectable):
            return f"{NO_EFFECT_PREFIX} {detectable:.3g}"
    return UNDECIDED


# -- the rule of a study decided in looks (study-authors; docs/results.md, 'study-authors: the rule') ---------------

#: A study whose ``[[stages]]`` include these names is decided in looks: stage "look-k" holds the pairs of look k.
LOOK_STAGES = ("look-1", "look-2")

#: The claims, each with its primary metrics and whether a higher value is what the claim says.
LOOK_CLAIMS: tuple[tuple[str, str, str, tuple[str, ...], bool], ...] = (
    ("The Non-Syn VAE disentangles better than the VAE", "nonsyn", "vae", ("dci", "mig"), True),
    ("The Non-Syn VAE lowers the measured synergy (than the VAE)", "nonsyn", "vae", ("synergy",), False),
)
#: Reported beside the claims with no verdict.
LOOK_SECONDARY = ("factor_vae_score", "chen_mig", "synergy.wms", "unibound")

#: The minimal detectable effect X of each metric at each look, in the metric's units, fixed before the runs
#: (commit 7e8fb02) from study-cpu's Non-Syn - VAE spread: 1.710 and 1.31 sds of the paired differences.
DETECTABLE: dict[int, dict[str, float]] = {
    1: {"dci": 0.140, "mig": 0.080, "synergy": 0.219, "factor_vae_score": 0.297, "chen_mig": 0.143,
        "synergy.wms": 0.160, "unibound": 0.022},
    2: {"dci": 0.107, "mig": 0.062, "synergy": 0.167, "factor_vae_score": 0.228, "chen_mig": 0.109,
        "synergy.wms": 0.122, "unibound": 0.017},
}  # fmt: skip


def decided_in_looks(stage_names) -> bool:
    """Whether a study with these stage names is decided by this module's rule."""
    return set(LOOK_STAGES) <= set(stage_names)


def look_of(n: int) -> int | None:
    """The look that ``n`` paired seeds complete (None before look 1)."""
    done = [k for k, (seeds, _) in enumerate(LOOKS, 1) if n >= seeds]
    return done[-1] if done else None


def claim_verdict(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its metrics' verdicts: their common one; "no effect larger than" when every metric
    bounds the effect (each by its own X, named with it); else "undecided"."""
    if verdicts and all(v == verdicts[0] for v in verdicts):
        return verdicts[0]
    if verdicts and all(v.startswith(NO_EFFECT_PREFIX) for v in verdicts):
        return f"{NO_EFFECT_PREFIX} the detectable one on every metric"
    return UNDECIDED


def look_findings(rows, settings) -> dict:
    """The claims of :data:`LOOK_CLAIMS` at the look the paired seeds complete: ``{"look", "n", "claims":
    [{"claim", "verdict", "differences"}], "secondary"}``. ``settings`` maps an objective to the study's setting of
    it. A look reads its own seeds only (the lowest 5 at look 1); before look 1 nothing is decided."""
    from .study_analysis import paired_differences

    out: dict = {"look": None, "n": 0, "claims": [], "secondary": []}
    if "nonsyn" not in settings or "vae" not in settings:
        return out
    for claim, method, baseline, metrics, higher in LOOK_CLAIMS:
        diffs = paired_differences(rows, settings[method], [settings[baseline]], list(metrics))
        n = min((d["n"] for d in diffs), default=0)
        look = look_of(n)
        out["look"], out["n"] = look, n
        for d in diffs:
            d["claimed"] = "higher" if higher else "lower"
            if look is None:
                d["verdict"] = "no look yet"
                continue
            seeds, alpha = LOOKS[look - 1]
            d["verdict"] = look_verdict(d["differences"][:seeds], higher, alpha, DETECTABLE[look][d["metric"]])
        verdict = claim_verdict([d["verdict"] for d in diffs]) if look is not None else "no look yet"
        out["claims"].append({"claim": claim, "verdict": verdict, "differences": diffs})
    present = [m for m in LOOK_SECONDARY if any(m in r for r in rows)]
    out["secondary"] = paired_differences(rows, settings["nonsyn"], [settings["vae"]], present)
    return out


def format_look_findings(found: dict, digits: int = 3) -> str:
    """The findings of :func:`look_findings` as markdown lines."""
    look, n = found["look"], found["n"]
    if look is None:
        head = f"No look yet: {n} paired seed(s); look 1 needs {LOOKS[0][0]}."
    else:
        seeds, alpha = LOOKS[look - 1]
        head = f"Look {look} ({seeds} paired seeds, one-sided level {alpha:.5g}; {n} paired seeds finished):"
    lines = [head]
    for c in found["claims"]:
        lines.append(f"- **{c['claim']}: {c['verdict']}.**")
        for d in c["differences"]:
            per_seed = ", ".join(f"{x:+.{digits}f}" for x in d["differences"])
            lines.append(
                f"  {d['metric']} ({d['claimed']} claimed): {d['method']} − {d['baseline']} = {d['mean']:+.{digits}f}, "
                f"95% t {t_interval_text(d, digits)}, bootstrap "
                f"[{d['low']:+.{digits}f}, {d['high']:+.{digits}f}], effect size {effect_size_text(d)}, "
                f"n = {d['n']} (per seed: {per_seed}): {d['verdict']}"
            )
    return "\n".join(lines) + "\n"
