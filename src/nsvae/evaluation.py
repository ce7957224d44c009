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
more metrics of the same step, protocol and seed adds to the entry.
``eval.json`` holds the latest evaluated step; each other step's results are
kept in ``eval-step<N>.json`` and merged back when that step is evaluated again
(:func:`write_eval`: per-step results are merged, never replaced wholesale, under
the run's evaluation lock).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from .cpus import usable_cpus
from .errors import NsvaeWarning, UserError
from .stop_signals import sigterm_interrupts

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
    table: str | bool = "auto",
) -> dict[str, Any]:
    """Score checkpoint ``step`` (default: the latest) of ``run`` and write ``eval.json``; returns the result.

    ``table``: as :func:`nsvae.metrics.evaluate` (``"auto"``: encode the whole dataset once when a metric gains from
    it; ``False``: pools only, faster, and the synergy metric and Chen's MIG then use their pool estimators)."""
    from .config import open_dataset
    from .metrics import DEFAULT_METRICS, evaluate
    from .metrics.protocols import resolve
    from .train import load_run
    from .train.allocator import keep_freed_memory
    from .train.device import resolve_device
    from .train.latents import posterior_encoder

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
    _check_latents(run.config.model.z_dim, tuple(metrics or DEFAULT_METRICS))
    if write:
        _check_writable(Path(run.path))  # before any image is encoded: a read-only run failed after all the work
    dev = resolve_device(device)
    model = run.load_model(step, device=dev)
    evaluated_step = run.loaded_step
    data = open_dataset(run.config, progress=progress)
    if not hasattr(data, "factor_sizes"):
        raise UserError(
            f"{run.config.data.dataset} has no ground-truth factors: the disentanglement metrics need a dataset "
            "such as dsprites"
        )
    so_far: dict[str, Any] = {}
    with keep_freed_memory(active=dev.type == "cpu"), sigterm_interrupts():
        try:
            result = evaluate(
                data,
                represent_posterior=posterior_encoder(model, dev),
                metrics=tuple(metrics or DEFAULT_METRICS),
                protocol=protocol,
                overrides=overrides,
                seed=seed,
                progress=progress,
                n_jobs=n_jobs or usable_cpus(),
                table=table,
                on_error="record",
                on_metric=so_far.update,
            )
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the metrics already computed, then stop
            if write and so_far.get("metrics"):
                so_far.pop("failed", None)
                so_far["step"] = evaluated_step
                write_eval(Path(run.path), evaluated_step, protocol, so_far)
                warnings.warn(
                    f"interrupted; the {len(so_far['metrics'])} metric(s) already computed "
                    f"({', '.join(so_far['metrics'])}) are in {Path(run.path) / EVAL_FILE}",
                    NsvaeWarning,
                    stacklevel=2,
                )
            raise
    result["step"] = evaluated_step
    failed = result.pop("failed", {})
    if write and result["metrics"]:
        write_eval(Path(run.path), evaluated_step, protocol, result)
        _log_to_trackers(run, evaluated_step, protocol, result)
    if failed:
        reasons = "; ".join(f"{name}: {message}" for name, message in failed.items())
        kept = (
            f"the others ({', '.join(result['metrics'])}) are in {Path(run.path) / EVAL_FILE}"
            if write and result["metrics"]
            else "no metric could be computed"
        )
        raise UserError(f"{len(failed)} metric(s) could not be computed ({reasons}); {kept}")
    return result


def _log_to_trackers(run, step: int, protocol: str, result: dict[str, Any]) -> None:
    """The headline scores to the run's W&B and MLflow runs, where it has them (``log.trackers``); never raises."""
    from .metrics.evaluate import headline_scores
    from .train.trackers import log_evaluation

    log_evaluation(run, step, headline_scores(result), protocol)


def _check_latents(z_dim: int, metrics: tuple[str, ...]) -> None:
    """Refuse, before any image is encoded, metrics a code of ``z_dim`` latents cannot have (a z_dim 1 model ran the
    default evaluation for 92 s and then failed on MIG)."""
    from .metrics.evaluate import NEEDS_TWO_LATENTS

    if z_dim >= 2:
        return
    refused = [m for m in metrics if m in NEEDS_TWO_LATENTS]
    if refused:
        kept = [m for m in metrics if m not in NEEDS_TWO_LATENTS]
        hint = f"; evaluate the others with --metrics {' '.join(kept)}" if kept else ""
        raise UserError(
            f"{', '.join(refused)} compare latents with each other and need at least 2; this model has z_dim {z_dim}"
            + hint
        )


def _check_writable(run_dir: Path) -> None:
    """Refuse a run directory this process cannot write its evaluation into, by writing there what evaluating
    writes first (the evaluation lock), so the check is the real one (permissions, a read-only file system)."""
    from .locks import FileLock

    lock = FileLock(run_dir / EVAL_LOCK)
    try:
        with lock.hold():
            probe = run_dir / f".eval-probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write the evaluation into {run_dir} ({exc.strerror or exc}); make it writable, or copy the run "
            "somewhere writable and evaluate the copy"
        ) from None


