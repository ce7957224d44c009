"""The SLURM executor: each run a task of one SLURM job array, submitted through submitit; preempted and timed-out
jobs checkpoint, requeue and resume.

The driver (:func:`run_slurm`) submits the runs to do as one job array (one ``sbatch``: the runs of a sweep ask for
the same resources, the scheduler handles one array more cheaply than many jobs, ``--workers N`` becomes the array's
``%N`` and ``scancel ARRAY`` stops the sweep), records each run's job in ``sweep.json`` and waits for the jobs,
reading their results (submitit's result files) as they end and the queue (``squeue``) for jobs that end without one
(cancelled, out of memory, node failure). A job an earlier driver submitted that is still queued or running is
watched again, never submitted twice. SIGINT or SIGTERM to the driver only stops the waiting: the jobs are the
cluster's and go on.

On the node, :class:`SlurmRun` runs :func:`.worker.execute`. SIGTERM (sent by ``scancel --signal=TERM``, by SLURM
before a preemption) and submitit's warning signal before the time limit (USR2, ``signal_delay_s`` ahead) make the
trainer finish its step and write a checkpoint; then, if SLURM is not ending the job itself, submitit's own handler
requeues it (:meth:`SlurmRun.checkpoint` is what the requeued job runs), and the run resumes from that checkpoint,
bit for bit. When SLURM is ending the job (a preemption that requeues, ``scontrol requeue``, ``scancel``: the job is
no longer RUNNING), the job exits without a result and SLURM decides: a requeued job resumes the same way, a
cancelled one is reported with its checkpoint kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..clock import timestamp
from ..errors import Terminated, UserError
from ..stop_signals import StopSignals
from . import slurm_jobs
from .local_pool import Event
from .run_state import BUSY, read_run_state
from .slurm_resources import SlurmResources
from .worker import Task, execute

#: The sweep directory's folder for submitit's files: each job's pickled run, result and logs.
SUBMITIT_DIR = "slurm"
#: How many times one run's job may reach its time limit (and be requeued) before it is reported failed: nsvae's
#: runs resume exactly, so a run may take many time limits; a run that never gets past one stops here.
MAX_TIMEOUTS = 50
#: Seconds between two reads of the queue (``squeue``) while the driver waits; ``NSVAE_SLURM_POLL_SECONDS``.
POLL_SECONDS = 30.0
#: A job gone from the queue without a result file is given this long for the file to appear (a shared file system
#: shows a new file late), as submitit does.
RESULT_GRACE_S = 15.0
#: The exit status of a job's process that stopped its run for SLURM to end or requeue the job (as submitit's own
#: requeue exits).
EXIT_LEFT_TO_SLURM = 255
EXTRA_MESSAGE = "SLURM sweeps need submitit: install the extra, pip install 'nsvae[slurm]'"


def check_submitit() -> None:
    """Raise a one-line :class:`UserError` naming the extra when submitit is not installed."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError(EXTRA_MESSAGE) from None


# -- on the node ---------------------------------------------------------------------------------------------------


class SlurmRun:
    """One run as a SLURM job: submitit pickles this object and calls it on the node; :meth:`checkpoint` is
    submitit's requeue protocol (the same run again: it resumes from the run's own checkpoint)."""

    def __init__(self, task: Task):
        self.task = task

    def __call__(self) -> dict[str, Any]:
        return run_job(self.task)

    def checkpoint(self, *args: Any, **kwargs: Any):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(SlurmRun(self.task))


class _JobSignals:
    """While the job's run works: SIGTERM interrupts it as Ctrl-C would (the trainer's own handler takes SIGTERM
    while it trains: it finishes its step and checkpoints), and submitit's warning signal before the time limit
    becomes a SIGTERM. After the run (``raising`` False) a SIGTERM changes nothing: its record stands."""

    def __init__(self, warning: int):
        self.warning = warning
        self.raising = True
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _JobSignals:
        self._previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._terminate),
            self.warning: signal.signal(self.warning, self._warn),
        }
        return self

    def _terminate(self, signum, frame) -> None:
        if self.raising:
            raise Terminated

    def _warn(self, signum, frame) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    def __exit__(self, *exc) -> None:
        self.raising = False
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run_job(task: Task) -> dict[str, Any]:
    """The job's work: the run (train, evaluate), then, if a signal stopped it (its record says interrupted: in a
    job only a signal does that) and SLURM is not ending the job, submitit's requeue (which exits this process);
    returns the run's record otherwise."""
    import submitit

    environment = submitit.JobEnvironment()
    warning = getattr(signal, "SIG" + environment.USR_SIG)
    # submitit installed its handler of the warning signal before calling this job: it checkpoints (calls
    # SlurmRun.checkpoint), requeues the job and exits. It runs here only once the run has stopped with a checkpoint.
    requeue = signal.getsignal(warning)
    with _JobSignals(warning) as signals:
        try:
            state = read_run_state(task.run_dir)
            if state.state == BUSY:  # trained by another process (a local pool, another job): left to it
                return {"state": "busy", "phase": "train", "error": "", "step": state.step}
            record = execute(task)
        except KeyboardInterrupt:  # a signal after the run ended (or before it began): resumed where it is
            record = {"state": "interrupted", "phase": "train", "error": "", "step": read_run_state(task.run_dir).step}
        signals.raising = False
    return requeue_if_stopped(record, requeue, warning, environment)


