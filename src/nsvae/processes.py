"""Child processes that never outlive the process they work for, started the same way on every platform.

:func:`die_with_parent` is called first thing in every worker process nsvae
starts (the dataset pools, the sweep's run workers): when the parent dies,
even by SIGKILL, the worker receives ``sig`` at once (Linux: ``prctl``
``PR_SET_PDEATHSIG``; elsewhere a thread that waits for the parent's end of
multiprocessing's lifeline), so no worker trains on or holds a lock as an
orphan.

:func:`start_context` picks the multiprocessing start method: the caller's
preferred one where the platform has it, else ``spawn`` (the only method on
Windows). ``NSVAE_START_METHOD=spawn`` forces one method everywhere: the
tests use it to run the pools and sweeps as they run on macOS and Windows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import concurrent.futures

PR_SET_PDEATHSIG = 1

#: The signal that ends a worker at once: SIGKILL where it exists (not on Windows, where any signal
#: sent with os.kill terminates the process).
KILL = getattr(signal, "SIGKILL", signal.SIGTERM)

#: Environment variable that forces one multiprocessing start method (``spawn``, ``forkserver``, ``fork``).
START_METHOD_ENV = "NSVAE_START_METHOD"


def start_context(preferred: str) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for nsvae's workers: ``preferred`` if available here, else ``spawn``.

    :data:`START_METHOD_ENV` overrides ``preferred``. Whatever is chosen, the
    workers' functions and arguments are importable and picklable, so every
    method gives the same results.
    """
    method = os.environ.get(START_METHOD_ENV) or preferred
    available = multiprocessing.get_all_start_methods()
    if method not in available:
        if os.environ.get(START_METHOD_ENV):
            raise ValueError(
                f"{START_METHOD_ENV}={method!r} is not a start method of this platform; use one of "
                f"{', '.join(available)} (or unset it)"
            )
        method = "spawn"
    return multiprocessing.get_context(method)


def worker_pool(n_workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A process pool whose workers die with this process (even on SIGKILL) and hold none of its locks.

    ``fork`` on Linux (no re-import of the caller's script, fast start);
    ``spawn`` elsewhere (macOS: forking a process that has used system
    frameworks is unsafe; Windows has nothing else).
    """
    import concurrent.futures

    context = start_context("fork" if sys.platform.startswith("linux") else "spawn")
    # Forked and spawned workers are this process's children: they check it is still there once armed (it may die
    # while they start). A forkserver's workers are the server's children.
    parent = None if context.get_start_method() == "forkserver" else os.getpid()
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=n_workers, mp_context=context, initializer=die_with_parent, initargs=(KILL, parent)
    )


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return False


def die_with_parent(sig: int = KILL, parent: int | None = None) -> None:
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
    # A multiprocessing worker holds its parent's lifeline (a pipe or a process handle): it ends with the parent on
    # every platform. Windows never re-parents an orphan, so there the parent's pid cannot tell.
    lifeline = multiprocessing.parent_process()
    if lifeline is not None:
        lifeline.join()
    else:
        while os.getppid() == parent:
            time.sleep(0.5)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), sig)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would end the process there
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists, owned by someone else
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
