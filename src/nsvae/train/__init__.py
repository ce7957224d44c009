"""Training: the loop, run directories, checkpoints and logs.

``nsvae.train(config, **overrides)`` trains a new run (this module is
callable, so the function and the package share the name);
``nsvae.train.load_run(path)`` opens a finished or interrupted one::

    import nsvae
    run = nsvae.train("quick-nonsyn", steps=200, out="runs/demo")
    mu, logvar = run.encode(images)          # (B, C, 64, 64) in [0, 1] -> (B, z_dim) each
    pictures = run.decode(mu)                # pixel means in [0, 1]
    run = nsvae.train.resume("runs/demo", steps=400)
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

from .run import Run, load_run
from .trainer import TrainingDiverged, resume, start

__all__ = ["Run", "TrainingDiverged", "load_run", "resume", "start", "train"]


def train(
    config: Any,
    out: str | os.PathLike | None = None,
    *,
    overrides: dict[str, Any] | list[str] | None = None,
    device: str | None = None,
    progress: bool | None = None,
    callback=None,
    **keys: Any,
) -> Run:
    """Train a new run and return it.

    - ``config``: a :class:`nsvae.config.Config`, a TOML file, a preset
      name (``"quick-nonsyn"``) or a nested dict;
    - ``out``: the run directory (default ``runs/<run.name>-<date>-<time>``);
    - ``overrides`` and ``**keys``: changed keys, as the CLI's ``--set``:
      ``{"nonsyn.alpha": 3}``, ``["nonsyn.alpha=3"]``, or keywords
      ``nonsyn__alpha=3`` / ``steps=100`` (a key name found in one section only);
    - ``device``: overrides ``run.device``; ``progress``: force the progress bar on/off;
    - ``callback(step, logs)``: called after every step; ``logs`` is a mapping read lazily (the
      first value read copies them all to the host, which on CUDA waits for the step to finish).

    Raises :class:`TrainingDiverged` if the loss becomes NaN/Inf. A SIGINT or
    SIGTERM ends training after the current step with a checkpoint; the
    returned run's ``state`` is then ``"interrupted"``.
    """
    from ..config import apply_overrides, load_config

    cfg = load_config(config)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    if keys:
        cfg = apply_overrides(cfg, keys)
    if device is not None:
        cfg = apply_overrides(cfg, {"run.device": device})
    return start(cfg, out, progress=progress, callback=callback)


class _CallableModule(types.ModuleType):
    """Lets ``nsvae.train(...)`` call :func:`train` while ``nsvae.train.load_run`` stays a module attribute."""

    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
