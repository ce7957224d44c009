"""``nsvae evaluate``: disentanglement metrics and synergy of a trained run, written to RUN/eval.json."""

from __future__ import annotations

import argparse
import json

from ..errors import UserError

DESCRIPTION = """\
Score a trained run with the disentanglement metrics under a named protocol
('default': disentanglement_lib's study settings; 'paper': each metric's
original paper where it differs) and with the synergy of its representation.
Every image of the dataset is encoded once and the encodings are shared by
the metrics. The scores, each metric's exact protocol, the seed and the
library versions are written to RUN/eval.json. See docs/metrics.md."""

EPILOG = """\
examples:
  nsvae evaluate runs/quick-nonsyn-20261128-120000
  nsvae evaluate RUN --metrics mig factor_vae_score --protocol paper
  nsvae evaluate RUN --set factor_vae_score.num_train=500 --seed 1"""


def register(sub) -> None:
    from ..metrics import DEFAULT_METRICS, OPT_IN_METRICS

    p = sub.add_parser(
        "evaluate",
        help="disentanglement metrics and synergy of a trained run (writes RUN/eval.json)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="M",
        help=f"metrics to run (default: {', '.join(DEFAULT_METRICS)}; only when named: {', '.join(OPT_IN_METRICS)})",
    )
    p.add_argument("--protocol", default="default", choices=("default", "paper"), help="protocol (default: default)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the evaluation (default 0)")
    p.add_argument("--step", type=int, help="checkpoint step to evaluate (default: the latest)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--n-jobs", type=int, help="processes for DCI's and DCI-ES's probes (default: the CPUs available)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="METRIC.PARAM=VALUE",
        help="change one protocol parameter, e.g. --set mig.num_bins=30 (repeatable)",
    )
    p.add_argument(
        "--no-table",
        action="store_true",
        help="score on pools only, without encoding the whole dataset first (faster; the synergy metric and Chen's "
        "MIG then use their pool estimators, recorded in their protocol)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run_evaluate)


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """``["mig.num_bins=30"]`` -> ``{"mig": {"num_bins": 30}}`` (values read as JSON, else text)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        metric, dot, param = key.partition(".")
        if not sep or not dot or not metric or not param:
            raise UserError(f"--set expects METRIC.PARAM=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(metric, {})[param] = value
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_run
    from ..metrics.evaluate import headline_scores

    result = evaluate_run(
        args.run_dir,
        metrics=args.metrics,
        protocol=args.protocol,
        seed=args.seed,
        step=args.step,
        device=args.device,
        overrides=parse_overrides(args.overrides),
        progress=not args.no_progress,
        n_jobs=args.n_jobs,
        table=False if args.no_table else "auto",
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.run_dir}: step {result['step']}, protocol {args.protocol}, seed {args.seed}")
    for name, score in headline_scores(result).items():
        print(f"  {name:<26} {score:.4f}")
    print(f"written to {args.run_dir}/eval.json")
    return 0