def read_eval(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``eval.json`` (its latest evaluated step), or None when it has none."""
    return _read_record(Path(run_dir) / EVAL_FILE)


#: Held around every read-merge-write of a run's evaluation files, so two ``evaluate`` commands of one run at
#: once both keep their metrics (a separate lock from the training lock: a run may be evaluated while it trains).
EVAL_LOCK = ".eval.lock"


def step_eval_path(run_dir: str | os.PathLike, step: int) -> Path:
    """Where the results of an evaluated step other than the latest one are kept."""
    return Path(run_dir) / f"eval-step{step}.json"


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path} is not valid JSON; delete it and evaluate again") from None
    results = record.get("results") if isinstance(record, dict) else None
    if (
        not isinstance(results, dict)
        or not isinstance(record.get("step"), int)
        or not all(isinstance(e, dict) and isinstance(e.get("metrics", {}), dict) for e in results.values())
    ):
        raise UserError(
            f"{path} is not an nsvae evaluation (it needs a step and a 'results' table of protocols); move it away "
            "and evaluate again"
        )
    return record


def _merge(record: dict[str, Any] | None, step: int, protocol: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` (one protocol's) added to ``record`` (a whole step's): the same protocol and seed add or
    replace metrics; another seed replaces the protocol's entry."""
    record = record or {"step": step, "results": {}}
    entry = record["results"].get(protocol)
    if isinstance(entry, dict) and entry.get("seed") == result.get("seed"):
        entry.setdefault("metrics", {}).update(result.get("metrics", {}))
        entry.setdefault("seconds", {}).update(result.get("seconds", {}))
        entry.update({k: v for k, v in result.items() if k not in ("metrics", "seconds")})
    else:
        record["results"][protocol] = result
    return record


def write_eval(run_dir: str | os.PathLike, step: int, protocol: str, result: dict[str, Any]) -> Path:
    """Merge ``result`` into the run's results of ``step`` and make that step's file ``eval.json``.

    ``eval.json`` holds the most recently evaluated step; every other evaluated step keeps its own
    ``eval-step<N>.json``. Results are merged per step, never replaced wholesale: evaluating step 10 after
    step 20 moves step 20's results into ``eval-step20.json`` (merged with what that file held), and
    evaluating step 20 again brings them back. The read-merge-write holds the run's :data:`EVAL_LOCK`."""
    from .atomic import write_json_atomic
    from .locks import FileLock

    run_dir = Path(run_dir)
    # JSON has no NaN: the metrics never return one (they raise), and this guards the files.
    json.dumps(result, allow_nan=False)
    path = run_dir / EVAL_FILE
    with FileLock(run_dir / EVAL_LOCK).hold():
        latest = _read_record(path)
        older = step_eval_path(run_dir, step)
        if latest is not None and latest.get("step") != step:
            other = latest.get("step")
            kept = _read_record(step_eval_path(run_dir, other)) if isinstance(other, int) else None
            for name, entry in latest["results"].items():  # the newer eval.json wins over the kept file
                kept = _merge(kept, other, name, entry)
            write_json_atomic(step_eval_path(run_dir, other), kept)
            latest = None
        record = _merge(latest if latest is not None else _read_record(older), step, protocol, result)
        write_json_atomic(path, record)
        if older.is_file():  # now merged into eval.json (a kill before this leaves a duplicate, never a loss)
            older.unlink()
    return path


#: The file a finished run keeps for UDR (nsvae.metrics.udr): its posterior on UDR's fixed sample, compressed.
UDR_SAMPLE_FILE = "udr_sample.npz"


def udr_sample_of_run(run, step: int | None = None, device: str = "auto") -> dict[str, Any]:
    """The posterior of checkpoint ``step`` (default: the latest) of ``run`` on UDR's fixed sample (the published
    protocol's size and seed, :data:`nsvae.metrics.udr.DEFAULT_PROTOCOL`): ``factors``, ``mean``, ``logvar``, and
    ``protocol`` (what drew the sample). What UDR needs of a run once its checkpoints are gone."""
    from .config import open_dataset
    from .metrics.udr import DEFAULT_PROTOCOL, udr_sample
    from .train import load_run
    from .train.device import resolve_device
    from .train.latents import posterior_encoder

    run = load_run(run) if not hasattr(run, "load_model") else run
    dev = resolve_device(device)
    model = run.load_model(step, device=dev)
    data = open_dataset(run.config, progress=False)
    n, seed = int(DEFAULT_PROTOCOL["num_data_points"]), int(DEFAULT_PROTOCOL["seed"])
    sample = udr_sample(data, posterior_encoder(model, dev), num_data_points=n, seed=seed)
    return {**sample, "protocol": {"num_data_points": n, "seed": seed, "step": run.loaded_step}}


def write_udr_sample(path: str | os.PathLike, sample: dict[str, Any]) -> None:
    """Write :func:`udr_sample_of_run`'s result as a compressed ``.npz`` (atomically)."""
    import io

    import numpy as np

    from .atomic import atomic_write

    buffer = io.BytesIO()
    arrays = {k: np.asarray(v) for k, v in sample.items() if k != "protocol"}
    np.savez_compressed(buffer, protocol=np.asarray(json.dumps(sample.get("protocol", {}))), **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def read_udr_sample(path: str | os.PathLike) -> dict[str, Any]:
    """A file of :func:`write_udr_sample`: ``factors``, ``mean``, ``logvar`` and ``protocol``; a file that is not
    one is a UserError naming it."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as npz:
            sample = {k: npz[k] for k in ("factors", "mean", "logvar")}
            protocol = json.loads(str(npz["protocol"]))
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path} is not a UDR sample file ({exc}); export it again from the run") from None
    if sample["mean"].ndim != 2 or sample["mean"].shape != sample["logvar"].shape:
        raise UserError(f"{path}: mean and logvar must be (n, d) arrays of one shape")
    return {**sample, "protocol": protocol}
