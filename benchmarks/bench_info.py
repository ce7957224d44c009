"""Side-by-side speed (and agreement) benchmark: nsvae.info against dit.

Both libraries get the SAME seeded random joint distributions:
``np.random.default_rng(seed).dirichlet(np.ones(size)).reshape(shape)`` with
seed = 0, 1, ..., predictors on the leading axes and the target last. The
``dit.Distribution`` is built from the same pmf OUTSIDE the timed region (and
reused across repeats), so dit is timed only on the computation, as nsvae is
(nsvae's timings include its input validation).

Measures and the dit routes they are compared with:

- S_max   nsvae ``info.s_max(p)``  vs  dit I(X;Y) (``dit.shannon.mutual_information``)
          minus I_max = sum_y p(y) max_i s_i(d, [i], target, y), with dit's
          specific information ``dit.pid.measures.imin.s_i`` (dit has no S_max).
- WMS     nsvae ``info.wms(p)``  vs  dit I(X;Y) - sum_i I(X_i;Y) (``dit.shannon``).
- PID     nsvae ``info.pid(p)``  vs  ``dit.pid.PID_WB`` (full I_min lattice);
          every atom is compared.
- S_VK    nsvae ``info.s_vk(p)``  vs  (2 predictors only; dit's cone solver is
          bivariate)
            * ``PID_BROJA(d, [[0],[1]], [2], method='cone')``, synergy atom ``((0, 1),)``;
            * ``broja_cone_solve`` (the cone program under PID_BROJA) plus dit
              mutual informations: S = I(X;Y) - I(X1;Y) - UI(X2);
            * 2x2x2 only: ``PID_BROJA`` with dit's default ``method='auto'``
              (SLSQP there), for information; it is not a cone route.
          The fair speed comparison is nsvae against the FASTER of the two cone
          routes, per distribution.

Timing: for every distribution, each call is warmed up, a per-call loop count
is calibrated so that one measurement lasts >= --min-time seconds, and then
``--reps`` repeats are run with the two libraries interleaved (the order
alternates between repeats; garbage collection is off inside a measurement).
Per distribution we keep the median over repeats; the tables give the median
and min-max over distributions of those medians, and of the per-distribution
speed-up ratio dit time / nsvae time.

Accuracy of S_VK: nsvae's certificate gives I_VK in [lower_bound,
upper_bound], hence S_VK in [I - upper_bound, I - lower_bound] (bits). A dit
value outside that interval is provably wrong by at least its distance to it.

Usage:
    PYTHONPATH=src .venv/bin/python benchmarks/bench_info.py            # full run (~5-8 min on 2 cores)
    PYTHONPATH=src .venv/bin/python benchmarks/bench_info.py --quick    # smoke run (~1.5 min)
    PYTHONPATH=src .venv/bin/python benchmarks/bench_info.py --measures s_vk --cases 2x2x2 4x4x4   # a subset
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dit
import numpy as np
from dit.algorithms.broja_cone import broja_cone_solve
from dit.pid import PID_BROJA, PID_WB
from dit.pid.measures.imin import s_i
from dit.shannon import mutual_information as dit_mi

from nsvae import info

#: Disagreements in value above this (bits) are listed individually.
DISAGREEMENT_BITS = 1e-6
#: A dit S_VK value counts as provably outside nsvae's certified interval only
#: beyond this slack (bits): rounding, and nsvae's q meets the marginals only
#: to ~1e-12, which moves the bounds by far less than this.
CERT_SLACK_BITS = 1e-10

# --------------------------------------------------------------------------
# Cases and distributions


@dataclass(frozen=True)
class Case:
    name: str
    shape: tuple[int, ...]
    reps: int  # repeats per distribution in a full run

    @property
    def n_predictors(self) -> int:
        return len(self.shape) - 1

    @property
    def id(self) -> str:
        return "x".join(map(str, self.shape))


CASES = [
    Case("2 pred, 2x2x2", (2, 2, 2), reps=7),
    Case("2 pred, 4x4x4", (4, 4, 4), reps=5),
    Case("2 pred, 8x8x8", (8, 8, 8), reps=3),
    Case("3 pred, 2x2x2x2", (2, 2, 2, 2), reps=3),
    Case("3 pred, 3x3x3x3", (3, 3, 3, 3), reps=3),
]


def random_pmf(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A Dirichlet(1) joint pmf of the given shape (full support)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(math.prod(shape))).reshape(shape)


def to_dit(p: np.ndarray) -> dit.Distribution:
    """The same pmf as a dit Distribution with tuple outcomes (x1, ..., xn, y)."""
    outcomes = list(itertools.product(*(range(k) for k in p.shape)))
    return dit.Distribution(outcomes, p.ravel().tolist())


def node_label(sources) -> str:
    """Williams-Beer label ({1}{23}, 1-based) of a dit lattice node, matching nsvae's."""
    ordered = sorted((tuple(sorted(s)) for s in sources), key=lambda s: (len(s), s))
    return "".join("{" + "".join(str(i + 1) for i in s) + "}" for s in ordered)


