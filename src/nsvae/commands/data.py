"""``nsvae data``: list, prepare and preview datasets."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .. import data
from ..atomic import atomic_write
from ..data.dsprites import ORIGINS
from ..errors import UserError

DESCRIPTION = """\
Datasets live in a cache directory: --cache-dir, else $NSVAE_CACHE_DIR, else
$XDG_CACHE_HOME/nsvae, else ~/.cache/nsvae. dSprites needs no download: the
built-in generator draws it on first use (about 15 s); with the official file,
`prepare dsprites --from FILE` converts it and it is used from then on.
CelebA, 3D Chairs and image folders are prepared from the user's own files."""

EPILOG = """\
examples:
  nsvae data list
  nsvae data prepare dsprites
  nsvae data prepare dsprites --from dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz
  nsvae data prepare celeba --from img_align_celeba.zip
  nsvae data prepare scream_dsprites --from The_Scream.jpg
  nsvae data show dsprites -o dsprites.png"""


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR", help="cache directory (default: $NSVAE_CACHE_DIR or ~/.cache/nsvae)")


def _dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--origin",
        choices=ORIGINS,
        help="dSprites family: which images (default auto: the official file if prepared, else generated)",
    )
    p.add_argument(
        "--crop",
        choices=("original", "center", "full"),
        help="image sets: CelebA 'original' (the authors' 64x78 resize and row crop, default) or 'center'; "
        "chairs/folders 'center' (default) or 'full' (no crop)",
    )
    p.add_argument("--crop-size", type=int, metavar="PX", help="image sets: side of the centre crop in source pixels")
    p.add_argument("--channels", type=int, choices=(1, 3), help="image sets: 1 (grayscale) or 3 (RGB)")
    p.add_argument("--workers", type=int, metavar="N", help="processes for generating or decoding images")


def _options(args: argparse.Namespace) -> dict:
    names = {"origin": "origin", "crop": "crop", "crop_size": "crop_size", "channels": "channels", "workers": "workers"}
    out = {key: getattr(args, attr) for key, attr in names.items() if getattr(args, attr, None) is not None}
    if getattr(args, "skip_bad", False):
        out["skip_unreadable"] = True
    return out


def register(sub) -> None:
    p = sub.add_parser(
        "data",
        help="list, prepare and preview datasets",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    ls = actions.add_parser("list", help="the datasets, whether they are prepared, where and how big")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(run=run_list)

    prep = actions.add_parser("prepare", help="build a dataset's cache (from your file where one is needed)")
    prep.add_argument("name", help="dataset name (see `nsvae data list`)")
    prep.add_argument("--from", dest="source", metavar="PATH", help="the source file, archive or folder")
    prep.add_argument("--force", action="store_true", help="rebuild even if prepared; accept a wrong checksum")
    prep.add_argument("--skip-bad", action="store_true", help="image sets: skip unreadable images instead of stopping")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(prep)
    _dataset_options(prep)
    prep.set_defaults(run=run_prepare)

    show = actions.add_parser("show", help="write a PNG grid: one row per factor traversal, or random samples")
    show.add_argument("name", help="dataset name")
    show.add_argument("-o", "--output", required=True, metavar="PNG", help="where to write the picture")
    show.add_argument("--from", dest="source", metavar="PATH", help="source file where the dataset needs one")
    show.add_argument("--seed", type=int, default=0, help="random seed for the samples (default 0)")
    show.add_argument("--columns", type=int, default=10, help="images per row (default 10)")
    _common(show)
    _dataset_options(show)
    show.set_defaults(run=run_show)


def run_list(args: argparse.Namespace) -> int:
    rows = []
    for name in data.names():
        entry = data.entry(name)
        prepared = entry.status(cache_dir=args.cache_dir)
        rows.append({"name": name, "summary": entry.summary, "source_hint": entry.source_hint, "prepared": prepared})
    if args.json:
        print(json.dumps({"cache_root": str(data.cache_root(args.cache_dir)), "datasets": rows}, indent=2))
        return 0
    print(f"cache: {data.cache_root(args.cache_dir)}")
    for row in rows:
        print(f"\n{row['name']}: {row['summary']}")
        if not row["prepared"]:
            print(f"  not prepared ({row['source_hint']})" if row["source_hint"] else "  not prepared")
        for item in row["prepared"]:
            images = f"{item['images']:,} images" if item.get("images") else ""
            print(f"  {item['source']}: {images}, {_human_bytes(item['bytes'])} at {item['path']}")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    path = data.prepare(
        args.name,
        cache_dir=args.cache_dir,
        source=args.source,
        force=args.force,
        progress=not args.no_progress,
        **_options(args),
    )
    print(f"{args.name}: ready at {path} ({time.perf_counter() - start:.1f} s)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..data.preview import preview_grid

    if args.columns < 1:
        raise UserError("--columns must be at least 1")
    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UserError(f"-o must name a .png file, got {output}")
    dataset = data.load(args.name, cache_dir=args.cache_dir, source=args.source, **_options(args))
    picture = preview_grid(dataset, np.random.default_rng(args.seed), columns=args.columns)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, lambda handle: picture.save(handle, format="PNG"))
    print(f"{args.name}: wrote {output} ({picture.width}x{picture.height})")
    return 0
