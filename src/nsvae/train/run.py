"""A run directory: everything needed to understand, resume and use one training run.

::

    RUN/
      config.toml              the fully resolved config (every key)
      status.json              state: running | finished | failed | interrupted, step, message, times
      log.jsonl                one JSON object per logged step
      checkpoints/step_0001000.pt   the last ``log.keep_checkpoints`` checkpoints
      events/                  TensorBoard scalars and traversal images
      traversals/step_0002000.png   the same traversal images as PNG

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so a crash or a kill never leaves a half-written checkpoint,
config or status where a reader would find it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.cache import atomic_write, write_json_atomic
from ..errors import UserError
from ..experiments import config as config_module
from ..experiments.config import Config

CONFIG_FILE = "config.toml"
STATUS_FILE = "status.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_DIR = "checkpoints"
EVENTS_DIR = "events"
TRAVERSAL_DIR = "traversals"
LOCK_FILE = ".lock"
_CHECKPOINT = re.compile(r"^step_(\d+)\.pt$")

#: Version of the checkpoint layout (bumped when its keys change).
CHECKPOINT_FORMAT = 1

STATES = ("running", "finished", "failed", "interrupted")


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


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
        try:
            return json.loads((self.path / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @property
    def state(self) -> str | None:
        return self.status().get("state")

    def set_status(self, state: str, **fields: Any) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        status = self.status()
        status.update(fields, state=state, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if state != "failed":
            status.pop("error", None)
        write_json_atomic(self.path / STATUS_FILE, status)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (one training process per run); a second holder gets a UserError."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(f"run {self.path} is being trained by another process") from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- the JSON-lines log ------------------------------------------------------------------

    def log(self) -> list[dict[str, Any]]:
        """Every logged step, in order."""
        if not self.log_path.is_file():
            return []
        with open(self.log_path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def truncate_log(self, step: int) -> None:
        """Keep the log lines of steps up to ``step`` (on resume: forget what came after the checkpoint)."""
        if not self.log_path.is_file():
            return
        with open(self.log_path, encoding="utf-8") as handle:
            kept = [line for line in handle if line.strip() and _line_step(line) <= step]
        write_text_atomic(self.log_path, "".join(kept))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every checkpoint, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        found = []
        for path in self.checkpoint_dir.iterdir():
            match = _CHECKPOINT.match(path.name)
            if match:
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
        raise UserError(f"run {self.path} has no checkpoint of step {step}; it has steps {[s for s, _ in found]}")

    def write_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write ``state`` atomically as ``checkpoints/step_XXXXXXX.pt``, then drop all but the last ``keep``."""
        path = self.checkpoint_dir / checkpoint_name(step)
        atomic_write(path, lambda handle: torch.save(state, handle))
        for _, old in self.checkpoints()[:-keep]:
            with contextlib.suppress(OSError):
                old.unlink()
        return path

    def read_checkpoint(self, step: int | None = None) -> dict[str, Any]:
        path = self.checkpoint_path(step)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged file: say which
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"cannot read checkpoint {path}: {first}") from None

    # -- using the trained model -------------------------------------------------------------

    def load_model(self, step: int | None = None, device: str | torch.device = "cpu"):
        """The trained :class:`nsvae.models.VAE` of checkpoint ``step`` (default: the latest), in eval mode."""
        from ..models import VAE

        state = self.read_checkpoint(step)
        config = self.config
        model = VAE(config.model).to(device)
        if config.run.fast_layout:
            model.to_fast_layout()
        model.load_state_dict(state["model"])
        model.eval()
        self._model, self._model_step = model, int(state["step"])
        return model

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


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # an unreadable (half-written) line: dropped


def load_run(path: str | os.PathLike) -> Run:
    """Open the run directory ``path`` (it must hold a config.toml)."""
    run = Run(path)
    if not run.exists():
        raise UserError(f"{path} is not a run directory (it has no {CONFIG_FILE})")
    return run
