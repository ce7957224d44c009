"""Evaluating a trained run: the bridge between a run directory (torch) and :mod:`nsvae.metrics` (numpy).

:func:`evaluate_run` scores a run's checkpoint with
:func:`nsvae.metrics.evaluate` (every image encoded once through
:func:`nsvae.train.latents.posterior_encoder`, encodings shared by the
metrics) and writes ``eval.json`` in the run, atomically. The numbers a table
shows of a result (:func:`nsvae.metrics.evaluate.table_scores`) are read by
the metrics package, so training's learning curves use them too.

``eval.json`` holds the step that was evaluated and one entry per protocol
(``results[protocol]``) with each metric's scores and exact protocol, the
seed, and the versions of numpy, scipy, scikit-learn and nsvae. Evaluating
more metrics of the same step, protocol and seed adds to the entry;
a different step starts a new file (the previous one is kept as
``eval-step<N>.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .cpus import usable_cpus
from .errors import UserError

EVAL_FILE = "eval.json"


def check_protocol_overrides(overrides: dict[str, dict] | None, where: str = "--set") -> None:
    """Refuse protocol overrides whose value cannot be right, before any image is encoded.

    A parameter whose default is a count (an integer) takes an integer >= 1; one
    whose default is a number takes a finite number >= 0. Unknown metrics and
    parameters are refused by :func:`nsvae.metrics.protocols.resolve`.
    """
    import math

    from .metrics.protocols import PROTOCOLS

    for metric, params in (overrides or {}).items():
        defaults = PROTOCOLS.get(metric, {}).get("default", {})
        for name, value in params.items():
            if name not in defaults:
                continue  # resolve() names the unknown parameter
            default = defaults[name]
            key = f"{metric}.{name}"
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise UserError(f"{where} {key} must be true or false, got {value!r}")
            elif isinstance(default, int):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise UserError(f"{where} {key} must be a whole number >= 1 (default {default}), got {value!r}")
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                if not ok or not math.isfinite(value) or value < 0:
                    raise UserError(f"{where} {key} must be a finite number >= 0 (default {default}), got {value!r}")


def evaluate_run(
    run,
    *,
    metrics=None,
    protocol: str = "default",
    seed: int = 0,
    step: int | None = None,
    device: str = "auto",
    overrides: dict[str, dict] | None = None,
    progress: bool = True,
    n_jobs: int | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Score checkpoint ``step`` (default: the latest) of ``run`` and write ``eval.json``; returns the result."""
    from .config import open_dataset
    from .metrics import DEFAULT_METRICS, evaluate
    from .metrics.protocols import resolve
    from .train import load_run
    from .train.allocator import keep_freed_memory
    from .train.latents import posterior_encoder
    from .train.trainer import resolve_device

    run = load_run(run) if not hasattr(run, "load_model") else run
    if not run.checkpoints():
        raise UserError(f"{run.path} has no checkpoint yet; train it first (nsvae train --resume {run.path})")
    # Every protocol parameter is checked before any image is encoded.
    check_protocol_overrides(overrides)
    for metric in tuple(metrics or DEFAULT_METRICS):
        try:
            resolve(metric, protocol, (overrides or {}).get(metric))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    dev = resolve_device(device)
    model = run.load_model(step, device=dev)
    evaluated_step = run.loaded_step
    data = open_dataset(run.config, progress=progress)
    if not hasattr(data, "factor_sizes"):
        raise UserError(
            f"{run.config.data.dataset} has no ground-truth factors: the disentanglement metrics need a dataset "
            "such as dsprites"
        )
    with keep_freed_memory(active=dev.type == "cpu"):
        result = evaluate(
            data,
            represent_posterior=posterior_encoder(model, dev),
            metrics=tuple(metrics or DEFAULT_METRICS),
            protocol=protocol,
            overrides=overrides,
            seed=seed,
            progress=progress,
            n_jobs=n_jobs or usable_cpus(),
        )
    result["step"] = evaluated_step
    if write:
        write_eval(Path(run.path), evaluated_step, protocol, result)
    return result


def read_eval(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path} is not valid JSON; delete it and evaluate again") from None


def write_eval(run_dir: Path, step: int, protocol: str, result: dict[str, Any]) -> Path:
    """Merge ``result`` into ``run_dir/eval.json`` (same step: add or replace metrics; else a new file)."""
    from .data.cache import write_json_atomic

    path = run_dir / EVAL_FILE
    current = read_eval(run_dir)
    if current is not None and current.get("step") != step:
        write_json_atomic(run_dir / f"eval-step{current.get('step')}.json", current)
        current = None
    current = current or {"step": step, "results": {}}
    entry = current["results"].get(protocol)
    if entry is not None and entry.get("seed") == result["seed"]:
        entry["metrics"].update(result["metrics"])
        entry["seconds"].update(result["seconds"])
        entry.update({k: v for k, v in result.items() if k not in ("metrics", "seconds")})
    else:
        current["results"][protocol] = result
    # JSON has no NaN: the metrics never return one (they raise), and this guards the file.
    json.dumps(current, allow_nan=False)
    write_json_atomic(path, current)
    return path
