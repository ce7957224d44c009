"""The training loop, top to bottom: seeds -> data -> model -> objective -> loop.

:func:`start` makes a new run directory and trains; :func:`resume` continues
a run from its latest checkpoint. Both end in :func:`fit`, the loop. Each
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

import contextlib
import dataclasses
import errno
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..atomic import atomic_write
from ..clock import timestamp
from ..config import apply_overrides, load_config, open_dataset
from ..config.schema import Config, flatten, to_dict
from ..errors import UserError
from ..pictures import to_uint8
from ..stop_signals import StopSignals
from .allocator import keep_freed_memory
from .device import resolve_device, torch_settings
from .divergence import DivergenceWatch
from .latents import traversal_grid
from .learning_curve import CurveRecorder
from .run import CHECKPOINT_FORMAT, CONFIG_FILE, Run
from .trackers import check_installed, curve_scalars, open_trackers, step_scalars

__all__ = ["DiskFull", "TrainingDiverged", "fit", "resume", "start", "validate"]

Callback = Callable[[int, dict[str, Any]], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is marked failed and keeps its last good checkpoint."""


class DiskFull(UserError):
    """No space left while the run wrote a file; it stopped with its last checkpoint intact (resume it later)."""


#: errno values of a full disk or an exhausted quota.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def derive_seed(seed: int, *stream: int) -> int:
    """An independent 63-bit seed for a named random stream of ``seed``."""
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), *stream]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


NOISE_STREAM = 1  # derive_seed(run.seed, 1): reparametrisation and permutation noise
GLOBAL_STREAM = 2  # derive_seed(run.seed, 2): torch's global generator during training (unused by the methods)
SECOND_BATCH_STREAM = 1  # derive_seed(data.seed, 1): the second batch stream


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
            build(config.method, model, config.method_config(), config.common, config.optim)
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"the config of {config.run.name} cannot be trained: {first}") from None
    if dataset is None:
        return
    size, batch = len(dataset), config.data.batch_size
    if batch > size:
        raise UserError(f"data.batch_size = {batch} is larger than {config.data.dataset} ({size} images); lower it")
    if config.method == "beta_tcvae" and batch < 2:
        raise UserError(
            f"data.batch_size = {batch}: beta_tcvae estimates the total correlation from the other codes of a batch; "
            "use a batch of at least 2"
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
    """The loop: train ``config`` in ``run`` from ``state`` (a checkpoint) or from scratch."""
    from ..data.loader import BatchLoader
    from ..models import VAE
    from ..objectives import build

    device = resolve_device(config.run.device)
    cfg_log = config.log
    with (
        torch_settings(config.run.deterministic, config.run.threads),
        keep_freed_memory(active=device.type == "cpu"),
        _quiet_full_disk_threads(),
        StopSignals() as stop,
    ):
        # -- model and objective: initial weights from run.seed, without touching the caller's generator
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.run.seed)
            model = VAE(config.model).to(device)
            if config.run.fast_layout:
                model.to_fast_layout()
            objective = build(config.method, model, config.method_config(), config.common, config.optim)
        model.train()

        # -- data: one batch stream, a second one with its own seed where the method needs it
        loader = BatchLoader(dataset, config.data.batch_size, seed=config.data_seed, device=device)
        loader2 = None
        if objective.needs_second_batch:
            seed2 = derive_seed(config.data_seed, SECOND_BATCH_STREAM)
            loader2 = BatchLoader(dataset, config.data.batch_size, seed=seed2, device=device)

        # -- the noise of training, and torch's global generator (for anything that would draw from it)
        noise = torch.Generator(device=device)
        noise.manual_seed(derive_seed(config.run.seed, NOISE_STREAM))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(derive_seed(config.run.seed, GLOBAL_STREAM))
            step, elapsed = 0, 0.0
            if state is not None:
                step, elapsed = _restore(state, model, objective, loader, loader2, noise, device)
            fixed_image = traversal_image(dataset)
            try:
                logger = _Logger(run, config, progress, start_step=step, resumed=state is not None)
            except OSError as exc:
                if exc.errno not in FULL_DISK:
                    raise
                raise _disk_full(run, exc, step, step if state is not None else 0) from None
            curve = CurveRecorder(run, config, dataset)
            divergence = DivergenceWatch(device)
            try:
                last_saved = step
                t0, window_t, window_steps = time.perf_counter(), time.perf_counter(), 0
                while step < config.run.steps:
                    x = next(loader)
                    x2 = next(loader2) if loader2 is not None else None
                    logs = _train_step(objective, x, x2, noise, step + 1)
                    step += 1
                    window_steps += 1
                    logger.step()
                    divergence.watch(logs, step)
                    # The steps that read the device anyway also ask whether training diverged: nothing
                    # of a diverged model is logged or saved, and no other step waits for the device.
                    traversal_due = bool(cfg_log.traversal_every) and step % cfg_log.traversal_every == 0
                    log_due = step % cfg_log.every == 0 or step == config.run.steps
                    bad = divergence.found(sync=log_due or traversal_due or curve.due(step))
                    if bad:
                        _diverged(run, bad, last_saved)
                    if log_due:
                        now = time.perf_counter()
                        rate = window_steps / max(now - window_t, 1e-9)
                        window_t, window_steps = now, 0
                        if hasattr(objective, "selection_rates"):
                            logs = {**logs, **objective.selection_rates()}
                        logger.record(step, logs, rate, elapsed + now - t0, loader)
                    if traversal_due:
                        logger.traversal(step, model, fixed_image)
                    if curve.due(step):
                        point = curve.record(step, model, device)
                        logger.curve_point(point)
                        window_t += point["seconds"]  # steps_per_s measures training alone
                    if callback is not None:
                        callback(step, logs)
                    if step % cfg_log.checkpoint_every == 0 or step == config.run.steps or stop.signum:
                        bad = divergence.found(sync=True)
                        if bad:
                            _diverged(run, bad, last_saved)
                        elapsed_now = elapsed + time.perf_counter() - t0
                        _save(run, config, step, elapsed_now, model, objective, loader, loader2, noise, device)
                        last_saved = step
                        run.set_status("running", step=step)
                    if stop.signum and step == last_saved and step < config.run.steps:
                        name = signal.Signals(stop.signum).name
                        run.set_status("interrupted", step=step, signal=name, exit_code=128 + stop.signum)
                        logger.message(
                            f"{name}: stopped at step {step}; checkpoint written. Resume with "
                            f"`nsvae train --resume {run.path}`"
                        )
                        return run
                run.set_status("finished", step=step, finished=timestamp())
                return run
            except TrainingDiverged:
                raise
            except KeyboardInterrupt:
                run.set_status("interrupted", step=last_saved, signal="SIGINT", exit_code=130)
                raise
            except OSError as exc:
                if exc.errno not in FULL_DISK:
                    _set_failed(run, last_saved, f"{type(exc).__name__}: {exc}")
                    raise
                raise _disk_full(run, exc, step, last_saved) from None
            except BaseException as exc:
                _set_failed(run, last_saved, f"{type(exc).__name__}: {exc}")
                raise
            finally:
                logger.close()


