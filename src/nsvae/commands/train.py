"""``nsvae train``: train a model from a config file or preset, or resume a run."""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError

DESCRIPTION = """\
Train a VAE, beta-VAE, FactorVAE, beta-TCVAE or Non-Synergistic VAE. CONFIG is a
TOML file or the name of a preset (see --list-presets); --set changes single
keys (section.key=value, the value read as TOML: 5, 1e-4, true, "text",
["wandb", "mlflow"]).

A run is a directory (--out, default runs/NAME-DATE-TIME) holding the resolved
config.toml, status.json, log.jsonl, checkpoints/, events/ (TensorBoard:
`tensorboard --logdir RUN/events`) and traversals/. With log.trackers, W&B's
offline files (wandb/; `wandb sync` them) and MLflow's local store (mlruns/)
too, their run ids in trackers.json (docs/training.md, "Experiment trackers").
Ctrl-C or SIGTERM stops after the current step and writes a checkpoint;
--resume RUN continues exactly where it stopped. Exit status: 0 finished, 1 diverged (NaN/Inf loss; the last
good checkpoint is kept), 2 a usage or config error, 130/143 interrupted by
SIGINT/SIGTERM."""

EPILOG = """\
examples:
  nsvae train quick-nonsyn
  nsvae train nonsyn --set run.seed=3 --set nonsyn.alpha=2.5 --out runs/alpha2.5
  nsvae train quick-nonsyn --set log.trackers='["wandb", "mlflow"]'
  nsvae train my.toml --device cuda:1
  nsvae train --resume runs/alpha2.5
  nsvae train --resume runs/alpha2.5 --steps 300000      (extend a finished run)
  nsvae train quick-vae --print-config > my.toml"""


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (from a config file or preset) or resume a run",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="a .toml config file or a preset name")
    p.add_argument("--resume", metavar="RUN", help="continue the run in directory RUN from its latest checkpoint")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one config key, e.g. --set nonsyn.alpha=5 (repeatable)",
    )
    p.add_argument("--out", metavar="DIR", help="the run directory (default: runs/NAME-DATE-TIME)")
    p.add_argument("--device", metavar="D", help="auto, cpu, cuda or cuda:N (overrides run.device)")
    p.add_argument("--steps", type=int, metavar="N", help="train to step N (overrides run.steps; extends on --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from .. import config as config_module

    if args.list_presets:
        for name in config_module.preset_names():
            cfg = config_module.loads(config_module.preset_text(name))
            print(f"{name:28s} {cfg.method:11s} {cfg.data.dataset:9s} {cfg.run.steps:>9,} steps")
        return 0
    if args.resume:
        if args.config or args.overrides or args.out or args.print_config:
            raise UserError("--resume RUN takes only --steps, --device and --no-progress (the run keeps its config)")
        return _resume(args)
    if not args.config:
        raise UserError("give a CONFIG (a .toml file or a preset name; see --list-presets) or --resume RUN")
    config = config_module.load_config(args.config)
    changes = dict(config_module.parse_override(item) for item in args.overrides)
    if args.steps is not None:
        changes["run.steps"] = args.steps
    if args.device is not None:
        changes["run.device"] = args.device
    config = config_module.apply_overrides(config, changes)
    if args.print_config:
        sys.stdout.write(config_module.dumps(config))
        return 0
    from ..train import TrainingDiverged, start
    from ..train.trainer import new_run_path

    run_dir = new_run_path(config, args.out)
    print(f"nsvae train: run {config.run.name} ({config.method}, {config.run.steps:,} steps) in {run_dir.path}")
    try:
        run = start(config, run_dir.path, progress=False if args.no_progress else None)
    except TrainingDiverged as exc:
        print(f"nsvae train: error: {exc}", file=sys.stderr)
        return 1
    return _finish(run)


def _resume(args: argparse.Namespace) -> int:
    from ..train import TrainingDiverged, resume

    print(f"nsvae train: resuming {args.resume}")
    try:
        run = resume(args.resume, args.steps, device=args.device, progress=False if args.no_progress else None)
    except TrainingDiverged as exc:
        print(f"nsvae train: error: {exc}", file=sys.stderr)
        return 1
    return _finish(run)


def _finish(run) -> int:
    status = run.status()
    if status.get("state") == "interrupted":
        print(f"nsvae train: interrupted at step {status.get('step')}; resume with: nsvae train --resume {run.path}")
        return int(status.get("exit_code", 130))
    print(f"nsvae train: finished {status.get('step')} steps in {run.path}")
    return 0
