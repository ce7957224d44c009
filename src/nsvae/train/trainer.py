"""Training a run, top to bottom: seeds -> data -> model -> objective -> loop.

:func:`start` makes a new run directory and trains; :func:`resume` continues
a run from its latest checkpoint. Both end in :func:`fit`, which builds the
trainee and runs the loop (:mod:`.loop`, whose steps have names; how a run
fails is in :mod:`.failures`, what it logs in :mod:`.training_log`). Each
method's own update (FactorVAE's discriminator, the Non-Syn VAE's synergy
step) lives in its objective's ``train_step``; the loop only feeds batches.

Randomness (every source seeded from the config):

- ``run.seed``: ``torch.manual_seed`` for the initial weights (model and
  discriminator), then a ``torch.Generator`` (seed derived from it) for all
  the noise of training: the reparametrisation and FactorVAE's permutations;
- ``data.seed`` (default: ``run.seed``): the order of the batches; the second
  batch stream (FactorVAE, Non-Syn ``second_batch``) gets a seed derived from it.

A checkpoint holds the model, the objective's state (optimisers, the
discriminator, selection counts), both batch streams' positions, the noise
generator and torch's global generator, so a resumed run computes exactly
the numbers an uninterrupted one would (on the same machine and software).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..clock import timestamp
from ..config import apply_overrides, load_config, open_dataset
from ..config.schema import Config, flatten
from ..errors import UserError
from ..stop_signals import StopSignals
from .allocator import keep_freed_memory
from .device import resolve_device, torch_settings
from .failures import DiskFull, TrainingDiverged, quiet_full_disk_threads
from .learning_curve import CurveRecorder
from .loop import GLOBAL_STREAM, Trainee, TrainingLoop, derive_seed
from .run import CHECKPOINT_FORMAT, CONFIG_FILE, Run
from .trackers import check_installed

__all__ = ["DiskFull", "TrainingDiverged", "fit", "resume", "start", "validate"]

Callback = Callable[[int, dict[str, Any]], None]


def new_run_path(config: Config, out: str | os.PathLike | None) -> Run:
    """The :class:`Run` a new training of ``config`` goes to: ``out``, or a fresh ``runs/NAME-DATE-TIME``.

    A directory that holds a run with a checkpoint is refused (resume it); one whose run never reached its
    first checkpoint is accepted: :func:`start` trains it again from step 0.
    """
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{config.run.name}-{stamp}"
        n = 2
        while path.exists():
            path = Path("runs") / f"{config.run.name}-{stamp}-{n}"
            n += 1
    else:
        path = Path(out)
    run = Run(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a directory")
    run.check_layout()
    if run.exists() and run.checkpoints():
        raise UserError(f"{path} already holds a run; continue it with `nsvae train --resume {path}` or choose another")
    if path.is_dir() and not run.checkpoints():
        run.check_can_clear()  # a foreign directory, a finished run or results: refused before any work
    stray = run.stray_checkpoints()
    if stray:
        raise UserError(
            f"{path} has checkpoint files ({stray[-1].name}, ...) but no {CONFIG_FILE}: they are not a run nsvae can "
            "continue or may delete; move them away or choose another --out"
        )
    return run


def validate(config: Config, dataset=None) -> None:
    """Everything about ``config`` that can fail before training, checked before a run directory exists.

    The config's own types and ranges are checked when it is read
    (:mod:`nsvae.config.schema`); here: the device exists, the trackers are
    installed, the network and the objective can be built, and (given the
    dataset) the batch fits it.
    """
    from ..models import VAE
    from ..objectives import build

    resolve_device(config.run.device)
    check_installed(config.log.trackers, config.log.mlflow_uri)
    try:
        with torch.random.fork_rng(devices=[]):
            model = VAE(config.model)
            objective = build(config.method, model, config.method_config(), config.common, config.optim)
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the config of {config.run.name} cannot be trained: {first}") from None
    if dataset is None:
        return
    size, batch = len(dataset), config.data.batch_size
    if batch > size:
        raise UserError(f"data.batch_size = {batch} is larger than {config.data.dataset} ({size} images); lower it")
    if objective.batch_statistic and batch < 2:
        raise UserError(
            f"data.batch_size = {batch}: {config.method} {objective.batch_statistic}; use a batch of at least 2"
        )


def start(
    config: Config | str | os.PathLike | dict,
    out: str | os.PathLike | None = None,
    *,
    progress: bool | None = None,
    callback: Callback | None = None,
) -> Run:
    """Train a new run of ``config`` (a Config, a TOML path or a preset name) in directory ``out``.

    ``out`` defaults to ``runs/<run.name>-<date>-<time>``. Returns the :class:`Run`
    (its ``state`` says finished, or interrupted by a signal); raises
    :class:`TrainingDiverged` on a NaN/Inf loss. The whole config is checked
    (:func:`validate`) before the directory is made; a directory whose run
    never reached its first checkpoint is trained again from step 0.
    """
    config = load_config(config)
    validate(config)
    run = new_run_path(config, out)
    show = _show_progress(config, progress)
    dataset = open_dataset(config, show)
    validate(config, dataset)
    with run.lock():
        return _start_locked(run, config, dataset, show, callback)


def _start_locked(run: Run, config: Config, dataset, show: bool, callback: Callback | None) -> Run:
    run.check_layout()
    if run.checkpoints():  # another process got there first
        raise UserError(f"{run.path} already holds a run; continue it with `nsvae train --resume {run.path}`")
    run.clear()
    config = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, seed=config.data_seed),
        common=dataclasses.replace(config.common, dataset_size=len(dataset)),
    )
    # The status first: the status.json nsvae creates carries the run's identity, so from here on the directory
    # is provably a run nsvae wrote (Run.provenance).
    run.set_status("running", step=0, started=timestamp())
    run.write_config(config)
    return fit(run, config, dataset, state=None, progress=show, callback=callback)


def resume(
    path: str | os.PathLike | Run,
    steps: int | None = None,
    *,
    device: str | None = None,
    progress: bool | None = None,
    callback: Callback | None = None,
) -> Run:
    """Continue the run at ``path`` from its newest intact checkpoint, to ``steps`` (default: the config's).

    A damaged newest checkpoint is set aside with a warning that names it and
    the one used instead. A run without any checkpoint (killed or failed
    before its first) is trained again from step 0 with its config.
    """
    run = path if isinstance(path, Run) else Run(path)
    run.check_layout()
    if not run.exists():
        raise UserError(f"{run.path} is not a run directory (it has no config.toml)")
    with run.lock():
        run.remove_temporaries()
        config = run.config
        changes: dict[str, Any] = {}
        if steps is not None:
            changes["run.steps"] = steps
        if device is not None:
            changes["run.device"] = device
        if changes:
            config = apply_overrides(config, changes)
        validate(config)
        checkpoints = run.checkpoints()
        show = _show_progress(config, progress)
        if not checkpoints:
            run.check_can_clear()  # a finished run, results or a foreign directory: refused before any work
            dataset = open_dataset(config, show)
            validate(config, dataset)
            return _start_locked(run, config, dataset, show, callback)
        newest = checkpoints[-1][0]
        if config.run.steps < newest:
            raise UserError(f"run {run.path} is already at step {newest}; --steps must be at least that")
        if config.run.steps == newest and run.state == "finished" and not run.verify_checkpoint(checkpoints[-1][1]):
            raise UserError(
                f"run {run.path} finished at step {newest}; pass --steps N (N > {newest}) to train it further"
            )
        done, state = run.newest_intact_checkpoint()
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"checkpoint format {state.get('format')} of {run.path} is not {CHECKPOINT_FORMAT}")
        _check_config_unchanged(run, config, state, done)
        dataset = open_dataset(config, show)
        if len(dataset) != config.common.dataset_size:
            raise UserError(
                f"{config.data.dataset} now has {len(dataset)} images, the run was trained on "
                f"{config.common.dataset_size}; it cannot be resumed exactly"
            )
        if changes:
            run.write_config(config)
        run.truncate_log(done)
        CurveRecorder(run, config, dataset).truncate(done)
        run.adopt()  # a run of a version before run ids, proved a run by its checkpoints, gets its id now
        run.set_status("running", step=done)
        return fit(run, config, dataset, state=state, progress=show, callback=callback)


#: Keys a resumed run may change from what its checkpoint was trained with: how long it trains, where, how logged.
RESUME_FREE_KEYS = ("run.steps", "run.deterministic")


def _check_config_unchanged(run: Run, config: Config, state: dict[str, Any], step: int) -> None:
    """Refuse to resume when ``config.toml`` (or the overrides) asks for a different computation than the
    checkpoint holds: a changed network, objective or optimiser cannot continue that run (it would fail on the
    weights, or worse, train on silently with another objective). Logging, evaluation, device, threads and the
    step count may change."""
    from ..config.schema import from_dict, is_incidental

    stored_doc = state.get("config")
    if not isinstance(stored_doc, dict):
        return  # a checkpoint of a version that did not store its config: nothing to compare with
    try:
        stored = flatten(from_dict(stored_doc))
    except (UserError, ValueError, TypeError):
        return
    current = flatten(config)
    changed = [
        k
        for k in sorted(set(stored) | set(current))
        if not is_incidental(k) and k not in RESUME_FREE_KEYS and stored.get(k) != current.get(k)
    ]
    if changed:
        shown = ", ".join(f"{k} {stored.get(k)!r} -> {current.get(k)!r}" for k in changed[:3])
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        raise UserError(
            f"{run.config_path} no longer matches the run's checkpoint of step {step}: {shown}{more}; "
            "restore those keys to resume, or train a new run with the changed config (--out NEW_DIR)"
        )


def _show_progress(config: Config, progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return config.log.progress and sys.stderr.isatty()


def fit(
    run: Run,
    config: Config,
    dataset,
    state: dict[str, Any] | None,
    progress: bool = False,
    callback: Callback | None = None,
) -> Run:
    """Train ``config`` in ``run`` from ``state`` (a checkpoint) or from scratch: the settings of the process for
    the run's length, the trainee (:class:`.loop.Trainee`), then the loop (:class:`.loop.TrainingLoop`)."""
    device = resolve_device(config.run.device)
    with (
        torch_settings(config.run.deterministic, config.run.threads),
        keep_freed_memory(active=device.type == "cpu"),
        quiet_full_disk_threads(),
        StopSignals() as stop,
    ):
        trainee = Trainee.build(config, dataset, device)
        # torch's global generator, for anything that would draw from it, seeded and restored around the run
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(derive_seed(config.run.seed, GLOBAL_STREAM))
            step, elapsed = (0, 0.0) if state is None else trainee.restore(state)
            loop = TrainingLoop(
                run,
                config,
                trainee,
                dataset,
                stop,
                step=step,
                elapsed=elapsed,
                resumed=state is not None,
                progress=progress,
                callback=callback,
            )
            return loop.run_to_end()
