"""Studies: a sweep whose every finished run leaves small files under ``studies/<name>/``, to be committed.

A study is a sweep file (``nsvae sweep`` format; the shipped ones are the
sweep presets named ``study-*``) whose runs evaluate themselves during
training (``eval.every``, :mod:`nsvae.train.learning_curve`). It progresses in
pieces, over days, on machines that may not keep files from one piece to the
next, so the only state that matters is what the repository holds::

    studies/<name>/study.toml            the study file as run
    studies/<name>/results.csv           one row per (method, seed, step) of every learning curve
    studies/<name>/final.csv             one row per (method, seed): the final evaluation (full protocols)
    studies/<name>/runs/<run>/config.toml   the run's resolved config
    studies/<name>/runs/<run>/curve.csv     its learning curve (curve protocol) with the training losses
    studies/<name>/runs/<run>/final.json    the final evaluation, the code commit, the machine, the times
    studies/<name>/runs/<run>/traversal.png the final model's latent traversal
    studies/<name>/runs/<run>/udr_sample.npz the final model's posterior on UDR's fixed sample (UDR needs no
                                            checkpoint then; nsvae.metrics.udr)
    studies/<name>/in-flight/<run>.csv      the curve points so far of a run still training (export_in_flight;
                                            removed when the run's files go in)
    studies/<name>/in-flight/<run>.run.tar  on request, its training state: its newest checkpoint and files
                                            (carry_in_flight, :mod:`.study_carry`; removed likewise)

A run with ``final.json`` is done and is never trained again. The others are
handed to the sweep machinery in a working directory (``runs/<name>`` by
default), which resumes a run whose directory is still there and restarts
one whose directory is gone. ``commit=True`` commits each finished run's
files (and the two tables) with git as the run ends, so work is never lost in
bulk. The runs go in the order of the file's ``[[stages]]`` (:mod:`.stages`; a stage marked
``on_request`` runs only when named); without stages, every method's three lowest seeds go first,
the later seeds after (:func:`seed_batches`). In the tables, ``method`` is the run's setting (its name without the
seed), and the metric columns are named as ``nsvae results`` names them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..cpus import usable_cpus
from ..errors import UserError
from .slurm_resources import SlurmRequest
from .study_carry import carried_path, carried_runs, pack_run, restore_carried
from .sweep import RUNS_DIR, PlannedRun, Sweep, load_sweep

STUDIES_DIR = "studies"
SPEC_FILE = "study.toml"
RESULTS_CSV = "results.csv"
FINAL_CSV = "final.csv"
RUNS = "runs"
DONE_FILE = "final.json"
#: The curve points of runs still training, one CSV each, so that a study's progress survives a lost machine.
IN_FLIGHT = "in-flight"
#: Each finished run's posterior on UDR's fixed sample (nsvae.metrics.udr), kept so UDR needs no checkpoint.
UDR_SAMPLE_FILE = "udr_sample.npz"
#: The first columns of both tables; the metric columns follow.
KEY_COLUMNS = ("method", "seed", "step")
#: Training losses read from the run's log.jsonl at each evaluated step.
TRAIN_COLUMNS = ("train.recon", "train.kl")


def study_dir_for(sweep: Sweep, studies_root: str | os.PathLike = STUDIES_DIR) -> Path:
    return Path(studies_root) / sweep.name


def finished_runs(study_dir: Path) -> set[str]:
    """The runs whose files are in the study (``runs/<run>/final.json``)."""
    runs = study_dir / RUNS
    if not runs.is_dir():
        return set()
    return {p.name for p in runs.iterdir() if (p / DONE_FILE).is_file()}


def read_final_record(path: Path) -> dict[str, Any]:
    """One run's ``final.json``, checked: a JSON object whose ``method`` is a string, ``seed`` an integer and
    ``evaluation`` (when present) an object; anything else is a UserError naming the file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); restore it from git or export the run again") from None
    problem = ""
    if not isinstance(record, dict):
        problem = f"it holds a {type(record).__name__}, not an object"
    elif not isinstance(record.get("method"), str) or not isinstance(record.get("seed"), int):
        problem = "it lacks a method (string) or a seed (integer)"
    elif not isinstance(record.get("evaluation", {}), dict) or not isinstance(record.get("seconds", {}), dict):
        problem = "its evaluation or seconds is not an object"
    if problem:
        raise UserError(f"{path} is not a study run's final.json ({problem}); restore it from git or export it again")
    return record


