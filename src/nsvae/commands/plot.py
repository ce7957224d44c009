"""``nsvae plot``: remake a run's figures, or the comparison figures of several runs, without the report."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import UserError

DESCRIPTION = """\
Draw one figure of a run directory into a file:
  curves           losses, KL per latent, the synergy proxy and (Non-Syn VAE)
                   how often each latent was selected, from RUN/log.jsonl (PNG)
  mean-activation  the mean code of each active latent against every ground-truth
                   factor; for dSprites the original's figure (position heat map,
                   scale and rotation curves per shape); needs an encoding pass (PNG)
  traversal        latent traversals (PNG). --style default: each image's own mean
                   code moved by -3..3 along one latent per row, rows sorted by the
                   latent's mean KL and labelled with it, inactive latents
                   (KL < --inactive-kl) dimmed or hidden; 3 images, 7 values.
                   --style original: the original's figure: 9 images, their
                   reconstructions, then one row per latent set to -3..3 (absolute)
                   in image 0's mean code
  traversal-gif    the default traversal animated over the offsets (GIF): one frame
                   per offset, every latent's row in each frame, ping-pong loop;
                   3 images, 13 values (24 frames of 100 ms)
  training-gif     the default traversal at every kept checkpoint of the run, one
                   frame each (GIF, 800 ms a frame), rows in the order of the last
                   checkpoint's KL
Comparison figures take several runs, or directories that hold runs (a sweep);
runs differing only in their seeds form one setting (as in nsvae report):
  bars             every headline score per setting: mean over seeds, +-1 std,
                   one dot per seed (PNG)
  scatter          one score (--metric; default the first evaluated of
                   factor_vae_score, mig, dci, beta_vae_score, synergy) against the
                   final reconstruction error, one point per run (PNG)
  proxy            the synergy proxy over training per setting: mean over seeds
                   and min-max band (PNG)
Study figures take one study directory (studies/NAME, written by nsvae study):
  study-curves     the learning curves: one panel per metric (--metrics, default
                   every curve column), one colour per method, mean over seeds
                   and min-max band, from studies/NAME/results.csv; with
                   --in-flight also each run still training, dashed, from
                   studies/NAME/in-flight/RUN.csv (PNG)
  study-traversals per method, the traversal of its best and its worst seed by
                   the final --metric (default factor_vae_score), side by side (PNG)
