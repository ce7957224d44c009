"""What SIGINT and SIGTERM do to a command that must not lose its work.

- :class:`StopSignals` (training, a sweep's driver and workers): the signal only sets a flag; the loop finishes its
  step, writes a checkpoint and stops (a second Ctrl-C interrupts at once).
- :func:`sigterm_interrupts` (evaluation): SIGTERM raises :class:`~nsvae.errors.Terminated`, as Ctrl-C raises
  KeyboardInterrupt, so the command can save what it computed before it ends.

Handlers are set only in the main thread (the only one that can) and restored on exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

from .errors import Terminated

__all__ = ["StopSignals", "sigterm_interrupts"]


class StopSignals:
    """SIGINT / SIGTERM set :attr:`signum`; the loop finishes its step, checkpoints and stops.

    A second Ctrl-C raises ``KeyboardInterrupt`` at once. Handlers are only
    installed in the main thread and are restored on exit.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM raises :class:`~nsvae.errors.Terminated` (a KeyboardInterrupt) for the duration, as Ctrl-C does, so
    an evaluation stopped by ``kill`` or ``timeout`` keeps the metrics it has computed. Only where SIGTERM still has
    its default action (a sweep worker's own handler is left alone) and only in the main thread (the only one that
    can set handlers)."""

    def interrupt(signum, frame):
        raise Terminated

    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
