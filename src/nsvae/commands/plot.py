"""``nsvae plot``: remake a run's figures as PNG files, without the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..data.cache import atomic_write
from ..errors import UserError

DESCRIPTION = """\
Draw one figure of a run directory into a PNG file:
  curves           losses, KL per latent, the synergy proxy and (Non-Syn VAE)
                   how often each latent was selected, from RUN/log.jsonl
  mean-activation  the mean code of each active latent against every ground-truth
                   factor; for dSprites the original's figure (position heat map,
                   scale and rotation curves per shape); needs an encoding pass
  traversal        one row per latent swept from -3 to 3 around image 0's mean code
Checkpoints: the latest, or --step N."""

EPILOG = """\
examples:
  nsvae plot curves runs/demo -o curves.png
  nsvae plot mean-activation runs/demo -o latents.png --samples 100000
  nsvae plot traversal runs/demo -o traversal.png --step 1000"""

FIGURES = ("curves", "mean-activation", "traversal")


def register(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's figures (curves, mean-activation, traversal) as PNG",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("figure", choices=FIGURES, help="which figure")
    p.add_argument("run_dir", metavar="RUN", help="a run directory")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="where to write the picture")
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="mean-activation: encode N random images (default 0: every image, as the original)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for --samples (default 0)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of matplotlib figures (default 150)")
    p.set_defaults(run=run_plot)


def _save_figure(fig, output: Path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    atomic_write(output, lambda handle: fig.savefig(handle, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)


def encode_for_plot(run, step, samples: int, seed: int):
    """``(dataset, factors, posterior means)`` of all images (``samples=0``) or of ``samples`` random ones."""
    from ..evaluation import posterior_encoder
    from ..train.trainer import load_data

    data = load_data(run.config, progress=False)
    if not hasattr(data, "factor_sizes"):
        raise UserError(f"{run.config.data.dataset} has no ground-truth factors: the mean-activation plot needs them")
    model = run.load_model(step)
    encode = posterior_encoder(model)
    if samples and samples < len(data):
        rng = np.random.default_rng(seed)
        indices = np.sort(rng.choice(len(data), size=samples, replace=False))
    else:
        indices = np.arange(len(data))
    means = []
    for start in range(0, len(indices), 8192):
        chunk = indices[start : start + 8192]
        means.append(encode(data.observations_at(chunk, np.random.default_rng([seed, start])))[0])
    return data, data.factors_of(indices), np.concatenate(means)


def run_plot(args: argparse.Namespace) -> int:
    from ..train import load_run

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UserError(f"-o must name a .png file, got {output}")
    if args.samples < 0:
        raise UserError("--samples must be >= 0")
    run = load_run(args.run_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.figure == "curves":
        from ..viz.curves import training_curves

        _save_figure(training_curves(run.log(), title=str(run.path.name)), output, args.dpi)
    elif args.figure == "mean-activation":
        from ..viz.mean_activation import dsprites_mean_activation, mean_activation

        data, factors, codes = encode_for_plot(run, args.step, args.samples, args.seed)
        if data.factor_names == ("shape", "scale", "orientation", "posX", "posY"):
            fig = dsprites_mean_activation(codes, factors)
        else:
            fig = mean_activation(codes, factors, data.factor_names, data.factor_sizes)
        _save_figure(fig, output, args.dpi)
    else:
        from PIL import Image

        from ..train.trainer import load_data, traversal_image
        from ..viz.traversals import to_uint8, traversal_grid

        model = run.load_model(args.step)
        image = traversal_image(load_data(run.config, progress=False))
        picture = Image.fromarray(to_uint8(traversal_grid(model, image)))
        atomic_write(output, lambda handle: picture.save(handle, format="PNG"))
    print(f"{args.figure}: wrote {output}")
    return 0