# --------------------------------------------------------------------------
# nsvae side (p: numpy pmf)


def nsvae_s_max(p):
    return info.s_max(p)


def nsvae_wms(p):
    return info.wms(p)


def nsvae_pid(p):
    return dict(info.pid(p).atoms)


def nsvae_s_vk(p):
    return info.s_vk(p)


# --------------------------------------------------------------------------
# dit side (d: dit.Distribution; predictors are rvs 0..n-1, target rv n)


def _dit_whole_mi(d, n):
    return dit_mi(d, list(range(n)), [n])


def dit_s_max(d, n):
    whole = _dit_whole_mi(d, n)
    py = d.marginal([n])
    i_max = sum(py[y] * max(s_i(d, [i], [n], y) for i in range(n)) for y in py.outcomes)
    return whole - i_max


def dit_wms(d, n):
    return _dit_whole_mi(d, n) - sum(dit_mi(d, [i], [n]) for i in range(n))


def dit_pid_wb(d, n):
    decomposition = PID_WB(d, [[i] for i in range(n)], [n])
    return {node_label(node): float(decomposition.get_pi(node)) for node in decomposition._lattice}


def dit_s_vk_pid_broja_cone(d, n):
    return float(PID_BROJA(d, [[0], [1]], [2], method="cone").get_pi(((0, 1),)))


def dit_s_vk_cone_solve(d, n):
    _, meta = broja_cone_solve(d, [[0], [1]], [2])
    return _dit_whole_mi(d, 2) - dit_mi(d, [0], [2]) - float(meta["ui_source1"])


def dit_s_vk_pid_broja_auto(d, n):
    return float(PID_BROJA(d, [[0], [1]], [2]).get_pi(((0, 1),)))


# --------------------------------------------------------------------------
# What is compared


@dataclass(frozen=True)
class DitRoute:
    name: str
    fn: Callable[[Any, int], Any]
    cone: bool = False  # counts towards "fastest dit cone route" (S_VK)


@dataclass(frozen=True)
class Comparison:
    measure: str
    nsvae: Callable[[np.ndarray], Any]
    routes: tuple[DitRoute, ...]
    goal: float  # required speed-up (dit / nsvae)


def comparisons_for(case: Case, measures: frozenset[str] | None = None) -> list[Comparison]:
    """What is compared on ``case``; ``measures`` (ids as in MEASURES) selects a subset."""
    comps = [
        Comparison("S_max", nsvae_s_max, (DitRoute("I - sum_y p(y) max_i s_i", dit_s_max),), 100.0),
        Comparison("WMS", nsvae_wms, (DitRoute("shannon.mutual_information", dit_wms),), 100.0),
        Comparison("PID (I_min)", nsvae_pid, (DitRoute("PID_WB", dit_pid_wb),), 100.0),
    ]
    if case.n_predictors == 2:
        routes = [
            DitRoute("PID_BROJA(method='cone')", dit_s_vk_pid_broja_cone, cone=True),
            DitRoute("broja_cone_solve + MI", dit_s_vk_cone_solve, cone=True),
        ]
        if case.shape == (2, 2, 2):
            routes.append(DitRoute("PID_BROJA(method='auto')", dit_s_vk_pid_broja_auto))
        comps.append(Comparison("S_VK", nsvae_s_vk, tuple(routes), 10.0))
    else:
        comps.append(Comparison("S_VK", nsvae_s_vk, (), 10.0))
    if measures is not None:
        comps = [c for c in comps if MEASURES[c.measure] in measures]
    return comps


#: Command-line ids of the measures (--measures).
MEASURES = {"S_max": "s_max", "WMS": "wms", "PID (I_min)": "pid", "S_VK": "s_vk"}


