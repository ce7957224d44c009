"""Noticing that training diverged (a NaN or infinite loss) without reading the loss every step.

Reading a loss on the host makes the host wait for the GPU. :class:`DivergenceWatch`
instead keeps, on the run's device, the first step at which ``loss``, ``recon`` or
``kl`` was not finite and their values at that step (a few tensor operations a step,
no copy); the trainer asks at the steps where it reads the device anyway (log steps,
checkpoints, curve points, the end) and never writes a checkpoint or a log line of a
diverged model. The divergence is reported with the step it happened at, whenever it
is found. Values that are already on the host (a Python number, a CPU tensor in a CUDA
run) are checked at once.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..objectives.step_logs import WATCHED, StepLogs


class DivergenceWatch:
    """Watches the ``loss``, ``recon`` and ``kl`` of every step on ``device``; :meth:`found` says what went wrong."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self._first_step = torch.zeros((), dtype=torch.int64, device=self.device)  # 0: all finite so far
        self._values = torch.zeros(len(WATCHED), dtype=torch.float64, device=self.device)
        self._device_keys: tuple[str, ...] = ()
        self._found: str = ""

    def watch(self, logs: StepLogs | dict[str, Any], step: int) -> None:
        """Take in the logs of ``step`` (no host copy of device tensors)."""
        if self._found:
            return
        raw = logs.raw if isinstance(logs, StepLogs) else logs.get
        if raw("error"):  # the objective refused the step (the Non-Syn selection of non-finite KLs)
            self._found = f"at step {step}: {raw('error')}"
            return
        values = [raw("loss"), raw("recon"), _kl(raw)]
        on_device = [isinstance(v, torch.Tensor) and _same_device(v.device, self.device) for v in values]
        host = {k: float(v) for k, v, d in zip(WATCHED, values, on_device) if v is not None and not d}
        bad = next((k for k, v in host.items() if not math.isfinite(v)), "")
        if bad:
            self._found = _message(step, bad, host)
            return
        if any(on_device):
            self._device_keys = tuple(k for k, d in zip(WATCHED, on_device) if d)
            zero = self._values.new_zeros(())
            stacked = torch.stack([v.detach().reshape(()).double() if d else zero for v, d in zip(values, on_device)])
            hit = (~torch.isfinite(stacked)).any() & (self._first_step == 0)
            self._first_step = torch.where(hit, step, self._first_step)
            self._values = torch.where(hit, stacked, self._values)

    def found(self, sync: bool) -> str:
        """``"at step S: KEY is not finite (values)"`` if training diverged, else ``""``.

        ``sync=False`` looks only at what the host already knows (no wait); ``sync=True`` also reads
        the device's record (one small copy).
        """
        if self._found or not sync or not self._device_keys:
            return self._found
        first, *values = torch.cat([self._first_step.double().reshape(1), self._values]).cpu().tolist()
        if first:
            shown = {k: v for k, v in zip(WATCHED, values) if k in self._device_keys}
            bad = next(k for k, v in shown.items() if not math.isfinite(v))
            self._found = _message(int(first), bad, shown)
        return self._found


def _kl(raw) -> Any:
    kl = raw("kl")
    if kl is not None:
        return kl
    per_dim = raw("kl_per_dim")
    if isinstance(per_dim, torch.Tensor):
        return per_dim.detach().sum()
    return None if per_dim is None else float(sum(per_dim))


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _message(step: int, key: str, values: dict[str, float]) -> str:
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    return f"at step {step}: {key} is not finite ({shown})"
