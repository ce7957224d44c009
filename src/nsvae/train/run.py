"""A run directory: everything needed to understand, resume and use one training run.

::

    RUN/
      config.toml              the fully resolved config (every key)
      status.json              state: running | finished | failed | interrupted, step, message, times
      log.jsonl                one JSON object per logged step
      checkpoints/step_0001000.pt   the last ``log.keep_checkpoints`` checkpoints
      events/                  TensorBoard scalars and traversal images
      traversals/step_0002000.png   the same traversal images as PNG
      trackers.json            the W&B and MLflow run ids (log.trackers), with wandb/ and mlruns/ beside it

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so a crash or a kill never leaves a half-written checkpoint,
config or status where a reader would find it. Each checkpoint has a
``step_XXXXXXX.pt.sha256`` beside it (``sha256sum`` format), checked whenever
the checkpoint is read; one without it (older runs, or a kill between the
checkpoint and its checksum file) is checked against the CRC-32 of every
record of its zip archive. nsvae never follows a symbolic
link out of a run directory and only deletes files a run writes
(docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import config as config_module
from ..atomic import atomic_write, write_json_atomic, write_text_atomic
from ..clock import timestamp
from ..config import Config
from ..errors import NsvaeWarning, UserError
from ..locks import FileLock

CONFIG_FILE = "config.toml"
STATUS_FILE = "status.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_DIR = "checkpoints"
EVENTS_DIR = "events"
TRAVERSAL_DIR = "traversals"
LOCK_FILE = ".lock"
_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")
CHECKSUM_SUFFIX = ".sha256"
DAMAGED_SUFFIX = ".damaged"
EVAL_FILE = "eval.json"
#: The experiment trackers' run ids (nsvae.train.trackers), so that a resumed run continues the same tracker runs.
TRACKERS_FILE = "trackers.json"
_EVAL_STEP = re.compile(r"^eval-step\d+\.json$")
#: The key of ``status.json`` that holds the identity nsvae gives a run when it starts it: the proof that a
#: directory is a run nsvae wrote, before it adopts (restarts, clears) it.
RUN_ID = "run_id"
#: Every file and directory a run writes (only these are ever deleted, when a run without a checkpoint restarts).
RUN_FILES = (CONFIG_FILE, STATUS_FILE, LOG_FILE, "eval_curve.jsonl", EVAL_FILE, TRACKERS_FILE)
RUN_DIRS = (CHECKPOINT_DIR, EVENTS_DIR, TRAVERSAL_DIR)

#: Version of the checkpoint layout (bumped when its keys change).
CHECKPOINT_FORMAT = 1

STATES = ("running", "finished", "failed", "interrupted")


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint's file name (:func:`checkpoint_name`); None for any other name."""
    match = _CHECKPOINT.match(name)
    return int(match.group(1)) if match else None


