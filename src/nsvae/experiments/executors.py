"""Running a sweep (the driver): planning what each run needs, then training and evaluating them locally or on Ray.

:func:`run_sweep` is the library core of ``nsvae sweep``:

1. the sweep file is expanded (:func:`nsvae.experiments.sweep.load_sweep`) and
   copied to ``SWEEP_DIR/sweep.toml``; a run directory that already exists
   must hold the same config as the file now asks for (else nothing starts);
2. each run is planned from its directory (:mod:`.planning`): finished and
   evaluated runs are skipped, interrupted ones resumed from their latest
   checkpoint, finished ones only evaluated, failed ones skipped unless
   ``retry_failed``;
3. the runs to do go to an executor, which calls :func:`.worker.execute` for each one
   (train, then evaluate) in its own process: :mod:`.local_pool` (at most
   ``workers`` processes here, a fresh one per run, so that a crash or an
   out-of-memory kill of one run cannot stop the others), :mod:`.ray_pool`
   (each run a Ray task with the sweep's CPU/GPU resources) or :mod:`.slurm_pool`
   (each run a task of a SLURM job array, submitted through submitit);
4. each run's state is its own ``status.json`` (:mod:`.run_state`: one record
   per run, read by the planning above); the driver keeps in
   ``SWEEP_DIR/sweep.json`` (written atomically by this one process) only the
   sweep's bookkeeping: each run's setting, seed, attempts and times (and on
   SLURM its job: the job id, its log files and how it ended).

A failing run (an exception in training or evaluation, a dead worker) is
recorded with its error in its own ``status.json``; the others go on. SIGINT
or SIGTERM to the driver asks every running run to stop after its current step
with a checkpoint; starting the sweep again resumes them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..clock import timestamp
from ..config.schema import to_dict
from ..cpus import usable_cpus
from ..errors import UserError
from .local_pool import run_local
from .planning import check_existing, evaluation_needed, metrics_to_evaluate, plan_run, plan_sweep
from .ray_pool import run_ray
from .run_state import ACTIONS, read_run_state, sweep_state
from .slurm_resources import SlurmRequest, SlurmResources, resolve_resources
from .sweep import (
    LOGS_DIR,
    RUNS_DIR,
    SPEC_FILE,
    Sweep,
    load_sweep,
    read_state,
    write_state,
)
from .worker import Task, execute

#: The lock file of a sweep directory, held by the one process that runs the sweep.
SWEEP_LOCK = ".lock"

#: The pieces live in their own modules (planning, worker, local_pool, ray_pool); the names sweeps and studies use
#: are this module's too.
__all__ = [
    "RUNS_DIR",
    "SweepOutcome",
    "Task",
    "check_existing",
    "evaluation_needed",
    "execute",
    "metrics_to_evaluate",
    "plan_run",
    "plan_sweep",
    "run_local",
    "run_ray",
    "run_sweep",
    "slurm_resources_for",
    "sweep_dir_for",
]


def sweep_dir_for(sweep: Sweep, source: str | os.PathLike, out: str | os.PathLike | None) -> Path:
    """Where a sweep lives: ``out``, the directory given as ``source``, or ``runs/<sweep name>``."""
    if out is not None:
        return Path(out)
    if Path(source).is_dir():
        return Path(source)
    return Path("runs") / sweep.name


# -- the driver --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SweepOutcome:
    """What :func:`run_sweep` did: the sweep directory, each run's action, and the final counts."""

    sweep_dir: Path
    actions: dict[str, str]
    states: dict[str, str]
    signum: int | None = None
    #: The runs whose SLURM job was cancelled while this driver waited (each stopped with a checkpoint).
    cancelled: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.states.items() if state == "failed"]


def run_sweep(
    source: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    workers: int = 1,
    ray: str | None = None,
    retry_failed: bool = False,
    device: str | None = None,
    only: Sequence[str] | None = None,
    echo: Callable[[str], None] | None = print,
    on_run_end: Callable[[Task, dict[str, Any]], None] | None = None,
    slurm: SlurmRequest | None = None,
) -> SweepOutcome:
    """Run (or continue) the sweep ``source`` in ``out`` (default ``runs/<sweep name>``); see the module doc.

    ``workers``: local processes at once (torch threads per run: cores // workers,
    at least 1); ``ray``: ``"auto"``, ``"local"`` or a cluster address, instead of
    local processes; ``device`` overrides every run's ``run.device``;
    ``only``: run just these run names; ``on_run_end(task, record)`` is called in
    this process as each run ends, after ``sweep.json`` records it (a study
    exports the run's files there); ``slurm``: submit the runs as SLURM jobs
    with these resources over the sweep file's (:mod:`.slurm_pool`).
    """
    sweep = load_sweep(source)
    sweep_dir = sweep_dir_for(sweep, source, out)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    resources = None
    if slurm is not None:
        if ray is not None:
            raise UserError("--ray and --slurm exclude each other: give one")
        from .slurm_pool import check_submitit

        resources = slurm_resources_for(sweep, source, slurm)
        check_submitit()
    names = [r.name for r in sweep.runs]
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise UserError(f"the sweep has no run named {unknown[0]!r}; see the names with --dry-run")
    sweep_lock = hold_sweep_dir(sweep_dir)
    options = _Options(
        workers, ray, retry_failed, device, tuple(only or ()), echo or (lambda text: None), on_run_end, resources
    )
    try:
        return _run_sweep_locked(sweep, source, sweep_dir, options)
    finally:
        sweep_lock.release()


