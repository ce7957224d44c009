"""The cost of a learning-curve point against the training it interrupts, at a study's setting.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_curve.py --study study-cpu --method vae --run RUN [--steps 300] [--repeats 3]

In one process with one torch thread (as each of a study's two packed runs
has), alternately: trains ``--steps`` steps of the study's ``--method``
(its preset: network, batch, learning rate; timing excludes the first 20
steps) and scores one curve point (the study's curve protocol,
``nsvae.train.learning_curve.evaluate_model``) of the model of ``--run`` (a
trained dSprites run: the synergy metric's eliminations depend on what the
model learned; without ``--run``, the freshly trained model). Prints, per
repeat and as median and min-max: seconds per training step, seconds per
curve point and per part of it, and the curve's cost as a share of training
at the study's ``eval.every``. Both parts run in the same process at the
same moment's load, so the share holds on a busy machine too.

To compare two versions of the code side by side, run the script with
``PYTHONPATH`` pointing at each version's ``src`` in turn (RESULTS.md gives
the command).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch


def train_seconds_per_step(study: str, method: str, steps: int, out: Path):
    """Seconds per training step of the study's ``method`` (after 20 warm-up steps), and the trained model."""
    from nsvae.config import apply_overrides
    from nsvae.experiments.sweep import load_sweep
    from nsvae.train import load_run, start

    base = load_sweep(study).run(f"{method}-seed0").config
    config = apply_overrides(
        base,
        {
            "run.steps": steps,
            "run.threads": 1,
            "eval.every": 0,
            "log.tensorboard": False,
            "log.console": False,
            "log.traversal_every": 0,
            "log.every": 10_000,
            "log.checkpoint_every": 100_000,
        },
    )
    marks: dict[int, float] = {}

    def mark(step: int, logs) -> None:
        if step in (20, steps):
            marks[step] = time.perf_counter()

    start(config, out, progress=False, callback=mark)
    return (marks[steps] - marks[20]) / (steps - 20), load_run(out).load_model(), base.eval.every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="study-cpu", help="the study preset or spec file (default: study-cpu)")
    parser.add_argument("--method", default="vae", help="the method to train, as run names spell it (default: vae)")
    parser.add_argument("--run", help="a trained dSprites run whose model is scored (default: the freshly trained one)")
    parser.add_argument("--steps", type=int, default=300, help="training steps timed per repeat (default: 300)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from nsvae.config import open_dataset
    from nsvae.train import load_run
    from nsvae.train.learning_curve import evaluate_model

    scored = load_run(args.run) if args.run else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="nsvae-bench-curve-") as tmp:
        for r in range(args.repeats):
            per_step, trained, every = train_seconds_per_step(args.study, args.method, args.steps, Path(tmp) / f"r{r}")
            model = scored.load_model() if scored is not None else trained
            data = open_dataset(scored.config if scored is not None else load_run(Path(tmp) / f"r{r}").config)
            t0 = time.perf_counter()
            result = evaluate_model(model, data, seed=0)
            point = time.perf_counter() - t0
            share = point / (every * per_step)
            rows.append({"per_step": per_step, "point": point, "share": share, "parts": result["seconds"]})
            parts = ", ".join(f"{k} {v:.1f}" for k, v in result["seconds"].items() if v >= 0.05)
            print(
                f"repeat {r}: {per_step * 1000:.1f} ms/step; curve point {point:.1f} s ({parts}); "
                f"{100 * share:.1f}% of training at one point per {every} steps",
                flush=True,
            )

    def summary(key: str, scale: float = 1.0) -> str:
        values = [row[key] * scale for row in rows]
        return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"

    import nsvae

    # the commit of the code measured (PYTHONPATH may point at another worktree than this script's)
    code_dir = Path(nsvae.__file__).resolve().parent
    git = subprocess.run(["git", "-C", str(code_dir), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"median [min-max] over {len(rows)}: {summary('per_step', 1000)} ms/step, curve point {summary('point')} s, "
        f"cost {summary('share', 100)}% of training; torch {torch.__version__}, nsvae at {git.stdout.strip()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
