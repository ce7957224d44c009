"""``nsvae report``: one self-contained HTML page for a run, or a comparison of several runs."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Write a self-contained HTML report (figures embedded; open it in any browser, offline).

One run directory: its page, with the config, the metric table of each
evaluation protocol (from RUN/eval.json), the synergy of the latents about each
factor, the training curves, the latent traversal and the mean-activation
figure (from --samples random images).

Several run directories, or a directory holding runs (a sweep directory): the
comparison page, with a table per setting (runs that differ only in their seed)
giving mean +- std over seeds, a table per run, metric bars, disentanglement
against reconstruction error, the synergy proxy over training, and one
traversal per setting. Settings are labelled by the method and the config keys
that differ between the runs; the synergy score (S_max) is followed by its WMS.
When the runs differ in a config key outside their objectives' own tables (the
network, its initialisation, the optimiser, the batch size, the steps, the
data, ...), the page opens with a warning naming each such key and the settings
with each value, and the same warning is printed on stderr (also with -q)."""

EPILOG = """\
examples:
  nsvae report runs/demo                           # writes runs/demo/report.html
  nsvae report runs/nonsyn runs/vae -o cmp.html    # comparison of two runs
  nsvae report sweeps/quick-comparison             # every run of a sweep
  nsvae report runs/demo --protocol paper --samples 0"""


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run or a comparison of runs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, or directories that hold runs")
    p.add_argument(
        "-o", "--output", metavar="HTML", help="where to write the page (default: report.html in the directory given)"
    )
    p.add_argument(
        "--protocol",
        help="evaluation protocol whose scores are compared (default: 'default' where present); "
        "a single run's page shows every protocol",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=20_000,
        metavar="N",
        help="images encoded for a single run's mean-activation figure (default 20000; 0 leaves it out)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for choosing the --samples images (default 0)")
    p.add_argument("--no-traversals", action="store_true", help="leave out the traversal figures (no model is loaded)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only where the report was written")
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..viz.report import write_report

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"report: {message}", file=sys.stderr, flush=True)

    def warn(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    path = write_report(
        args.runs,
        args.output,
        protocol=args.protocol,
        samples=args.samples,
        seed=args.seed,
        traversals=not args.no_traversals,
        progress=progress,
        warn=warn,
    )
    print(f"report: wrote {path}")
    return 0
