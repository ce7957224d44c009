"""Locks die with their holder, are never inherited, and a waiter says whom it waits for (issue 16, point 1)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nsvae.locks import FileLock
from tests.procs import descendants_of, running, wait_gone, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")

HOLD = textwrap.dedent(
    """
    import sys, time
    from nsvae.locks import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)
    """
)


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True, **kwargs)


def test_a_waiter_names_the_holder_and_gets_the_lock_when_the_holder_is_killed(tmp_path):
    path = tmp_path / "x.lock"
    holder = _python(HOLD, str(path), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert lock.busy()
        assert not lock.acquire(blocking=False)
        assert lock.holder()["pid"] == holder.pid
        messages = []
        os.kill(holder.pid, signal.SIGKILL)  # the waiter below takes the lock of the dead process at once
        holder.wait(10)
        started = time.monotonic()
        assert lock.acquire(on_wait=messages.append)
        assert time.monotonic() - started < 5
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_the_wait_message_says_who_holds_the_lock(tmp_path):
    path = tmp_path / "x.lock"
    holder = _python(HOLD, str(path), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = "import sys; from nsvae.locks import FileLock; FileLock(sys.argv[1]).acquire(); print('got it')"
        waiter = _python(code, str(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        assert waiter.poll() is None  # waiting
        os.kill(holder.pid, signal.SIGKILL)
        out, err = waiter.communicate(timeout=30)
        assert waiter.returncode == 0 and out.strip() == "got it"
        assert f"held by pid {holder.pid}" in err and str(path) in err and len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_forked_child_does_not_inherit_the_lock(tmp_path):
    lock = FileLock(tmp_path / "x.lock")
    lock.acquire()
    child = multiprocessing.get_context("fork").Process(target=_sleep, args=(30,))
    child.start()
    try:
        lock.release()
        # Only the parent held it: once it lets go, another process takes it though the child lives on.
        code = "import sys; from nsvae.locks import FileLock as L; sys.exit(0 if L(sys.argv[1]).acquire(False) else 3)"
        assert subprocess.run([sys.executable, "-c", code, str(lock.path)], timeout=60).returncode == 0
    finally:
        child.kill()
        child.join()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    lock = FileLock(tmp_path / "x.lock")
    with lock.hold(), FileLock(tmp_path / "x.lock").hold():
        assert lock.held_here()
    assert not lock.held_here() and not lock.busy()


PREPARE = textwrap.dedent(
    """
    import sys
    from nsvae.data import dsprites
    dsprites.prepare(sys.argv[1], progress=False, workers=2)
    """
)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_killing_a_prepare_kills_its_workers_and_frees_the_cache(tmp_path, start_method):
    """kill -9 of `data prepare` mid-generation: its pool workers die with it, the lock is free, the leftover
    build directory is removed by the next preparation. Spawned workers (macOS, Windows) too, even when the kill
    comes while they are still starting."""
    from nsvae.data import cache, dsprites
    from nsvae.processes import START_METHOD_ENV

    prep = _python(PREPARE, str(tmp_path), env={**os.environ, START_METHOD_ENV: start_method})
    try:
        assert wait_until(lambda: len(descendants_of(prep.pid)) >= 2, timeout=60)
        workers = descendants_of(prep.pid)
        root = tmp_path / "dsprites"
        assert wait_until(lambda: list(root.glob(".generated-v*.building-*")), timeout=30)
        os.kill(prep.pid, signal.SIGKILL)
        prep.wait(10)
        assert wait_gone(workers) == []
        entry = root / dsprites.GENERATED_KEY
        assert not FileLock(root / f".{entry.name}.lock").busy()
        assert not entry.exists()
        assert cache.remove_stale_temporaries(root) == 1
        assert not list(root.glob(".generated-v*.building-*"))
    finally:
        for pid in [prep.pid, *descendants_of(prep.pid)]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        prep.wait()
