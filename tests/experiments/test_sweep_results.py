"""The results table of a sweep: rows, exact means and standard deviations over seeds, CSV, SQLite, the CLI."""

from __future__ import annotations

import csv
import json
import math
import sqlite3

import pytest

from nsvae.atomic import write_json_atomic
from nsvae.cli import main
from nsvae.experiments.sweep import loads_sweep
from nsvae.experiments.sweep_results import aggregate, format_table, gather_results, write_results
from nsvae.train.run import Run

SPEC = """
name = "fake"
seeds = [0, 1, 2]
[base]
config = "quick-nonsyn"
[grid]
"nonsyn.alpha" = [2.5, 5.0]
"""

# Headline scores written to eval.json: (alpha, seed) -> (mig, sap). Seed 2 of alpha 5 failed.
SCORES = {
    (2.5, 0): (0.10, 0.50),
    (2.5, 1): (0.30, 0.70),
    (2.5, 2): (0.20, 0.30),
    (5.0, 0): (0.40, 0.20),
    (5.0, 1): (0.60, 0.40),
}


@pytest.fixture
def fake_sweep(tmp_path):
    """A sweep directory as `nsvae sweep` leaves it, with known eval.json scores (no training)."""
    sweep = loads_sweep(SPEC)
    out = tmp_path / "fake"
    records = {}
    for planned in sweep.runs:
        run = Run(out / "runs" / planned.name)
        key = (planned.config.nonsyn.alpha, planned.seed)
        run.write_config(planned.config)
        if key in SCORES:
            mig, sap = SCORES[key]
            run.set_status("finished", step=1500)
            eval_doc = {
                "step": 1500,
                "results": {
                    "default": {
                        "seed": 0,
                        "metrics": {
                            "mig": {"score": mig, "protocol": {}, "per_factor": [mig] * 5},
                            "sap": {"score": sap, "protocol": {}, "num_factors": 5},
                        },
                    }
                },
            }
            write_json_atomic(run.path / "eval.json", eval_doc)
            with open(run.log_path, "w", encoding="utf-8") as handle:
                handle.write(
                    json.dumps({"step": 1500, "recon": 100.0 + planned.seed, "kl": 10.0, "loss": 110.0}) + "\n"
                )
            records[planned.name] = {"state": "finished", "setting": planned.setting, "seed": planned.seed}
        else:
            run.set_status("failed", step=500, error="TrainingDiverged: loss is nan")
            records[planned.name] = {
                "state": "failed",
                "setting": planned.setting,
                "seed": planned.seed,
                "error": "TrainingDiverged: loss is nan",
            }
    write_json_atomic(
        out / "sweep.json",
        {"name": "fake", "order": [r.name for r in sweep.runs], "runs": records, "evaluation": {"protocol": "default"}},
    )
    return out


def test_gather_results_has_one_row_per_run_with_config_and_metrics(fake_sweep):
    rows = gather_results(fake_sweep)
    assert [r["run"] for r in rows] == [
        "nonsyn-alpha2.5-seed0",
        "nonsyn-alpha2.5-seed1",
        "nonsyn-alpha2.5-seed2",
        "nonsyn-alpha5-seed0",
        "nonsyn-alpha5-seed1",
        "nonsyn-alpha5-seed2",
    ]
    first = rows[0]
    assert (first["setting"], first["seed"], first["state"], first["step"]) == ("nonsyn-alpha2.5", 0, "finished", 1500)
    assert (first["metric.mig"], first["metric.sap"]) == (0.10, 0.50)
    # A metric's other top-level numbers are columns too (lists are not).
    assert first["metric.sap.num_factors"] == 5.0 and not any(k.startswith("metric.mig.") for k in first)
    assert (first["config.nonsyn.alpha"], first["config.method"], first["config.run.steps"]) == (2.5, "nonsyn", 1500)
    assert (first["train.recon"], first["train.kl"]) == (100.0, 10.0)
    failed = rows[-1]
    assert failed["state"] == "failed" and failed["error"] == "TrainingDiverged: loss is nan"
    assert "metric.mig" not in failed


