"""A run's state in a sweep: read from one record, the run's own ``status.json``, and mapped to an action by one table.

A run's state lives in one place, its directory's ``status.json``
(:class:`nsvae.train.run.Run`): the trainer writes it as the run goes, the
sweep's worker writes a failure there, and the sweep's driver writes one there
too when a worker dies without a word (killed, its node lost), creating the
directory if the worker never did. Everything else is derived from it:

- :func:`read_run_state`: the run's :class:`RunState` (the state below, its
  step and error, its newest checkpoint);
- :data:`ACTION_TABLE` and :func:`action_for`: what a sweep does with the run
  (``docs/development.md``, "Operations", shows this table);
- :func:`sweep_state`: the state a sweep reports (``nsvae results``, the
  sweep's outcome): pending, running, interrupted, failed or finished.

``sweep.json`` keeps only what the sweep alone knows: each run's setting,
seed and varied values, its attempts and the times of the last one; never a
run's state. A study's ``runs/RUN/final.json`` is the record that a run is in
the study (it is what survives the machine); it is written once, from the
finished run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

#: The states of a run directory, as :func:`read_run_state` reads them.
ABSENT = "absent"  # no status.json: never started here
BUSY = "busy"  # another process holds the run's lock (trains or evaluates it now)
STOPPED = "stopped"  # running (its holder gone: killed) or interrupted (SIGINT/SIGTERM)
FAILED = "failed"  # training failed (status.json state "failed")
EVALUATION_FAILED = "evaluation failed"  # trained, but its evaluation failed (status.json evaluation_error)
FINISHED = "finished"  # trained to its steps
STATES = (ABSENT, BUSY, STOPPED, FAILED, EVALUATION_FAILED, FINISHED)

#: What a run needs: train (from scratch), resume (from its checkpoint), evaluate (training done), done,
#: failed (an earlier attempt failed; skipped without retry_failed), busy (another process trains it).
ACTIONS = ("train", "resume", "evaluate", "done", "failed", "busy")

#: The one table from a run's state (and the condition that splits it) to the action of a sweep, without and with
#: ``--retry-failed``. :func:`action_for` reads it; docs/development.md shows it (a test holds the two equal).
ACTION_TABLE: tuple[tuple[str, str, str, str], ...] = (
    (ABSENT, "", "train", "train"),
    (BUSY, "", "busy", "busy"),
    (STOPPED, "with a checkpoint", "resume", "resume"),
    (STOPPED, "without a checkpoint", "train", "train"),
    (FAILED, "with a checkpoint", "failed", "resume"),
    (FAILED, "without a checkpoint", "failed", "train"),
    (EVALUATION_FAILED, "", "failed", "evaluate"),
    (FINISHED, "fewer steps than the sweep asks for", "resume", "resume"),
    (FINISHED, "a metric of the sweep's evaluation missing", "evaluate", "evaluate"),
    (FINISHED, "evaluated", "done", "done"),
    (FINISHED, "its checkpoints deleted (nothing to train or evaluate from; its results are kept)", "done", "done"),
)


@dataclasses.dataclass(frozen=True)
class RunState:
    """What a run directory's ``status.json`` and checkpoints say."""

    state: str
    step: int | None = None
    error: str = ""
    #: The step of the newest checkpoint (None: none).
    checkpoint: int | None = None


def read_run_state(run_dir: str | Path) -> RunState:
    """The state of the run in ``run_dir`` (one of :data:`STATES`), from its ``status.json``, lock and checkpoints."""
    from ..locks import FileLock
    from ..train.run import LOCK_FILE, Run

    run = Run(run_dir)
    status = run.status()
    found = run.checkpoints()
    newest = found[-1][0] if found else None
    step = status.get("step") if isinstance(status.get("step"), int) else None
    written = status.get("state")
    if written is None:
        return RunState(ABSENT, checkpoint=newest)
    if written == "running" and FileLock(Path(run_dir) / LOCK_FILE).busy():
        return RunState(BUSY, step, checkpoint=newest)
    if written == "failed":
        return RunState(FAILED, step, str(status.get("error") or "failed"), newest)
    if written == "finished" and status.get("evaluation_error"):
        return RunState(EVALUATION_FAILED, step, str(status["evaluation_error"]), newest)
    if written == "finished":
        return RunState(FINISHED, step, checkpoint=newest)
    return RunState(STOPPED, step, checkpoint=newest)


def condition_of(run: RunState, steps: int, evaluation_missing: Callable[[], bool]) -> str:
    """Which row of :data:`ACTION_TABLE` a run in state ``run.state`` falls in (``steps``: the steps the sweep asks
    for; ``evaluation_missing()``: whether a metric of the sweep's evaluation is missing, asked only when needed)."""
    if run.state in (STOPPED, FAILED):
        return "with a checkpoint" if run.checkpoint is not None else "without a checkpoint"
    if run.state != FINISHED:
        return ""
    if run.checkpoint is None:
        return "its checkpoints deleted (nothing to train or evaluate from; its results are kept)"
    if run.checkpoint < steps:
        return "fewer steps than the sweep asks for"
    return "a metric of the sweep's evaluation missing" if evaluation_missing() else "evaluated"


def action_for(run: RunState, steps: int, evaluation_missing: Callable[[], bool], retry_failed: bool = False) -> str:
    """The action of :data:`ACTION_TABLE` for ``run``."""
    condition = condition_of(run, steps, evaluation_missing)
    for state, when, action, retried in ACTION_TABLE:
        if state == run.state and when == condition:
            return retried if retry_failed else action
    raise AssertionError(f"no row of the action table for {run.state!r}, {condition!r}")


def sweep_state(run: RunState) -> str:
    """The state a sweep reports for a run: pending, running, interrupted, failed or finished."""
    return {
        ABSENT: "pending",
        BUSY: "running",
        STOPPED: "interrupted",
        FAILED: "failed",
        EVALUATION_FAILED: "failed",
        FINISHED: "finished",
    }[run.state]


def format_action_table() -> str:
    """:data:`ACTION_TABLE` as the markdown table docs/development.md shows."""
    from ..markdown import markdown_table

    header = ["the run's state (its status.json)", "when", "action", "with --retry-failed"]
    return markdown_table(header, [[s, w or "–", f"`{a}`", f"`{r}`"] for s, w, a, r in ACTION_TABLE])


def run_states(sweep_dir: str | Path) -> dict[str, str]:
    """``{run: state}`` (:func:`sweep_state`) of every run ``sweep.json`` lists, derived from the run directories."""
    from .sweep import RUNS_DIR, read_state

    names = read_state(sweep_dir).get("order", [])
    return {name: sweep_state(read_run_state(Path(sweep_dir) / RUNS_DIR / name)) for name in names}
