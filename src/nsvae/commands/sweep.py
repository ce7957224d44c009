"""``nsvae sweep``: train and evaluate every run of a sweep file, locally or on a Ray cluster."""

from __future__ import annotations

import argparse
import signal

from ..errors import UserError

DESCRIPTION = """\
Train and evaluate every run of a sweep: a base config with a grid and/or a
list of overrides over any config key, crossed with seeds (see
docs/sweeps.md). SWEEP is a sweep .toml file, a sweep preset name (see
--list-presets) or a sweep directory (to continue it).

The sweep lives in --out (default runs/SWEEP-NAME): sweep.toml (a copy of the
file), sweep.json (every run's state, error and attempts), runs/NAME/ (ordinary
run directories) and logs/NAME.log (each run's output). Running the same sweep
again skips finished runs, resumes interrupted ones from their checkpoints,
evaluates trained ones and skips failed ones unless --retry-failed.
Ctrl-C or SIGTERM stops the running runs after their current step with a
checkpoint. Exit status: 0 every run finished, 1 some run failed, 2 a usage or
sweep-file error, 130/143 interrupted."""

EPILOG = """\
examples:
  nsvae sweep quick-comparison --dry-run
  nsvae sweep quick-comparison --workers 2
  nsvae sweep my-sweep.toml --out runs/alpha-omega --workers 4
  nsvae sweep runs/alpha-omega --retry-failed          (continue a sweep directory)
  nsvae sweep comparison --ray auto                    (on the Ray cluster this node belongs to)
  nsvae results runs/alpha-omega"""


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and evaluate the runs of a sweep file, locally or on a Ray cluster",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep", nargs="?", metavar="SWEEP", help="a sweep .toml file, a sweep preset or a sweep directory")
    p.add_argument("--out", metavar="DIR", help="the sweep directory (default: runs/SWEEP-NAME)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and what each needs, then exit")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="runs at once on this machine (default 1); each gets cores // N torch threads. "
        "With --ray local: the local Ray instance's CPUs",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run each run as a Ray task: 'auto' (the cluster this node is in), 'local' (a private instance "
        "here) or a cluster address (ray://HOST:10001); needs pip install 'nsvae[ray]'",
    )
    p.add_argument("--retry-failed", action="store_true", help="run the failed runs again (resumed where possible)")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N for every run (overrides run.device)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these runs of the sweep")
    p.add_argument("--list-presets", action="store_true", help="list the sweep presets and exit")
    p.set_defaults(run=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..experiments import executors, sweep

    if args.list_presets:
        for name in sweep.sweep_preset_names():
            spec = sweep.load_sweep(name)
            methods = sorted({r.config.method for r in spec.runs})
            print(f"{name:24s} {len(spec.runs):>4} runs  {', '.join(methods)}")
        return 0
    if not args.sweep:
        raise UserError("give a SWEEP (a .toml file, a sweep preset name or a sweep directory); see --list-presets")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.device is not None:
        from ..config.schema import DEVICE_PATTERN

        if not DEVICE_PATTERN.match(args.device):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    if args.dry_run:
        return _dry_run(args)
    outcome = executors.run_sweep(
        args.sweep,
        args.out,
        workers=args.workers,
        ray=args.ray,
        retry_failed=args.retry_failed,
        device=args.device,
        only=args.only,
    )
    states = outcome.states
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    print(
        f"nsvae sweep: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; "
        f"results: nsvae results {outcome.sweep_dir}"
    )
    if outcome.failed:
        print(f"nsvae sweep: failed: {', '.join(outcome.failed)} (errors in {outcome.sweep_dir}/sweep.json)")
    if outcome.signum is not None:
        print(f"nsvae sweep: stopped by {signal.Signals(outcome.signum).name}; run the same command to continue")
        return 128 + outcome.signum
    return 1 if outcome.failed else 0


def _dry_run(args: argparse.Namespace) -> int:
    from ..experiments import executors, sweep

    spec = sweep.load_sweep(args.sweep)
    sweep_dir = executors.sweep_dir_for(spec, args.sweep, args.out)
    actions = executors.plan_sweep(spec, sweep_dir, args.retry_failed)
    evaluation = spec.evaluation
    what = ", ".join(evaluation.metric_names()) if evaluation.enabled else "none"
    print(f"{spec.name}: {len(spec.runs)} runs in {sweep_dir} (evaluation: {what})")
    width = max(len(r.name) for r in spec.runs)
    for run in spec.runs:
        values = " ".join(f"{k}={sweep.format_value(v)}" for k, v in run.values.items())
        summary = f"{run.config.method}, {run.config.run.steps:,} steps"
        print(f"  {run.name:<{width}}  {actions[run.name]:<8}  {summary}  {values}".rstrip())
    return 0