def _disk_full(run: Run, exc: OSError, step: int, last_saved: int) -> DiskFull:
    """The one-line error of a full disk (recorded in status.json where the disk still allows it)."""
    where = exc.filename or run.path
    message = (
        f"no space left on the device while writing {where} at step {step}: training stopped; the "
        f"checkpoint of step {last_saved} is intact. Free some space and resume with "
        f"`nsvae train --resume {run.path}`"
        if last_saved
        else f"no space left on the device while writing {where} at step {step}, before the first "
        f"checkpoint: free some space and run the same command again"
    )
    _set_failed(run, last_saved, message)
    return DiskFull(message)


def _set_failed(run: Run, step: int, error: str) -> None:
    """Record the failure in status.json where the disk still allows it (a full disk may not)."""
    with contextlib.suppress(OSError):
        run.set_status("failed", step=step, error=error)


@contextlib.contextmanager
def _quiet_full_disk_threads():
    """TensorBoard writes from a thread; on a full disk that thread dies with a traceback on stderr while the error
    reaches the loop at its next write. Keep the thread's copy quiet (the loop reports it in one line)."""
    previous = threading.excepthook

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in FULL_DISK:
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def _train_step(objective, x, x2, noise, step: int) -> dict[str, Any]:
    """One iteration; a NaN/Inf found inside the objective (its latent selection refuses them) -> logs of NaN."""
    from ..objectives.selection import NonFiniteKL

    try:
        return objective.train_step(x, x2, noise)
    except NonFiniteKL as exc:
        return {"loss": math.nan, "error": str(exc)}


def _diverged(run: Run, what: str, last_saved: int) -> None:
    keep = (
        f"the last good checkpoint is step {last_saved} ({run.checkpoint_path(last_saved).name})"
        if last_saved and run.checkpoints()
        else "no checkpoint was written before"
    )
    message = f"training diverged {what}; {keep}. Try a lower optim.lr, or resume with another seed."
    run.set_status("failed", step=last_saved, error=message)
    raise TrainingDiverged(message)


