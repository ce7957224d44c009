"""Sweeps: many training runs over methods, hyper-parameters and seeds, described by one TOML file.

A sweep file names a base config and the keys to vary::

    name = "alpha-omega"                 # default: the file's stem
    seeds = [0, 1, 2]                    # shorthand for [grid] "run.seed"

    [base]
    config = "quick-nonsyn"              # a preset name or a config file (relative to this file)
    set = { "log.tensorboard" = false }  # inline overrides of every run

    [grid]                               # the Cartesian product, crossed with every [[runs]] entry
    "nonsyn.alpha" = [2.5, 5.0]

    [[runs]]                             # optional: a list of settings, each with its own config/set/grid
    name = "nonsyn"                      # the runs' name prefix (default: the method)
    config = "quick-nonsyn"
    grid = { "nonsyn.omega" = [0.8, 0.9] }

    [[stages]]                           # optional: the order the runs train in (nsvae.experiments.stages)
    name = "all"
    settings = ["nonsyn-omega0.8-alpha2.5", "nonsyn-omega0.8-alpha5",
                "nonsyn-omega0.9-alpha2.5", "nonsyn-omega0.9-alpha5"]
    seeds = [0, 1, 2]

    [evaluation]                         # after training; see docs/sweeps.md
    metrics = ["mig", "sap"]
    overrides = { mig = { num_train = 2000 } }

    [resources]                          # per run: what a Ray task or a SLURM job asks for
    cpus = 1
    gpus = 0

    [slurm]                              # per run, on SLURM (nsvae.experiments.slurm_resources)
    partition = "gpu"
    time = "4:00:00"

Keys are any config key (``nonsyn.alpha``, ``run.seed``, ``method``, ...),
checked by the config machinery: a misspelt key names the nearest valid one.
Each run's overrides are applied in the order base ``set`` < entry ``set`` <
entry ``grid`` < top ``[grid]`` / ``seeds``.

Run names are built from the entry's name and the varied values, in file order
(``nonsyn-alpha2.5-omega0.8-seed0``), so they are stable when the file is
re-read and readable in a directory listing; a *setting* is the name without
the seed parts (runs that differ only in their seed). A sweep directory holds::

    SWEEP_DIR/sweep.toml        a copy of the sweep file
    SWEEP_DIR/sweep.json        the sweep's bookkeeping: every run's setting, seed, attempts, times (a run's
                                state is its own status.json: nsvae.experiments.run_state)
    SWEEP_DIR/runs/<name>/      ordinary run directories (nsvae train / evaluate / report read them)
    SWEEP_DIR/logs/<name>.log   each run's console output
    SWEEP_DIR/results.csv, results.sqlite   written by ``nsvae results``

Running the sweep (:func:`run_sweep`) lives in :mod:`nsvae.experiments.executors` (with its planning, worker,
local_pool and ray_pool); the results table (:func:`~nsvae.experiments.sweep_results.gather_results`,
:func:`~nsvae.experiments.sweep_results.aggregate`) in :mod:`nsvae.experiments.sweep_results`. This module is the
sweep file and the sweep directory's own files.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..clock import timestamp
from ..config import shipped_names, shipped_text, toml_io
from ..config.schema import SEED_KEYS, Config, apply_overrides, resolve_key
from ..errors import UserError
from ..names import check_path_component, value_text
from .slurm_resources import parse_slurm_table
from .stages import Stage, parse_stages

__all__ = [
    "EvaluationSpec",
    "PlannedRun",
    "Sweep",
    "expand",
    "load_sweep",
    "loads_sweep",
    "read_state",
    "sweep_preset_names",
]

SPEC_FILE = "sweep.toml"
STATE_FILE = "sweep.json"
RUNS_DIR = "runs"
LOGS_DIR = "logs"


_TOP_KEYS = (
    "name",
    "description",
    "seeds",
    "base",
    "set",
    "grid",
    "runs",
    "stages",
    "evaluation",
    "resources",
    "slurm",
)
_ENTRY_KEYS = ("name", "config", "set", "grid")
_BASE_KEYS = ("config", "set")
_EVAL_KEYS = ("enabled", "metrics", "protocol", "seed", "overrides")
_RESOURCE_KEYS = ("cpus", "gpus")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")


# -- the spec --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """What to evaluate after training (see :func:`nsvae.evaluation.evaluate_run`)."""

    enabled: bool = True
    #: Metric names; empty: every metric (``nsvae.metrics.DEFAULT_METRICS``).
    metrics: tuple[str, ...] = ()
    protocol: str = "default"
    seed: int = 0
    #: metric -> protocol parameters (e.g. ``{"mig": {"num_train": 2000}}``).
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def metric_names(self) -> tuple[str, ...]:
        from ..metrics import DEFAULT_METRICS

        return self.metrics or tuple(DEFAULT_METRICS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "metrics": list(self.metric_names()),
            "protocol": self.protocol,
            "seed": self.seed,
            "overrides": {k: dict(v) for k, v in self.overrides.items()},
        }


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its name, setting, seed, the overrides that made it and its full config."""

    name: str
    setting: str
    seed: int
    #: The varied keys' values (dotted key -> value), in naming order.
    values: Mapping[str, Any]
    config: Config


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A parsed and expanded sweep file."""

    name: str
    runs: tuple[PlannedRun, ...]
    evaluation: EvaluationSpec
    cpus: float = 1.0
    gpus: float = 0.0
    #: The sweep file's text (copied to SWEEP_DIR/sweep.toml).
    text: str = ""
    #: The directory config paths are relative to (the sweep file's).
    base_dir: str = "."
    description: str = ""
    #: The file's ``[[stages]]`` (:mod:`nsvae.experiments.stages`); ``runs`` is in their order.
    stages: tuple[Stage, ...] = ()
    #: The file's ``[slurm]`` table, checked (:func:`nsvae.experiments.slurm_resources.parse_slurm_table`).
    slurm: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def run(self, name: str) -> PlannedRun:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)


def sweep_preset_names() -> list[str]:
    """The names of the shipped sweep presets, sorted."""
    return shipped_names("sweeps")


def sweep_preset_text(name: str) -> str:
    return shipped_text(name, "sweeps", "no sweep file, sweep directory or sweep preset", "sweep presets")


def load_sweep(source: str | os.PathLike) -> Sweep:
    """Read and expand a sweep: a ``.toml`` file, a sweep directory (its ``sweep.toml``) or a sweep preset name.

    A sweep directory's config paths are resolved against the directory of the
    file it was started from (recorded in ``sweep.json``).
    """
    path = Path(source)
    if path.is_dir():
        spec = path / SPEC_FILE
        if not spec.is_file():
            raise UserError(f"{path} is not a sweep directory (it has no {SPEC_FILE}); give a sweep file")
        state = read_state(path)
        base_dir = state.get("base_dir") or str(path)
        return loads_sweep(_read_text(spec), where=str(spec), base_dir=base_dir, default_name=path.name)
    if path.is_file():
        return loads_sweep(
            _read_text(path), where=str(path), base_dir=str(path.parent.resolve()), default_name=path.stem
        )
    if str(source).endswith(".toml") or any(sep in str(source) for sep in ("/", os.sep)):
        raise UserError(f"sweep file {source} does not exist")
    return loads_sweep(sweep_preset_text(str(source)), where=f"sweep preset {source}", default_name=str(source))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
            raise UserError(f"{where}: unknown key {key!r}{hint}")


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"{where} must be a table, got {value!r}")
    return value


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"nonsyn": {"alpha": 5}}`` (TOML's unquoted dotted keys) -> ``{"nonsyn.alpha": 5}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def _keys(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Flatten and resolve every key to its dotted config key (unknown keys name the nearest valid one)."""
    out: dict[str, Any] = {}
    for raw, value in _flatten(table).items():
        try:
            key = resolve_key(raw)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        if key in out:
            raise UserError(f"{where}: {key!r} is given twice")
        out[key] = value
    return out


