"""The GPU check of issue 15 (run by scripts/gpu-check.sh): every method on CPU and on CUDA from one seed.

1. Agreement: each method trains ``--steps`` steps (default 200) of the study's network (the paper's,
   batch 64) from seed 0 on the CPU and on CUDA, deterministic mode on both; the loss of every step is
   logged and the two trajectories compared. Float32 convolutions differ between the devices in their
   last bits, and training amplifies that, so the check asserts agreement over the first
   ``--agree-steps`` steps (relative difference <= ``--tolerance``) and prints the rest.
2. Speed: CUDA steps per second of each method alone, and in total when 2 and 4 runs share the GPU
   (separate processes, as ``nsvae study --workers N --device cuda`` runs them). These runs log only
   at their last step, as a study's steps between log steps do.
3. Host synchronisations: the run alone counts, with ``torch.cuda.set_sync_debug_mode("warn")``, the
   synchronising calls per step between step 10 and its end (0 for every method but the Non-Syn VAE,
   whose selection reads its d per-latent KLs once a step, overlapped with the ELBO backward).

Exit status 0 when every method agrees, 1 when one does not, 0 with a message when there is no CUDA
device (CI machines have none: the check is skipped). Prints one table to paste into
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

METHODS = {
    "vae": "quick-vae",
    "beta_vae": "quick-beta-vae",
    "factor_vae": "quick-factor-vae",
    "beta_tcvae": "quick-beta-tcvae",
    "nonsyn": "quick-nonsyn",
}

CHILD = r"""
import json, sys, time
from nsvae.config import apply_overrides, load_config
from nsvae.train import start
preset, device, steps, out, deterministic = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
log_every = int(sys.argv[6])
config = apply_overrides(load_config(preset), {
    "run.steps": steps, "run.device": device, "run.seed": 0, "run.deterministic": deterministic,
    "model.fc_relus": "paper", "model.convtranspose_init": "pytorch0.4", "data.batch_size": 64,
    "log.every": log_every, "log.traversal_every": 0, "log.checkpoint_every": 1_000_000, "log.tensorboard": False,
    "log.console": False, "log.progress": False})
import warnings
marks, syncs = {}, {}
caught = []
def mark(step, logs):
    if step in (10, steps):
        syncs[step] = len(caught)
        if device != "cpu":
            import torch
            torch.cuda.synchronize()
        marks[step] = time.perf_counter()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    if device != "cpu":
        import torch
        torch.cuda.set_sync_debug_mode("warn")
    run = start(config, out, progress=False, callback=mark)
losses = [e["loss"] for e in run.log()]
print(json.dumps({"losses": losses, "steps_per_s": (steps - 10) / (marks[steps] - marks[10]),
                  "syncs_per_step": (syncs[steps] - syncs[10]) / (steps - 10)}))
"""


def launch(preset: str, device: str, steps: int, out: str, deterministic: bool, log_every: int = 1) -> subprocess.Popen:
    """A training child: ``log_every`` 1 for the loss trajectory, ``steps`` for timing (no reads between)."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, preset, device, str(steps), out, "1" if deterministic else "0", str(log_every)],
        stdout=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"gpu-check: a training process failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--agree-steps", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--packed", nargs="+", type=int, default=[1, 2, 4], help="runs sharing the GPU")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; skipped (run it on a machine with a GPU)")
        return 0
    print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M')}")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        packed = " | ".join(f"CUDA x{n} steps/s (total)" for n in args.packed)
        print(
            f"| method | max rel. loss difference, steps 1-{args.agree_steps} | at step {args.steps} "
            f"| CPU steps/s | {packed} | CUDA host syncs/step |"
        )
        print("|---|---|---|---|" + "---|" * len(args.packed) + "---|")
        for method in args.methods:
            preset = METHODS[method]
            cpu = result(launch(preset, "cpu", args.steps, f"{tmp}/{method}-cpu", True))
            gpu = result(launch(preset, "cuda", args.steps, f"{tmp}/{method}-cuda", True))
            a, b = cpu["losses"], gpu["losses"]
            rel = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a, b)]
            early = max(rel[: args.agree_steps])
            if early > args.tolerance:
                failed.append(method)
            speeds, syncs = [], None
            for n in args.packed:
                procs = [
                    launch(preset, "cuda", args.steps, f"{tmp}/{method}-p{n}-{i}", False, log_every=args.steps)
                    for i in range(n)
                ]
                results = [result(p) for p in procs]
                speeds.append(sum(r["steps_per_s"] for r in results))
                if n == 1:
                    syncs = results[0]["syncs_per_step"]
            cells = " | ".join(f"{s:.1f}" for s in speeds)
            shown = "-" if syncs is None else f"{syncs:.2f}"
            print(
                f"| {method} | {early:.2e} | {rel[-1]:.2e} | {cpu['steps_per_s']:.1f} | {cells} | {shown} |", flush=True
            )
    if failed:
        print(f"gpu-check: CPU and CUDA disagree beyond {args.tolerance} in the first steps of: {', '.join(failed)}")
        return 1
    print("gpu-check: every method agrees between CPU and CUDA over the first steps")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    sys.exit(main())
