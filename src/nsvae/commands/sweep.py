"""``nsvae sweep``: train and evaluate every run of a sweep file, locally, on a Ray cluster or on SLURM."""

from __future__ import annotations

import argparse
import signal

from ..errors import UserError
from ..experiments.slurm_resources import SlurmRequest
from .slurm_options import add_slurm_arguments, slurm_request

DESCRIPTION = """\
Train and evaluate every run of a sweep: a base config with a grid and/or a
list of overrides over any config key, crossed with seeds (see
docs/sweeps.md). SWEEP is a sweep .toml file, a sweep preset name (see
--list-presets) or a sweep directory (to continue it).

The sweep lives in --out (default runs/SWEEP-NAME): sweep.toml (a copy of the
file), sweep.json (each run's attempts, times and SLURM job), runs/NAME/ (ordinary
run directories) and logs/NAME.log (each run's output). Running the same sweep
again skips finished runs, resumes interrupted ones from their checkpoints,
evaluates trained ones and skips failed ones unless --retry-failed.
Ctrl-C or SIGTERM stops the running runs after their current step with a
checkpoint.

With --slurm the runs go to SLURM as one job array (a task per run, the
resources of the file's [resources] and [slurm] tables or --partition, --time,
--cpus, --gpus, --mem; each job's logs in SWEEP_DIR/slurm), and the command
waits for them. A job that is preempted or reaches its time limit writes a
checkpoint and is requeued, and its run resumes where it stopped. Ctrl-C stops
only the waiting; the same command waits again (a queued job is never
submitted twice), --status shows the runs and their jobs. A sweep directory
can be continued by any of the three: locally, on Ray, on SLURM.

Exit status: 0 every run finished, 1 some run failed (or its SLURM job was
cancelled), 2 a usage or sweep-file error, 130/143 interrupted."""

EPILOG = """\
examples:
  nsvae sweep quick-comparison --dry-run
  nsvae sweep quick-comparison --workers 2
  nsvae sweep my-sweep.toml --out runs/alpha-omega --workers 4
  nsvae sweep runs/alpha-omega --retry-failed          (continue a sweep directory)
  nsvae sweep comparison --ray auto                    (on the Ray cluster this node belongs to)
  nsvae sweep comparison --slurm --partition gpu --time 8:00:00 --gpus 1 --mem 16G
  nsvae sweep comparison --status                      (each run's state and SLURM job)
  nsvae results runs/alpha-omega"""


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and evaluate the runs of a sweep file, locally, on a Ray cluster or on SLURM",
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
        metavar="N",
        help="runs at once on this machine (default 1); each gets cores // N torch threads. "
        "With --ray local: the local Ray instance's CPUs. With --slurm: the most jobs that run at once "
        "(default: no limit)",
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
    add_slurm_arguments(p, "sweep")
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
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.device is not None:
        from ..config.schema import DEVICE_PATTERN

        if not DEVICE_PATTERN.match(args.device):
            raise UserError(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    request = slurm_request(args)
    if request is not None and args.ray is not None:
        raise UserError("--ray and --slurm exclude each other: give one")
    if args.status:
        return _status(args)
    if args.dry_run:
        return _dry_run(args, request)
    outcome = executors.run_sweep(
        args.sweep,
        args.out,
        workers=args.workers or 1,
        ray=args.ray,
        retry_failed=args.retry_failed,
        device=args.device,
        only=args.only,
        slurm=request,
    )
    states = outcome.states
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    print(
        f"nsvae sweep: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}; "
        f"results: nsvae results {outcome.sweep_dir}"
    )
    return outcome_exit_status("nsvae sweep", outcome)


def outcome_exit_status(prog: str, outcome) -> int:
    """Name the failed, cancelled and signalled runs of a finished ``run_sweep`` (``nsvae sweep`` and ``nsvae
    study`` alike) and return the exit status: 128 + the signal when one stopped it, 1 when a run failed or was
    cancelled, else 0."""
    if outcome.failed:
        print(f"{prog}: failed: {', '.join(outcome.failed)} (errors in {outcome.sweep_dir}/sweep.json)")
    if outcome.cancelled:
        print(
            f"{prog}: SLURM job cancelled: {', '.join(outcome.cancelled)} (stopped with a checkpoint; "
            "the same command resumes them)"
        )
    if outcome.signum is not None:
        print(f"{prog}: stopped by {signal.Signals(outcome.signum).name}; run the same command to continue")
        return 128 + outcome.signum
    return 1 if outcome.failed or outcome.cancelled else 0


def _status(args: argparse.Namespace) -> int:
    from ..experiments import executors, sweep, sweep_status

    spec = sweep.load_sweep(args.sweep)
    sweep_dir = executors.sweep_dir_for(spec, args.sweep, args.out)
    names = [r.name for r in spec.runs if not args.only or r.name in args.only]
    rows, queue_read = sweep_status.sweep_status(sweep_dir, names)
    print(sweep_status.format_status(f"{spec.name} ({sweep_dir})", rows, queue_read))
    return 0


def _dry_run(args: argparse.Namespace, request: SlurmRequest | None) -> int:
    from ..experiments import executors, sweep
    from ..names import value_text

    spec = sweep.load_sweep(args.sweep)
    sweep_dir = executors.sweep_dir_for(spec, args.sweep, args.out)
    actions = executors.plan_sweep(spec, sweep_dir, args.retry_failed)
    evaluation = spec.evaluation
    what = ", ".join(evaluation.metric_names()) if evaluation.enabled else "none"
    print(f"{spec.name}: {len(spec.runs)} runs in {sweep_dir} (evaluation: {what})")
    if request is not None:
        print(f"SLURM: {executors.slurm_resources_for(spec, args.sweep, request).describe()}")
    width = max(len(r.name) for r in spec.runs)
    for run in spec.runs:
        values = " ".join(f"{k}={value_text(v)}" for k, v in run.values.items())
        summary = f"{run.config.method}, {run.config.run.steps:,} steps"
        print(f"  {run.name:<{width}}  {actions[run.name]:<8}  {summary}  {values}".rstrip())
    return 0