class Run:
    """A run directory. Open an existing one with :func:`load_run` (or ``Run(path)``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._model = None
        self._model_step: int | None = None

    def __repr__(self) -> str:
        status = self.status()
        return f"Run({str(self.path)!r}, state={status.get('state')!r}, step={status.get('step')})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- files -------------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def events_dir(self) -> Path:
        return self.path / EVENTS_DIR

    @property
    def traversal_dir(self) -> Path:
        return self.path / TRAVERSAL_DIR

    def exists(self) -> bool:
        return self.config_path.is_file()

    @property
    def config(self) -> Config:
        """The run's resolved config."""
        if not self.exists():
            raise UserError(f"{self.path} is not a run directory (it has no {CONFIG_FILE})")
        return config_module.load(self.config_path)

    def write_config(self, config: Config) -> None:
        write_text_atomic(
            self.config_path, config_module.dumps(config, header=f"resolved config of the run {self.path.name}")
        )

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The content of ``status.json`` (empty if there is none)."""
        path = self.path / STATUS_FILE
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(status, dict):
            raise UserError(f"{path} is not a run's status (a JSON object); move it away or delete it")
        return status

    @property
    def state(self) -> str | None:
        return self.status().get("state")

    def set_status(self, state: str, **fields: Any) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        status = self.status()
        if not (self.path / STATUS_FILE).exists():
            # A status.json nsvae creates carries the run's identity: the proof that nsvae wrote this run.
            status[RUN_ID] = uuid.uuid4().hex
        status.update(fields, state=state, updated=timestamp())
        if state != "failed":
            status.pop("error", None)
        write_json_atomic(self.path / STATUS_FILE, status)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (one process trains, restarts or deletes a run at a time); a second holder gets a
        UserError that names the holder. Re-entrant within a process; freed when the holder dies."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path / LOCK_FILE)
        if not lock.acquire(blocking=False):
            holder = lock.holder().get("pid")
            stop = f"; stop it with kill -TERM {holder} (it checkpoints first)" if isinstance(holder, int) else ""
            raise UserError(
                f"run {self.path} is being trained by another process ({lock.describe_holder()}): wait for it{stop}"
            )
        try:
            yield
        finally:
            lock.release()

    # -- the directory's layout ------------------------------------------------------------------

    def check_layout(self) -> None:
        """Refuse symbolic links among the run's own files and directories (nsvae never writes or deletes through
        a link out of a run directory)."""
        for name in (*RUN_FILES, *RUN_DIRS, LOCK_FILE):
            path = self.path / name
            if path.is_symlink():
                raise UserError(
                    f"{path} is a symbolic link; nsvae does not follow links out of a run directory (it would "
                    "write or delete files elsewhere): replace it with a real "
                    f"{'directory' if name in RUN_DIRS else 'file'}"
                )

    def stray_checkpoints(self) -> list[Path]:
        """Checkpoint files in a directory that has no config.toml (not written by a run nsvae can continue)."""
        return [] if self.exists() else [path for _, path in self.checkpoints()]

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writes that were killed (``.NAME.XXXX.tmp``); call with the lock held."""
        removed = 0
        for folder in (self.path, self.checkpoint_dir, self.traversal_dir):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in folder.glob(".*.tmp"):
                if path.is_file() and not path.is_symlink():
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
        return removed

    # -- what the directory provably is ------------------------------------------------------------

    def run_id(self) -> str | None:
        """The identity nsvae gave this run when it started it (``status.json`` ``run_id``), if any."""
        value = self.status().get(RUN_ID)
        return value if isinstance(value, str) and value else None

    def adopt(self) -> None:
        """Give a run of a version before run ids (proved a run by its checkpoints) its identity."""
        if self.run_id() is None and self.checkpoints() and (self.path / STATUS_FILE).is_file():
            status = self.status()
            status[RUN_ID] = uuid.uuid4().hex
            write_json_atomic(self.path / STATUS_FILE, status)

    def results(self) -> list[Path]:
        """The run's evaluation results: ``eval.json`` and the ``eval-step<N>.json`` of other steps."""
        if not self.path.is_dir():
            return []
        found = [p for p in self.path.glob("eval-step*.json") if _EVAL_STEP.match(p.name)]
        return sorted(found + ([self.path / EVAL_FILE] if (self.path / EVAL_FILE).is_file() else []))

    def provenance(self) -> str:
        """``"run"`` when nsvae provably wrote this directory as a run (its ``status.json`` carries the run id, or,
        for runs of versions before the id, it holds checkpoints); ``"empty"`` when it holds none of a
        run's files; ``"foreign"`` otherwise (files by those names that nsvae did not write as a run)."""
        if self.run_id() is not None:
            return "run"
        if self.checkpoints():  # step_XXXXXXX.pt files: a run's, and never cleared (it is resumed instead)
            return "run"
        return "foreign" if self.own_files() or self.results() else "empty"

    def own_files(self) -> list[str]:
        """The names of a run's files and directories that are in the directory (a link by such a name counts)."""
        return [n for n in (*RUN_FILES, *RUN_DIRS) if (self.path / n).exists() or (self.path / n).is_symlink()]

    def check_can_clear(self) -> None:
        """Refuse to clear a directory nsvae cannot prove it wrote, and a run that finished or has results:
        neither is ever cleared implicitly (docs/reliability.md, 'Results are never cleared implicitly')."""
        kind = self.provenance()
        if kind == "foreign":
            names = ", ".join(self.own_files() or [p.name for p in self.results()])
            raise UserError(
                f"{self.path} holds {names} that no nsvae run wrote there; nsvae does not write over them: "
                "choose a new or empty directory"
            )
        if kind != "run":
            return
        finished = self.status().get("state") == "finished"
        results = self.results()
        if finished or results:
            what = f"finished at step {self.status().get('step')}" if finished else "has results"
            kept = ", ".join(p.name for p in results)
            raise UserError(
                f"run {self.path} {what} and has no checkpoint to continue from"
                + (f"; its results ({kept}) are kept" if kept else "")
                + f": to train it again from step 0, start a new run (nsvae train {self.config_path} --out NEW_DIR) "
                f"or delete {self.path} yourself"
            )

    def clear(self) -> None:
        """Delete what a run without a checkpoint wrote, to start it again; call with the lock held.

        Only a directory that is provably a run nsvae wrote, that did not finish and has no results, is
        cleared (:meth:`check_can_clear`). Only the run's own files are deleted (:data:`RUN_FILES`,
        checkpoints' checksums, TensorBoard events, traversal images, temporary files); anything else in the
        directory is left alone, and links are refused.
        """
        self.check_layout()
        if self.checkpoints():
            raise UserError(f"run {self.path} has checkpoints; resume it (nsvae train --resume {self.path})")
        self.check_can_clear()
        self.remove_temporaries()
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        patterns = {
            CHECKPOINT_DIR: ("step_*.pt" + CHECKSUM_SUFFIX,),
            EVENTS_DIR: ("events.out.tfevents.*",),
            TRAVERSAL_DIR: ("step_*.png",),
        }
        for folder, globs in patterns.items():
            directory = self.path / folder
            if not directory.is_dir():
                continue
            for pattern in globs:
                for path in directory.glob(pattern):
                    if path.is_file() and not path.is_symlink():
                        path.unlink()
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty

    # -- the JSON-lines log ------------------------------------------------------------------

    def log(self) -> list[dict[str, Any]]:
        """Every logged step, in order. A torn last line (a kill in mid-write) is skipped with a warning; an
        unreadable line elsewhere is an error that names it."""
        if not self.log_path.is_file():
            return []
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            lines = [(i, line) for i, line in enumerate(handle, 1) if line.strip()]
        out = []
        for k, (number, line) in enumerate(lines):
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                _check_log_entry(entry)
            except ValueError:
                if k == len(lines) - 1:
                    warnings.warn(
                        f"{self.log_path}: the last line ({number}) is incomplete (a kill while it was written?); "
                        "it is ignored",
                        NsvaeWarning,
                        stacklevel=2,
                    )
                    break
                raise UserError(
                    f"{self.log_path}: line {number} is not a log entry (a JSON object with a whole-number step and "
                    "numbers for the losses); the log is damaged (delete that line)"
                ) from None
            out.append(entry)
        return out

    def truncate_log(self, step: int) -> None:
        """Keep the log lines of steps up to ``step`` (on resume: forget what came after the checkpoint)."""
        if not self.log_path.is_file():
            return
        with open(self.log_path, encoding="utf-8") as handle:
            kept = [line for line in handle if line.strip() and _line_step(line) <= step]
        write_text_atomic(self.log_path, "".join(kept))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every checkpoint, oldest first (links are not checkpoints)."""
        if not self.checkpoint_dir.is_dir() or self.checkpoint_dir.is_symlink():
            return []
        found = []
        for path in self.checkpoint_dir.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match and not path.is_symlink() and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def checkpoint_path(self, step: int | None = None) -> Path:
        """The checkpoint of ``step`` (default: the latest)."""
        found = self.checkpoints()
        if not found:
            raise UserError(f"run {self.path} has no checkpoint yet")
        if step is None:
            return found[-1][1]
        for s, path in found:
            if s == step:
                return path
        raise CheckpointGone(f"run {self.path} has no checkpoint of step {step}; it has steps {[s for s, _ in found]}")

    def write_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write ``state`` atomically as ``checkpoints/step_XXXXXXX.pt`` with its SHA-256 beside it, then delete
        the run's older checkpoints but the last ``keep``."""
        self.check_layout()
        path = self.checkpoint_dir / checkpoint_name(step)
        sidecar = checksum_path(path)
        digest = hashlib.sha256()

        def write(handle) -> None:
            writer = _HashingWriter(handle, digest)
            try:
                torch.save(state, writer)
            except Exception:
                if writer.error is not None:  # torch's zip writer hides a failed write (a full disk) behind its own
                    error = writer.error
                    raise OSError(error.errno, error.strerror, str(path)) from None
                raise

        with contextlib.suppress(FileNotFoundError):
            sidecar.unlink()  # an old checksum must never describe the new file
        atomic_write(path, write)
        write_text_atomic(sidecar, f"{digest.hexdigest()}  {path.name}\n")
        for old_step, old in self.checkpoints()[:-keep]:
            if old_step < step:
                with contextlib.suppress(OSError):
                    old.unlink()
                with contextlib.suppress(OSError):
                    checksum_path(old).unlink()
        return path

    def verify_checkpoint(self, path: Path) -> str:
        """``''`` if the checkpoint at ``path`` is intact, else what is wrong with it.

        With a ``.sha256`` beside it: the SHA-256 of the whole file; without (checkpoints of older versions, or a
        kill after the checkpoint and before its checksum file): the CRC-32 of every record of the zip.
        """
        return verify_checkpoint_file(path)

    def read_checkpoint(self, step: int | None = None) -> dict[str, Any]:
        """The checkpoint of ``step`` (default: the latest), verified; a damaged one is a UserError that names it
        and the newest intact one."""
        path = self.checkpoint_path(step)
        problem = self.verify_checkpoint(path)
        if problem and not path.exists():
            raise CheckpointGone(
                f"checkpoint {path} was deleted while it was read (the run is training: it was pruned)"
            )
        if problem:
            others = [p for s, p in reversed(self.checkpoints()) if p != path and not self.verify_checkpoint(p)]
            hint = (
                f"; the newest intact one is {others[0].name} (nsvae train --resume falls back to it)"
                if others
                else "; no other intact checkpoint exists"
            )
            raise DamagedCheckpoint(f"checkpoint {path} is damaged ({problem}){hint}")
        try:
            return _load_checkpoint(path)
        except DamagedCheckpoint:
            if not path.exists():
                raise CheckpointGone(f"checkpoint {path} was deleted while it was read (the run is training)") from None
            raise

    def newest_intact_checkpoint(self, warn: bool = True) -> tuple[int, dict[str, Any]]:
        """``(step, state)`` of the newest checkpoint that verifies. Damaged newer ones are renamed to
        ``*.pt.damaged`` (kept for inspection, never read again) with a warning naming both files."""
        found = self.checkpoints()
        if not found:
            raise UserError(f"run {self.path} has no checkpoint yet")
        damaged: list[tuple[Path, str]] = []
        for step, path in reversed(found):
            problem = self.verify_checkpoint(path)
            if problem:
                damaged.append((path, problem))
                continue
            state = _load_checkpoint(path)
            for bad, why in damaged:
                aside = bad.with_name(bad.name + DAMAGED_SUFFIX)
                with contextlib.suppress(OSError):
                    os.replace(bad, aside)
                with contextlib.suppress(OSError):
                    checksum_path(bad).unlink()
                if warn:
                    warnings.warn(
                        f"checkpoint {bad} is damaged ({why}); moved to {aside.name}; continuing from {path}",
                        NsvaeWarning,
                        stacklevel=2,
                    )
            return step, state
        listed = "; ".join(f"{p.name}: {why}" for p, why in damaged)
        raise DamagedCheckpoint(
            f"run {self.path} has no intact checkpoint ({listed}); start the run again in another directory"
        )

    # -- using the trained model -------------------------------------------------------------

    def load_model(self, step: int | None = None, device: str | torch.device = "cpu"):
        """The trained :class:`nsvae.models.VAE` of checkpoint ``step`` (default: the latest), in eval mode."""
        from ..models import VAE

        for attempt in range(3):
            try:
                state = self.read_checkpoint(step)
                break
            except CheckpointGone:  # the latest one was pruned by the training process: take the new latest
                if step is not None or attempt == 2:
                    raise
        config = self.config
        model = VAE(config.model).to(device)
        if config.run.fast_layout:
            model.to_fast_layout()
        weights = state.get("model") if isinstance(state, dict) else None
        if not isinstance(weights, dict):
            where = self.checkpoint_path(step)
            raise UserError(f"checkpoint {where} has no 'model' entry; it is not an nsvae checkpoint")
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
            raise UserError(
                f"checkpoint {self.checkpoint_path(step)} does not fit the network of {self.config_path} "
                f"({detail}); the config was changed after training: restore the run's config.toml"
            ) from None
        model.eval()
        self._model, self._model_step = model, int(state["step"])
        return model

    def load_models(self, device: str | torch.device = "cpu", attempts: int = 5) -> list[tuple[int, Any]]:
        """``(step, model)`` of every kept checkpoint, oldest first, read as one consistent set: when the run is
        training and prunes a checkpoint while they are read, they are listed and read again."""
        for _ in range(attempts):
            steps = [step for step, _ in self.checkpoints()]
            try:
                return [(step, self.load_model(step, device=device)) for step in steps]
            except CheckpointGone:
                continue
        raise UserError(f"run {self.path}: its checkpoints kept changing while they were read ({attempts} tries)")

    @property
    def loaded_step(self) -> int | None:
        """The step of the checkpoint last loaded by :meth:`load_model` (None before any)."""
        return self._model_step

    def _current_model(self):
        if self._model is None:
            self.load_model()
        return self._model

    def encode(self, x) -> tuple[Any, Any]:
        """``(mu, logvar)`` of images ``x`` ``(B, C, H, W)`` (or one ``(C, H, W)``) in [0, 1].

        Uses the latest checkpoint (or the one last given to :meth:`load_model`).
        NumPy in, NumPy out; torch in, torch out.
        """
        model = self._current_model()
        as_numpy = isinstance(x, np.ndarray)
        t = torch.as_tensor(x, dtype=torch.float32)
        if t.ndim == 3:
            t = t[None]
        with torch.no_grad():
            mu, logvar = model.encode(t.to(next(model.parameters()).device))
        return (mu.cpu().numpy(), logvar.cpu().numpy()) if as_numpy else (mu, logvar)

    def decode(self, z, logits: bool = False):
        """Images (pixel means in [0, 1], or logits) ``(B, C, H, W)`` of codes ``z`` ``(B, z_dim)``."""
        model = self._current_model()
        as_numpy = isinstance(z, np.ndarray)
        t = torch.as_tensor(z, dtype=torch.float32)
        if t.ndim == 1:
            t = t[None]
        with torch.no_grad():
            out = model.decode(t.to(next(model.parameters()).device))
            if not logits:
                out = torch.sigmoid(out)
        return out.cpu().numpy() if as_numpy else out


