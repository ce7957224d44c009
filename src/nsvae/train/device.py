"""Where and how torch computes during training: the device a run asks for (``run.device``: auto, cpu, cuda,
cuda:N, checked against the machine) and the deterministic-algorithms and thread settings of a run (restored after).
"""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import UserError

__all__ = ["resolve_device", "torch_settings"]


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; ``cpu``, ``cuda``, ``cuda:N`` as given (checked)."""
    from ..config.schema import DEVICE_PATTERN

    if not isinstance(spec, str) or not DEVICE_PATTERN.match(spec):
        raise UserError(f"--device (run.device) must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {spec!r} asked for, but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {spec!r} does not exist; this machine has {torch.cuda.device_count()} GPU(s)")
    return device


@contextlib.contextmanager
def torch_settings(deterministic: bool, threads: int):
    """Deterministic algorithms and the thread count for the duration of training (restored after)."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_num_threads(),
    )
    try:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        if threads:
            torch.set_num_threads(threads)
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
        torch.set_num_threads(saved[3])