def slurm_resources_for(sweep: Sweep, source: str | os.PathLike, request: SlurmRequest) -> SlurmResources:
    """What each SLURM job of ``sweep`` asks for: ``request`` (the command line) over its ``[slurm]`` and
    ``[resources]`` tables."""
    return resolve_resources(sweep.slurm, sweep.cpus, sweep.gpus, request, str(source))


def hold_sweep_dir(sweep_dir: Path):
    """Take the sweep directory's lock (one sweep process per directory) or say who holds it."""
    from ..locks import FileLock

    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(sweep_dir / SWEEP_LOCK)
    if not lock.acquire(blocking=False):
        raise UserError(
            f"sweep directory {sweep_dir} is being run by another process ({lock.describe_holder()}); one sweep "
            "process per directory: wait for it to finish (or stop it with kill -TERM, and run this command again)"
        )
    return lock


@dataclasses.dataclass(frozen=True)
class _Options:
    """How :func:`run_sweep` was asked to run (see its docstring)."""

    workers: int
    ray: str | None
    retry_failed: bool
    device: str | None
    only: tuple[str, ...]
    echo: Callable[[str], None]
    on_run_end: Callable[[Task, dict[str, Any]], None] | None
    slurm: SlurmResources | None = None


def _bookkeeping(sweep: Sweep, sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` brought up to the file: the sweep's own fields, and per run its setting, seed and values (its
    attempts and times are kept). No run's state is kept there: that is the run's own status.json."""
    state = read_state(sweep_dir)
    state.update(
        name=sweep.name,
        spec=SPEC_FILE,
        base_dir=sweep.base_dir,
        evaluation=sweep.evaluation.to_dict(),
        resources={"cpus": sweep.cpus, "gpus": sweep.gpus},
    )
    state.setdefault("created", timestamp())
    state["order"] = [r.name for r in sweep.runs]  # sweep.json is written with sorted keys: this keeps the order
    old = state.get("runs", {})
    state["runs"] = {}
    for planned in sweep.runs:  # runs no longer in the file are forgotten (their directories are kept)
        kept = old.get(planned.name, {})
        entry = {k: kept[k] for k in ("attempts", "started", "ended", "seconds", "slurm") if k in kept}
        entry.setdefault("attempts", 0)
        entry.update(setting=planned.setting, seed=planned.seed, values=dict(planned.values))
        state["runs"][planned.name] = entry
    return state


class _Driver:
    """The driver's side of one ``run_sweep``: it counts the runs that end, keeps ``sweep.json``'s bookkeeping and
    prints one line per event. A run's state is never written here but by the run (or :func:`_record_failure`)."""

    def __init__(self, sweep_dir: Path, state: dict[str, Any], actions: dict[str, str], total: int, options: _Options):
        self.sweep_dir, self.state, self.actions, self.total, self.options = sweep_dir, state, actions, total, options
        self.ended = 0
        self.begun: dict[str, float] = {}
        #: The runs of this invocation whose worker reported a failure (a run another process holds included).
        self.failed: set[str] = set()
        #: The runs whose SLURM job was cancelled.
        self.cancelled: set[str] = set()

    def __call__(self, kind: str, task: Task, record: dict[str, Any] | None) -> None:
        entry = self.state["runs"][task.name]
        say = self.options.echo
        if record is not None and isinstance(record.get("slurm"), dict):  # the run's SLURM job, kept in sweep.json
            kept = entry.get("slurm") if kind != "submitted" else None  # a new job replaces the last one's entry
            entry["slurm"] = {**(kept if isinstance(kept, dict) else {}), **record["slurm"]}
        if kind in ("started", "submitted", "watching"):
            self.begun[task.name] = time.perf_counter()
            if kind != "watching":  # "watching": a job an earlier driver submitted, not a new attempt
                entry.update(started=timestamp(), attempts=int(entry.get("attempts", 0)) + 1)
                entry.pop("ended", None)
            job = f" as SLURM job {entry['slurm']['job']}" if kind != "started" and "slurm" in entry else ""
            say(f"[{self.ended}/{self.total}] {kind} {task.name} ({self.actions[task.name]}){job}")
            write_state(self.sweep_dir, self.state)
            return
        assert record is not None
        self.ended += 1
        if record.get("state") == "cancelled":
            self.cancelled.add(task.name)
        if record.get("state") == "failed":
            record = _record_failure(task, record)
            self.failed.add(task.name)
        seconds = record.get("seconds", time.perf_counter() - self.begun.get(task.name, time.perf_counter()))
        entry.update(ended=timestamp(), seconds=round(seconds, 1))
        if record.get("state") in ("failed", "cancelled"):
            detail = f": {record.get('error')} (log: {task.log_path})"
        else:
            detail = f" at step {record.get('step')}" if record.get("step") is not None else ""
        say(f"[{self.ended}/{self.total}] {record.get('state')} {task.name}{detail} in {_duration(seconds)}")
        write_state(self.sweep_dir, self.state)
        if self.options.on_run_end is not None:
            self.options.on_run_end(task, {**record, "seconds": seconds})


def _run_sweep_locked(sweep: Sweep, source, sweep_dir: Path, options: _Options) -> SweepOutcome:
    names = [r.name for r in sweep.runs]
    actions = plan_sweep(sweep, sweep_dir, options.retry_failed)
    _write_spec(sweep, sweep_dir, source)
    state = _bookkeeping(sweep, sweep_dir)
    write_state(sweep_dir, state)
    runs_dir = sweep_dir / RUNS_DIR

    # With `only` (a study's batch, --only) the counts are of the selected runs: the others are not touched.
    selected = [n for n in names if not options.only or n in options.only]
    # On SLURM, a run whose job (submitted by an earlier driver) is still queued or running is watched again.
    active = {}
    if options.slurm is not None:
        from .slurm_jobs import runs_with_active_jobs

        active = runs_with_active_jobs({n: state["runs"][n] for n in selected})
    todo = [
        r
        for r in sweep.runs
        if r.name in selected
        and (actions[r.name] in ("train", "resume", "evaluate") or (r.name in active and actions[r.name] == "busy"))
    ]
    counts = {a: sum(1 for name in selected if actions[name] == a) for a in ACTIONS}
    scope = f"{len(names)} runs" if len(selected) == len(names) else f"{len(selected)} of its {len(names)} runs"
    say = options.echo
    say(f"nsvae sweep: {sweep.name}: {scope} in {sweep_dir} - " + ", ".join(f"{n} {a}" for a, n in counts.items() if n))
    if counts["failed"] and not options.retry_failed:
        say(f"nsvae sweep: {counts['failed']} failed run(s) skipped; --retry-failed runs them again")
    if options.slurm is not None:
        threads = options.slurm.cpus
    else:
        threads = max(1, usable_cpus() // options.workers) if options.ray is None else max(1, int(sweep.cpus))
    tasks = [
        Task(
            name=r.name,
            run_dir=str((runs_dir / r.name).resolve()),
            log_path=str((sweep_dir / LOGS_DIR / f"{r.name}.log").resolve()),
            config=to_dict(r.config),
            evaluation=sweep.evaluation.to_dict(),
            threads=threads,
            device=options.device,
        )
        for r in todo
    ]
    driver = _Driver(sweep_dir, state, actions, len(tasks), options)
    signum = None
    if tasks and options.slurm is not None:
        from .slurm_pool import run_slurm

        signum = run_slurm(tasks, driver, options.slurm, sweep_dir, sweep.name, active, say)
    elif tasks and options.ray is None:
        signum = run_local(tasks, options.workers, driver)
    elif tasks:
        local_cpus = options.workers if options.workers > 1 else None
        signum = run_ray(tasks, options.ray, driver, sweep.cpus, sweep.gpus, local_cpus=local_cpus)
    # Each run's state, from its own record; a worker that reported a failure without one (its run held by another
    # process) counts as failed for this invocation.
    states = {name: sweep_state(read_run_state(runs_dir / name)) for name in names}
    states.update({name: "failed" for name in driver.failed})
    cancelled = [name for name in names if name in driver.cancelled]
    return SweepOutcome(sweep_dir=sweep_dir, actions=actions, states=states, signum=signum, cancelled=cancelled)


def _record_failure(task: Task, record: dict[str, Any]) -> dict[str, Any]:
    """Make the run's own status say it failed where its worker could not (killed, lost with its node), so that
    the next sweep skips it until --retry-failed, as it does the runs that recorded their own failure."""
    from ..train.run import Run

    run = Run(task.run_dir)
    status = run.status()
    if status.get("state") == "failed" or status.get("evaluation_error"):
        return record
    error = record.get("error") or "failed"
    if status.get("state") == "finished":
        run.set_status("finished", evaluation_error=error)
        return {**record, "phase": "evaluate"}
    # Also when the worker died before it made the run's directory: the run's one record says it failed.
    run.set_status("failed", step=status.get("step", 0), error=error)
    return {**record, "phase": "train"}


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s} s" if minutes else f"{seconds:.1f} s"


def _write_spec(sweep: Sweep, sweep_dir: Path, source: str | os.PathLike) -> None:
    from ..atomic import atomic_write

    sweep_dir.mkdir(parents=True, exist_ok=True)
    target = sweep_dir / SPEC_FILE
    if Path(source).resolve() == target.resolve():
        return
    if not target.is_file() or target.read_text(encoding="utf-8") != sweep.text:
        atomic_write(target, lambda handle: handle.write(sweep.text.encode("utf-8")))
