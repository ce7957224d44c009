"""Training-step time of every objective on the dSprites conv net, batch 64, side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_train.py [--repeats 30] [--json OUT]

For each configuration the script builds the model and objective, warms up,
then times single training steps; configurations are interleaved round by
round so that machine noise hits all of them alike. Reported: the median step
time (min–max), images/s, and the ratio of medians to the VAE step; next to
each ratio, the floating-point-operation floor: the FLOPs of the step's
forward and backward passes (``torch.utils.flop_counter``), as a ratio to the
VAE's.

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
        return {"loss": float(loss)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per configuration (default 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", help="write raw results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(CASES)
    built = {n: build(n) for n in names}
    data = {n: batches(0, built[n][1]) for n in names}
    gens = {n: torch.Generator().manual_seed(0) for n in names}
    for n in names:
        for _ in range(args.warmup):
            built[n][0].train_step(*data[n], gens[n])
    times = {n: [] for n in names}
    for _ in range(args.repeats):
        for n in names:
            start = time.perf_counter()
            built[n][0].train_step(*data[n], gens[n])
            times[n].append(time.perf_counter() - start)
    flops = {n: flops_of(n) for n in names}
    med = {n: float(np.median(times[n])) for n in names}
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"date {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, git {git.stdout.strip()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.machine()} {os.cpu_count()} CPUs, batch {BATCH}, "
        f"{args.repeats} timed steps each (interleaved)"
    )
    print()
    print("| step | median time (min–max) | images/s | time / VAE step | FLOP floor / VAE | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        ratio = med[n] / med["VAE"]
        floor = flops[n] / flops["VAE"]
        goal = GOALS.get(n)
        met = "" if goal is None else ("yes" if ratio <= goal else "**no**")
        goal_text = "" if goal is None else f"≤ {goal}x"
        print(
            f"| {n} | {med[n] * 1000:.0f} ms ({min(times[n]) * 1000:.0f}–{max(times[n]) * 1000:.0f}) | "
            f"{BATCH / med[n]:,.0f} | {ratio:.2f} | {floor:.2f} ({flops[n] / 1e9:.2f} GFLOP) | {goal_text} | {met} |"
        )
    speedup = med["eager reference"] / med["VAE"]
    verdict = "met" if speedup >= 1.25 else "NOT met"
    print(f"\nVAE step vs eager reference: {speedup:.2f}x faster (goal >= 1.25x: {verdict})")
    if args.json:
        Path(args.json).write_text(json.dumps({"times": times, "flops": flops}, indent=2))


if __name__ == "__main__":
    main()
