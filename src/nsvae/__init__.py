"""nsvae: disentangled representations with synergy-aware VAEs.

The information-theory library lives in :mod:`nsvae.info` and needs only
numpy and scipy. Training (``nsvae.train(config)``, ``nsvae.load_run(path)``)
and configs (``nsvae.Config``, ``nsvae.load_config``) are imported on first
use, so ``import nsvae`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any


def _version() -> str:
    """The installed distribution's version: pyproject.toml is the one place it is written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nsvae")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

_LAZY = {
    "train": ("nsvae.train", None),
    "load_run": ("nsvae.train", "load_run"),
    "Run": ("nsvae.train", "Run"),
    "Config": ("nsvae.config", "Config"),
    "load_config": ("nsvae.config", "load_config"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        return module if attr is None else getattr(module, attr)
    raise AttributeError(f"module 'nsvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
