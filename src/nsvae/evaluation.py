"""Evaluating a trained run: the bridge between a run directory (torch) and :mod:`nsvae.metrics` (numpy).

:func:`posterior_encoder` wraps a VAE into ``represent_posterior(obs) ->
(mean, logvar)`` for the metrics; :func:`evaluate_run` scores a run's
checkpoint with :func:`nsvae.metrics.evaluate` (every image encoded once,
encodings shared by the metrics) and writes ``eval.json`` in the run,
atomically.

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

import numpy as np

from .cpus import usable_cpus
from .errors import UserError

EVAL_FILE = "eval.json"


#: Images per encoder call on the CPU: 128 keeps the first layer's activations (16 MiB) under the heap
#: reuse limit of ``keep_freed_memory``; encoding 4,096 images took 160 us each against 205 in batches of 512.
CPU_ENCODE_BATCH = 128
GPU_ENCODE_BATCH = 512


def posterior_encoder(model, device=None, batch_size: int | None = None):
    """``represent_posterior(obs) -> (mean, logvar)`` (float64 numpy) for a trained VAE, in batches.

    ``batch_size`` images per encoder call; default 128 on the CPU, 512 on a GPU.
    """
    import torch

    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size is None:
        batch_size = CPU_ENCODE_BATCH if device.type == "cpu" else GPU_ENCODE_BATCH
    model.eval()

    def represent_posterior(obs: np.ndarray):
        means, logvars = [], []
        with torch.inference_mode():
            for start in range(0, len(obs), batch_size):
                x = torch.as_tensor(np.asarray(obs[start : start + batch_size]), dtype=torch.float32).to(device)
                mu, logvar = model.encode(x)
                means.append(mu.double().cpu().numpy())
                logvars.append(logvar.double().cpu().numpy())
        if not means:
            d = model.z_dim
            return np.zeros((0, d)), np.zeros((0, d))
        return np.concatenate(means), np.concatenate(logvars)

    return represent_posterior


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


def headline_scores(result: dict[str, Any]) -> dict[str, float]:
    """One number per metric (its ``score``) for tables and reports."""
    out = {}
    for name, value in result.get("metrics", {}).items():
        if isinstance(value, dict) and isinstance(value.get("score"), (int, float)):
            out[name] = float(value["score"])
    return out


#: Fields shown beside a metric's headline score wherever scores are put in a table (``nsvae results``, the
#: comparison report): the synergy metric's score is S_max, and whole minus sum (WMS) goes beside it.
BESIDE_SCORE: dict[str, tuple[str, ...]] = {"synergy": ("wms",)}


def table_scores(result: dict[str, Any]) -> dict[str, float]:
    """:func:`headline_scores`, each followed by the fields :data:`BESIDE_SCORE` names for its metric, as
    ``"<metric>.<field>"``: ``{"mig": ..., "synergy": S_max, "synergy.wms": WMS, ...}``."""
    metrics = result.get("metrics", {})
    out = {}
    for name, score in headline_scores(result).items():
        out[name] = score
        for field in BESIDE_SCORE.get(name, ()):
            value = metrics[name].get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}.{field}"] = float(value)
    return out
