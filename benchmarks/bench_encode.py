"""Encoder speed per image against batch size and memory layout, one torch thread, inference mode.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_encode.py [--images 4096] [--batches 64 512 4096] [--repeats 3]

A learning-curve point is mostly encoding (the FactorVAE score's vote images
and the metric pool); this tells whether a larger batch or another layout
would make it cheaper. Encodes ``--images`` random binary 64×64 images with
the paper's network (untrained: the cost does not depend on the weights), in
the plain layout and in the training's fast layout (channels-last), and prints
the best of ``--repeats`` passes in microseconds per image.
"""

from __future__ import annotations

import argparse
import time

import torch


def microseconds_per_image(model, images: torch.Tensor, batch: int, repeats: int) -> float:
    with torch.inference_mode():
        model.encode(images[:batch])  # warm-up: kernel selection, allocations
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for first in range(0, len(images), batch):
                model.encode(images[first : first + batch])
            best = min(best, time.perf_counter() - start)
    return best / len(images) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from nsvae.models import VAE, NetConfig

    torch.manual_seed(0)
    images = (torch.rand(args.images, 1, 64, 64) < 0.12).float()
    for layout in ("plain", "fast"):
        model = VAE(NetConfig()).eval()
        x = images
        if layout == "fast":
            model = model.to_fast_layout()
            x = images.contiguous(memory_format=torch.channels_last)
        for batch in args.batches:
            print(f"{layout:5s} batch {batch:5d}: {microseconds_per_image(model, x, batch, args.repeats):.0f} µs/image")


if __name__ == "__main__":
    main()