def max_abs_diff(a, b) -> float:
    if isinstance(a, dict):
        if set(a) != set(b):
            return math.inf
        return max(abs(a[k] - b[k]) for k in a)
    return abs(float(a) - float(b))


# --------------------------------------------------------------------------
# Timing


def time_loop(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of fn(), averaged over ``number`` back-to-back calls, GC off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    finally:
        if was_enabled:
            gc.enable()


def calibrate(fn: Callable[[], Any], min_time: float, max_number: int = 2000) -> int:
    """Loop count so that one measurement of fn lasts at least ``min_time`` seconds."""
    single = time_loop(fn, 1)
    if single >= min_time:
        return 1
    return max(1, min(max_number, math.ceil(min_time / max(single, 1e-7))))


@dataclass
class Record:
    """Per distribution and comparison: median times (s) and values."""

    seed: int
    nsvae_time: float
    nsvae_value: Any
    dit_times: dict[str, float] = field(default_factory=dict)
    dit_values: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def run_distribution(
    case: Case, seed: int, reps: int, min_time: float, measures: frozenset[str] | None = None
) -> dict[str, Record]:
    p = random_pmf(case.shape, seed)
    d = to_dit(p)  # outside every timed region
    n = case.n_predictors
    comps = comparisons_for(case, measures)

    # Warm-up (also gives the values) and calibration.
    calls: dict[tuple[str, str], tuple[Callable[[], Any], int]] = {}
    records: dict[str, Record] = {}
    for comp in comps:
        ns_call = lambda f=comp.nsvae: f(p)  # noqa: E731
        value = ns_call()
        calls[(comp.measure, "nsvae")] = (ns_call, calibrate(ns_call, min_time))
        records[comp.measure] = Record(seed, math.nan, value)
        for route in comp.routes:
            dit_call = lambda f=route.fn: f(d, n)  # noqa: E731
            records[comp.measure].dit_values[route.name] = dit_call()
            calls[(comp.measure, route.name)] = (dit_call, calibrate(dit_call, min_time))

    # Interleaved repeats: nsvae first on even repeats, last on odd ones.
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for rep in range(reps):
        for comp in comps:
            keys = [(comp.measure, "nsvae")] + [(comp.measure, r.name) for r in comp.routes]
            if rep % 2 == 1:
                keys = keys[1:] + keys[:1]
            for key in keys:
                fn, number = calls[key]
                samples[key].append(time_loop(fn, number))

    for comp in comps:
        rec = records[comp.measure]
        rec.nsvae_time = statistics.median(samples[(comp.measure, "nsvae")])
        for route in comp.routes:
            rec.dit_times[route.name] = statistics.median(samples[(comp.measure, route.name)])
        if comp.measure == "S_VK":
            # Certificate (untimed): S_VK lies in [I - upper_bound, I - lower_bound].
            whole = info.mutual_information(p)
            sol = info.solve_i_vk(p)
            rec.extra = {
                "interval": (max(0.0, whole - sol.upper_bound), whole - sol.lower_bound),
                "gap": sol.gap,
                "violation": sol.max_constraint_violation,
                "newton_steps": sol.newton_steps,
            }
            if n == 2:
                _, meta = broja_cone_solve(d, [[0], [1]], [2])
                rec.extra["dit_cone_meta_gap"] = float(meta["gap"])
                rec.extra["dit_cone_meta_dual_infeas"] = float(meta["dual_infeas"])
    return records


# --------------------------------------------------------------------------
# Summaries


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_ratio(r: float) -> str:
    return f"{r:.0f}" if r >= 10 else f"{r:.2g}"


def spread(values, fmt) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def verdict(ratios: list[float], goal: float) -> str:
    if min(ratios) >= goal:
        return "yes"
    if statistics.median(ratios) >= goal:
        return f"median only ({sum(r < goal for r in ratios)}/{len(ratios)} below)"
    return f"**no** ({sum(r < goal for r in ratios)}/{len(ratios)} below)"


def distance_outside(x: float, lo: float, hi: float) -> float:
    return max(0.0, lo - x, x - hi)


def summarise(
    results: dict[str, list[dict[str, Record]]], cases: list[Case], measures: frozenset[str] | None = None
) -> tuple[str, list[str]]:
    """The markdown tables and the list of value disagreements > DISAGREEMENT_BITS."""
    speed = [
        "| case | measure | dit route | nsvae time | dit time | speed-up (dit/nsvae) | goal | goal met "
        "| max abs diff (bits) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    accuracy = [
        "| case | dit route | max abs(dit − nsvae) (bits) | max nsvae gap (bits) | nsvae Newton steps "
        "| dit outside nsvae's certified interval (count, max distance) | max dit `gap` meta | more accurate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    disagreements: list[str] = []
    for case in cases:
        runs = results[case.name]
        for comp in comparisons_for(case, measures):
            recs = [run[comp.measure] for run in runs]
            ns_times = [r.nsvae_time for r in recs]
            if not comp.routes:
                gaps = [r.extra["gap"] for r in recs]
                steps = [r.extra["newton_steps"] for r in recs]
                speed.append(
                    f"| {case.name} | {comp.measure} | — (no dit cone solver for 3 sources) | "
                    f"{spread(ns_times, fmt_time)} | — | — | — | — | "
                    f"nsvae gap ≤ {max(gaps):.1e}; {min(steps)}–{max(steps)} Newton steps |"
                )
                continue
            for route in comp.routes:
                dit_times = [r.dit_times[route.name] for r in recs]
                ratios = [r.dit_times[route.name] / r.nsvae_time for r in recs]
                diffs = [max_abs_diff(r.nsvae_value, r.dit_values[route.name]) for r in recs]
                goal = f"≥{comp.goal:.0f}x" if (comp.measure != "S_VK" or route.cone) else "(info)"
                met = verdict(ratios, comp.goal) if goal != "(info)" else "—"
                speed.append(
                    f"| {case.name} | {comp.measure} | {route.name} | {spread(ns_times, fmt_time)} | "
                    f"{spread(dit_times, fmt_time)} | {spread(ratios, fmt_ratio)} | {goal} | {met} | {max(diffs):.1e} |"
                )
                for r, diff in zip(recs, diffs):
                    if diff > DISAGREEMENT_BITS:
                        disagreements.append(
                            f"- {case.name}, {comp.measure}, dit {route.name}, seed {r.seed}: "
                            f"nsvae {_short(r.nsvae_value)} vs dit {_short(r.dit_values[route.name])} "
                            f"(max abs diff {diff:.3g} bits)"
                        )
            cone_routes = [route for route in comp.routes if route.cone]
            if len(cone_routes) > 1:
                fastest = [min(r.dit_times[route.name] for route in cone_routes) for r in recs]
                ratios = [f / r.nsvae_time for f, r in zip(fastest, recs)]
                speed.append(
                    f"| {case.name} | {comp.measure} | **fastest cone route** (per distribution) | "
                    f"{spread(ns_times, fmt_time)} | {spread(fastest, fmt_time)} | {spread(ratios, fmt_ratio)} | "
                    f"≥{comp.goal:.0f}x | {verdict(ratios, comp.goal)} | |"
                )
            if comp.measure != "S_VK":
                continue
            # Accuracy of S_VK against the certificate.
            for route in comp.routes:
                diffs, outside = [], []
                for r in recs:
                    lo, hi = r.extra["interval"]
                    value = float(r.dit_values[route.name])
                    diffs.append(abs(value - float(r.nsvae_value)))
                    outside.append(distance_outside(value, lo, hi))
                gaps = [r.extra["gap"] for r in recs]
                steps = [r.extra["newton_steps"] for r in recs]
                n_out = sum(o > CERT_SLACK_BITS for o in outside)
                # nsvae's error is at most its gap; dit's is at least its distance outside.
                n_better = sum(o > max(g, CERT_SLACK_BITS) for o, g in zip(outside, gaps))
                if n_better == len(recs):
                    who = "nsvae (provably, every distribution)"
                elif n_better:
                    who = f"nsvae provably on {n_better}/{len(recs)}; else equal within nsvae's gap"
                else:
                    who = "equal within nsvae's certified gap"
                meta = max(r.extra["dit_cone_meta_gap"] for r in recs) if route.cone else math.nan
                accuracy.append(
                    f"| {case.name} | {route.name} | {max(diffs):.1e} | {max(gaps):.1e} | {min(steps)}–{max(steps)} | "
                    f"{n_out}/{len(recs)} (max {max(outside):.1e}) | "
                    f"{'—' if math.isnan(meta) else f'{meta:.2g}'} | {who} |"
                )
    text = "\n".join(speed) + "\n\nS_VK accuracy (2 predictors):\n\n" + "\n".join(accuracy)
    return text, disagreements


def _short(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v:.10f}" for k, v in value.items()) + "}"
    return f"{float(value):.10f}"


def nsvae_source() -> str:
    """Where the imported nsvae lives, with its git commit when it is a checkout."""
    import subprocess

    import nsvae

    pkg = os.path.dirname(os.path.abspath(nsvae.__file__))

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", pkg, *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return f"{pkg} (not a git checkout)"
    return f"{pkg} (git {commit}{', WITH UNCOMMITTED CHANGES' if dirty else ''})"


def environment() -> str:
    try:
        from threadpoolctl import threadpool_info

        pools = threadpool_info()
        blas = ", ".join(f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)" for i in pools)
    except Exception:  # pragma: no cover - informational only
        blas = "unknown"
    import ecos
    import scipy

    return (
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}\n"
        f"- python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"dit {dit.__version__}, ecos {ecos.__version__}\n"
        f"- BLAS/OpenMP pools: {blas}\n"
        f"- nsvae imported from: {nsvae_source()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 distributions per case, 2 repeats (smoke run)")
    parser.add_argument("--n-dists", type=int, help="distributions per case (default 10; 3 with --quick)")
    parser.add_argument("--reps", type=int, help="repeats per distribution (default: per case; 2 with --quick)")
    parser.add_argument("--min-time", type=float, default=0.02, help="seconds per measurement (loop calibration)")
    parser.add_argument("--cases", nargs="*", help="case ids to run (default all): " + " ".join(c.id for c in CASES))
    parser.add_argument("--json", help="also write per-distribution raw results to this file")
    parser.add_argument("--measures", nargs="*", help="measures to run (default all): " + " ".join(MEASURES.values()))
    args = parser.parse_args(argv)

    n_dists = args.n_dists or (3 if args.quick else 10)
    unknown = set(args.cases or ()) - {c.id for c in CASES}
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {[c.id for c in CASES]}")
    cases = [c for c in CASES if not args.cases or c.id in args.cases]
    unknown = set(args.measures or ()) - set(MEASURES.values())
    if unknown:
        parser.error(f"unknown measure(s) {sorted(unknown)}; choose from {list(MEASURES.values())}")
    measures = frozenset(args.measures) if args.measures else None
    results: dict[str, list[dict[str, Record]]] = {}
    start = time.perf_counter()
    for case in cases:
        reps = args.reps or (2 if args.quick else case.reps)
        t0 = time.perf_counter()
        results[case.name] = [run_distribution(case, seed, reps, args.min_time, measures) for seed in range(n_dists)]
        elapsed = time.perf_counter() - t0
        print(f"[{case.name}: {n_dists} distributions x {reps} repeats in {elapsed:.0f} s]", file=sys.stderr)

    table, disagreements = summarise(results, cases, measures)
    print(f"## nsvae.info vs dit ({n_dists} Dirichlet(1) distributions per case, seeds 0..{n_dists - 1})\n")
    print(environment())
    print(f"- command: {' '.join(sys.argv)}")
    print(f"- total wall time: {time.perf_counter() - start:.0f} s\n")
    print("Times: median over distributions of the per-distribution median over repeats, (min–max over distributions).")
    print("Speed-up: per-distribution dit time / nsvae time; median (min–max).\n")
    print(table)
    print(
        "\n(dit counted outside the certified interval [I - upper_bound, I - lower_bound] "
        f"only beyond {CERT_SLACK_BITS:g} bits.)"
    )
    print(f"\nValue disagreements above {DISAGREEMENT_BITS:g} bits: {len(disagreements) or 'none'}")
    for line in disagreements:
        print(line)

    if args.json:
        raw = {
            name: [
                {
                    m: {
                        "seed": r.seed,
                        "nsvae_time": r.nsvae_time,
                        "nsvae_value": r.nsvae_value,
                        "dit_times": r.dit_times,
                        "dit_values": r.dit_values,
                        "extra": r.extra,
                    }
                    for m, r in run.items()
                }
                for run in runs
            ]
            for name, runs in results.items()
        }
        with open(args.json, "w") as fh:
            json.dump(raw, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