Images: image 0 of the dataset, then random ones (--seed); KLs are measured on
1024 random images. Checkpoints: the latest, or --step N."""

EPILOG = """\
examples:
  nsvae plot curves runs/demo -o curves.png
  nsvae plot mean-activation runs/demo -o latents.png --samples 100000
  nsvae plot traversal runs/demo -o traversal.png --step 1000
  nsvae plot traversal runs/demo -o traversal.png --images 2 --hide-inactive --inactive-kl 0.05
  nsvae plot traversal runs/demo -o original.png --style original
  nsvae plot traversal-gif runs/demo -o traversal.gif --values 9 --duration 150
  nsvae plot training-gif runs/demo -o training.gif
  nsvae plot bars sweeps/quick-comparison -o bars.png
  nsvae plot scatter runs/nonsyn runs/vae -o scatter.png --metric mig
  nsvae plot study-curves studies/study-cpu -o curves.png --metrics factor_vae_score mig synergy
  nsvae plot study-curves studies/study-authors -o progress.png --in-flight --metrics factor_vae_score mig synergy
  nsvae plot study-traversals studies/study-cpu -o traversals.png --metric mig"""

FIGURES = (
    "curves",
    "mean-activation",
    "traversal",
    "traversal-gif",
    "training-gif",
    "bars",
    "scatter",
    "proxy",
    "study-curves",
    "study-traversals",
)
COMPARISONS = ("bars", "scatter", "proxy")
STUDY_FIGURES = ("study-curves", "study-traversals")
GIFS = ("traversal-gif", "training-gif")


def register(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a run's figures (curves, mean-activation, traversals as PNG or GIF) or compare runs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("figure", choices=FIGURES, help="which figure")
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="a run directory (comparison figures: several, or directories of runs)"
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="where to write the picture: .png, or .gif for the GIFs"
    )
    p.add_argument("--step", type=int, help="checkpoint step (default: the latest; training-gif uses them all)")
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="mean-activation: encode N random images (default 0: every image, as the original)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the images drawn (default 0)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of matplotlib figures (default 150)")
    c = p.add_argument_group("comparisons (bars, scatter, proxy)")
    c.add_argument(
        "--metric",
        help="scatter: the score against reconstruction error (e.g. mig, factor_vae_score); "
        "study-traversals: the final score that picks the best and worst seed (default factor_vae_score)",
    )
    c.add_argument("--metrics", nargs="+", metavar="M", help="study-curves: the columns drawn (default: all)")
    c.add_argument(
        "--in-flight",
        action="store_true",
        help="study-curves: also draw the runs still training, one dashed line each, from the curve points that "
        "nsvae study NAME --in-flight committed (STUDIES_DIR/NAME/in-flight/RUN.csv)",
    )
    c.add_argument("--protocol", help="bars, scatter: evaluation protocol compared (default: 'default' where present)")
    t = p.add_argument_group("traversals (traversal, traversal-gif, training-gif)")
    t.add_argument(
        "--style",
        choices=("default", "original"),
        help="traversal: default (each image's own code, rows by KL, labelled) or original (the original's figure)",
    )
    t.add_argument("--images", type=int, metavar="N", help="images shown (default 3; --style original: --values or 9)")
    t.add_argument(
        "--values",
        type=int,
        metavar="N",
        help="values of each sweep (default 7: steps of 1; traversal-gif 13: steps of 0.5; original: --images or 9)",
    )
    t.add_argument("--limit", type=float, metavar="L", help="sweep from -L to L (default 3)")
    t.add_argument(
        "--inactive-kl",
        type=float,
        default=None,
        metavar="KL",
        help="a latent whose mean KL is below KL nats is inactive: dimmed, or hidden (default 0.01)",
    )
    t.add_argument("--hide-inactive", action="store_true", help="leave the inactive latents' rows out")
    t.add_argument(
        "--duration", type=int, metavar="MS", help="GIFs: milliseconds a frame (default 100; training-gif 800)"
    )
    p.set_defaults(run=run_plot)


def _save_figure(fig, output: Path, dpi: int) -> None:
    import matplotlib.pyplot as plt

    atomic_write(output, lambda handle: fig.savefig(handle, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)


def _check_options(args: argparse.Namespace, output: Path) -> None:
    """Refuse options that do not fit the figure, each with one line that says what to do."""
    suffix = ".gif" if args.figure in GIFS else ".png"
    if output.suffix.lower() != suffix:
        raise UserError(f"-o must name a {suffix} file for {args.figure}, got {output}")
    if args.samples < 0:
        raise UserError("--samples must be >= 0")
    if not 10 <= args.dpi <= 1200:
        raise UserError(f"--dpi must be between 10 and 1200 (default 150), got {args.dpi}")
    if args.figure in STUDY_FIGURES and len(args.runs) != 1:
        raise UserError(f"{args.figure} draws one study: give one study directory (studies/NAME)")
    if args.figure not in COMPARISONS and len(args.runs) != 1:
        raise UserError(f"{args.figure} draws one run: give one run directory (bars, scatter and proxy compare runs)")
    if args.metrics is not None and args.figure != "study-curves":
        raise UserError("--metrics applies to the study-curves figure only")
    if args.in_flight and args.figure != "study-curves":
        raise UserError("--in-flight applies to the study-curves figure only")
    if args.figure in COMPARISONS and args.step is not None:
        raise UserError(f"{args.figure} compares runs at their latest logged step and evaluation: leave out --step")
    if args.metric is not None and args.figure not in ("scatter", "study-traversals"):
        raise UserError("--metric applies to the scatter and study-traversals figures only")
    if args.protocol is not None and args.figure not in ("bars", "scatter"):
        raise UserError("--protocol applies to the bars and scatter figures only")
    traversal = args.figure in ("traversal",) + GIFS
    options = ("style", "images", "values", "limit", "inactive_kl", "duration")
    given = [name for name in options if getattr(args, name) is not None]
    given += ["hide_inactive"] if args.hide_inactive else []
    if not traversal and given:
        raise UserError(f"--{given[0].replace('_', '-')} applies to the traversal figures only")
    if args.style is not None and args.figure != "traversal":
        raise UserError("--style applies to the traversal figure only (the GIFs use the default style)")
    if args.duration is not None and args.figure not in GIFS:
        raise UserError("--duration applies to traversal-gif and training-gif only")
    if args.style == "original" and (args.hide_inactive or args.inactive_kl is not None):
        raise UserError(
            "--style original shows every latent unmarked: --hide-inactive and --inactive-kl need the default"
        )
    if args.figure == "training-gif":
        if args.step is not None:
            raise UserError("training-gif draws every kept checkpoint: leave out --step")
        if args.hide_inactive:
            raise UserError("training-gif keeps every latent so its frames have one size: leave out --hide-inactive")
    for name in ("images", "values"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")
    if args.limit is not None and not (np.isfinite(args.limit) and args.limit > 0):
        raise UserError(f"--limit must be a positive number, got {args.limit}")
    if args.inactive_kl is not None and not args.inactive_kl >= 0:
        raise UserError(f"--inactive-kl must be >= 0, got {args.inactive_kl}")
    if args.duration is not None and args.duration < 20:
        raise UserError(f"--duration must be at least 20 ms (browsers slow faster frames down), got {args.duration}")
    if args.style == "original" and args.images is not None and args.values is not None and args.values < args.images:
        raise UserError(f"--style original has one column per value: --values must be >= --images ({args.images})")


def _traversal(args: argparse.Namespace, run, output: Path) -> None:
    from PIL import Image

    from ..viz import traversal_gifs, traversals

    common = {
        "limit": 3.0 if args.limit is None else args.limit,
        "threshold": traversals.INACTIVE_KL if args.inactive_kl is None else args.inactive_kl,
        "seed": args.seed,
    }
    if args.figure == "training-gif":
        traversal_gifs.training_gif(
            run,
            output,
            n_images=3 if args.images is None else args.images,
            n_values=traversals.DEFAULT_VALUES if args.values is None else args.values,
            duration_ms=800 if args.duration is None else args.duration,
            **common,
        )
    elif args.figure == "traversal-gif":
        traversal_gifs.run_traversal_gif(
            run,
            output,
            args.step,
            n_images=3 if args.images is None else args.images,
            n_values=traversal_gifs.GIF_VALUES if args.values is None else args.values,
            hide_inactive=args.hide_inactive,
            duration_ms=100 if args.duration is None else args.duration,
            **common,
        )
    else:
        style = args.style or "default"
        picture = traversals.run_traversal(
            run, args.step, style, args.images, args.values, hide_inactive=args.hide_inactive, **common
        )
        image = Image.fromarray(picture)
        atomic_write(output, lambda handle: image.save(handle, format="PNG", optimize=True))


def _comparison(args: argparse.Namespace, output: Path) -> None:
    from ..viz import report
    from ..viz.run_records import find_runs, read_run

    records = [read_run(path) for path in find_runs(args.runs)]
    known = sorted({p for r in records for p in r.protocols()})
    if args.protocol is not None and args.protocol not in known:
        available = ", ".join(known) or "none"
        raise UserError(f"no run was evaluated under protocol {args.protocol!r}; available: {available}")
    if args.figure == "proxy":
        fig = report.proxy_figure(records)
    elif args.figure == "bars":
        fig = report.bars_figure(records, args.protocol)
    else:
        available = sorted({m for r in records for m in r.scores(args.protocol)})
        metric = args.metric or next(iter(report.scatter_metrics(records, args.protocol)), None)
        if metric is None or metric not in available:
            wanted = f"metric {metric!r}" if metric else "a score"
            raise UserError(
                f"no run has {wanted}; evaluated: {', '.join(available) or 'none (run nsvae evaluate first)'}"
            )
        fig = report.scatter_figure(records, args.protocol, metric)
    _save_figure(fig, output, args.dpi)


def _study_figure(args: argparse.Namespace, output: Path) -> None:
    from ..experiments import study
    from ..viz import study as study_viz

    folder = Path(args.runs[0])
    results = folder / study.RESULTS_CSV
    in_flight = study.in_flight_rows(folder) if args.in_flight else []
    if not results.is_file() and not in_flight:
        if args.in_flight:
            hint = f" and no curve points of runs in flight in {folder / study.IN_FLIGHT}"
        elif args.figure == "study-curves":
            hint = " (no run has finished yet? --in-flight draws the runs still training)"
        else:
            hint = " (no run has finished yet?)"
        raise UserError(f"{folder} has no {study.RESULTS_CSV}{hint}; run nsvae study first")
    if args.figure == "study-curves":
        rows = study.read_table(results) if results.is_file() else []
        from ..experiments.study_analysis import metric_columns

        columns = metric_columns([*rows, *in_flight])
        metrics = args.metrics or columns
        unknown = [m for m in metrics if m not in columns]
        if unknown:
            raise UserError(f"the study has no column {unknown[0]!r}; columns: {', '.join(columns) or 'none yet'}")
        title = f"{folder.name}: learning curves (curve protocol)"
        if in_flight:
            title += "; dashed: runs still training"
        fig = study_viz.learning_curves(rows, metrics, title=title, in_flight=in_flight)
    else:
        final = study.read_table(folder / study.FINAL_CSV)
        metric = args.metric or "factor_vae_score"
        if not any(metric in r for r in final):
            raise UserError(f"no final {metric!r} score in {folder / study.FINAL_CSV}; choose another --metric")
        names = {(str(record["method"]), int(record["seed"])): name for name, record in study.final_records(folder)}
        fig = study_viz.best_and_worst(folder, final, metric, names)
    _save_figure(fig, output, args.dpi)


def run_plot(args: argparse.Namespace) -> int:
    from ..train import load_run

    output = Path(args.output)
    _check_options(args, output)
    if args.figure in STUDY_FIGURES:
        output.parent.mkdir(parents=True, exist_ok=True)
        _study_figure(args, output)
        print(f"{args.figure}: wrote {output}")
        return 0
    if args.figure in COMPARISONS:
        output.parent.mkdir(parents=True, exist_ok=True)
        _comparison(args, output)
        print(f"{args.figure}: wrote {output}")
        return 0
    run = load_run(args.runs[0])
    if args.figure == "training-gif" and not run.checkpoints():
        raise UserError(f"run {run.path} has no checkpoint yet: the training GIF needs at least one")
    output.parent.mkdir(parents=True, exist_ok=True)
    if args.figure == "curves":
        from ..viz.curves import training_curves

        _save_figure(training_curves(run.log(), title=str(run.path.name)), output, args.dpi)
    elif args.figure == "mean-activation":
        from ..viz.mean_activation import run_mean_activation

        _save_figure(run_mean_activation(run, args.step, args.samples, args.seed), output, args.dpi)
    else:
        _traversal(args, run, output)
    print(f"{args.figure}: wrote {output}")
    return 0
