"""Training-step time of every objective on the dSprites conv net, batch 64, side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_train.py [--repeats 30] [--allocator both] [--json OUT]

For each configuration the script builds the model and objective, warms up,
then times single training steps; configurations are interleaved round by
round so that machine noise hits all of them alike. Reported: the median step
time (min–max), images/s, the ratio of medians to the VAE step, and the
median (interquartile range) of the per-round ratios, each step over the VAE
step of the same round, which cancels the slow drifts of a shared machine
(the goals are read on it); next to them, the floating-point-operation floor:
the FLOPs of the step's forward and backward passes
(``torch.utils.flop_counter``), as a ratio to the VAE's.

Two passes, one table each (``--allocator``): first with glibc's default
``malloc`` settings, then inside ``nsvae.train.allocator.keep_freed_memory``,
which ``nsvae train`` uses on the CPU (freed activations stay in the heap
instead of being unmapped and faulted in again). The setting is
process-wide, so in the second pass the eager reference has it too, which a
plain PyTorch program would not: the speed-up over the eager reference is
read in the first pass, where neither has it (a lower bound).

"eager reference" is a plain PyTorch implementation of the same network and
loss written here without anything from nsvae (contiguous NCHW tensors,
``torch.optim.Adam`` defaults): the baseline the project's VAE step is
compared with. The project's steps run the network in the channels-last
memory format (``nsvae.models.VAE.to_fast_layout``), which is what measured
fastest on this CPU.

Goals (issue 4): Non-Syn (faithful) <= 1.4x the VAE step, its joint-update
option <= 1.05x, FactorVAE <= 2.0x, and the VAE step >= 1.25x faster than
the eager reference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nsvae import objectives
from nsvae.models import VAE, NetConfig
from nsvae.objectives.nonsyn import NonSynConfig
from nsvae.train.allocator import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
BATCH = 64


class EagerReference:
    """The dSprites conv VAE and its loss, written plainly (NCHW, default Adam)."""

    def __init__(self, z_dim: int = 10):
        conv = []
        for c_in, c_out in ((1, 32), (32, 32), (32, 64), (64, 64)):
            conv += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.ReLU()]
        self.encoder = nn.Sequential(*conv, nn.Flatten(), nn.Linear(1024, 128), nn.Linear(128, 2 * z_dim))
        self.decoder = nn.Sequential(
            nn.Linear(z_dim, 128),
            nn.ReLU(),
            nn.Linear(128, 1024),
            nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)),
            nn.ConvTranspose2d(64, 64, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),
        )
        self.z_dim = z_dim
        self.optimizer = torch.optim.Adam(list(self.encoder.parameters()) + list(self.decoder.parameters()), lr=1e-4)

    def train_step(self, x, x2=None, generator=None):
        stats = self.encoder(x)
        mu, logvar = stats[:, : self.z_dim], stats[:, self.z_dim :]
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decoder(z)
        recon = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(1).mean()
        loss = recon + kl
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}


CASES = {
    "eager reference": ("reference", None),
    "VAE": ("vae", None),
    "beta-VAE": ("beta_vae", None),
    "beta-TCVAE": ("beta_tcvae", None),
    "FactorVAE": ("factor_vae", None),
    "Non-Syn (faithful)": ("nonsyn", NonSynConfig()),
    "Non-Syn (re-encode)": ("nonsyn", NonSynConfig(synergy_source="re_encode")),
    "Non-Syn (joint)": ("nonsyn", NonSynConfig(update="joint")),
}
GOALS = {"Non-Syn (faithful)": 1.4, "Non-Syn (joint)": 1.05, "FactorVAE": 2.0}


def build(name: str, seed: int = 0):
    method, config = CASES[name]
    torch.manual_seed(seed)
    if method == "reference":
        return EagerReference(), False
    model = VAE(NetConfig()).to_fast_layout()
    return objectives.build(method, model, config), True


def batches(seed: int, fast_layout: bool):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(BATCH, 1, 64, 64, generator=g) < 0.12).float()
    x2 = (torch.rand(BATCH, 1, 64, 64, generator=g) < 0.12).float()
    if fast_layout:
        x, x2 = (t.contiguous(memory_format=torch.channels_last) for t in (x, x2))
    return x, x2


def flops_of(name: str) -> int:
    objective, fast = build(name)
    x, x2 = batches(1, fast)
    with FlopCounterMode(display=False) as counter:
        objective.train_step(x, x2, torch.Generator().manual_seed(0))
    return counter.get_total_flops()


def time_steps(repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per step of every configuration, interleaved round by round."""
    names = list(CASES)
    built = {n: build(n) for n in names}
    data = {n: batches(0, built[n][1]) for n in names}
    gens = {n: torch.Generator().manual_seed(0) for n in names}
    for n in names:
        for _ in range(warmup):
            built[n][0].train_step(*data[n], gens[n])
    times = {n: [] for n in names}
    for _ in range(repeats):
        for n in names:
            start = time.perf_counter()
            built[n][0].train_step(*data[n], gens[n])
            times[n].append(time.perf_counter() - start)
    return times


