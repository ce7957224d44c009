"""Exclusive file locks that say who holds them, die with their holder and are never inherited.

A :class:`FileLock` is an operating-system lock on a small lock file, taken
with the `filelock <https://py-filelock.readthedocs.io>`_ library's
descriptor lock: ``flock`` on Linux and macOS, ``LockFileEx`` on byte 0 on
Windows. The system frees it the moment its holder exits, however it exits
(SIGKILL included), so a lock is never held by a dead process: the next
process that asks gets it at once. Three things make that true in practice:

- **not inherited**: a process forked while holding a lock (a worker pool)
  does not keep it. An ``os.register_at_fork`` hook points the child's copy
  of the descriptor at the null device, so only the process that took the
  lock holds it, and its leftover children cannot keep it after it dies
  (descriptors are never inherited across ``exec`` or by spawned processes);
- **says who holds it**: the holder writes its pid, host, command line and
  start time into the lock file (after one blank byte: Windows locks byte 0
  against reading too); a process that waits prints who it waits for, and
  where the recorded holder is dead but the lock is still held (by processes
  of an older nsvae that inherited it) it names those processes (Linux);
- **re-entrant within a process**: a process that holds a lock may take it
  again (a sweep worker that holds a run's lock and then starts the run).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import lock_descriptor, unlock_descriptor

from .clock import timestamp
from .processes import pid_alive

__all__ = ["FileLock", "holders_of"]

#: Binary (no newline translation on Windows) and closed on exec; os.open is non-inheritable anyway (PEP 446).
_OPEN_FLAGS = getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)

_HELD: dict[str, _Held] = {}
_GUARD = threading.RLock()


class _Held:
    def __init__(self, fd: int):
        self.fd = fd
        self.count = 1


def _forget_in_child() -> None:
    """After a fork, in the child: drop every lock the parent holds (the descriptors now point at the null device)."""
    if not _HELD:
        return
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        for held in _HELD.values():
            with contextlib.suppress(OSError):
                os.dup2(devnull, held.fd)
    finally:
        os.close(devnull)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _command_line() -> str:
    argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if argv[0] in ("nsvae", "__main__.py", "-m"):
        argv[0] = "nsvae"
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def holders_of(path: str | os.PathLike) -> list[int]:
    """The pids of this machine's processes that have ``path`` open (Linux ``/proc``; [] where unknown)."""
    try:
        target = os.stat(path)
        entries = os.listdir("/proc")
    except OSError:
        return []
    found = []
    for name in entries:
        if not name.isdigit():
            continue
        fd_dir = f"/proc/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
                found.append(int(name))
                break
    return sorted(found)


class FileLock:
    """An exclusive lock on the file ``path`` (created if needed; never deleted)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def _key(self) -> str:
        return os.path.realpath(self.path)

    def held_here(self) -> bool:
        """Whether this process holds the lock."""
        with _GUARD:
            return self._key in _HELD

    def acquire(self, blocking: bool = True, on_wait: Callable[[str], None] | None = None, poll: float = 0.2) -> bool:
        """Take the lock; ``blocking=False`` returns False at once if another process holds it.

        While waiting, ``on_wait(description of the holder)`` is called once
        (default: a line on stderr).
        """
        with _GUARD:
            held = _HELD.get(self._key)
            if held is not None:
                held.count += 1
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, 0o666)
        told = False
        try:
            while not lock_descriptor(fd, blocking=False):
                if not blocking:
                    os.close(fd)
                    return False
                if not told:
                    (on_wait or (lambda text: _say(self.path, text)))(self.describe_holder())
                    told = True
                time.sleep(poll)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self._record(fd)
        with _GUARD:
            _HELD[self._key] = _Held(fd)
        return True

    def release(self) -> None:
        with _GUARD:
            held = _HELD.get(self._key)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[self._key]
        with contextlib.suppress(OSError):
            unlock_descriptor(held.fd)
        with contextlib.suppress(OSError):
            os.close(held.fd)

    @contextlib.contextmanager
    def hold(self, blocking: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
        """``with lock.hold(): ...``; with ``blocking=False`` yields whether it was taken."""
        got = self.acquire(blocking=blocking, on_wait=on_wait)
        try:
            yield got
        finally:
            if got:
                self.release()

    def busy(self) -> bool:
        """Whether another process holds the lock now (this process holding it counts as free)."""
        if self.held_here() or not self.path.is_file():
            return False
        if self.acquire(blocking=False):
            self.release()
            return False
        return True

    # -- who holds it -----------------------------------------------------------------------------

    def _record(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": _command_line(),
            "since": timestamp(),
        }
        data = (" " + json.dumps(info) + "\n").encode("utf-8")
        with contextlib.suppress(OSError):  # a full disk must not stop anyone from taking a lock
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)

    def holder(self) -> dict[str, Any]:
        """What the last holder recorded: ``pid``, ``host``, ``command``, ``since`` (empty if unknown)."""
        try:
            with open(self.path, "rb") as handle:
                try:
                    raw = handle.read()
                except OSError:  # Windows: byte 0 is locked by the holder; the record starts after it
                    handle.seek(1)
                    raw = handle.read()
            info = json.loads(raw.decode("utf-8").strip() or "{}")
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def describe_holder(self) -> str:
        """``pid 123 (nsvae data prepare dsprites, since ...)``, or who keeps the lock of a dead holder."""
        info = self.holder()
        pid = info.get("pid")
        if not isinstance(pid, int):
            others = [p for p in holders_of(self.path) if p != os.getpid()]
            return f"pid(s) {', '.join(map(str, others))}" if others else "another process"
        where = "" if info.get("host") in (None, socket.gethostname()) else f" on {info['host']}"
        text = f"pid {pid}{where} ({info.get('command', '?')}, since {info.get('since', '?')})"
        if not where and not pid_alive(pid):
            others = [p for p in holders_of(self.path) if p != os.getpid()]
            if others:
                listed = " ".join(map(str, others))
                text += f", which is dead; its leftover processes {listed} still hold it: end them (kill {listed})"
        return text


def _say(path: Path, text: str) -> None:
    print(f"nsvae: waiting for the lock {path}, held by {text}", file=sys.stderr, flush=True)
