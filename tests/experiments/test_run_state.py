"""A run's state is one record, its status.json; one table maps it to what a sweep does (issue 26, point 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nsvae.experiments import run_state
from nsvae.experiments.executors import Task, _record_failure, plan_run
from nsvae.experiments.run_state import (
    ACTION_TABLE,
    RunState,
    action_for,
    format_action_table,
    read_run_state,
    sweep_state,
)
from nsvae.experiments.sweep import EvaluationSpec, loads_sweep
from nsvae.train.run import Run

HOLD = (
    "import sys, time; from nsvae.train.run import Run\n"
    "with Run(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(60)\n"
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "development.md"
SPEC = '[base]\nconfig = "quick-vae"\n[set]\n"run.steps" = 1500\n'


def test_the_development_guide_shows_the_table_the_code_reads():
    assert format_action_table() in DOC.read_text(encoding="utf-8")


def test_every_state_has_a_row_and_every_row_is_reached():
    assert {state for state, *_ in ACTION_TABLE} == set(run_state.STATES)
    reached = set()
    cases = [
        RunState("absent"),
        RunState("busy", 3),
        RunState("stopped", 3, checkpoint=2),
        RunState("stopped", 3),
        RunState("failed", 3, "boom", 2),
        RunState("failed", 3, "boom"),
        RunState("evaluation failed", 9, "boom", 9),
        RunState("finished", 5, checkpoint=5),
        RunState("finished", 9, checkpoint=9),
        RunState("finished", 9),
    ]
    for case in cases:
        for missing in (True, False):
            reached.add((case.state, run_state.condition_of(case, 9, lambda m=missing: m)))
    assert reached == {(state, when) for state, when, *_ in ACTION_TABLE}


@pytest.mark.parametrize(
    ("state", "missing", "retry", "action"),
    [
        (RunState("absent"), False, False, "train"),
        (RunState("busy", 3), False, True, "busy"),
        (RunState("stopped", 3, checkpoint=2), False, False, "resume"),
        (RunState("stopped", 3), False, False, "train"),
        (RunState("failed", 3, "x", 2), False, False, "failed"),
        (RunState("failed", 3, "x", 2), False, True, "resume"),
        (RunState("failed", 3, "x"), False, True, "train"),
        (RunState("evaluation failed", 9, "x", 9), False, False, "failed"),
        (RunState("evaluation failed", 9, "x", 9), False, True, "evaluate"),
        (RunState("finished", 5, checkpoint=5), False, False, "resume"),
        (RunState("finished", 9, checkpoint=9), True, False, "evaluate"),
        (RunState("finished", 9, checkpoint=9), False, False, "done"),
        (RunState("finished", 9), True, False, "done"),  # checkpoints deleted: never trained again from step 0
    ],
)
def test_actions(state, missing, retry, action):
    assert action_for(state, 9, lambda: missing, retry) == action


def test_states_read_from_status_json(tmp_path):
    run = Run(tmp_path / "run")
    assert read_run_state(run.path) == RunState("absent")
    run.set_status("running", step=4)
    assert read_run_state(run.path).state == "stopped" and sweep_state(read_run_state(run.path)) == "interrupted"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True
    )  # another process trains it
    try:
        assert holder.stdout.readline().strip() == "held"
        assert read_run_state(run.path).state == "busy"
    finally:
        holder.kill()
        holder.wait()
    assert read_run_state(run.path).state == "stopped"  # its holder is gone
    run.set_status("failed", step=4, error="boom")
    assert read_run_state(run.path) == RunState("failed", 4, "boom")
    run.set_status("finished", step=9, evaluation_error="bad metric")
    assert read_run_state(run.path) == RunState("evaluation failed", 9, "bad metric")
    assert sweep_state(read_run_state(run.path)) == "failed"


def test_a_worker_killed_before_it_made_the_run_directory_is_recorded_there(tmp_path):
    planned = loads_sweep(SPEC).runs[0]
    run_dir = tmp_path / "runs" / planned.name
    task = Task(planned.name, str(run_dir), str(tmp_path / "log"), {}, EvaluationSpec().to_dict(), 1)
    killed = {"state": "failed", "phase": "train", "error": "the worker process was killed by SIGKILL"}
    _record_failure(task, killed)
    assert read_run_state(run_dir) == RunState("failed", 0, "the worker process was killed by SIGKILL")
    assert plan_run(planned, run_dir, EvaluationSpec()) == "failed"
    assert plan_run(planned, run_dir, EvaluationSpec(), retry_failed=True) == "train"
    # the record nsvae wrote is its own: a retry may clear it and start the run
    Run(run_dir).check_can_clear()