def requeue_if_stopped(record: dict[str, Any], requeue: Any, warning: int, environment) -> dict[str, Any]:
    """After the run: a run a signal stopped is requeued here (submitit's ``requeue`` handler exits this process)
    unless SLURM is ending the job itself, where this process exits without a result; any other record is the
    job's result."""
    if record.get("state") != "interrupted" or not callable(requeue):
        return record
    if _slurm_ends_the_job(environment):
        # SLURM cancels, requeues or preempts the job itself: no result file, so that the driver keeps waiting for a
        # job that comes back and reads from the queue how one that does not ended.
        sys.exit(EXIT_LEFT_TO_SLURM)
    try:
        requeue(warning, None)  # writes SlurmRun.checkpoint's submission, requeues the job, exits this process
    except subprocess.CalledProcessError:
        # scontrol said no. Under load it has said so of a requeue that took effect (the job was requeued and
        # started again while this attempt wrote a result the driver took as final): the queue decides.
        if _slurm_ends_the_job(environment):
            sys.exit(EXIT_LEFT_TO_SLURM)
    return record  # not requeued: the driver reports the run interrupted, the same command resumes it


def _slurm_ends_the_job(environment) -> bool:
    """Whether SLURM itself is ending this job (cancel, requeue, preemption: it is no longer RUNNING), so that
    requeueing it here would undo a cancel or requeue it twice. Outside SLURM (submitit's local executor) the job
    is this process's to requeue. A queue that cannot be read counts as ending: a cancelled job is never revived."""
    if environment.cluster != "slurm":
        return False
    states = slurm_jobs.queue_states([environment.job_id])
    return states is None or states.get(environment.job_id) != "RUNNING"


# -- the driver ----------------------------------------------------------------------------------------------------


class _Detach(StopSignals):
    """SIGINT/SIGTERM in the driver: stop waiting (the jobs go on); a second one raises KeyboardInterrupt."""

    def __init__(self, sweep_name: str):
        super().__init__()
        self.sweep_name = sweep_name

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"nsvae sweep: {signal.Signals(signum).name}: no longer waiting; the SLURM jobs go on (--status shows "
            f"them, the same command waits for them again, scancel --name=nsvae-{self.sweep_name} cancels them)",
            file=sys.stderr,
            flush=True,
        )


@dataclasses.dataclass
class _Watched:
    """A run's job the driver waits for."""

    task: Task
    job: str
    stdout: Path
    stderr: Path
    result: Path
    #: Its state in the queue when it was last seen there (None: not seen).
    state: str | None = None
    #: When the queue first showed it ended (time.monotonic()).
    ended_at: float | None = None


def _watched(task: Task, job: str, folder: Path) -> _Watched:
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job_id=job, task_id=0)
    return _Watched(task, job, paths.stdout, paths.stderr, paths.result_pickle)


def _slurm_executor(folder: Path):
    """submitit's SLURM executor for ``folder``, or a one-line error where this machine cannot submit."""
    check_submitit()
    import submitit

    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError(
            "SLURM's sbatch and srun are not on PATH: run the --slurm sweep on a node of the cluster (a login node)"
        )
    return submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_TIMEOUTS)


def _poll_seconds() -> float:
    text = os.environ.get("NSVAE_SLURM_POLL_SECONDS")
    if text is None:
        return POLL_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserError(f"NSVAE_SLURM_POLL_SECONDS must be a number of seconds above 0, got {text!r}")
    return value


def _submission_error(exc: BaseException) -> UserError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line.split("error:", 1)[1].strip() for line in lines if "error:" in line]
    detail = "; ".join(dict.fromkeys(errors)) or (lines[-1] if lines else type(exc).__name__)
    return UserError(f"sbatch refused the sweep's jobs: {detail}")


