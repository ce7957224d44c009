"""``nsvae results``: one table of a sweep's runs (CSV and SQLite) and mean ± std over seeds per setting."""

from __future__ import annotations

import argparse
import json
import math
import sys

DESCRIPTION = """\
Gather every run of a sweep directory (its config, final training losses and
evaluation scores) into one table, written as SWEEP_DIR/results.csv and
SWEEP_DIR/results.sqlite (tables `runs` and `settings`), and print the mean
± sample standard deviation over seeds of each setting (runs equal in every
config key but their seeds). Only finished runs count; `n` shows finished/all
where some did not finish. The synergy score (S_max) is followed by its WMS.

When the runs differ in a config key outside their objectives' own tables
(the network, its initialisation, the optimiser, the batch size, the steps, the
data, ...), a warning on stderr names each such key and the settings with each
value: their scores may then differ for that reason and not the objective's.

UDR (Duan et al. 2020), which needs no labels, is added for every setting with
at least two finished runs: each run scored against its setting's other seeds.
It needs each run's posterior on UDR's fixed sample of 1,000 images, encoded
once from the run's latest checkpoint and kept as RUN/udr_sample.npz (a run
without checkpoints needs that file). --no-udr leaves it out."""

EPILOG = """\
examples:
  nsvae results runs/quick-comparison
  nsvae results runs/quick-comparison --columns mig sap train.recon --markdown
  sqlite3 runs/quick-comparison/results.sqlite 'select setting, "metric.mig.mean" from settings'"""


def register(sub) -> None:
    p = sub.add_parser(
        "results",
        help="a sweep's runs in one table (CSV, SQLite) and mean ± std over seeds per setting",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a sweep directory (written by nsvae sweep)")
    p.add_argument(
        "--columns",
        nargs="+",
        metavar="C",
        help="columns to aggregate: metric names (mig), train.recon, train.kl or any numeric column "
        "(default: every metric, synergy.wms beside synergy, then train.recon and train.kl)",
    )
    p.add_argument("--protocol", help="the evaluation protocol to read (default: the sweep's)")
    p.add_argument("--csv", metavar="PATH", help="where to write the CSV (default SWEEP_DIR/results.csv)")
    p.add_argument("--sqlite", metavar="PATH", help="where to write the SQLite file (default SWEEP_DIR/results.sqlite)")
    p.add_argument("--digits", type=int, default=3, help="decimals in the printed table (default 3)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", action="store_true", help="print the aggregates as JSON")
    p.add_argument("--no-udr", action="store_true", help="leave UDR out (it encodes 1,000 images per run once)")
    p.add_argument("--device", default="auto", help="where UDR's samples are encoded: auto, cpu, cuda (default auto)")
    p.set_defaults(run=run_results)


def run_results(args: argparse.Namespace) -> int:
    from ..config import comparison
    from ..errors import UserError
    from ..experiments import sweep_results

    if not 0 <= args.digits <= 12:
        raise UserError(f"--digits must be between 0 and 12 (default 3), got {args.digits}")
    rows = sweep_results.gather_results(args.sweep_dir, protocol=args.protocol)
    left_out = [] if args.no_udr else sweep_results.add_udr(args.sweep_dir, rows, device=args.device)
    columns = None
    if args.columns:
        known = sweep_results.result_columns(rows)
        columns = []
        for name in args.columns:
            full = name if name in known else f"metric.{name}"
            if full not in known:
                numeric = [c for c in known if c.startswith(("metric.", "train."))]
                raise UserError(f"no column {name!r} in the results; columns: {', '.join(numeric) or 'none yet'}")
            columns.append(full)
    aggregates = sweep_results.aggregate(rows, columns)
    warning = comparison.warning_lines(sweep_results.comparison_differences(rows), what="settings")
    csv_path, sqlite_path = sweep_results.write_results(args.sweep_dir, rows, aggregates, args.csv, args.sqlite)
    shown = columns or [k for k in (aggregates[0] if aggregates else {}) if k not in ("setting", "n", "runs", "seeds")]
    if args.json:
        clean = [
            {k: ([None if math.isnan(x) else x for x in v] if isinstance(v, tuple) else v) for k, v in a.items()}
            for a in aggregates
        ]
        print(json.dumps(clean, indent=2))
    else:
        print(sweep_results.format_table(aggregates, shown, digits=args.digits, markdown=args.markdown), end="")
        failed = [r for r in rows if r["state"] == "failed"]
        for row in failed:
            print(f"failed: {row['run']}: {row['error']}")
        print(f"{len(rows)} runs; table: {csv_path}, {sqlite_path}")
    if warning or left_out:
        sys.stdout.flush()
    if warning:
        print(comparison.warning_text(warning), file=sys.stderr)
    for line in left_out:
        print(f"nsvae results: warning: {line}", file=sys.stderr)
    return 0