#: The log's fields that readers compute with: numbers where present (the trainer writes a non-finite value as the
#: string "nan", "inf" or "-inf", JSON having none); ``step`` is a whole number on every line.
_LOG_NUMBERS = ("recon", "kl", "loss", "elapsed_s", "steps_per_s", "synergy_proxy")
_NON_FINITE = ("nan", "inf", "-inf")


def _check_log_entry(entry: dict[str, Any]) -> None:
    """Raise ValueError when a log line lacks a whole-number step or holds a field that is no number (``1e400``,
    ``"x"``)."""
    step = entry.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"step is {step!r}, not a whole number")
    for key in _LOG_NUMBERS:
        value = entry.get(key)
        if value is None or value in _NON_FINITE:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key} is {value!r}, not a number")


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # an unreadable (half-written) line: dropped


class DamagedCheckpoint(UserError):
    """A checkpoint whose checksum does not match (a flipped bit, a truncated or overwritten file)."""


class _HashingWriter:
    """A binary file wrapper that hashes what is written through it."""

    def __init__(self, handle, digest):
        self.handle, self.digest = handle, digest
        self.error: OSError | None = None

    def write(self, data) -> int:
        self.digest.update(data)
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def checksum_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + CHECKSUM_SUFFIX)


def recorded_sha256(checkpoint: Path) -> str | None:
    """The SHA-256 (lower case) that the checkpoint's ``.sha256`` file records; ``''`` for an empty one, None when it
    has none (a kill between the checkpoint and its checksum, or a checkpoint of an older version)."""
    sidecar = checksum_path(checkpoint)
    if not sidecar.is_file() or sidecar.is_symlink():
        return None
    words = sidecar.read_text(encoding="utf-8").split()
    return words[0].lower() if words else ""


def verify_checkpoint_file(path: Path) -> str:
    """``''`` if the checkpoint file is intact, else what is wrong (see :meth:`Run.verify_checkpoint`)."""
    try:
        recorded = recorded_sha256(path)
        if recorded is not None:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            if recorded != digest.hexdigest():
                return f"its SHA-256 is not the one in {checksum_path(path).name}"
            return ""
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return f"record {bad} fails its CRC-32" if bad else ""
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"not a readable checkpoint archive: {exc}"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DamagedCheckpoint(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"checkpoint {path} holds a {type(state).__name__}, not an nsvae checkpoint")
    return state


class CheckpointGone(UserError):
    """A checkpoint that was listed but deleted before it could be read (a training run prunes its old ones)."""


def load_run(path: str | os.PathLike) -> Run:
    """Open the run directory ``path`` (it must hold a config.toml)."""
    run = Run(path)
    if not run.exists():
        raise UserError(f"{path} is not a run directory (it has no {CONFIG_FILE})")
    return run
