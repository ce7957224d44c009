"""DCI's parallel fits run in the project's own worker pool: the same numbers as one process, and no worker outlives
a killed evaluation (issue 29, case 7: joblib's loky workers ran on at 97% CPU under pid 1 for minutes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nsvae.metrics.dci import importance_matrix


def _data(n=400, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=(n, k))
    x = np.concatenate([y + 0.1 * rng.standard_normal((n, k)), rng.standard_normal((n, d - k))], axis=1)
    return x, y


def test_parallel_fits_give_the_numbers_of_one_process():
    x, y = _data()
    one = importance_matrix(x, y, x, y, seed=3, n_jobs=1)
    two = importance_matrix(x, y, x, y, seed=3, n_jobs=2)
    for a, b in zip(one, two):
        assert np.array_equal(a, b)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


SCRIPT = """
import numpy as np
from nsvae.metrics.dci import importance_matrix
rng = np.random.default_rng(0)
y = rng.integers(0, 30, size=(20000, 4))
x = np.concatenate([y + rng.standard_normal((20000, 4)), rng.standard_normal((20000, 6))], axis=1)
importance_matrix(x, y, x, y, n_jobs=2)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_no_worker_outlives_a_killed_evaluation(sig):
    process = subprocess.Popen([sys.executable, "-c", SCRIPT])
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and len(workers) < 2:
            workers = _children(process.pid)
            time.sleep(0.1)
        assert len(workers) >= 2, "the pool's workers never started"
        process.send_signal(sig)
        process.wait(30)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)]
    finally:
        process.kill()
        process.wait()
