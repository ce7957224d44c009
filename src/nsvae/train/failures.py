"""How training fails: a diverged loss, a full disk, any other error; each recorded in the run's ``status.json``.

The loop (:mod:`.loop`) calls these; they keep the run's last good checkpoint
and say in one line what happened and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import threading

from ..errors import UserError
from .run import Run


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is marked failed and keeps its last good checkpoint."""


class DiskFull(UserError):
    """No space left while the run wrote a file; it stopped with its last checkpoint intact (resume it later)."""


#: errno values of a full disk or an exhausted quota.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(run: Run, exc: OSError, step: int, last_saved: int) -> DiskFull:
    """The one-line error of a full disk (recorded in status.json where the disk still allows it)."""
    where = exc.filename or run.path
    message = (
        f"no space left on the device while writing {where} at step {step}: training stopped; the "
        f"checkpoint of step {last_saved} is intact. Free some space and resume with "
        f"`nsvae train --resume {run.path}`"
        if last_saved
        else f"no space left on the device while writing {where} at step {step}, before the first "
        f"checkpoint: free some space and run the same command again"
    )
    set_failed(run, last_saved, message)
    return DiskFull(message)


def set_failed(run: Run, step: int, error: str) -> None:
    """Record the failure in status.json where the disk still allows it (a full disk may not)."""
    with contextlib.suppress(OSError):
        run.set_status("failed", step=step, error=error)


def diverged(run: Run, what: str, last_saved: int) -> TrainingDiverged:
    """Record a diverged run as failed and return the error to raise."""
    keep = (
        f"the last good checkpoint is step {last_saved} ({run.checkpoint_path(last_saved).name})"
        if last_saved and run.checkpoints()
        else "no checkpoint was written before"
    )
    message = f"training diverged {what}; {keep}. Try a lower optim.lr, or resume with another seed."
    run.set_status("failed", step=last_saved, error=message)
    return TrainingDiverged(message)


@contextlib.contextmanager
def quiet_full_disk_threads():
    """TensorBoard writes from a thread; on a full disk that thread dies with a traceback on stderr while the error
    reaches the loop at its next write. Keep the thread's copy quiet (the loop reports it in one line)."""
    previous = threading.excepthook

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in FULL_DISK:
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
