"""Child processes that never outlive the process they work for.

:func:`die_with_parent` is called first thing in every worker process nsvae
starts (the dataset pools, the sweep's run workers): when the parent dies,
even by SIGKILL, the worker receives ``sig`` at once (Linux: ``prctl``
``PR_SET_PDEATHSIG``; elsewhere a thread that watches the parent id), so no
worker trains on or holds a lock as an orphan.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return False


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Have this process receive ``sig`` when its parent process dies.

    ``parent``: the pid the parent had when this process was started; if it
    is already gone (it died before this call), ``sig`` is raised at once.
    Without ``parent`` the parent is the current one.
    """
    expected = os.getppid() if parent is None else int(parent)
    armed = _prctl_pdeathsig(sig)
    if os.getppid() != expected:  # the parent died before the signal was armed
        os.kill(os.getpid(), sig)
        return
    if not armed:  # pragma: no cover - not Linux
        thread = threading.Thread(target=_watch_parent, args=(expected, sig), daemon=True, name="nsvae-parent-watch")
        thread.start()


def _watch_parent(parent: int, sig: int) -> None:  # pragma: no cover - not Linux
    while os.getppid() == parent:
        time.sleep(0.5)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