def test_aggregate_gives_exact_means_and_sample_stds_over_seeds(fake_sweep):
    aggregates = aggregate(gather_results(fake_sweep))
    assert [a["setting"] for a in aggregates] == ["nonsyn-alpha2.5", "nonsyn-alpha5"]
    a25, a5 = aggregates
    assert (a25["n"], a25["runs"], a25["seeds"]) == (3, 3, [0, 1, 2])
    assert (a5["n"], a5["runs"], a5["seeds"]) == (2, 3, [0, 1])
    assert a25["metric.mig"] == pytest.approx((0.2, 0.1), abs=1e-12)  # values 0.1, 0.3, 0.2
    assert a25["metric.sap"] == pytest.approx((0.5, 0.2), abs=1e-12)  # 0.5, 0.7, 0.3
    assert a5["metric.mig"] == pytest.approx((0.5, math.sqrt(0.02)), abs=1e-12)  # 0.4, 0.6 (the failed seed left out)
    assert a25["train.recon"] == pytest.approx((101.0, 1.0))
    single = aggregate(gather_results(fake_sweep)[:1])
    assert single[0]["metric.mig"][0] == 0.1 and math.isnan(single[0]["metric.mig"][1])
    table = format_table(aggregates, ["metric.mig", "metric.sap"])
    assert table.splitlines() == [
        "setting            n            mig            sap",
        "nonsyn-alpha2.5    3  0.200 ± 0.100  0.500 ± 0.200",
        "nonsyn-alpha5    2/3  0.500 ± 0.141  0.300 ± 0.141",
    ]


def test_results_files_csv_and_sqlite(fake_sweep):
    rows = gather_results(fake_sweep)
    aggregates = aggregate(rows)
    csv_path, sqlite_path = write_results(fake_sweep, rows, aggregates)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["run"] for r in table] == [r["run"] for r in rows]
    assert table[1]["metric.mig"] == "0.3" and table[1]["config.nonsyn.alpha"] == "2.5"
    with sqlite3.connect(sqlite_path) as db:
        runs = db.execute('SELECT run, "metric.mig" FROM runs WHERE state = "finished" ORDER BY run').fetchall()
        settings = db.execute('SELECT setting, n, "metric.mig.mean", "metric.mig.std" FROM settings').fetchall()
    assert len(runs) == 5 and runs[0] == ("nonsyn-alpha2.5-seed0", 0.1)
    assert settings[0][:2] == ("nonsyn-alpha2.5", 3) and settings[0][2:] == pytest.approx((0.2, 0.1))
    assert settings[1][:2] == ("nonsyn-alpha5", 2) and settings[1][2:] == pytest.approx((0.5, math.sqrt(0.02)))


