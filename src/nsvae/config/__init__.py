"""Run configurations (typed dataclasses <-> TOML), the named presets, and the dataset a config names.

The typed config lives in :mod:`.schema` (one dataclass per section, read
and written as TOML by :mod:`.toml_io`); :mod:`.comparison` says which keys
runs compared side by side may differ in. This package sits below training
(``docs/development.md``, "Layers"): training, evaluation, the figures and
the sweeps all read configs through it, and :func:`open_dataset` is the one
place a config's dataset is opened.

The presets are TOML files shipped inside the package
(``nsvae/config/presets/``, the sweep and study presets in
``presets/sweeps/``), so they work from any directory and in a plain
install, once: ``nsvae config list|show|copy`` lists them, prints one and
copies one out to edit.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import schema
from .schema import *  # noqa: F403  (the typed config's public names: Config, apply_overrides, dumps, ...)
from .schema import Config, RunConfig, apply_overrides, from_dict, load, loads

__all__ = [
    *schema.__all__,
    "load_config",
    "open_dataset",
    "preset_names",
    "preset_text",
    "shipped_names",
    "shipped_text",
]


def shipped_names(folder: str = "") -> list[str]:
    """The names of the TOML files shipped in ``presets/<folder>``, sorted (``"sweeps"``: the sweep presets)."""
    where = resources.files(__package__).joinpath("presets", *([folder] if folder else []))
    return sorted(p.name[: -len(".toml")] for p in where.iterdir() if p.name.endswith(".toml"))


def shipped_text(name: str, folder: str = "", missing: str = "no config file or preset", kind: str = "presets") -> str:
    """The TOML text of ``presets/<folder>/<name>.toml``; otherwise a UserError that suggests the nearest name."""
    item = resources.files(__package__).joinpath("presets", *([folder] if folder else []), f"{name}.toml")
    if not item.is_file():
        names = shipped_names(folder)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; {kind}: {', '.join(names)}"
        raise UserError(f"{missing} named {name!r}{hint}")
    return item.read_text(encoding="utf-8")


def preset_names() -> list[str]:
    """The names of the shipped presets, sorted."""
    return shipped_names()


def preset_text(name: str) -> str:
    """The TOML text of preset ``name``."""
    return shipped_text(name)


def load_config(source: Config | str | os.PathLike | dict[str, Any]) -> Config:
    """A :class:`Config` from a Config, a mapping, a ``.toml`` path or a preset name.

    A preset's ``run.name`` defaults to the preset's name, a file's to its stem.
    """
    if isinstance(source, Config):
        return source
    if isinstance(source, dict):
        return from_dict(source)
    path = Path(source)
    if path.is_file():
        config = load(path)
        default_name = path.stem
    elif str(source).endswith(".toml") or any(sep in str(source) for sep in ("/", os.sep)):
        # "/" separates directories on Windows too: configs/x.toml there is a missing file, not a preset name.
        raise UserError(f"config file {source} does not exist")
    else:
        config = loads(preset_text(str(source)), where=f"preset {source}")
        default_name = str(source)
    if config.run.name == RunConfig.name:
        config = apply_overrides(config, {"run.name": default_name})
    return config


def open_dataset(config: Config, progress: bool = False):
    """The dataset ``config`` trains on (``[data]``), opened with :func:`nsvae.data.load`, checked against the model.

    dSprites prepares its cache on first use (``progress``: show the bar);
    the image datasets must have been prepared (``nsvae data prepare``).
    Raises :class:`~nsvae.errors.UserError` when the images are not 64x64 or
    their channels differ from ``model.channels``. Training, evaluation and
    the figures of a run all open its data here.
    """
    from .. import data

    cfg = config.data
    dataset = data.load(cfg.dataset, source=cfg.source, progress=progress, **cfg.load_options())
    c, h, w = dataset.observation_shape
    if (h, w) != (64, 64):
        raise UserError(f"the networks take 64x64 images; {cfg.dataset} has {h}x{w}")
    if c != config.model.channels:
        raise UserError(f"{cfg.dataset} images have {c} channel(s) but model.channels = {config.model.channels}")
    return dataset
