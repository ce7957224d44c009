"""scripts/gpu-check.sh: skipped with exit 0 where there is no CUDA device (as on CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: run scripts/gpu-check.sh itself")
def test_gpu_check_skips_without_cuda():
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check.sh")],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "no CUDA device here; skipped" in out.stdout
