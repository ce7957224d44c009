"""Named datasets: how to prepare, load and describe each one.

Every dataset module registers a :class:`DatasetEntry`; :func:`nsvae.data.load`,
:func:`nsvae.data.prepare` and the ``nsvae data`` command only go through this
table, so a new dataset is one module and one :func:`register` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import ImageData


@dataclass(frozen=True)
class DatasetEntry:
    """How to handle one named dataset.

    - ``load(cache_dir=None, source=None, **options) -> ImageData``: open the
      prepared cache, preparing it first when that needs no user file; when a
      user file is needed and missing, raise :class:`UserError` saying how to
      prepare it.
    - ``prepare(cache_dir=None, source=None, force=False, progress=True, **options) -> Path``:
      build the cache entry (from ``source`` when given) and return its path.
    - ``status(cache_dir=None) -> list[dict]``: one dict per prepared cache
      entry (keys ``path``, ``bytes``, ``source``, ``images``, ``shape``), or
      an empty list.
    """

    name: str
    summary: str
    load: Callable[..., ImageData]
    prepare: Callable[..., Path]
    status: Callable[..., list[dict[str, Any]]]
    #: True if preparing needs a file the user supplies (``--from``).
    needs_source: bool = False
    #: Where users get the source file, shown by ``nsvae data list``.
    source_hint: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}


def register(entry: DatasetEntry) -> DatasetEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"dataset {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def entry(name: str) -> DatasetEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown dataset {name!r}; known datasets: {known}") from None


def names() -> list[str]:
    return list(_REGISTRY)


def cache_entry_status(entry_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The ``status`` row of one complete cache entry (size on disk from its files)."""
    size = sum(f.stat().st_size for f in entry_dir.iterdir() if f.is_file())
    return {
        "path": str(entry_dir),
        "bytes": size,
        "source": meta.get("source", "?"),
        "images": meta.get("images"),
        "shape": meta.get("observation_shape"),
    }
