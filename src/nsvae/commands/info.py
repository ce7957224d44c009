"""``nsvae info``: information measures of a distribution, counts table or samples."""

from __future__ import annotations

import argparse
import json
import math
import sys

from .. import info
from ..errors import UserError
from ..info._distribution import MAX_TABLE_CELLS
from ..info.tables import Table, default_names, read_table

DESCRIPTION = """\
Print the information a set of predictors carries about a target: the joint
mutual information, each predictor's share, the synergy measures S_max, WMS
and S_VK (with the certificate of the I_VK convex program) and, for 2 to 4
predictors, the Williams-Beer PID. Values are in bits unless --base says otherwise.

Input (FILE):
  CSV rows x1,...,xn,y,w   w: probabilities (summing to 1) or integer counts;
                           an optional header row names the columns
  CSV rows x1,...,xn,y     with --samples: one row per trial, integer symbols
  .npy                     a joint table (float: probabilities, integer: counts),
                           or with --samples a 2-D integer array of trials
For counts and samples, bias-corrected estimates with bootstrap confidence
intervals are printed as well."""

EPILOG = """\
examples:
  nsvae info --example xor
  nsvae info joint.csv --json
  nsvae info spikes.csv --samples --bootstrap 500 --seed 1
  nsvae info table.npy --predictors 0 1,2      (X1 alone; X2 and X3 jointly)"""


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="information measures, synergy and PID of a distribution or of samples",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("file", nargs="?", help="a .csv or .npy file (see above)")
    src.add_argument("--example", choices=info.GATES, help="a canonical gate instead of a file")
    p.add_argument("--samples", action="store_true", help="FILE holds one observation per row (target last)")
    p.add_argument("--normalize", action="store_true", help="rescale probabilities that do not sum to 1")
    p.add_argument(
        "--predictors",
        nargs="+",
        metavar="GROUP",
        help="predictor groups: each GROUP is comma-separated column names or 0-based indices "
        "(default: every predictor column on its own)",
    )
    p.add_argument(
        "--base", default="2", help="logarithm base: 2 (bits, default), e (nats), 10, or any number > 0 but 1"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--max-cells",
        type=int,
        default=MAX_TABLE_CELLS,
        metavar="N",
        help=f"refuse a joint table of more than N cells before building it (default {MAX_TABLE_CELLS:,} = 2**24: "
        "128 MiB per copy; the product of every column's symbol count, so many predictors or many distinct values "
        "grow it fast)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=200,
        metavar="N",
        help="bootstrap resamples for counts and samples (default 200; 0: none)",
    )
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument(
        "--correction",
        default="auto",
        choices=info.CORRECTIONS,
        help="bias correction for counts and samples (default auto: Miller-Madow for I and WMS, quadratic "
        "extrapolation for S_max and S_VK; miller-madow means the same, as it is defined for I and WMS only)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the bootstrap and of the extrapolation splits (default 0)"
    )
    p.set_defaults(run=run)


def _parse_base(text: str):
    if text.lower() in ("e", "nat", "nats"):
        return "e"
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--base must be a number > 0 other than 1, or e; got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value == 1:
        raise UserError(f"--base must be a number > 0 other than 1, or e; got {text!r}")
    return int(value) if value == int(value) else value


def _unit(base) -> str:
    return {2: "bits", "e": "nats", 10: "hartleys"}.get(base, f"log base {base}")


def _parse_groups(tokens: list[str] | None, names: list[str]) -> list[tuple[int, ...]] | None:
    if not tokens:
        return None
    predictors = names[:-1]
    groups = []
    for token in tokens:
        group = []
        for part in token.split(","):
            part = part.strip()
            if part in predictors:
                group.append(predictors.index(part))
            elif part.isdigit() and int(part) < len(predictors):
                group.append(int(part))
            else:
                raise UserError(
                    f"--predictors: {part!r} is neither a predictor name ({', '.join(predictors)}) "
                    f"nor an index 0..{len(predictors) - 1}"
                )
        groups.append(tuple(group))
    return groups


def _load(args) -> tuple[Table, str]:
    if args.example:
        pmf = info.gate(args.example)
        return Table(
            pmf, default_names(pmf.ndim), [[str(i) for i in range(n)] for n in pmf.shape]
        ), f"{args.example} gate"
    if args.max_cells < 1:
        raise UserError(f"--max-cells must be at least 1, got {args.max_cells}")
    table = read_table(args.file, samples=args.samples, normalize=args.normalize, max_cells=args.max_cells)
    return table, args.file


ESTIMATED = ("mutual_information", "s_max", "wms", "s_vk")


def _estimates(table: Table, groups, args, base) -> dict:
    """Bias-corrected estimates of I, S_max, WMS and S_VK from the table's counts.

    Miller–Madow is defined for I and WMS only; asked for on the command
    line it means the library's "auto": Miller–Madow for those two and
    quadratic extrapolation for S_max and S_VK.
    """
    correction = "auto" if args.correction == "miller-madow" else args.correction
    return info.estimate(
        table.counts,
        list(ESTIMATED),
        predictors=groups,
        correction=correction,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        rng=args.seed,
        base=base,
    )