def _grid(table: Mapping[str, Any], where: str) -> dict[str, list[Any]]:
    grid = _keys(table, where)
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: {key!r} must be a non-empty list of values, e.g. {key} = [1, 2]")
        if len({json.dumps(v) for v in values}) != len(values):
            raise UserError(f"{where}: {key!r} lists a value twice")
    return grid


def _evaluation(table: Mapping[str, Any], where: str) -> EvaluationSpec:
    from ..metrics import METRICS
    from ..metrics.protocols import PROTOCOLS, resolve

    _check_keys(table, _EVAL_KEYS, where)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise UserError(f"{where}: enabled must be true or false, got {enabled!r}")
    metrics = table.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise UserError(f'{where}: metrics must be a list of metric names, e.g. ["mig", "sap"]')
    for name in metrics:
        if name not in METRICS:
            close = difflib.get_close_matches(name, list(METRICS), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; metrics: {', '.join(METRICS)}"
            raise UserError(f"{where}: unknown metric {name!r}{hint}")
    protocol = table.get("protocol", "default")
    if protocol not in ("default", "paper"):
        raise UserError(f'{where}: protocol must be "default" or "paper", got {protocol!r}')
    seed = table.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{where}: seed must be an integer, got {seed!r}")
    overrides = _table(table.get("overrides"), f"{where}.overrides")
    for metric, params in overrides.items():
        if metric not in PROTOCOLS:
            close = difflib.get_close_matches(metric, list(PROTOCOLS), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UserError(f"{where}.overrides: unknown metric {metric!r}{hint}")
        try:
            resolve(metric, protocol, dict(_table(params, f"{where}.overrides.{metric}")))
        except ValueError as exc:
            raise UserError(f"{where}.overrides: {exc}") from None
        from ..evaluation import check_protocol_overrides

        check_protocol_overrides({metric: dict(params)}, where=f"{where}.overrides:")
    return EvaluationSpec(
        enabled=enabled,
        metrics=tuple(metrics),
        protocol=protocol,
        seed=seed,
        overrides={k: dict(v) for k, v in overrides.items()},
    )


def loads_sweep(text: str, where: str = "sweep file", base_dir: str = ".", default_name: str = "sweep") -> Sweep:
    """Parse a sweep file's text and expand it into its runs (every config built and validated)."""
    try:
        doc = toml_io.loads(text)
    except toml_io.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML: {exc}") from None
    _check_keys(doc, _TOP_KEYS, where)
    name = doc.get("name", default_name)
    # The sweep's (and a study's) directory: runs/NAME, studies/NAME.
    check_path_component(name, f"{where}: name")
    description = doc.get("description", "")
    base = _table(doc.get("base"), f"{where}: [base]")
    _check_keys(base, _BASE_KEYS, f"{where}: [base]")
    base_config = base.get("config")
    base_set = _keys(_table(base.get("set"), f"{where}: base.set"), f"{where}: base.set")
    base_set.update(_keys(_table(doc.get("set"), f"{where}: [set]"), f"{where}: [set]"))
    grid = _grid(_table(doc.get("grid"), f"{where}: [grid]"), f"{where}: [grid]")
    if "seeds" in doc:
        if "run.seed" in grid:
            raise UserError(f'{where}: give the seeds once: either seeds = [...] or "run.seed" in [grid]')
        grid["run.seed"] = doc["seeds"]
        grid = _grid(grid, f"{where}: seeds")
    entries = doc.get("runs", [{}])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries) or not entries:
        raise UserError(f"{where}: runs must be a list of tables ([[runs]] ...)")
    evaluation = _evaluation(_table(doc.get("evaluation"), f"{where}: [evaluation]"), f"{where}: [evaluation]")
    res = _table(doc.get("resources"), f"{where}: [resources]")
    _check_keys(res, _RESOURCE_KEYS, f"{where}: [resources]")
    cpus, gpus = res.get("cpus", 1), res.get("gpus", 0)
    for label, value in (("cpus", cpus), ("gpus", gpus)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"{where}: [resources] {label} must be a finite number >= 0, got {value!r}")
    if cpus <= 0:
        raise UserError(f"{where}: [resources] cpus must be more than 0, got {cpus!r}")
    slurm = parse_slurm_table(_table(doc.get("slurm"), f"{where}: [slurm]"), f"{where}: [slurm]")

    parsed = []
    for i, entry in enumerate(entries):
        here = f"{where}: runs[{i}]"
        _check_keys(entry, _ENTRY_KEYS, here)
        entry_grid = _grid(_table(entry.get("grid"), f"{here}.grid"), f"{here}.grid")
        for key in entry_grid:
            if key in grid:
                raise UserError(f"{here}.grid: {key!r} is also in the top-level [grid]; vary it in one place")
        entry_set = _keys(_table(entry.get("set"), f"{here}.set"), f"{here}.set")
        config_source = entry.get("config", base_config)
        if config_source is None:
            raise UserError(f'{here}: no config: give [base] config = "PRESET or FILE" or config in the entry')
        label = entry.get("name")
        if label is not None and (not isinstance(label, str) or not _NAME_CHARS.sub("", label)):
            raise UserError(f"{here}: name must be a non-empty string, got {label!r}")
        if label is not None:
            check_path_component(label, f"{here}: name")
        parsed.append((here, config_source, entry_set, entry_grid, label))

    runs: list[PlannedRun] = []
    seen: dict[str, str] = {}
    for here, config_source, entry_set, entry_grid, label in parsed:
        base_cfg = _load_base(config_source, base_dir, here)
        keys = [*entry_grid, *grid]
        # Short names of the varied keys: the key's last part, or section_key where two of them share it.
        leaves = [k.rsplit(".", 1)[-1] for k in keys]
        short = {k: (leaf if leaves.count(leaf) == 1 else k.replace(".", "_")) for k, leaf in zip(keys, leaves)}
        value_lists = [entry_grid.get(k, grid.get(k)) for k in keys]
        varies_method = "method" in keys
        for combo in itertools.product(*value_lists):
            values = dict(zip(keys, combo))
            overrides = {**base_set, **entry_set, **values}
            try:
                config = apply_overrides(base_cfg, overrides)
            except UserError as exc:
                raise UserError(f"{here}: {exc}") from None
            prefix = label if label is not None else (None if varies_method else config.method)
            parts = [p for p in [prefix] if p]
            setting_parts = list(parts)
            for key, value in values.items():
                part = _name_part(short[key], key, value)
                parts.append(part)
                if key not in SEED_KEYS:
                    setting_parts.append(part)
            run_name = _NAME_CHARS.sub("_", "-".join(parts)) if parts else name
            setting = _NAME_CHARS.sub("_", "-".join(setting_parts)) if setting_parts else name
            # Each run's directory is SWEEP/runs/RUN; a setting names the runs' group in tables and reports.
            check_path_component(run_name, f"{here}: the run name")
            check_path_component(setting, f"{here}: the setting name")
            if run_name in seen:
                raise UserError(
                    f"{where}: two runs would both be named {run_name!r} ({seen[run_name]} and {here}); "
                    'give the [[runs]] entries distinct names (name = "...")'
                )
            seen[run_name] = here
            config = apply_overrides(config, {"run.name": run_name})
            runs.append(PlannedRun(run_name, setting, config.run.seed, values, config))
    stages, runs = parse_stages(doc.get("stages"), runs, where)
    return Sweep(
        name=name,
        runs=tuple(runs),
        stages=stages,
        slurm=slurm,
        evaluation=evaluation,
        cpus=float(cpus),
        gpus=float(gpus),
        text=text,
        base_dir=base_dir,
        description=description if isinstance(description, str) else "",
    )


def expand(source: str | os.PathLike) -> list[PlannedRun]:
    """The runs of a sweep file, directory or preset, in order."""
    return list(load_sweep(source).runs)


def _load_base(source: Any, base_dir: str, where: str) -> Config:
    from ..config import load_config

    if not isinstance(source, str) or not source:
        raise UserError(f"{where}: config must be a preset name or a config file path, got {source!r}")
    candidate = Path(source)
    if not candidate.is_absolute():
        candidate = Path(base_dir) / candidate
    try:
        if candidate.is_file():
            return load_config(candidate)
        return load_config(source)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _name_part(short: str, key: str, value: Any) -> str:
    """One part of a run name: ``alpha2.5``, ``seed0``, ``no-tensorboard``, or a string value itself (``vae``)."""
    if isinstance(value, bool):
        return short if value else f"no-{short}"
    if isinstance(value, str):
        return value
    return f"{short}{value_text(value)}"


# -- the sweep directory's state ------------------------------------------------------------------


def read_state(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """``SWEEP_DIR/sweep.json`` (empty if absent)."""
    path = Path(sweep_dir) / STATE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path} is not valid JSON; delete it (the runs' own status files are kept)") from None
    runs = state.get("runs", {}) if isinstance(state, dict) else None
    order = state.get("order", []) if isinstance(state, dict) else None
    if (
        not isinstance(runs, dict)
        or not all(isinstance(v, dict) for v in runs.values())
        or not isinstance(order, list)
        or not all(isinstance(n, str) for n in order)
    ):
        raise UserError(
            f"{path} is not a sweep's state (an object with 'runs' of objects and an 'order' of names); delete it "
            "(it holds bookkeeping only: the runs' own status files are kept)"
        )
    return state


def write_state(sweep_dir: str | os.PathLike, state: dict[str, Any]) -> None:
    from ..atomic import write_json_atomic

    state["updated"] = timestamp()
    write_json_atomic(Path(sweep_dir) / STATE_FILE, state)
