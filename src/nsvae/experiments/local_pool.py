"""The local executor: at most ``workers`` runs at once, each in a fresh process forked from a server process.

A crash or an out-of-memory kill of one run is recorded (:func:`_dead_worker`)
and the others go on. Each worker holds the read end of a *lifeline* pipe whose
only write end the driver holds, so a worker whose driver dies stops its run
with a checkpoint (docs/reliability.md, "No orphans"). SIGINT/SIGTERM in the
driver ask the running runs to checkpoint and stop (:class:`_Stop`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..stop_signals import StopSignals
from .worker import Task, execute

Event = Callable[[str, Task, dict[str, Any] | None], None]


class _Stop(StopSignals):
    """SIGINT/SIGTERM in the driver: stop starting runs and ask the running ones to checkpoint and stop.

    The trainer's :class:`~nsvae.stop_signals.StopSignals` (handlers in the main thread only, restored on
    exit), with a message, a callback, and any second signal abandoning the runs.
    """

    def __init__(self, on_stop: Callable[[], None]):
        super().__init__()
        self.on_stop = on_stop

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"nsvae sweep: {signal.Signals(signum).name}: stopping the running runs at their next step "
            "(again to abandon them)",
            file=sys.stderr,
            flush=True,
        )
        self.on_stop()


def _child(task: Task, conn, lifeline=None) -> None:
    """A local worker process: one run, its record sent back on ``conn``.

    ``lifeline``: the read end of a pipe whose only write end the driver
    holds. When the driver dies, even by SIGKILL, the pipe reads end-of-file
    and this run gets a SIGTERM: it stops at its next step with a checkpoint,
    so no worker trains on as an orphan (the forkserver, this process's
    parent, stays alive as long as any of its children does, so the parent's
    death cannot be the signal).
    """
    # The terminal's Ctrl-C reaches the whole process group; the driver forwards a SIGTERM, which the trainer
    # handles (checkpoint, then stop). Ignoring SIGINT here keeps a double signal from abandoning the step.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reported = threading.Event()
    if lifeline is not None:
        threading.Thread(target=_watch_driver, args=(lifeline, reported), daemon=True, name="nsvae-lifeline").start()
    record = execute(task)
    reported.set()
    with contextlib.suppress(OSError):  # the driver is gone: the run's own files say how it ended
        conn.send(record)
        conn.close()


def _watch_driver(lifeline, reported: threading.Event) -> None:
    """SIGTERM this worker when the driver is gone, unless its run has already ended.

    The driver closes the lifeline as soon as it has the record, while this
    process may still be running its exit handlers; a SIGTERM then would kill
    it before multiprocessing unlinks the semaphores it made (tqdm's lock),
    and the resource tracker would report them as leaked.
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()  # the driver never writes: this returns only when it is gone
    if not reported.is_set():
        os.kill(os.getpid(), signal.SIGTERM)


_PRELOAD = [
    "nsvae.experiments.local_pool",
    "nsvae.experiments.executors",
    "nsvae.train",
    "nsvae.evaluation",
    "nsvae.metrics",
    "torch._dynamo",
]


def run_local(tasks: Sequence[Task], workers: int, on_event: Event) -> int | None:
    """Run ``tasks`` in at most ``workers`` processes, a fresh process per run; returns the stopping signal or None."""
    from multiprocessing.connection import wait

    from ..processes import start_context

    # "forkserver": each run forks from a clean server process (no torch thread pools or locks inherited from
    # the driver) that has imported torch and nsvae once, so a run starts in milliseconds, not seconds. Windows
    # has no forkserver: there each run is a fresh "spawn" process (the task and pipes are pickled either way).
    ctx = start_context("forkserver")
    if ctx.get_start_method() == "forkserver":
        # torch._dynamo: imported lazily by the first Adam (4 s here); a failed preload is skipped by multiprocessing.
        ctx.set_forkserver_preload(_PRELOAD)
    pending = list(tasks)
    active: dict[Any, tuple[Any, Task]] = {}
    lifelines: dict[Any, Any] = {}  # the write ends of the workers' lifelines (see _child)

    def stop_all() -> None:
        for process, _ in active.values():
            with contextlib.suppress(OSError, ValueError):
                if process.pid:
                    os.kill(process.pid, signal.SIGTERM)

    try:
        with _Stop(stop_all) as stop:
            while pending or active:
                while pending and len(active) < workers and stop.signum is None:
                    task = pending.pop(0)
                    receive, send = ctx.Pipe(duplex=False)
                    lifeline, keep_alive = ctx.Pipe(duplex=False)
                    args = (task, send, lifeline)
                    process = ctx.Process(target=_child, args=args, name=f"nsvae-sweep {task.name}")
                    process.start()
                    send.close()
                    lifeline.close()
                    active[receive] = (process, task)
                    lifelines[receive] = keep_alive
                    on_event("started", task, None)
                if not active:
                    break
                for conn in wait(list(active), timeout=1.0):
                    process, task = active.pop(conn)
                    try:
                        record = conn.recv()
                    except (EOFError, OSError):
                        record = None
                    conn.close()
                    lifelines.pop(conn).close()
                    process.join()
                    if record is None:
                        record = _dead_worker(process.exitcode, stop.signum)
                    on_event("done", task, record)
            return stop.signum
    finally:
        for process, _ in active.values():  # abandoned (a second signal): do not leave them training
            with contextlib.suppress(OSError, ValueError):
                process.kill()
                process.join()


def _dead_worker(exitcode: int | None, stopping: int | None) -> dict[str, Any]:
    if stopping is not None:
        return {"state": "interrupted", "phase": "evaluate", "error": ""}
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        error = f"the worker process was killed by {name}{hint}"
    else:
        error = f"the worker process exited with status {exitcode} before reporting"
    return {"state": "failed", "phase": "train", "error": error}