def test_cli_results_prints_mean_and_std_per_setting(fake_sweep, capsys):
    assert main(["results", str(fake_sweep), "--columns", "mig", "sap"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "n", "mig", "sap"]
    assert lines[1].split() == ["nonsyn-alpha2.5", "3", "0.200", "±", "0.100", "0.500", "±", "0.200"]
    assert lines[2].split() == ["nonsyn-alpha5", "2/3", "0.500", "±", "0.141", "0.300", "±", "0.141"]
    assert lines[3] == "failed: nonsyn-alpha5-seed2: TrainingDiverged: loss is nan"
    assert lines[4].startswith("6 runs; table: ")
    assert (fake_sweep / "results.csv").is_file() and (fake_sweep / "results.sqlite").is_file()
    assert main(["results", str(fake_sweep), "--columns", "mig", "--markdown"]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[:3] == ["| setting | n | mig |", "|---|---|---|", "| nonsyn-alpha2.5 | 3 | 0.200 ± 0.100 |"]
    assert main(["results", str(fake_sweep), "--columns", "mgi"]) == 2
    err = capsys.readouterr().err
    assert "no column 'mgi'" in err and err.count("\n") == 1


def test_only_the_metrics_eval_json_lacks_are_evaluated_again(tmp_path):
    from nsvae.evaluation import write_eval
    from nsvae.experiments.executors import metrics_to_evaluate
    from nsvae.experiments.sweep import EvaluationSpec
    from nsvae.metrics.protocols import resolve

    planned = loads_sweep(SPEC).runs[0]
    run = Run(tmp_path / "run")
    run.write_config(planned.config)
    spec = EvaluationSpec(metrics=("mig", "sap"), overrides={"sap": {"num_train": 500}})
    assert metrics_to_evaluate(run, spec) == ["mig", "sap"]  # no checkpoint, no eval.json
    run.write_checkpoint({"step": 1500}, 1500, keep=1)
    scored = {"score": 0.1, "protocol": resolve("mig", "default")}
    write_eval(run.path, 1500, "default", {"seed": 0, "metrics": {"mig": scored}, "seconds": {}})
    assert metrics_to_evaluate(run, spec) == ["sap"]
    # A protocol parameter that changed, another evaluation seed, a newer checkpoint: evaluated again.
    assert metrics_to_evaluate(run, EvaluationSpec(metrics=("mig",), overrides={"mig": {"num_bins": 30}})) == ["mig"]
    assert metrics_to_evaluate(run, EvaluationSpec(metrics=("mig",), seed=1)) == ["mig"]
    assert metrics_to_evaluate(run, EvaluationSpec(metrics=("mig",))) == []
    # A parameter the metric resolves itself ("auto") matches what it recorded.
    chen = {"score": 0.1, "protocol": {**resolve("chen_mig", "default"), "exclude_factors": ["shape"]}}
    write_eval(run.path, 1500, "default", {"seed": 0, "metrics": {"chen_mig": chen}, "seconds": {}})
    assert metrics_to_evaluate(run, EvaluationSpec(metrics=("mig", "chen_mig"))) == []
    run.write_checkpoint({"step": 3000}, 3000, keep=1)
    assert metrics_to_evaluate(run, EvaluationSpec(metrics=("mig",))) == ["mig"]
    assert metrics_to_evaluate(run, EvaluationSpec(enabled=False)) == []


def test_a_killed_worker_is_recorded_in_the_run_status_and_skipped_until_retried(tmp_path):
    from nsvae.experiments.executors import Task, _record_failure, plan_run
    from nsvae.experiments.sweep import EvaluationSpec

    planned = loads_sweep(SPEC).runs[0]
    run = Run(tmp_path / "run")
    run.write_config(planned.config)
    run.write_checkpoint({"step": 500}, 500, keep=1)
    run.set_status("running", step=500)
    task = Task(planned.name, str(run.path), str(tmp_path / "log"), {}, EvaluationSpec().to_dict(), 1)
    killed = {"state": "failed", "phase": "train", "error": "the worker process was killed by SIGKILL (out of memory?)"}
    assert _record_failure(task, killed)["phase"] == "train"
    assert run.status()["state"] == "failed" and "SIGKILL" in run.status()["error"]
    assert plan_run(planned, run.path, EvaluationSpec()) == "failed"
    assert plan_run(planned, run.path, EvaluationSpec(), retry_failed=True) == "resume"
    # Killed while evaluating: training stays finished, the evaluation error is recorded.
    run.set_status("finished", step=1500)
    assert _record_failure(task, killed)["phase"] == "evaluate"
    assert run.status()["state"] == "finished" and "SIGKILL" in run.status()["evaluation_error"]
    assert plan_run(planned, run.path, EvaluationSpec()) == "failed"
    assert plan_run(planned, run.path, EvaluationSpec(), retry_failed=True) == "evaluate"


MIXED = """
name = "mixed"
seeds = [0, 1]
[[runs]]
config = "quick-nonsyn"
set = { "model.fc_relus" = "paper" }
[[runs]]
config = "quick-factor-vae"
"""


def _mixed_sweep(out, text=MIXED):
    """Finished runs of ``text`` with a synergy result (S_max, WMS) in eval.json; no training."""
    sweep = loads_sweep(text)
    records = {}
    for planned in sweep.runs:
        run = Run(out / "runs" / planned.name)
        run.write_config(planned.config)
        run.set_status("finished", step=planned.config.run.steps)
        s_max, wms = (0.4, 0.3) if planned.config.method == "nonsyn" else (0.2, -0.1)
        s_max, wms = s_max + 0.02 * planned.seed, wms + 0.02 * planned.seed
        synergy = {"score": s_max, "s_max": s_max, "wms": wms, "protocol": {}, "per_factor": {}}
        eval_doc = {"step": 1, "results": {"default": {"seed": 0, "metrics": {"synergy": synergy}}}}
        write_json_atomic(run.path / "eval.json", eval_doc)
        records[planned.name] = {"state": "finished", "setting": planned.setting, "seed": planned.seed}
    write_json_atomic(out / "sweep.json", {"name": "mixed", "order": [r.name for r in sweep.runs], "runs": records})
    return out


def test_the_synergy_wms_stands_beside_its_s_max_in_the_default_table(tmp_path, capsys):
    rows = gather_results(_mixed_sweep(tmp_path / "mixed"))
    aggregates = aggregate(rows)
    assert [k for k in aggregates[0] if k.startswith("metric.")] == ["metric.synergy", "metric.synergy.wms"]
    assert aggregates[0]["metric.synergy"] == pytest.approx((0.41, math.sqrt(2e-4)))
    assert aggregates[0]["metric.synergy.wms"] == pytest.approx((0.31, math.sqrt(2e-4)))
    assert aggregates[1]["metric.synergy.wms"] == pytest.approx((-0.09, math.sqrt(2e-4)))
    assert main(["results", str(tmp_path / "mixed")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "n", "synergy", "synergy.wms"]
    assert lines[1].split() == ["nonsyn", "2", "0.410", "±", "0.014", "0.310", "±", "0.014"]


def test_results_warn_when_the_settings_differ_outside_the_objectives(tmp_path, fake_sweep, capsys):
    # (--no-udr: these runs have no checkpoints, which UDR would name on stderr too.)
    # The Non-Syn runs on the paper's network for 1,500 steps, FactorVAE on the final one for 1,200.
    assert main(["results", str(_mixed_sweep(tmp_path / "mixed")), "--no-udr"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out
    lines = err.splitlines()
    assert lines[0].startswith("warning: the settings compared here differ outside their objectives' own tables")
    assert lines[1:] == [
        "  - run.steps: 1500 (nonsyn); 1200 (factor_vae)",
        '  - model.fc_relus: "paper" (nonsyn); "final" (factor_vae)',
    ]
    # Runs that differ only in their objective's table (alpha) and seeds: no warning.
    assert main(["results", str(fake_sweep), "--no-udr"]) == 0
    assert capsys.readouterr().err == ""
    # Nor when a sweep's [set] puts every method on one network and budget.
    matched = MIXED + '[set]\n"model.fc_relus" = "paper"\n"run.steps" = 1500\n'
    assert main(["results", str(_mixed_sweep(tmp_path / "matched", matched)), "--json", "--no-udr"]) == 0
    assert capsys.readouterr().err == ""


def test_udr_scores_each_setting_of_two_or_more_finished_runs_from_their_kept_samples(fake_sweep, capsys):
    import numpy as np

    from nsvae.evaluation import write_udr_sample
    from nsvae.experiments.sweep_results import add_udr
    from nsvae.metrics.udr import udr_scores

    rng = np.random.default_rng(0)
    codes = {}
    for alpha, seed in SCORES:
        name = f"nonsyn-alpha{alpha:g}-seed{seed}"
        codes[name] = rng.standard_normal((200, 3))
        sample = {"factors": np.zeros((200, 1), np.int64), "mean": codes[name], "logvar": np.full((200, 3), -3.0)}
        write_udr_sample(fake_sweep / "runs" / name / "udr_sample.npz", {**sample, "protocol": {"step": 1500}})
    rows = gather_results(fake_sweep)
    assert add_udr(fake_sweep, rows) == []  # no checkpoints: the kept samples are read
    by_run = {r["run"]: r for r in rows}
    for alpha, seeds in ((2.5, (0, 1, 2)), (5, (0, 1))):
        names = [f"nonsyn-alpha{alpha:g}-seed{s}" for s in seeds]
        expected = udr_scores([codes[n] for n in names], [np.full((200, 3), -3.0)] * len(names))["model_scores"]
        assert [by_run[n]["metric.udr"] for n in names] == pytest.approx(expected)
    assert "metric.udr" not in by_run["nonsyn-alpha5-seed2"]  # failed: not scored
    # The CLI shows it as a column; a finished run without sample or checkpoint is named on stderr.
    (fake_sweep / "runs" / "nonsyn-alpha5-seed1" / "udr_sample.npz").unlink()
    assert main(["results", str(fake_sweep)]) == 0
    captured = capsys.readouterr()
    header = captured.out.splitlines()[0].split()
    assert "udr" in header
    assert captured.err.splitlines() == [
        "nsvae results: warning: UDR leaves out 1 run(s) with neither a checkpoint nor udr_sample.npz: "
        "nonsyn-alpha5-seed1"
    ]
    assert main(["results", str(fake_sweep), "--no-udr"]) == 0
    assert "udr" not in capsys.readouterr().out.splitlines()[0].split()
