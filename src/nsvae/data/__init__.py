"""Datasets: ground-truth sets (dSprites and its variants, Shapes3D, MPI3D) and image sets (CelebA, 3D Chairs, folders).

``load(name)`` opens a prepared dataset (dSprites prepares itself on first
use); ``prepare(name, source=...)`` builds a cache entry from a user's file
(Shapes3D, MPI3D and the image sets are never downloaded).
See ``docs/data.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import cars3d, dsprites, falcor3d, images, isaac3d, mpi3d, shapes3d, smallnorb, variants  # noqa: F401  (each registers its datasets)
from .base import GroundTruthData, ImageData
from .cache import CACHE_ENV, cache_root
from .registry import DatasetEntry, entry, names

__all__ = [
    "CACHE_ENV",
    "DatasetEntry",
    "GroundTruthData",
    "ImageData",
    "cache_root",
    "load",
    "names",
    "prepare",
]


def load(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    **options: Any,
) -> ImageData:
    """Open the dataset ``name`` (see :func:`names`), preparing it first when possible."""
    return entry(name).load(cache_dir=cache_dir, source=source, **options)


def prepare(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Build (or reuse) the cache entry of ``name``; ``source`` is the user's file where one is needed."""
    return entry(name).prepare(cache_dir=cache_dir, source=source, force=force, progress=progress, **options)
