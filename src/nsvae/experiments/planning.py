"""What each run of a sweep needs, decided from its directory before anything runs.

:func:`plan_sweep` first refuses a run directory whose config is not the one
the sweep file now asks for (:func:`check_existing`), then gives each run its
action (:func:`plan_run`) from its one record, ``status.json``, through the
action table of :mod:`.run_state`; a finished run is evaluated again only for
the metrics its ``eval.json`` lacks (:func:`metrics_to_evaluate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config.schema import IMAGE_DATASETS, Config, flatten, is_incidental
from ..errors import UserError
from .run_state import action_for, read_run_state
from .sweep import RUNS_DIR, EvaluationSpec, PlannedRun, Sweep


def _comparable(config: Config) -> dict[str, Any]:
    """The keys that decide what a run computes (its steps excluded: a longer sweep extends a run)."""
    return {k: v for k, v in flatten(config).items() if k not in ("data.seed", "run.steps") and not is_incidental(k)}


def check_existing(planned: PlannedRun, run_dir: Path) -> None:
    """Refuse to touch a run directory whose config is not the one the sweep file now asks for."""
    from ..train.run import Run

    run = Run(run_dir)
    if not run.exists():
        return
    stored, wanted = _comparable(run.config), _comparable(planned.config)
    # The run's config holds its data seed resolved (unset: the run's seed); compare the resolved values.
    stored["data.seed"], wanted["data.seed"] = run.config.data_seed, planned.config.data_seed
    diff = [k for k in wanted if stored.get(k) != wanted[k]]
    if diff:
        key = diff[0]
        raise UserError(
            f"{run_dir} holds a run with {key} = {stored.get(key)!r} but the sweep file now asks for {wanted[key]!r}; "
            "use another sweep directory (--out) or delete that run"
        )


def metrics_to_evaluate(run, evaluation: EvaluationSpec | dict[str, Any]) -> list[str]:
    """The metrics of ``evaluation`` that ``run``'s eval.json lacks for its latest checkpoint, protocol, seed and
    protocol parameters (all of them when eval.json is of another step; none when evaluation is off or the
    dataset has no ground-truth factors)."""
    from ..evaluation import read_eval
    from ..metrics.protocols import resolve

    spec = evaluation if isinstance(evaluation, dict) else evaluation.to_dict()
    if not spec["enabled"] or run.config.data.dataset in IMAGE_DATASETS:
        return []
    checkpoints = run.checkpoints()
    current = read_eval(run.path) if checkpoints else None
    if not current or current.get("step") != checkpoints[-1][0]:
        return list(spec["metrics"])
    entry = current.get("results", {}).get(spec["protocol"])
    if not entry or entry.get("seed") != spec["seed"]:
        return list(spec["metrics"])
    missing = []
    for metric in spec["metrics"]:
        stored = entry.get("metrics", {}).get(metric)
        wanted = resolve(metric, spec["protocol"], spec["overrides"].get(metric))
        if not isinstance(stored, dict) or not _same_protocol(stored.get("protocol"), wanted):
            missing.append(metric)
    return missing


def _same_protocol(stored: Any, wanted: dict[str, Any]) -> bool:
    """Whether a metric's recorded protocol is ``wanted``; a wanted ``"auto"`` matches what the metric chose for it
    (Chen's MIG records the factors ``exclude_factors = "auto"`` left out)."""
    if not isinstance(stored, dict) or set(stored) != set(wanted):
        return False
    return all(stored[k] == v or v == "auto" for k, v in wanted.items())


def evaluation_needed(run, evaluation: EvaluationSpec | dict[str, Any]) -> bool:
    """Whether ``run`` lacks a metric of ``evaluation`` (see :func:`metrics_to_evaluate`)."""
    return bool(metrics_to_evaluate(run, evaluation))


def plan_run(planned: PlannedRun, run_dir: Path, evaluation: EvaluationSpec, retry_failed: bool = False) -> str:
    """What ``planned`` needs, from its directory's one record (:mod:`.run_state`): one of :data:`ACTIONS`."""
    from ..train.run import Run

    state = read_run_state(run_dir)
    return action_for(
        state, planned.config.run.steps, lambda: evaluation_needed(Run(run_dir), evaluation), retry_failed
    )


def plan_sweep(sweep: Sweep, sweep_dir: Path, retry_failed: bool = False) -> dict[str, str]:
    """Each run's action (:data:`ACTIONS`), after checking existing run directories against the file and that the
    trackers the runs name are installed."""
    from ..train.trackers import check_installed

    runs_dir = sweep_dir / RUNS_DIR
    actions = {}
    for planned in sweep.runs:
        check_existing(planned, runs_dir / planned.name)
        check_installed(planned.config.log.trackers, planned.config.log.mlflow_uri)
    for planned in sweep.runs:
        actions[planned.name] = plan_run(planned, runs_dir / planned.name, sweep.evaluation, retry_failed)
    return actions
