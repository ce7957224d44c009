"""The options ``nsvae sweep`` and ``nsvae study`` share for SLURM (``--slurm`` and each job's resources) and for
``--status``."""

from __future__ import annotations

import argparse

from ..errors import UserError
from ..experiments.slurm_resources import SlurmRequest

#: The per-run resource options, each overriding the sweep file's key of the same name.
RESOURCE_OPTIONS = ("partition", "time", "cpus", "gpus", "mem")


def add_slurm_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--slurm``, the resource options and ``--status`` (``what``: "sweep" or "study", for the help texts)."""
    p.add_argument(
        "--slurm",
        action="store_true",
        help=f"submit the {what}'s runs to SLURM, one job array (a task per run; submitted from a node of the "
        "cluster, the sweep directory on a file system the nodes share), and wait for them; a preempted or "
        "timed-out job checkpoints, requeues and resumes. Ctrl-C stops the waiting, not the jobs. Needs "
        "pip install 'nsvae[slurm]'",
    )
    group = p.add_argument_group("SLURM resources of each run (with --slurm; over the file's [resources] and [slurm])")
    group.add_argument("--partition", metavar="NAME", help="the partition ([slurm] partition; default: SLURM's)")
    group.add_argument(
        "--time",
        metavar="LIMIT",
        help="each job's time limit, as sbatch takes it: minutes, HH:MM:SS or D-HH:MM:SS ([slurm] time; one of "
        "the two is required); a run longer than it is requeued and resumed",
    )
    group.add_argument("--cpus", type=float, metavar="N", help="CPUs per run, its torch threads ([resources] cpus)")
    group.add_argument("--gpus", type=float, metavar="N", help="GPUs per run ([resources] gpus)")
    group.add_argument(
        "--mem", metavar="MEM", help="memory per run: megabytes or e.g. 16G ([slurm] mem; default: SLURM's)"
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="show each run's state and exit: pending, queued, running, interrupted, cancelled, failed, finished "
        "(from its status.json and, on SLURM, its job's state in the queue), with the log files of failed and "
        "cancelled runs",
    )


def slurm_request(args: argparse.Namespace) -> SlurmRequest | None:
    """What the command line asks of SLURM (None without ``--slurm``); ``--workers``, when given, is the most jobs
    that run at once."""
    given = [name for name in RESOURCE_OPTIONS if getattr(args, name) is not None]
    if not args.slurm:
        if given:
            raise UserError(f"--{given[0]} is a SLURM resource: give it with --slurm")
        return None
    return SlurmRequest(
        partition=args.partition,
        time=args.time,
        cpus=args.cpus,
        gpus=args.gpus,
        mem=args.mem,
        max_running=args.workers,
    )