def traversal_image(dataset) -> torch.Tensor:
    """The fixed image of the traversal figures: image 0 (the original's first test image)."""
    return torch.from_numpy(np.ascontiguousarray(dataset.observations_at([0], np.random.default_rng(0))[0]))


def _checkpoint_state(config, step, elapsed, model, objective, loader, loader2, noise, device) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "elapsed_s": elapsed,
        "method": config.method,
        "config": to_dict(config),
        "model": model.state_dict(),
        "objective": objective.state_dict(),
        "loader": loader.state_dict(),
        "loader2": None if loader2 is None else loader2.state_dict(),
        "noise_rng": noise.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "versions": {"nsvae": __version__, "torch": str(torch.__version__)},
    }


def _save(run, config, step, elapsed, model, objective, loader, loader2, noise, device) -> None:
    state = _checkpoint_state(config, step, elapsed, model, objective, loader, loader2, noise, device)
    run.write_checkpoint(state, step, keep=config.log.keep_checkpoints)


def _restore(state, model, objective, loader, loader2, noise, device) -> tuple[int, float]:
    model.load_state_dict(state["model"])
    objective.load_state_dict(state["objective"])
    loader.load_state_dict(state["loader"])
    if loader2 is not None:
        loader2.load_state_dict(state["loader2"])
    noise.set_state(state["noise_rng"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return int(state["step"]), float(state.get("elapsed_s", 0.0))


class _Logger:
    """The progress bar, the console line, log.jsonl, and the trackers' (TensorBoard, W&B, MLflow) scalars and
    traversal images (:mod:`.trackers`)."""

    def __init__(self, run: Run, config: Config, progress: bool, start_step: int, resumed: bool = False):
        from tqdm.auto import tqdm

        self.run = run
        self.config = config
        self.bar = tqdm(
            total=config.run.steps,
            initial=start_step,
            disable=not progress,
            unit="step",
            dynamic_ncols=True,
            desc=config.run.name,
        )
        self.trackers = open_trackers(run, config, start_step, resumed)
        self.z_dim = config.model.z_dim

    def step(self) -> None:
        self.bar.update(1)  # the bar's numbers change at log steps only: reading them each step would wait for the GPU

    def message(self, text: str) -> None:
        if self.config.log.console or not self.bar.disable:
            self.bar.write(text, file=sys.stderr)

    def record(self, step: int, logs: dict[str, Any], rate: float, elapsed: float, loader) -> None:
        entry = {"step": step, "epoch": step * loader.batch_size / loader.size}
        entry.update(logs)
        self.bar.set_postfix(
            recon=f"{entry['recon']:.2f}", kl=f"{entry['kl']:.2f}", syn=f"{entry['synergy_proxy']:.3f}", refresh=False
        )
        entry.update(steps_per_s=rate, elapsed_s=elapsed)
        with open(self.run.log_path, "a", encoding="utf-8") as handle:
            handle.write(_json_line(entry))
        self.trackers.scalars(step, step_scalars(entry, self.config.method))
        if self.config.log.console:
            total = self.config.run.steps
            parts = [f"step {step}/{total}", f"recon {logs['recon']:.3f}", f"kl {logs['kl']:.3f}"]
            parts.append(f"syn proxy {logs['synergy_proxy']:.4f}")
            if "best" in logs:
                parts.append(f"best {logs['best']} worst {logs['worst']}")
            parts.append(f"{rate:.2f} step/s")
            self.bar.write(" | ".join(parts), file=sys.stdout)

    def curve_point(self, entry: dict[str, Any]) -> None:
        self.trackers.scalars(entry["step"], curve_scalars(entry))
        if self.config.log.console:
            shown = ("factor_vae_score", "mig", "chen_mig", "synergy", "synergy.wms")
            parts = [f"{k} {entry['scores'][k]:.3f}" for k in shown if k in entry["scores"]]
            self.bar.write(f"eval step {entry['step']}: " + ", ".join(parts) + f" ({entry['seconds']:.0f} s)")

    def traversal(self, step: int, model, image: torch.Tensor) -> None:
        from PIL import Image

        grid = traversal_grid(model, image, n_values=self.config.log.traversal_values)
        self.trackers.image(step, "traversal", grid)
        path = self.run.traversal_dir / f"step_{step:07d}.png"
        picture = Image.fromarray(to_uint8(grid))
        atomic_write(path, lambda handle: picture.save(handle, format="PNG"))

    def close(self) -> None:
        self.bar.close()
        self.trackers.end_training()


def _json_line(entry: dict[str, Any]) -> str:
    import json

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)  # JSON has no NaN/Infinity
        return v

    return json.dumps({k: clean(v) for k, v in entry.items()}, separators=(", ", ": ")) + "\n"