def final_records(study_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(run name, its final.json)`` of every finished run, by name."""
    return [(name, read_final_record(study_dir / RUNS / name / DONE_FILE)) for name in sorted(finished_runs(study_dir))]


def machine_time(study_dir: Path) -> dict[str, Any]:
    """What the finished runs cost, from their ``final.json`` ``seconds``, in hours of one thread (a study's
    runs train with one thread each): ``runs``, ``train_and_curve`` (of which ``curve_evaluations``),
    ``final_evaluation``, ``total``, and ``per_method`` totals; ``unknown`` counts runs without a training time."""
    hours = {"train_and_curve": 0.0, "curve_evaluations": 0.0, "final_evaluation": 0.0}
    per_method: dict[str, float] = {}
    runs = unknown = 0
    for name, record in final_records(study_dir):
        seconds = record.get("seconds") or {}
        runs += 1
        unknown += seconds.get("train_and_curve") is None
        part = {key: float(seconds.get(key) or 0.0) / 3600 for key in hours}
        for key, value in part.items():
            hours[key] += value
        method = str(record.get("method", name))
        # curve_evaluations is a part of train_and_curve, so a run's time is the other two
        per_method[method] = per_method.get(method, 0.0) + part["train_and_curve"] + part["final_evaluation"]
    total = sum(per_method.values())
    return {"runs": runs, **hours, "total": total, "per_method": per_method, "unknown": unknown}


def format_machine_time(cost: dict[str, Any]) -> str:
    """One paragraph for ``nsvae study --summary``."""
    methods = ", ".join(f"{method} {h:.1f}" for method, h in sorted(cost["per_method"].items()))
    text = (
        f"Machine time of the {cost['runs']} finished runs (final.json 'seconds'; one thread each): "
        f"{cost['total']:.1f} CPU-hours = {cost['train_and_curve']:.1f} h training with curve points "
        f"({cost['curve_evaluations']:.1f} h of them curve points) + {cost['final_evaluation']:.1f} h final "
        f"evaluation; per method: {methods}."
    )
    if cost["unknown"]:
        text += f" {cost['unknown']} run(s) recorded no training time and count only their evaluation."
    return text


#: The columns of :func:`synergy_terms`: S_max = joint - I_max and WMS = joint - sum of singles, each / H(v_k).
SYNERGY_TERMS = ("synergy.joint", "synergy.i_max", "synergy.sum_single", "synergy")


def synergy_terms(study_dir: Path) -> list[dict[str, Any]]:
    """Per finished run, the terms its final synergy score is made of, from ``final.json``.

    A lower S_max can mean single latents carry more of what the latents
    together know about a factor, or that the latents together know less;
    these rows tell the two apart. Each term is ``/ H(v_k)`` and averaged over
    the factors the score averages: ``synergy.joint`` (I(z; v_k)),
    ``synergy.i_max`` (the redundancy S_max subtracts), ``synergy.sum_single``
    (the sum WMS subtracts) and ``synergy`` (their S_max, joint - I_max).
    Runs whose final evaluation has no synergy are left out.
    """
    rows = []
    keys = ("i_joint", "i_max", "sum_single", "entropy")
    for name, record in final_records(study_dir):
        synergy = ((record.get("evaluation") or {}).get("metrics") or {}).get("synergy") or {}
        per_factor = synergy.get("per_factor") if isinstance(synergy, dict) else None
        factors = [f for f in (per_factor or {}).values() if isinstance(f, dict) and "skipped" not in f]
        if not factors:
            continue
        for f in factors:
            if not all(isinstance(f.get(k), (int, float)) and math.isfinite(f[k]) for k in keys) or f["entropy"] <= 0:
                raise UserError(
                    f"{study_dir / RUNS / name / DONE_FILE}: a factor of its synergy lacks a finite {', '.join(keys)} "
                    "(with entropy > 0); restore the file from git or export the run again"
                )
        terms = {
            column: statistics.fmean(f[key] / f["entropy"] for f in factors)
            for column, key in zip(SYNERGY_TERMS[:3], ("i_joint", "i_max", "sum_single"))
        }
        terms["synergy"] = terms["synergy.joint"] - terms["synergy.i_max"]
        rows.append({"method": str(record.get("method", name)), "seed": record.get("seed"), **terms})
    return rows


def udr_scores_of(study_dir: Path) -> dict[str, dict[str, Any]]:
    """UDR (:mod:`nsvae.metrics.udr`, the published protocol) of every finished run that kept its UDR sample, scored
    against the other runs of its method (setting): ``{run: {"method", "seed", "udr", "informative"}}``. A method
    with fewer than two such runs has none (UDR compares a run with its setting's other seeds)."""
    from ..evaluation import read_udr_sample
    from ..metrics.udr import udr_by_setting

    by_method: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    seeds: dict[str, Any] = {}
    for name, record in final_records(study_dir):
        path = study_dir / RUNS / name / UDR_SAMPLE_FILE
        if path.is_file():
            by_method.setdefault(str(record.get("method")), []).append((name, read_udr_sample(path)))
            seeds[name] = record.get("seed")
    scores = udr_by_setting(by_method)
    return {
        name: {"method": s["setting"], "seed": seeds[name], "udr": s["udr"], "informative": s["informative"]}
        for name, s in scores.items()
    }


def check_study(sweep: Sweep) -> None:
    """Refuse a study whose runs would not draw learning curves (``eval.every`` = 0) or would not be evaluated."""
    missing = [r.name for r in sweep.runs if r.config.eval.every <= 0]
    if missing:
        raise UserError(
            f"study {sweep.name}: run {missing[0]} has eval.every = 0 (no learning curve); "
            'set "eval.every" in the study file\'s [set] table'
        )
    if not sweep.evaluation.enabled:
        raise UserError(f"study {sweep.name}: [evaluation] is disabled; a study needs the final evaluation")


# -- one run's files ----------------------------------------------------------------------------------


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The git commit of the code (and whether the checkout had local changes), and the package version."""
    from .. import __version__

    here = Path(__file__).resolve().parent
    commit = _git("rev-parse", "HEAD", cwd=here)
    dirty = None
    if commit is not None:
        status = _git("status", "--porcelain", "--untracked-files=no", "--", "src", cwd=here)
        dirty = bool(status) if status is not None else None
    return {"nsvae": __version__, "commit": commit, "src_modified": dirty}


def machine() -> dict[str, Any]:
    """Where a run trained. ``cpu`` and ``cpu_capability`` (the instruction set torch's CPU kernels were chosen
    for) are kept because training is bit-exact on one CPU and software, not across them: a run restarted or
    resumed on another CPU model may round differently."""
    import torch

    return {
        "host": platform.node(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cores": usable_cpus(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what the platform module knows), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _write_text(path: Path, text: str) -> None:
    from ..atomic import write_text_atomic

    write_text_atomic(path, text)


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def _score_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The metric columns in first-seen order, then the training losses."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in KEY_COLUMNS and key not in TRAIN_COLUMNS:
                seen.setdefault(key, None)
    return [*seen, *(c for c in TRAIN_COLUMNS if any(c in r for r in rows))]


def curve_rows(run, method: str, seed: int) -> list[dict[str, Any]]:
    """A run's learning curve as table rows: method, seed, step, the curve scores, the training losses there."""
    from ..train.learning_curve import read_curve

    losses = {int(e["step"]): e for e in run.log() if "recon" in e}
    rows = []
    for entry in read_curve(run.path):
        step = int(entry["step"])
        row: dict[str, Any] = {"method": method, "seed": seed, "step": step, **entry["scores"]}
        logged = losses.get(step)
        if logged is not None:
            row["train.recon"], row["train.kl"] = logged["recon"], logged["kl"]
        rows.append(row)
    return rows


def export_run(
    run_dir: Path,
    study_dir: Path,
    planned: PlannedRun,
    seconds: float | None = None,
    workers: int | None = None,
    code: dict[str, Any] | None = None,
) -> Path:
    """Write a finished, evaluated run's small files into ``study_dir/runs/<run>/``; ``final.json`` last.

    ``code``: :func:`code_version` as it was when the process that trained the run started (the commit
    checked out later may differ); None when that is not known (a run trained by an earlier process).
    """
    from ..evaluation import read_eval
    from ..metrics.evaluate import table_scores
    from ..train.learning_curve import read_curve
    from ..train.run import Run

    run = Run(run_dir)
    status = run.status()
    if status.get("state") != "finished":
        raise UserError(f"{run_dir} is not finished ({status.get('state')}); it cannot enter the study")
    evaluation = read_eval(run_dir)
    if not evaluation or not evaluation.get("results"):
        raise UserError(f"{run_dir} has no final evaluation (eval.json)")
    out = study_dir / RUNS / planned.name
    out.mkdir(parents=True, exist_ok=True)
    (out / DONE_FILE).unlink(missing_ok=True)  # written last: its presence means the rest is complete
    from ..config import dumps

    _write_text(out / "config.toml", dumps(run.config))
    rows = curve_rows(run, planned.setting, planned.seed)
    _write_text(out / "curve.csv", _csv_text([*KEY_COLUMNS, *_score_columns(rows)], rows))
    _write_traversal(run, out / "traversal.png")
    udr = _write_udr_sample(run, out / UDR_SAMPLE_FILE)
    protocol, result = next(iter(evaluation["results"].items()))
    curve = read_curve(run.path)
    record = {
        "run": planned.name,
        "method": planned.setting,
        "seed": planned.seed,
        "step": evaluation["step"],
        "protocol": protocol,
        "scores": table_scores(result),
        "evaluation": result,
        "udr_sample": udr,
        "code": code if code is not None else {"commit": None, "note": "trained by an earlier nsvae study process"},
        "machine": machine(),
        "workers": workers,
        "started": status.get("started"),
        "finished": status.get("finished"),
        "seconds": {
            "train_and_curve": _checkpoint_elapsed(run),
            "curve_evaluations": round(sum(float(e.get("seconds", 0.0)) for e in curve), 1),
            "final_evaluation": round(sum(float(v) for v in result.get("seconds", {}).values()), 1),
            "sweep_task": None if seconds is None else round(float(seconds), 1),
        },
    }
    _write_text(out / DONE_FILE, json.dumps(record, indent=1, sort_keys=False) + "\n")
    (study_dir / IN_FLIGHT / f"{planned.name}.csv").unlink(missing_ok=True)  # the finished files replace it
    carried_path(study_dir / IN_FLIGHT, planned.name).unlink(missing_ok=True)
    return out


def export_in_flight(sweep: Sweep, study_dir: Path, work: Path) -> dict[str, int]:
    """Write the curve points so far of every run of ``sweep`` still training in ``work`` (the study's working
    directory) to ``study_dir/in-flight/<run>.csv``: what a session commits before it stops, so that the progress
    of a run that spans sessions is in the repository even if its machine is lost. Returns ``{run: its last curve
    step}`` of the files written."""
    from ..train.run import CONFIG_FILE, Run

    done = finished_runs(study_dir)
    written = {}
    for planned in sweep.runs:
        run_dir = work / RUNS_DIR / planned.name
        if planned.name in done or not (run_dir / CONFIG_FILE).is_file():
            continue
        rows = curve_rows(Run(run_dir), planned.setting, planned.seed)
        if not rows:
            continue
        _write_text(
            study_dir / IN_FLIGHT / f"{planned.name}.csv", _csv_text([*KEY_COLUMNS, *_score_columns(rows)], rows)
        )
        written[planned.name] = max(int(r["step"]) for r in rows)
    return written


def carry_in_flight(sweep: Sweep, study_dir: Path, work: Path) -> dict[str, int]:
    """Pack every run of ``sweep`` still training in ``work`` (its newest intact checkpoint and its files) to
    ``study_dir/in-flight/<run>.run.tar`` (:mod:`.study_carry`), so that a run longer than its machine is kept
    resumes on the next one. Returns ``{run: the step of the checkpoint packed}``; a run without a checkpoint yet
    is left out."""
    done = finished_runs(study_dir)
    written = {}
    for planned in sweep.runs:
        run_dir = work / RUNS_DIR / planned.name
        if planned.name in done or not run_dir.is_dir():
            continue
        step = pack_run(run_dir, carried_path(study_dir / IN_FLIGHT, planned.name))
        if step is not None:
            written[planned.name] = step
    return written


def _checkpoint_elapsed(run) -> float | None:
    try:
        state = run.read_checkpoint()
    except Exception:  # noqa: BLE001 - the time is informative only
        return None
    return round(float(state.get("elapsed_s", 0.0)), 1)


def _write_udr_sample(run, path: Path) -> dict[str, Any] | None:
    """The final model's posterior on UDR's fixed sample (UDR needs no checkpoint then); None for a dataset without
    ground-truth factors."""
    from ..config.schema import IMAGE_DATASETS
    from ..evaluation import udr_sample_of_run, write_udr_sample

    if run.config.data.dataset in IMAGE_DATASETS:
        return None
    sample = udr_sample_of_run(run, device=run.config.run.device)
    write_udr_sample(path, sample)
    return {"file": UDR_SAMPLE_FILE, **sample["protocol"]}


def _write_traversal(run, path: Path) -> None:
    from PIL import Image

    from ..viz.traversals import run_traversal

    picture = Image.fromarray(run_traversal(run))
    from ..atomic import atomic_write

    atomic_write(path, lambda handle: picture.save(handle, format="PNG"))


# -- the study's tables -------------------------------------------------------------------------------


def write_tables(study_dir: Path) -> tuple[Path, Path]:
    """``results.csv`` (every curve point) and ``final.csv`` (every final evaluation) from the runs' files."""
    curve_rows_all: list[dict[str, Any]] = []
    final_rows: list[dict[str, Any]] = []
    for name, record in final_records(study_dir):
        curve_rows_all += read_table(study_dir / RUNS / name / "curve.csv")
        final_rows.append(
            {"method": record["method"], "seed": record["seed"], "step": record["step"], **record["scores"]}
        )
    key = lambda r: (str(r["method"]), int(r["seed"]), int(r["step"]))  # noqa: E731
    curve_rows_all.sort(key=key)
    final_rows.sort(key=key)
    results = study_dir / RESULTS_CSV
    final = study_dir / FINAL_CSV
    _write_text(results, _csv_text([*KEY_COLUMNS, *_score_columns(curve_rows_all)], curve_rows_all))
    _write_text(final, _csv_text([*KEY_COLUMNS, *_score_columns(final_rows)], final_rows))
    return results, final


def _number(text: str) -> Any:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A study table (``results.csv`` or ``final.csv``) as rows of numbers; a row with a missing or extra cell (a
    file cut mid-row) or without method and seed is a UserError naming the file and the line."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise UserError(
                    f"{path}: line {reader.line_num} has {'more' if None in row else 'fewer'} cells than the header "
                    "(a file cut mid-row?); rebuild it with nsvae study NAME (it is written from runs/*/final.json)"
                )
            parsed = {k: _number(v) for k, v in row.items()}
            if not isinstance(parsed.get("method"), str) or not isinstance(parsed.get("seed"), int):
                raise UserError(f"{path}: line {reader.line_num} has no method or no integer seed")
            rows.append(parsed)
        return rows


def in_flight_rows(study_dir: Path) -> list[dict[str, Any]]:
    """The committed curve points of the runs still training (``in-flight/<run>.csv``, :func:`export_in_flight`),
    as rows of :func:`read_table`. A run that has finished since is left out: its finished files hold its curve."""
    folder = study_dir / IN_FLIGHT
    if not folder.is_dir():
        return []
    done = finished_runs(study_dir)
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.csv")):
        if path.stem not in done:
            rows.extend(read_table(path))
    return rows


def commit_files(study_dir: Path, message: str, echo: Callable[[str], None]) -> bool:
    """``git add`` and ``git commit`` the study directory alone (other staged changes stay staged)."""
    top = _git("rev-parse", "--show-toplevel", cwd=study_dir)
    if top is None:
        raise UserError(f"--commit: {study_dir} is not inside a git repository")
    rel = Path(os.path.relpath(study_dir.resolve(), top)).as_posix()  # git takes "/" on every platform
    for attempt in range(5):  # another git command (a person's commit) may hold the index lock for a moment
        # --force: a study's files are committed even where an ignore rule (such as a bare "runs/") matches them.
        added = subprocess.run(["git", "add", "--force", "--", rel], cwd=top, capture_output=True, text=True)
        done = added.returncode == 0 and (
            subprocess.run(["git", "commit", "-q", "-m", message, "--", rel], cwd=top, capture_output=True, text=True)
        )
        if done and done.returncode == 0:
            return True
        if done and "nothing" in (done.stdout + done.stderr):
            return True
        time.sleep(2 + 3 * attempt)
    echo(f"nsvae study: could not commit {rel} (git busy or failing); the files are there, commit them by hand")
    return False


# -- the driver ---------------------------------------------------------------------------------------


def plan_study(sweep: Sweep, study_dir: Path) -> tuple[list[str], list[str]]:
    """``(done, left)``: the run names already in the study and those still to run, in file order."""
    done = finished_runs(study_dir)
    names = [r.name for r in sweep.runs]
    return [n for n in names if n in done], [n for n in names if n not in done]


def run_study(
    source: str | os.PathLike,
    *,
    studies_root: str | os.PathLike = STUDIES_DIR,
    work_dir: str | os.PathLike | None = None,
    workers: int = 1,
    device: str | None = None,
    commit: bool = False,
    only: Sequence[str] | None = None,
    stage: str | None = None,
    echo: Callable[[str], None] = print,
    slurm: SlurmRequest | None = None,
):
    """Run what is left of study ``source``; returns the sweep's outcome (or None when nothing was left).

    ``stage``: run only that ``[[stages]]`` entry's runs (the only way to run an ``on_request`` stage);
    ``slurm``: run each batch as SLURM jobs, with these resources over the study file's."""
    from .executors import run_sweep

    sweep = load_sweep(source)
    check_study(sweep)
    if slurm is not None:  # before any run is exported or planned
        from .executors import slurm_resources_for
        from .slurm_pool import check_submitit

        slurm_resources_for(sweep, source, slurm)
        check_submitit()
    study_dir = study_dir_for(sweep, studies_root)
    done, left = plan_study(sweep, study_dir)
    if only:
        unknown = [n for n in only if n not in {r.name for r in sweep.runs}]
        if unknown:
            raise UserError(f"the study has no run named {unknown[0]!r}; see the names with --dry-run")
        left = [n for n in left if n in only]
    batches = study_batches(sweep, left, stage)
    left = [n for batch in batches for n in batch]
    study_dir.mkdir(parents=True, exist_ok=True)
    spec = study_dir / SPEC_FILE
    if spec.is_file() and spec.read_text(encoding="utf-8") != sweep.text:
        raise UserError(
            f"{spec} holds a different study file than {source}; a study's runs must share one spec "
            "(name the changed study differently)"
        )
    if not spec.is_file():
        _write_text(spec, sweep.text)
    work = Path(work_dir) if work_dir is not None else Path("runs") / sweep.name
    code = code_version()  # now: the code this process (and the workers it forks) runs
    # Runs carried in the repository (a machine that was not kept) resume from their carried checkpoints; under the
    # working directory's lock, so that no other study process starts one of them meanwhile.
    if left and carried_runs(study_dir / IN_FLIGHT):
        from .executors import hold_sweep_dir

        lock = hold_sweep_dir(work)
        try:
            restore_carried(study_dir / IN_FLIGHT, work / RUNS_DIR, left, echo)
        finally:
            lock.release()
    # Runs that finished in the working directory but never reached the study (a kill between the two) go in now.
    if left and work.is_dir():
        from .executors import plan_sweep

        actions = plan_sweep(sweep, work)
        for name in [n for n in left if actions.get(n) == "done"]:
            export_run(work / RUNS_DIR / name, study_dir, sweep.run(name))
            left.remove(name)
            done.append(name)
            if commit:
                commit_files(study_dir, f"study {sweep.name}: run {name}", echo)
    echo(f"nsvae study: {sweep.name}: {len(done)} of {len(sweep.runs)} runs done; {len(left)} to run in {work}")
    write_tables(study_dir)
    if not left:
        return None

    def on_run_end(task, record: dict[str, Any]) -> None:
        if record.get("state") != "finished":
            return
        planned = sweep.run(task.name)
        # On SLURM the runs share no machine: no count of runs at once to record.
        export_run(Path(task.run_dir), study_dir, planned, record.get("seconds"), None if slurm else workers, code)
        write_tables(study_dir)
        n_done = len(finished_runs(study_dir))
        echo(f"nsvae study: {task.name} -> {study_dir / RUNS / task.name} ({n_done}/{len(sweep.runs)} done)")
        if commit:
            commit_files(study_dir, f"study {sweep.name}: run {task.name} ({n_done}/{len(sweep.runs)})", echo)

    outcome = None
    for batch in batches:
        outcome = run_sweep(
            source, work, workers=workers, device=device, only=batch, echo=echo, on_run_end=on_run_end, slurm=slurm
        )
        if outcome.signum is not None:
            break
    return outcome


#: A study runs every method's first seeds before any method's later ones, so that an unfinished study
#: holds complete comparisons (the same seeds of every method) as early as possible.
FIRST_SEEDS = 3


def study_batches(sweep: Sweep, names: Sequence[str], stage: str | None = None) -> list[list[str]]:
    """The runs of ``names`` to train now, in batches run one after the other: the file's ``[[stages]]`` in
    order, without the ``on_request`` ones (``stage`` names the one stage to run); without stages,
    :func:`seed_batches`."""
    if not sweep.stages:
        if stage is not None:
            raise UserError(f"--stage {stage!r}: the study file has no [[stages]]")
        return seed_batches(sweep, names)
    known = [s.name for s in sweep.stages]
    if stage is not None and stage not in known:
        raise UserError(f"--stage {stage!r}: the study's stages are {', '.join(known)}")
    wanted = set(names)
    batches = [
        [n for n in s.runs if n in wanted]
        for s in sweep.stages
        if (s.name == stage if stage is not None else not s.on_request)
    ]
    return [b for b in batches if b]


def stage_of(sweep: Sweep, run_name: str) -> str | None:
    """The name of the stage ``run_name`` belongs to (None without stages)."""
    return next((s.name for s in sweep.stages if run_name in s.runs), None)


def seed_batches(sweep: Sweep, names: Sequence[str]) -> list[list[str]]:
    """``names`` split into the runs of the study's :data:`FIRST_SEEDS` lowest seeds, then the rest."""
    seeds = sorted({r.seed for r in sweep.runs})
    first = set(seeds[:FIRST_SEEDS])
    wanted = set(names)
    batches = [
        [r.name for r in sweep.runs if r.name in wanted and r.seed in first],
        [r.name for r in sweep.runs if r.name in wanted and r.seed not in first],
    ]
    return [b for b in batches if b]
