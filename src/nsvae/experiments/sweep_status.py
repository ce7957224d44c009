"""Where each run of a sweep stands (``nsvae sweep --status``, ``nsvae study --status``): its own ``status.json``
(:mod:`.run_state`) and, for a run submitted to SLURM, its job's state in the queue (:mod:`.slurm_jobs`), or as the
sweep's driver saw it end when the queue no longer knows the job.

A run's state here is one of ``pending`` (never started), ``queued`` (its SLURM job waits), ``running``,
``interrupted`` (stopped with a checkpoint; the same command resumes it), ``cancelled`` (its SLURM job was
cancelled), ``failed`` and ``finished``. A failed or cancelled run names its log files: the run's own log
(``logs/RUN.log``: training, evaluation, tracebacks) and its SLURM job's (submitit's stdout and stderr: the job's
start, requeues, and errors outside the run such as an out-of-memory kill).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from pathlib import Path

from . import slurm_jobs
from .run_state import read_run_state, sweep_state
from .sweep import LOGS_DIR, RUNS_DIR, read_state

STATES = ("pending", "queued", "running", "interrupted", "cancelled", "failed", "finished")


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """One run's line of ``--status``."""

    name: str
    state: str
    step: int | None = None
    #: Its SLURM job (the last one submitted) and that job's state (None: never on SLURM, or unknown).
    job: str | None = None
    job_state: str | None = None
    error: str = ""
    #: The log files worth reading (failed and cancelled runs): the run's own, then its SLURM job's.
    logs: tuple[str, ...] = ()


def run_status(
    name: str, sweep_dir: Path, entry: dict, live: dict[str, str] | None, finished_elsewhere: bool = False
) -> RunStatus:
    """``name``'s status from its run directory and its ``sweep.json`` ``entry``; ``live``: the queue's job states
    (None: the queue could not be read); ``finished_elsewhere``: the run is known finished without its directory
    (a study's run whose files are in the study)."""
    run = read_run_state(sweep_dir / RUNS_DIR / name)
    state = sweep_state(run)
    if finished_elsewhere and state != "finished":
        return RunStatus(name, "finished")
    job = slurm_jobs.job_of(entry)
    recorded = entry.get("slurm", {}) if job else {}
    job_state = (live or {}).get(job) if job else None
    if job and job_state is None:
        job_state = recorded.get("state")  # as the driver saw it end (the queue forgets ended jobs after minutes)
    error = run.error
    if state not in ("finished", "failed") and job_state is not None:
        if job_state in slurm_jobs.QUEUED_STATES:
            state = "queued"
        elif job_state in slurm_jobs.RUNNING_STATES:
            state = "running"
        elif job_state == "CANCELLED":
            state, error = "cancelled", f"its SLURM job {job} was cancelled"
        elif job_state in slurm_jobs.FAILED_STATES:
            state, error = "failed", f"its SLURM job {job} ended {job_state}"
    logs: tuple[str, ...] = ()
    if state in ("failed", "cancelled"):
        own = sweep_dir / LOGS_DIR / f"{name}.log"
        found = [str(own)] if own.is_file() else []
        found += [str(sweep_dir / recorded[k]) for k in ("stdout", "stderr") if isinstance(recorded.get(k), str)]
        logs = tuple(found)
    return RunStatus(name, state, run.step, job, job_state, error, logs)


def sweep_status(
    sweep_dir: str | Path, names: Sequence[str] | None = None, finished_elsewhere: Collection[str] = ()
) -> tuple[list[RunStatus], bool]:
    """The status of every run ``sweep.json`` lists (or of ``names``), and whether the SLURM queue could be read
    (always True when no run was submitted to SLURM)."""
    sweep_dir = Path(sweep_dir)
    state = read_state(sweep_dir) if sweep_dir.is_dir() else {}
    entries = state.get("runs", {})
    order = list(names) if names is not None else list(state.get("order", []))
    jobs = [job for name in order if (job := slurm_jobs.job_of(entries.get(name, {}))) is not None]
    live = slurm_jobs.queue_states(jobs) if jobs else {}
    rows = [run_status(n, sweep_dir, entries.get(n, {}), live, n in finished_elsewhere) for n in order]
    return rows, live is not None


def format_status(title: str, rows: Sequence[RunStatus], queue_read: bool = True) -> str:
    """The ``--status`` text: a title with the counts, one line per run, and each failed or cancelled run's error
    and log files below its line."""
    counts = {s: sum(1 for r in rows if r.state == s) for s in STATES}
    lines = [f"{title}: " + (", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no runs")]
    on_slurm = any(r.job for r in rows)
    header = ["run", "state", "step"] + (["SLURM job", "job state"] if on_slurm else [])
    table = [header]
    for r in rows:
        cells = [r.name, r.state, "" if r.step is None else f"{r.step:,}"]
        if on_slurm:
            cells += [r.job or "", r.job_state or ""]
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        text = "  ".join(c.rjust(w) if j == 2 else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths)))
        lines.append("  " + text.rstrip())
        run = rows[i - 1] if i else None
        if run is not None and run.state in ("failed", "cancelled"):
            if run.error:
                lines.append(f"      error: {run.error}")
            if run.logs:
                lines.append(f"      logs: {', '.join(run.logs)}")
    if on_slurm and not queue_read:
        lines.append("(the SLURM queue could not be read here: job states are as the sweep's driver last saw them)")
    return "\n".join(lines)
