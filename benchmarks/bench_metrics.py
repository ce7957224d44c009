"""Time of a full evaluation (every metric, default protocol) of a dSprites conv-net model, encoding included.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_metrics.py [--run RUN] [--n-jobs N] [--json OUT] [--metrics M ...]

With ``--run`` the run's latest checkpoint is evaluated (as ``nsvae evaluate
RUN`` does); without it, a randomly initialised dSprites conv net (the
original architecture, z_dim 10): the work per metric does not depend on
training, only the scores do. Like ``nsvae evaluate`` on the CPU, it
encodes 128 images per call inside ``keep_freed_memory``. Prints the seconds
of each step (encoding the 737,280 images once, the shared pool, each
metric) and the total wall time.
Goal (issue 5): at most 10 minutes on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from nsvae import data as datasets
from nsvae.cpus import usable_cpus
from nsvae.metrics import DEFAULT_METRICS, evaluate
from nsvae.models import VAE, NetConfig
from nsvae.train.allocator import keep_freed_memory
from nsvae.train.latents import posterior_encoder

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a trained dSprites run directory (default: a randomly initialised model)")
    parser.add_argument("--n-jobs", type=int, default=None, help="DCI processes (default: the CPUs available)")
    parser.add_argument("--json", help="write the evaluation result here")
    parser.add_argument(
        "--metrics",
        nargs="+",
        help="only these metrics (default: every default metric); the whole dataset is encoded only when one of them "
        "needs it, so the pool metrics alone time their own cost",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    if args.run:
        from nsvae.train import load_run

        model = load_run(args.run).load_model()
        source = args.run
    else:
        torch.manual_seed(0)
        model = VAE(NetConfig()).to_fast_layout().eval()
        source = "random-init conv net (z_dim 10)"
    dsprites = datasets.load("dsprites")
    n_jobs = args.n_jobs or usable_cpus()
    with keep_freed_memory():  # as evaluate_run does on the CPU
        result = evaluate(
            dsprites,
            represent_posterior=posterior_encoder(model),
            metrics=tuple(args.metrics) if args.metrics else DEFAULT_METRICS,
            seed=0,
            n_jobs=n_jobs,
            progress=True,
        )
    total = time.perf_counter() - start
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"date {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, git {git.stdout.strip()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {platform.machine()} {os.cpu_count()} CPUs, model: {source}, "
        f"DCI n_jobs {n_jobs}"
    )
    print("\n| step | seconds |\n|---|---|")
    for step, seconds in result["seconds"].items():
        print(f"| {step} | {seconds:.1f} |")
    verdict = "met" if total <= 600 else "NOT met"
    print(
        f"| **total wall time, loading included** | **{total:.0f}** ({total / 60:.1f} min; goal <= 10 min: {verdict}) |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
