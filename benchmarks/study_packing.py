"""How a study should use this machine's cores: two runs with one thread each, or one run with all of them.

Usage (from the repository root, on an otherwise idle machine)::

    .venv/bin/python benchmarks/study_packing.py --steps 300 --methods vae nonsyn

For each method, trains ``--steps`` steps of the study's network (batch 64,
the paper's network) three ways, side by side in one invocation:

- ``alone``: one run with every core as torch threads (``--workers 1``);
- ``packed``: two runs at once, one thread each (``--workers 2``), started together;

and prints steps per second per run, and runs per hour relative to ``alone``
(packed counts both runs). Each timing excludes the process start and the
first 20 steps (warm-up). Repeats ``--repeats`` times, alternating the order,
and reports the median and min-max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from nsvae.config import apply_overrides, load_config
from nsvae.train import start
method, steps = sys.argv[1], int(sys.argv[3])
preset = {"vae": "quick-vae", "beta_vae": "quick-beta-vae", "factor_vae": "quick-factor-vae",
          "beta_tcvae": "quick-beta-tcvae", "nonsyn": "quick-nonsyn"}[method]
cfg = apply_overrides(load_config(preset), {
    "run.steps": steps, "run.threads": int(sys.argv[2]), "log.tensorboard": False, "log.console": False,
    "log.traversal_every": 0, "log.every": 10_000, "log.checkpoint_every": 100_000,
    "model.fc_relus": "paper", "model.convtranspose_init": "pytorch0.4"})
marks = {}
def cb(step, logs):
    if step in (20, steps):
        marks[step] = time.perf_counter()
start(cfg, sys.argv[4], progress=False, callback=cb)
print(json.dumps({"steps_per_s": (steps - 20) / (marks[steps] - marks[20])}))
"""


def child(method: str, threads: int, steps: int, out: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, method, str(threads), str(steps), out],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def rate(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"a benchmark run failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--methods", nargs="+", default=["vae", "nonsyn"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tmp", default="/tmp/nsvae-packing")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    results = {}
    for method in args.methods:
        alone, packed = [], []
        for r in range(args.repeats):
            order = ("alone", "packed") if r % 2 == 0 else ("packed", "alone")
            for how in order:
                subprocess.run(["rm", "-rf", args.tmp], check=True)
                if how == "alone":
                    alone.append(rate(child(method, cores, args.steps, f"{args.tmp}/a")))
                else:
                    procs = [child(method, 1, args.steps, f"{args.tmp}/p{i}") for i in range(2)]
                    packed.append(sum(rate(p) for p in procs))
        results[method] = (alone, packed)
        ratio = [p / a for a, p in zip(alone, packed)]
        print(
            f"{method}: alone ({cores} threads) {statistics.median(alone):.2f} steps/s "
            f"[{min(alone):.2f}-{max(alone):.2f}]; packed (2 x 1 thread) {statistics.median(packed):.2f} steps/s "
            f"in all [{min(packed):.2f}-{max(packed):.2f}]; packed/alone {statistics.median(ratio):.2f} "
            f"[{min(ratio):.2f}-{max(ratio):.2f}]",
            flush=True,
        )
    subprocess.run(["rm", "-rf", args.tmp], check=True)
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


if __name__ == "__main__":
    main()
