"""The state of a sweep's SLURM jobs, as the cluster tells it: ``squeue`` (jobs queued, running or ended in the last
few minutes, SLURM's ``MinJobAge``), then ``sacct`` for older ones where the cluster keeps accounting.

A sweep records each run's job in ``sweep.json`` (its per-run ``slurm`` entry: ``job``, the ``stdout``/``stderr`` of
the job's submitit log relative to the sweep directory, and the job's ``state`` as the sweep's driver last saw it
end). Nothing here imports submitit: ``--status`` works without it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import UserError

#: Job states of a job that has not ended: it still runs, or waits to (again, after a requeue).
QUEUED_STATES = frozenset(
    {
        "PENDING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESV_DEL_HOLD",
        "CONFIGURING",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SPECIAL_EXIT",
    }
)
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"})
ACTIVE_STATES = QUEUED_STATES | RUNNING_STATES
#: How a job ended without a result of nsvae's: each is reported with the job's logs.
FAILED_STATES = frozenset(
    {"FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED"}
)

_TIMEOUT_S = 60


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _parse(lines: str) -> dict[str, str]:
    """``JOBID|STATE`` lines (squeue's and sacct's) -> ``{job: STATE}``; sacct's ``CANCELLED by 0`` is ``CANCELLED``."""
    states = {}
    for line in lines.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state and "." not in job:  # sacct lists each job's steps too (12.batch, 12.0)
            states[job] = state.split()[0].rstrip("+")
    return states


def queue_states(jobs: Iterable[str]) -> dict[str, str] | None:
    """``{job: STATE}`` of the ``jobs`` (``"12"`` or an array task's ``"12_3"``) the cluster still knows; a job it
    no longer knows is left out. None when the queue cannot be read (no ``squeue`` here, the controller not
    answering): then nothing can be said about any job."""
    wanted = sorted(set(jobs))
    if not wanted:
        return {}
    # Each array's tasks one per line (--array), in every state the controller still holds (--states=all).
    done = _run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--jobs={','.join(wanted)}"])
    if done is None:
        return None
    if done.returncode != 0:
        if "Invalid job id" not in done.stderr:
            return None
        found: dict[str, str] = {}  # squeue refuses a list of jobs it all forgot: none is queued
    else:
        found = _parse(done.stdout)
    missing = [job for job in wanted if job not in found]
    if missing:
        # Jobs that ended before MinJobAge: accounting knows them where the cluster keeps it (slurmdbd).
        command = ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State"]
        old = _run([*command, f"--jobs={','.join(missing)}"])
        if old is not None and old.returncode == 0:
            found.update({job: state for job, state in _parse(old.stdout).items() if job in missing})
    return {job: state for job, state in found.items() if job in wanted}


def job_of(entry: Mapping[str, Any]) -> str | None:
    """The SLURM job recorded in one run's ``sweep.json`` entry (None: never submitted to SLURM)."""
    slurm = entry.get("slurm")
    job = slurm.get("job") if isinstance(slurm, Mapping) else None
    return job if isinstance(job, str) and job else None


def runs_with_active_jobs(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{run: job}`` of the runs (``sweep.json``'s ``runs``) whose recorded job is still queued or running."""
    jobs = {name: job for name, entry in entries.items() if (job := job_of(entry)) is not None}
    states = queue_states(jobs.values())
    if states is None:  # submitting again a run whose job may still be queued would train it twice
        raise UserError(
            "cannot read the SLURM queue (squeue failed or is not on PATH) to see which of the sweep's jobs still "
            "run; run this on a node of the cluster, once its controller answers"
        )
    return {name: job for name, job in jobs.items() if states.get(job) in ACTIVE_STATES}
