"""The results of a sweep: one row per run (config, final losses, metrics), mean ± sd over seeds per setting,
and the tables ``nsvae results`` writes (``SWEEP_DIR/results.csv`` and ``results.sqlite``, tables ``runs`` and
``settings``). The sweep file and directory are :mod:`nsvae.experiments.sweep`'s."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config.comparison import KeyDifference, differences
from ..config.schema import defines_setting, flatten
from ..errors import UserError
from ..markdown import markdown_table
from ..stats import mean_sd
from .run_state import read_run_state, sweep_state
from .sweep import RUNS_DIR, STATE_FILE, read_state

RESULTS_CSV = "results.csv"
RESULTS_SQLITE = "results.sqlite"


def setting_key(row: Mapping[str, Any]) -> tuple:
    """What makes runs the same setting: every config column but the seeds and incidental keys."""
    return tuple((k, json.dumps(row[k])) for k in sorted(row) if k.startswith("config.") and defines_setting(k[7:]))


def _final_log(run) -> dict[str, Any]:
    log = run.log()
    if not log:
        return {}
    last = log[-1]
    out = {f"train.{k}": last[k] for k in ("recon", "kl", "loss") if isinstance(last.get(k), (int, float))}
    if isinstance(last.get("elapsed_s"), (int, float)):
        out["train.seconds"] = last["elapsed_s"]
    return out


def gather_results(sweep_dir: str | os.PathLike, protocol: str | None = None) -> list[dict[str, Any]]:
    """One row per run of the sweep: name, setting, seed, state, error, every config key, final losses, metrics.

    Runs are those recorded in ``sweep.json`` and any run directory under
    ``runs/``. Config columns are ``config.<key>`` (``config.nonsyn.alpha``),
    final training numbers ``train.recon``, ``train.kl``, ``train.loss``,
    ``train.seconds``, each metric's headline score ``metric.<name>`` and its
    other top-level numbers ``metric.<name>.<field>`` (from ``eval.json``: the
    ``protocol`` given, else the sweep's, else the first one there).
    """
    from ..evaluation import read_eval
    from ..metrics.evaluate import headline_scores
    from ..train.run import Run

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise UserError(f"{sweep_dir} does not exist; give the directory a sweep wrote (it holds sweep.json)")
    state = read_state(sweep_dir)
    records: dict[str, dict[str, Any]] = dict(state.get("runs", {}))
    runs_dir = sweep_dir / RUNS_DIR
    if not records and not runs_dir.is_dir():
        raise UserError(f"{sweep_dir} is not a sweep directory (no {STATE_FILE} and no {RUNS_DIR}/)")
    names = [n for n in state.get("order", []) if n in records]
    names += [n for n in records if n not in names]
    if runs_dir.is_dir():
        names += sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and p.name not in records)
    protocol = protocol or state.get("evaluation", {}).get("protocol")
    rows = []
    for name in names:
        record = records.get(name, {})
        run = Run(runs_dir / name)
        current = read_run_state(run.path)  # the run's one record: its status.json
        row: dict[str, Any] = {
            "run": name,
            "setting": record.get("setting", name),
            "seed": record.get("seed"),
            "state": sweep_state(current),
            "step": current.step,
            "error": current.error,
        }
        if run.exists():
            config = run.config
            row["seed"] = config.run.seed
            row.update({f"config.{k}": v for k, v in flatten(config).items()})
            row.update(_final_log(run))
            evaluation = read_eval(run.path)
            if evaluation:
                results = evaluation.get("results", {})
                entry = results.get(protocol) if protocol in results else next(iter(results.values()), None)
                if entry:
                    row["eval.step"] = evaluation.get("step")
                    row["eval.protocol"] = entry.get("protocol")
                    row.update({f"metric.{k}": v for k, v in headline_scores(entry).items()})
                    row.update(_metric_fields(entry))
        rows.append(row)
    return rows


def _metric_fields(entry: Mapping[str, Any]) -> dict[str, float]:
    """Every other number a metric reports at its top level (``metric.dci.completeness``,
    ``metric.unsupervised.gaussian_total_correlation``): columns for the table, not the default printout."""
    out = {}
    for name, value in entry.get("metrics", {}).items():
        if not isinstance(value, Mapping):
            continue
        for field, number in value.items():
            if field != "score" and isinstance(number, (int, float)) and not isinstance(number, bool):
                out[f"metric.{name}.{field}"] = float(number)
    return out


def result_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    first = ["run", "setting", "seed", "state", "step", "error"]
    seen = dict.fromkeys(first)
    for row in rows:
        seen.update(dict.fromkeys(row))
    rest = [c for c in seen if c not in first]
    order = ("metric.", "train.", "eval.", "config.")
    return first + sorted(rest, key=lambda c: (next((i for i, p in enumerate(order) if c.startswith(p)), 9), c))


def default_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns ``nsvae results`` shows by default: each metric's headline score, followed by the fields
    :data:`nsvae.metrics.evaluate.BESIDE_SCORE` puts beside it (``metric.synergy``, then ``metric.synergy.wms``),
    then ``train.recon`` and ``train.kl``."""
    from ..metrics.evaluate import BESIDE_SCORE

    names = result_columns(rows)
    columns = []
    for column in names:
        if column.startswith("metric.") and "." not in column[7:]:
            columns.append(column)
            columns += [f"{column}.{f}" for f in BESIDE_SCORE.get(column[7:], ()) if f"{column}.{f}" in names]
    return columns + [c for c in ("train.recon", "train.kl") if c in names]


def comparison_differences(rows: Iterable[Mapping[str, Any]]) -> list[KeyDifference]:
    """The config keys outside the objectives' own tables on which the rows' runs differ, each value named by
    the settings that have it (:func:`nsvae.config.comparison.differences`); runs without a config
    (not started) are left out."""
    configs = []
    for row in rows:
        flat = {k[7:]: v for k, v in row.items() if k.startswith("config.")}
        if flat:
            configs.append((row["setting"], flat))
    return differences(configs)


def aggregate(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Mean and sample std over seeds of each setting (runs equal in everything but their seed).

    Only finished runs count. ``columns``: the numeric columns to aggregate
    (default: :func:`default_columns`: every metric's headline score with the
    synergy's WMS beside its S_max, then ``train.recon`` and ``train.kl``).
    Returns one dict per setting, in the order settings first appear:
    ``setting``, ``n`` (finished runs), ``seeds``, ``runs`` (all of the
    setting's runs, finished or not) and ``<column>`` -> ``(mean, std)``
    (missing values are left out; ``(nan, nan)`` when a column has none).
    """
    if columns is None:
        columns = default_columns(rows)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    labels: dict[tuple, str] = {}
    for row in rows:
        key = setting_key(row) if any(k.startswith("config.") for k in row) else (("setting", row["setting"]),)
        groups.setdefault(key, []).append(row)
        labels.setdefault(key, row["setting"])
    out = []
    for key, members in groups.items():
        done = [r for r in members if r.get("state") == "finished"]
        agg: dict[str, Any] = {
            "setting": labels[key],
            "n": len(done),
            "runs": len(members),
            "seeds": [r.get("seed") for r in done],
        }
        for column in columns:
            values = [float(r[column]) for r in done if isinstance(r.get(column), (int, float))]
            agg[column] = mean_sd(values) if values else (math.nan, math.nan)
        out.append(agg)
    return out


def _cell(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "-"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _short_column(column: str) -> str:
    return column.split(".", 1)[1] if column.startswith(("metric.", "train.")) else column


def format_table(aggregates: Sequence[Mapping[str, Any]], columns: Sequence[str], digits: int = 3, markdown=False):
    """The aggregates as a text table (or a Markdown one): setting, n, then ``mean ± std`` per column."""
    header = ["setting", "n", *(_short_column(c) for c in columns)]
    body = []
    for agg in aggregates:
        n = f"{agg['n']}" if agg["n"] == agg["runs"] else f"{agg['n']}/{agg['runs']}"
        body.append([agg["setting"], n, *(_cell(*agg[c], digits) for c in columns)])
    if markdown:
        return markdown_table(header, body)
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _sql_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, str)):
        return value
    return json.dumps(value)


def write_results(
    sweep_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    aggregates: Sequence[Mapping[str, Any]],
    csv_path: str | os.PathLike | None = None,
    sqlite_path: str | os.PathLike | None = None,
) -> tuple[Path, Path]:
    """Write the rows as CSV and the rows and aggregates as SQLite (tables ``runs`` and ``settings``), atomically.

    Defaults: ``SWEEP_DIR/results.csv`` and ``SWEEP_DIR/results.sqlite``.
    Column names are the row keys (``metric.mig``, ``config.nonsyn.alpha``);
    in ``settings`` each aggregated column gives ``<column>.mean`` and ``<column>.std``.
    """
    from ..atomic import atomic_write

    sweep_dir = Path(sweep_dir)
    csv_path = Path(csv_path) if csv_path else sweep_dir / RESULTS_CSV
    sqlite_path = Path(sqlite_path) if sqlite_path else sweep_dir / RESULTS_SQLITE
    columns = result_columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _sql_value(row.get(c)) for c in columns})
    text = buffer.getvalue()
    atomic_write(csv_path, lambda handle: handle.write(text.encode("utf-8")))

    agg_columns = ["setting", "n", "runs", "seeds"]
    stat_columns = sorted({k for a in aggregates for k in a if k not in agg_columns}, key=list(columns).index)
    tmp = sqlite_path.with_name(f".{sqlite_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        with sqlite3.connect(tmp) as db:
            quoted = ", ".join(f'"{c}"' for c in columns)
            db.execute(f"CREATE TABLE runs ({quoted})")
            marks = ", ".join("?" for _ in columns)
            db.executemany(
                f"INSERT INTO runs VALUES ({marks})", [[_sql_value(r.get(c)) for c in columns] for r in rows]
            )
            names = agg_columns + [f"{c}.{s}" for c in stat_columns for s in ("mean", "std")]
            db.execute(f"CREATE TABLE settings ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in names)})")
            values = []
            for agg in aggregates:
                row = [agg["setting"], agg["n"], agg["runs"], json.dumps(agg["seeds"])]
                for c in stat_columns:
                    row += [None if math.isnan(v) else v for v in agg[c]]
                values.append(row)
            db.executemany(f"INSERT INTO settings VALUES ({', '.join('?' for _ in names)})", values)
        db.close()
        os.replace(tmp, sqlite_path)
    finally:
        tmp.unlink(missing_ok=True)
    return csv_path, sqlite_path


def add_udr(sweep_dir: str | os.PathLike, rows: Sequence[dict[str, Any]], device: str = "auto") -> list[str]:
    """Add UDR (Duan et al. 2020, :func:`nsvae.metrics.udr.udr_by_setting`) to the rows of finished runs whose
    setting has at least two of them: ``metric.udr`` (the run's score against its setting's other seeds) and
    ``metric.udr.informative`` (its latents with KL above the protocol's threshold).

    Each run's posterior on UDR's fixed sample is read from its ``udr_sample.npz`` when that file is of the run's
    latest checkpoint (or the run kept no checkpoint, as a finished study's runs), and otherwise encoded from the
    latest checkpoint and written there, so the next call reads it. Returns the warnings: each run whose sample
    could not be made, and one line naming the runs with neither a checkpoint nor a sample."""
    from ..evaluation import UDR_SAMPLE_FILE, read_udr_sample, udr_sample_of_run, write_udr_sample
    from ..metrics.udr import udr_by_setting
    from ..train.run import Run

    sweep_dir = Path(sweep_dir)
    warnings: list[str] = []
    without: list[str] = []
    by_setting: dict[tuple, list[tuple[str, Mapping[str, Any]]]] = {}
    finished = [r for r in rows if r.get("state") == "finished" and any(k.startswith("config.") for k in r)]
    counts: dict[tuple, int] = {}
    for row in finished:
        counts[setting_key(row)] = counts.get(setting_key(row), 0) + 1
    for row in finished:
        key = setting_key(row)
        if counts[key] < 2:
            continue
        run = Run(sweep_dir / RUNS_DIR / row["run"])
        path = run.path / UDR_SAMPLE_FILE
        checkpoints = run.checkpoints()
        latest = checkpoints[-1][0] if checkpoints else None
        try:
            sample = read_udr_sample(path) if path.is_file() else None
            if sample is not None and latest is not None and sample["protocol"].get("step") != latest:
                sample = None  # of an older checkpoint: the run trained on after it was written
            if sample is None and latest is not None:
                sample = udr_sample_of_run(run, device=device)
                write_udr_sample(path, sample)
        except (UserError, ValueError, OSError) as exc:
            warnings.append(f"UDR leaves out {row['run']}: {' '.join(str(exc).split())}")
            continue
        if sample is None:
            without.append(row["run"])
            continue
        by_setting.setdefault(key, []).append((row["run"], sample))
    if without:
        warnings.append(
            f"UDR leaves out {len(without)} run(s) with neither a checkpoint nor {UDR_SAMPLE_FILE}: "
            + ", ".join(without)
        )
    scores = udr_by_setting({json.dumps(key): models for key, models in by_setting.items()})
    undefined = []
    for row in rows:
        if row["run"] in scores:
            found = scores[row["run"]]
            row["metric.udr.informative"] = float(found["informative"])
            if math.isnan(found["udr"]):  # no informative latent in the run, or in all the others
                undefined.append(row["run"])
            else:
                row["metric.udr"] = found["udr"]
    if undefined:
        warnings.append(
            f"UDR is undefined for {len(undefined)} run(s) whose code, or whose setting's other codes, have no "
            f"latent with KL above the protocol's threshold: {', '.join(undefined)}"
        )
    return warnings