def run(args) -> int:
    base = _parse_base(args.base)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be >= 0; got {args.bootstrap}")
    table, title = _load(args)
    groups = _parse_groups(args.predictors, table.names)
    summary = info.summary(table.pmf, groups, base=base)
    if not 0 < args.confidence < 1:
        raise UserError(f"--confidence must be between 0 and 1 (e.g. 0.95); got {args.confidence}")
    estimates = _estimates(table, groups, args, base) if table.counts is not None else None
    group_names = [",".join(table.names[a] for a in g) for g in (groups or [(i,) for i in range(len(table.names) - 1)])]
    if args.json:
        out = {
            "source": title,
            "kind": table.kind,
            "names": table.names,
            "symbols": table.symbols,
            "predictor_names": group_names,
            "unit": _unit(base),
            **summary,
        }
        if estimates is not None:
            out["estimates"] = {k: v.as_dict() for k, v in estimates.items()}
            out["estimates_seed"] = args.seed
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(format_summary(title, table, summary, group_names, base, estimates, args))
    return 0


def _clean(x: float) -> float:
    """Rounding noise and negative zero print as a plain 0."""
    return 0.0 if abs(x) < 5e-13 else x + 0.0


def _fmt(x: float) -> str:
    return f"{_clean(x):10.6f}"


def format_summary(title, table, summary, group_names, base, estimates, args) -> str:
    target = table.names[-1]
    whole = ",".join(group_names)
    unit = _unit(base)
    kind = {"probabilities": "probabilities", "counts": "counts", "samples": "samples"}[table.kind]
    count = "1 predictor" if len(group_names) == 1 else f"{len(group_names)} predictors"
    lines = [f"{title}: {count} ({', '.join(group_names)}), target {target}; {kind}; {unit}", ""]
    rows = [(f"I({whole} ; {target})", summary["mutual_information"], "")]
    if len(group_names) > 1:  # with one predictor its share is the whole
        for name, value in zip(group_names, summary["single"]):
            rows.append((f"I({name} ; {target})", value, ""))
    cert = summary["i_vk_certificate"]
    rows += [
        ("I_max", summary["i_max"], "union information, Williams & Beer"),
        ("S_max", summary["s_max"], "I - I_max"),
        ("WMS", summary["wms"], "I - sum of I(A_i ; Y)"),
        ("I_VK", summary["i_vk"], f"certified: true minimum >= {cert['lower_bound']:.10f} (gap {cert['gap']:.1e})"),
        ("S_VK", summary["s_vk"], "I - I_VK"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    for label, value, note in rows:
        lines.append(f"  {label:<{width}}{_fmt(value)}   {note}".rstrip())
    if "pid" in summary:
        lines += ["", "Williams-Beer PID (I_min redundancy lattice)"]
        atoms = summary["pid"]
        n = len(group_names)
        meaning = {"{" + str(i + 1) + "}": f"unique to {group_names[i]}" for i in range(n)}
        meaning["".join("{" + str(i + 1) + "}" for i in range(n))] = "redundancy"
        meaning["{" + "".join(str(i + 1) for i in range(n)) + "}"] = "synergy"
        shown = atoms.items() if n <= 3 else [(k, v) for k, v in atoms.items() if abs(v) > 1e-12 or k in meaning]
        label_width = max(len(k) for k, _ in shown) + 2
        for label, value in shown:
            lines.append(f"  {label:<{label_width}}{_fmt(value)}   {meaning.get(label, '')}".rstrip())
        if n > 3:
            lines.append(f"  ({len(atoms) - len(list(shown))} atoms equal to zero not shown; --json lists all)")
    if estimates:
        first = next(iter(estimates.values()))
        if first.n_bootstrap >= 2:
            interval_note = (
                f"{first.confidence:.0%} bootstrap interval ({first.n_bootstrap} resamples, seed {args.seed})"
            )
        else:
            interval_note = "no bootstrap interval (--bootstrap below 2)"
        lines += [
            "",
            f"Estimates from {first.n_samples} observations: bias-corrected, {interval_note}",
            f"  {'measure':<10}{'plug-in':>11}{'corrected':>11}  {'correction':<14}interval",
        ]
        names = {"mutual_information": "I", "s_max": "S_max", "wms": "WMS", "s_vk": "S_VK"}
        for key, est in estimates.items():
            interval = f"[{_clean(est.ci_low):.4f}, {_clean(est.ci_high):.4f}]" if est.n_bootstrap >= 2 else ""
            values = f"{_clean(est.plugin):>11.6f}{_clean(est.value):>11.6f}"
            lines.append(f"  {names[key]:<10}{values}  {est.correction:<14}{interval}".rstrip())
    return "\n".join(lines) + "\n"
