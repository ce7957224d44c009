"""The Ray executor: each run a Ray task with the sweep's CPU/GPU resources, on a cluster or a private instance."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Sequence
from typing import Any

from ..cpus import usable_cpus
from ..errors import UserError
from .local_pool import Event, _Stop
from .worker import Task, _error_line, execute


def _ray_execute(task: Task) -> dict[str, Any]:
    return execute(task)


def run_ray(
    tasks: Sequence[Task],
    address: str,
    on_event: Event,
    cpus: float,
    gpus: float,
    local_cpus: int | None = None,
) -> int | None:
    """Run each task as a Ray task asking for ``cpus``/``gpus``; ``address``: ``auto``, ``local`` or a cluster's.

    ``local`` starts a private Ray instance on this machine (``local_cpus``
    CPUs); ``auto`` joins the running cluster (``RAY_ADDRESS`` or ``ray start``
    on this node); anything else is passed to ``ray.init(address=...)``. Run
    directories must be on a file system every node shares.
    """
    try:
        import ray
    except ImportError:
        raise UserError("Ray is not installed; install the extra: pip install 'nsvae[ray]'") from None
    started_here = not ray.is_initialized()
    # ray.init installs its own SIGTERM handler in the driver and leaves it after ray.shutdown: put ours back then.
    previous_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":
            kwargs["num_cpus"] = local_cpus or usable_cpus()
            kwargs["num_gpus"] = _gpus_here()
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            _restore_handlers(previous_handlers)
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"cannot reach a Ray cluster at {address!r}: {reason}; start one (ray start --head) or use --ray local"
            ) from None
    remote = ray.remote(_ray_execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=1)
    refs: dict[Any, Task] = {}

    def stop_all() -> None:
        for ref in list(refs):
            with contextlib.suppress(Exception):
                ray.cancel(ref)

    try:
        with _Stop(stop_all) as stop:
            for task in tasks:
                refs[remote.remote(task)] = task
                on_event("submitted", task, None)
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        record = ray.get(ref)
                    except (ray.exceptions.TaskCancelledError, KeyboardInterrupt):
                        record = {"state": "interrupted", "phase": "train", "error": ""}
                    except Exception as exc:  # a worker or node lost twice: recorded, the others go on
                        record = {"state": "failed", "phase": "train", "error": _error_line(exc)}
                    on_event("done", task, record)
            return stop.signum
    finally:
        if started_here:
            ray.shutdown()
            _restore_handlers(previous_handlers)


def _restore_handlers(handlers: dict) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (and Ray only sets them there)
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


def _gpus_here() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # pragma: no cover - a broken CUDA setup counts as none
        return 0