def print_table(times: dict[str, list[float]], flops: dict[str, int], allocator: str, repeats: int) -> None:
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"date {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, git {git.stdout.strip()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.machine()} {os.cpu_count()} CPUs, batch {BATCH}, "
        f"{repeats} timed steps each (interleaved), allocator: {allocator}"
    )
    print()
    print(
        "| step | median time (min–max) | images/s | time / VAE step: ratio of medians "
        "| per-round ratio: median (IQR) | FLOP floor / VAE | goal | met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    med = {n: float(np.median(t)) for n, t in times.items()}
    vae = np.array(times["VAE"])
    for n, t in times.items():
        q1, paired, q3 = np.percentile(np.array(t) / vae, [25, 50, 75])
        floor = flops[n] / flops["VAE"]
        goal = GOALS.get(n)
        met = "" if goal is None else ("yes" if paired <= goal else "**no**")
        goal_text = "" if goal is None else f"≤ {goal}x"
        print(
            f"| {n} | {med[n] * 1000:.0f} ms ({min(t) * 1000:.0f}–{max(t) * 1000:.0f}) | {BATCH / med[n]:,.0f} | "
            f"{med[n] / med['VAE']:.2f} | {paired:.2f} ({q1:.2f}–{q3:.2f}) | "
            f"{floor:.2f} ({flops[n] / 1e9:.2f} GFLOP) | {goal_text} | {met} |"
        )
    speedup = float(np.median(np.array(times["eager reference"]) / vae))
    if allocator == "default":
        verdict = "goal >= 1.25x: " + ("met" if speedup >= 1.25 else "NOT met")
    else:
        verdict = "the eager reference has keep_freed_memory too here; the goal is read in the default pass"
    print(
        f"\nVAE step vs eager reference: {speedup:.2f}x faster (median per-round ratio; ratio of medians "
        f"{med['eager reference'] / med['VAE']:.2f}x; {verdict})\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per configuration (default 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--allocator",
        choices=("both", "default", "kept"),
        default="both",
        help="glibc's defaults, keep_freed_memory, or one pass of each in that order (default both)",
    )
    parser.add_argument("--json", help="write raw results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    flops = {n: flops_of(n) for n in CASES}
    passes = ("default", "kept") if args.allocator == "both" else (args.allocator,)
    results = {}
    for allocator in passes:
        # The default pass comes first: once mallopt has been called, glibc no longer adapts its thresholds.
        with keep_freed_memory(active=allocator == "kept") as kept:
            if allocator == "kept" and not kept:
                print("keep_freed_memory does not apply here (not glibc, or NSVAE_KEEP_FREED_MEMORY=0)\n")
            results[allocator] = time_steps(args.repeats, args.warmup)
        print_table(results[allocator], flops, allocator, args.repeats)
    if len(passes) == 2:
        kept_vae, default_vae = (float(np.median(results[a]["VAE"])) for a in ("kept", "default"))
        default_eager = float(np.median(results["default"]["eager reference"]))
        print(
            f"Across the passes (not interleaved): the VAE step with keep_freed_memory is {default_vae / kept_vae:.2f}x"
            f" faster than with glibc's defaults, and {default_eager / kept_vae:.2f}x faster than the eager reference"
            " as a plain PyTorch program runs it (ratios of medians)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"times": results, "flops": flops}, indent=2))


if __name__ == "__main__":
    main()