def run_slurm(
    tasks: Sequence[Task],
    on_event: Event,
    resources: SlurmResources,
    sweep_dir: Path,
    sweep_name: str,
    active: Mapping[str, str],
    echo: Callable[[str], None] = print,
) -> int | None:
    """Submit ``tasks`` as one job array with ``resources`` per run (those in ``active``, ``{run: job}`` of jobs
    an earlier driver submitted that still run, are watched instead) and wait for them; returns the signal that
    stopped the waiting, or None. Events: ``submitted``/``watching`` with ``{"slurm": {...}}`` (the job, its
    submitit logs relative to ``sweep_dir``), then ``done`` with the run's record (and ``slurm``, the job's state)."""
    folder = (sweep_dir / SUBMITIT_DIR).resolve()
    executor = _slurm_executor(folder)
    poll = _poll_seconds()
    watched: dict[str, _Watched] = {}
    for task in tasks:
        if task.name in active:
            entry = watched[active[task.name]] = _watched(task, active[task.name], folder)
            on_event("watching", task, {"slurm": _job_entry(entry, sweep_dir)})
    new = [task for task in tasks if task.name not in active]
    if new:
        executor.update_parameters(**resources.submitit_parameters(f"nsvae-{sweep_name}", len(new)))
        # submitit prints sbatch's complaints on stderr before raising: they become the one line below instead.
        with contextlib.redirect_stderr(io.StringIO()):
            try:
                jobs = executor.submit_array([SlurmRun(task) for task in new])
            except Exception as exc:  # noqa: BLE001 - sbatch's refusal (bad partition, limits), in one line
                raise _submission_error(exc) from None
        array = jobs[0].job_id.split("_")[0]
        echo(f"nsvae sweep: SLURM job {array}: {len(new)} run(s), {resources.describe()}; job logs in {folder}")
        for task, job in zip(new, jobs):
            entry = watched[job.job_id] = _watched(task, job.job_id, folder)
            on_event("submitted", task, {"slurm": {**_job_entry(entry, sweep_dir), "submitted": timestamp()}})
    last_read = float("-inf")
    with _Detach(sweep_name) as stop:
        while watched and stop.signum is None:
            now = time.monotonic()
            if now - last_read >= poll:
                last_read = now
                _read_queue(watched, now)
            for job in [j for j, w in watched.items() if _has_ended(w, now)]:
                entry = watched.pop(job)
                on_event("done", entry.task, _record_of(entry, sweep_dir))
            if watched:
                time.sleep(1.0)
        return stop.signum


def _job_entry(entry: _Watched, sweep_dir: Path) -> dict[str, str]:
    """The run's ``slurm`` entry in sweep.json: its job and submitit's log files, relative to the sweep directory."""
    base = sweep_dir.resolve()
    return {
        "job": entry.job,
        "stdout": entry.stdout.relative_to(base).as_posix(),
        "stderr": entry.stderr.relative_to(base).as_posix(),
    }


def _read_queue(watched: dict[str, _Watched], now: float) -> None:
    states = slurm_jobs.queue_states(list(watched))
    if states is None:  # the controller did not answer: nothing is known, nothing has ended
        return
    for job, entry in watched.items():
        entry.state = states.get(job)
        if entry.state in slurm_jobs.ACTIVE_STATES:
            entry.ended_at = None  # requeued: it runs again
        elif entry.ended_at is None:
            entry.ended_at = now


def _has_ended(entry: _Watched, now: float) -> bool:
    if entry.result.exists():
        return True
    return entry.ended_at is not None and now - entry.ended_at >= RESULT_GRACE_S


def _read_result(path: Path) -> tuple[str, Any] | None:
    """submitit's result file: ``("success", record)`` or ``("error", traceback text)``; None if unreadable."""
    try:
        with open(path, "rb") as handle:
            outcome = pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None
    return outcome if isinstance(outcome, tuple) and len(outcome) == 2 else None


def _record_of(entry: _Watched, sweep_dir: Path) -> dict[str, Any]:
    """The run's record from its job's result, or (when the job ended without one) from the job's state."""
    outcome = _read_result(entry.result) if entry.result.exists() else None
    if outcome is not None:  # the queue, read before the job ended, may still say RUNNING
        job_state = "COMPLETED" if outcome[0] == "success" else "FAILED"
    else:
        job_state = entry.state or "UNKNOWN"
    slurm = {**_job_entry(entry, sweep_dir), "state": job_state}
    if outcome is not None and outcome[0] == "success" and isinstance(outcome[1], dict):
        return {**outcome[1], "slurm": slurm}
    logs = f"job log {entry.stderr}"
    step = read_run_state(entry.task.run_dir).step
    if outcome is not None:  # the job's own code raised: its traceback is in the result and the job's log
        lines = [line for line in str(outcome[1]).splitlines() if line.strip()]
        error = lines[-1].strip() if lines else "the job raised"
        error = f"{error} (SLURM job {entry.job}; {logs})"
        return {"state": "failed", "phase": "train", "error": error, "step": step, "slurm": slurm}
    if job_state == "CANCELLED":
        # Stopped on purpose (scancel), with a checkpoint: the same command resumes it, as after Ctrl-C.
        error = f"its SLURM job {entry.job} was cancelled"
        return {"state": "cancelled", "phase": "train", "error": error, "step": step, "slurm": slurm}
    if job_state == "PREEMPTED":
        error = f"its SLURM job {entry.job} was preempted and not requeued"
        return {"state": "interrupted", "phase": "train", "error": error, "step": step, "slurm": slurm}
    how = "reached its time limit" if job_state == "TIMEOUT" else f"ended {job_state} without a result"
    error = f"its SLURM job {entry.job} {how} ({logs})"
    return {"state": "failed", "phase": "train", "error": error, "step": step, "slurm": slurm}
