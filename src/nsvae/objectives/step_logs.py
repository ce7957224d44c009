"""The logs of one training step, kept where they were computed until someone reads them.

On CUDA, turning a loss into a Python float waits for the GPU to finish the step
(a host synchronisation), so an objective that returned floats would stall the
device every step. :class:`StepLogs` holds the step's numbers as tensors and
copies them to the host together, in one copy per device, the first time a value
is read. The trainer reads them only at log steps; between them a step's logs are
never read, so the GPU runs ahead of the Python loop.

Derived entries are computed on the host when the logs are read:

- ``kl``: the sum of ``kl_per_dim`` (in double precision, as the per-latent values are);
- ``synergy_proxy``: the KL of the latents the greedy selection leaves out at
  ``proxy_omega`` (the seed's synergy estimate, logged for every method);

unless the objective set them itself. A value set with ``logs[key] = value`` replaces
the stored one (tests use it to plant a NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, MutableMapping
from typing import Any

import torch

from .selection import NonFiniteKL, greedy_select

#: The values whose finiteness the trainer watches every step (see :class:`nsvae.train.trainer`).
WATCHED = ("loss", "recon", "kl")


class StepLogs(MutableMapping):
    """A step's logs: tensors (0-d scalars or 1-d vectors), host numbers and lists, read lazily.

    ``values`` may hold tensors on any device (0-d -> float, 1-d -> list of floats when read),
    Python numbers and lists (kept as they are). ``proxy_omega``: the omega of the derived
    ``synergy_proxy`` (None: derive nothing).
    """

    def __init__(self, values: dict[str, Any], proxy_omega: float | None = None):
        self._raw = dict(values)
        self._proxy_omega = proxy_omega
        self._host: dict[str, Any] | None = None

    # -- without a host copy ---------------------------------------------------------------

    def raw(self, key: str, default: Any = None) -> Any:
        """The stored value of ``key`` as it is (a tensor stays a tensor; no copy, no wait)."""
        if self._host is not None and key in self._host:
            return self._host[key]
        return self._raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._keys()

    def _keys(self) -> list[str]:
        keys = list(self._raw)
        if "kl_per_dim" in self._raw:
            keys += [k for k in ("kl", "synergy_proxy") if k not in self._raw and self._derives(k)]
        return keys

    def _derives(self, key: str) -> bool:
        return key == "kl" or self._proxy_omega is not None

    # -- the mapping: reading a value copies all of them -------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.materialize()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._raw[key] = value
        if self._host is not None:
            self._host[key] = value

    def __delitem__(self, key: str) -> None:
        self.materialize()
        del self._raw[key]
        del self._host[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.materialize())

    def __len__(self) -> int:
        return len(self._keys())

    def __repr__(self) -> str:
        return f"StepLogs({self._raw!r})"

    def materialize(self) -> dict[str, Any]:
        """Every value on the host (Python floats and lists), copied once and then kept."""
        if self._host is None:
            copied = _to_host(self._raw)
            host: dict[str, Any] = {}
            for key, value in copied.items():
                if key == "kl_per_dim":  # the derived entries sit beside it: kl before, synergy_proxy after
                    if "kl" not in copied:
                        host["kl"] = float(sum(value))
                    host[key] = value
                    if "synergy_proxy" not in copied and self._proxy_omega is not None:
                        host["synergy_proxy"] = _proxy(value, self._proxy_omega)
                else:
                    host[key] = value
            self._host = host
        return self._host


def _to_host(raw: dict[str, Any]) -> dict[str, Any]:
    """Tensors to floats and lists: one copy per device (a single flat double vector), in key order."""
    host = dict(raw)
    by_device: dict[torch.device, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, torch.Tensor):
            if value.dim() > 1:
                raise ValueError(f"step log {key!r} must be a scalar or a vector, got shape {tuple(value.shape)}")
            by_device.setdefault(value.device, []).append(key)
    for keys in by_device.values():
        # float32 -> float64 is exact, so the floats read equal float(tensor) of each value.
        flat = torch.cat([raw[k].detach().reshape(-1).to(torch.float64) for k in keys]).cpu().tolist()
        start = 0
        for key in keys:
            value = raw[key]
            n = value.numel()
            host[key] = flat[start] if value.dim() == 0 else flat[start : start + n]
            start += n
    return host


def _proxy(per_dim: list[float], omega: float) -> float:
    """The KL of the latents left out of the greedy best set (NaN where the KLs are not finite)."""
    try:
        _, worst = greedy_select(per_dim, omega)
    except NonFiniteKL:
        return math.nan
    return float(sum(per_dim[j] for j in worst))


class HostCopy:
    """A device-to-host copy started now and read later: ``HostCopy(t)`` ... ``.result()``.

    On CUDA the copy goes into pinned memory without blocking, and :meth:`result` waits for it
    alone. Work queued between the two calls keeps the GPU busy while the host waits, so the
    wait does not stall the device. Elsewhere the copy is made at once.
    """

    def __init__(self, tensor: torch.Tensor):
        self._event = None
        if tensor.device.type == "cuda":
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor.detach().cpu()

    def result(self) -> torch.Tensor:
        """The host tensor, once the copy is complete."""
        if self._event is not None:
            self._event.synchronize()
        return self._host
