"""One run of a sweep, in a worker process: train (or resume), then evaluate what is missing; never raises.

:func:`execute` is what every executor calls (:mod:`.local_pool` in a forked
process, :mod:`.ray_pool` as a Ray task). It holds the run's lock from the
decision to the end, writes a failure into the run's own ``status.json``, and
returns the run's record (state, phase, error, step, seconds) to the driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..clock import timestamp
from ..config.schema import IMAGE_DATASETS, Config, from_dict
from .planning import metrics_to_evaluate


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything a worker needs to do one run (plain data: it is pickled to processes and Ray tasks)."""

    name: str
    run_dir: str
    log_path: str
    config: dict[str, Any]
    evaluation: dict[str, Any]
    #: CPU threads for torch, BLAS and the metrics in this run.
    threads: int
    #: Overrides run.device for this run (None: the config's).
    device: str | None = None


@contextlib.contextmanager
def _output_to(path: str):
    """Send this process's stdout and stderr (Python's and C's) to ``path`` while a run works, then restore them."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def execute(task: Task) -> dict[str, Any]:
    """Train (or resume) and evaluate one run; never raises: returns its record for ``sweep.json``.

    The record: ``state`` (finished, failed, interrupted), ``phase`` (train or
    evaluate, where it ended), ``error``, ``step``, ``evaluated``, ``seconds``.
    """
    started = time.perf_counter()
    with _output_to(task.log_path):
        print(f"== {timestamp()} nsvae sweep: {task.name} in {task.run_dir} ({task.threads} thread(s))", flush=True)
        record = _execute(task)
        print(f"== {timestamp()} nsvae sweep: {task.name}: {record['state']} {record.get('error', '')}", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def _execute(task: Task) -> dict[str, Any]:
    from ..train import Run

    run_dir = Path(task.run_dir)
    config = from_dict(task.config)
    if task.device is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, device=task.device))
    record: dict[str, Any] = {"state": "failed", "phase": "train"}
    run = Run(run_dir)
    try:
        # The run's lock is held from the decision to its end: nobody else restarts, deletes or trains it meanwhile.
        holding = run.lock()
        holding.__enter__()
    except BaseException as exc:  # noqa: BLE001 - another process trains it: recorded, the others go on
        return {**record, "error": _error_line(exc), "step": run.status().get("step")}
    try:
        return _execute_locked(task, run, config, record)
    finally:
        holding.__exit__(None, None, None)


def _execute_locked(task: Task, run, config: Config, record: dict[str, Any]) -> dict[str, Any]:
    import torch
    from threadpoolctl import threadpool_limits

    from ..train import Run, resume, start
    from ..train.trackers import in_sweep

    run_dir = run.path
    torch.set_num_threads(max(1, task.threads))
    with threadpool_limits(limits=max(1, task.threads)), in_sweep(_sweep_membership(task, config)):
        try:
            status = run.status()
            finished = status.get("state") == "finished" and run.exists()
            done = run.checkpoints()[-1][0] if run.checkpoints() else 0
            if not finished or done < config.run.steps:
                if run.exists() and run.checkpoints():
                    run = resume(run, config.run.steps, device=task.device, progress=False)
                else:  # a start that never reached its first checkpoint: start() clears what it wrote
                    run = start(config, run_dir, progress=False)
                if run.state != "finished":
                    return {**record, "state": run.state or "interrupted", "step": run.status().get("step")}
            record.update(step=run.status().get("step"), phase="evaluate")
        except KeyboardInterrupt:
            return {**record, "state": "interrupted", "step": Run(run_dir).status().get("step")}
        except BaseException as exc:  # noqa: BLE001 - any failure of one run is recorded, never propagated
            traceback.print_exc()
            error = _error_line(exc)
            run = Run(run_dir)
            if run.status().get("state") != "failed":
                run.set_status("failed", step=run.status().get("step", 0), error=error)
            return {**record, "error": error, "step": run.status().get("step")}
        try:
            record["evaluated"] = _evaluate(run, task)
        except KeyboardInterrupt:
            return {**record, "state": "interrupted"}
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc()
            error = _error_line(exc)
            run.set_status("finished", evaluation_error=error)
            return {**record, "error": error}
    if run.status().get("evaluation_error"):
        run.set_status("finished", evaluation_error=None)
    return {**record, "state": "finished"}


def _sweep_membership(task: Task, config: Config):
    """The sweep and setting the task's run belongs to, from its sweep's ``sweep.json`` (``SWEEP/runs/NAME``): its
    W&B and MLflow runs are grouped by them. None when the run has no trackers or is not in a sweep directory."""
    from ..errors import UserError
    from ..train.trackers import SweepMembership
    from .sweep import RUNS_DIR, read_state

    run_dir = Path(task.run_dir)
    if not config.log.trackers or run_dir.parent.name != RUNS_DIR:
        return None
    # Called where the worker must not raise: a sweep.json it cannot read only costs the grouping.
    try:
        state = read_state(run_dir.parent.parent)
        entry = state.get("runs", {}).get(task.name)
        if not isinstance(state.get("name"), str) or not isinstance(entry, dict):
            return None
        setting, seed = str(entry.get("setting", task.name)), int(entry.get("seed", config.run.seed))
    except (UserError, OSError, ValueError, TypeError):
        return None
    return SweepMembership(sweep=state["name"], setting=setting, seed=seed, sweep_dir=run_dir.parent.parent)


def _evaluate(run, task: Task) -> bool:
    from ..evaluation import evaluate_run

    spec = task.evaluation
    missing = metrics_to_evaluate(run, spec)
    if not missing:
        return bool(spec["enabled"]) and run.config.data.dataset not in IMAGE_DATASETS
    # Only what eval.json lacks: eval.json keeps the other metrics of the same step, protocol and seed.
    evaluate_run(
        run,
        metrics=missing,
        protocol=spec["protocol"],
        seed=spec["seed"],
        device=task.device or run.config.run.device,
        overrides={k: dict(v) for k, v in spec["overrides"].items()},
        progress=False,
        n_jobs=max(1, task.threads),
    )
    return True


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
