"""``nsvae evaluate``: a trained run scored with shared encodings, eval.json written and merged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.config import Config, apply_overrides, open_dataset
from nsvae.evaluation import evaluate_run, read_eval
from nsvae.train.latents import posterior_encoder

# Pool-based metrics only (no whole-dataset encoding), with small pools: a few seconds.
CHEAP = ["mig", "active_units", "unsupervised"]
SMALL = {"mig": {"num_train": 2000}, "active_units": {"num_train": 2000}, "unsupervised": {"num_train": 2000}}


@pytest.fixture(scope="module")
def trained_run(dsprites, tmp_path_factory):
    import nsvae.train

    config = apply_overrides(
        Config(),
        {
            "method": "nonsyn",
            "run.steps": 6,
            "run.device": "cpu",
            "model.z_dim": 4,
            "data.batch_size": 8,
            "log.every": 3,
            "log.checkpoint_every": 3,
            "log.tensorboard": False,
            "log.console": False,
            "log.progress": False,
        },
    )
    return nsvae.train(config, out=tmp_path_factory.mktemp("runs") / "run")


def test_evaluate_run_writes_eval_json(trained_run):
    result = evaluate_run(trained_run, metrics=CHEAP, overrides=SMALL, progress=False, n_jobs=1)
    stored = read_eval(trained_run.path)
    assert stored["step"] == 6 == result["step"]
    entry = stored["results"]["default"]
    assert set(entry["metrics"]) == set(CHEAP)
    assert entry["metrics"]["mig"]["protocol"]["num_train"] == 2000
    assert {"numpy", "scikit-learn", "nsvae"} <= set(entry["versions"])
    assert entry["seed"] == 0
    # More metrics of the same step are added, the others kept.
    evaluate_run(trained_run, metrics=["sap"], overrides={"sap": {"num_train": 1000, "num_test": 500}}, progress=False)
    assert set(read_eval(trained_run.path)["results"]["default"]["metrics"]) == {*CHEAP, "sap"}


def test_evaluation_is_deterministic(trained_run):
    a = evaluate_run(trained_run, metrics=["mig"], overrides=SMALL, progress=False, write=False)
    b = evaluate_run(trained_run, metrics=["mig"], overrides=SMALL, progress=False, write=False)
    assert a["metrics"]["mig"] == b["metrics"]["mig"]


def test_posterior_encoder_matches_the_run(trained_run, dsprites):
    encode = posterior_encoder(trained_run.load_model())
    obs = dsprites.observations_at(np.arange(5))
    mean, logvar = encode(obs)
    mu, lv = trained_run.encode(obs)
    np.testing.assert_allclose(mean, mu, rtol=1e-6)
    assert mean.shape == logvar.shape == (5, 4)


def test_cli_evaluate(trained_run, capsys):
    code = main(
        [
            "evaluate",
            str(trained_run.path),
            "--metrics",
            "active_units",
            "--set",
            "active_units.num_train=500",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "active_units" in out and "eval.json" in out
    stored = json.loads((trained_run.path / "eval.json").read_text())
    assert stored["results"]["default"]["metrics"]["active_units"]["protocol"]["num_train"] == 500


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "no/such/run"], "not a run directory"),
        (["evaluate", "RUN", "--metrics", "nope"], "unknown metric"),
        (["evaluate", "RUN", "--set", "mig"], "METRIC.PARAM=VALUE"),
    ],
)
def test_cli_errors(trained_run, capsys, argv, message):
    argv = [str(trained_run.path) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _copy_of(run, tmp_path):
    import shutil

    from nsvae.train import load_run

    shutil.copytree(run.path, tmp_path / "run", ignore=shutil.ignore_patterns("eval*.json"))
    return load_run(tmp_path / "run")


def _refusing(*args, **kwargs):
    from nsvae.metrics.utils import MetricInputError

    raise MetricInputError("this metric refuses the code\non two lines")


def test_a_metric_that_fails_costs_only_itself(trained_run, tmp_path, monkeypatch):
    """issue 29, case 14: the metrics that could be computed are kept when one fails mid-evaluation."""
    from nsvae.errors import UserError
    from nsvae.metrics.evaluate import METRICS

    run = _copy_of(trained_run, tmp_path)
    monkeypatch.setitem(METRICS, "active_units", dataclasses.replace(METRICS["active_units"], fn=_refusing))
    with pytest.raises(
        UserError,
        match=r"^1 metric\(s\) could not be computed \(active_units: this metric refuses "
        r"the code on two lines\); the others \(mig, unsupervised\) are in .*eval\.json$",
    ):
        evaluate_run(run, metrics=CHEAP, overrides=SMALL, progress=False, n_jobs=1)
    stored = read_eval(run.path)["results"]["default"]
    assert set(stored["metrics"]) == {"mig", "unsupervised"}
    assert "failed" not in stored
    # The same numbers as an evaluation in which nothing failed.
    monkeypatch.undo()
    whole = evaluate_run(run, metrics=CHEAP, overrides=SMALL, progress=False, write=False)
    assert stored["metrics"]["mig"] == whole["metrics"]["mig"]


def test_the_library_call_raises_unless_asked_to_record(trained_run, monkeypatch):
    from nsvae.metrics import evaluate
    from nsvae.metrics.evaluate import METRICS
    from nsvae.metrics.utils import MetricInputError

    monkeypatch.setitem(METRICS, "active_units", dataclasses.replace(METRICS["active_units"], fn=_refusing))
    data = open_dataset(trained_run.config)
    encode = posterior_encoder(trained_run.load_model())
    with pytest.raises(MetricInputError, match="refuses"):
        evaluate(data, represent_posterior=encode, metrics=CHEAP, overrides=SMALL, progress=False)
    seen: list[list[str]] = []
    result = evaluate(
        data,
        represent_posterior=encode,
        metrics=CHEAP,
        overrides=SMALL,
        progress=False,
        on_error="record",
        on_metric=lambda so_far: seen.append(list(so_far["metrics"])),
    )
    assert result["failed"] == {"active_units": "this metric refuses the code on two lines"}
    assert seen == [["mig"], ["mig"], ["mig", "unsupervised"]]
    with pytest.raises(MetricInputError, match="on_error"):
        evaluate(data, represent_posterior=encode, metrics=CHEAP, progress=False, on_error="ignore")


def test_an_interrupted_evaluation_keeps_what_it_computed(trained_run, tmp_path, monkeypatch):
    from nsvae.metrics.evaluate import METRICS

    run = _copy_of(trained_run, tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(METRICS, "unsupervised", dataclasses.replace(METRICS["unsupervised"], fn=interrupted))
    with pytest.warns(UserWarning, match=r"interrupted; the 2 metric\(s\) already computed \(mig, active_units\)"):
        with pytest.raises(KeyboardInterrupt):
            evaluate_run(run, metrics=CHEAP, overrides=SMALL, progress=False, n_jobs=1)
    assert set(read_eval(run.path)["results"]["default"]["metrics"]) == {"mig", "active_units"}


SIGTERM_SCRIPT = """
import dataclasses, sys, time
from pathlib import Path
from nsvae.cli import main
from nsvae.metrics.evaluate import METRICS

def slow(*args, **kwargs):
    Path(sys.argv[2]).write_text("started")
    time.sleep(120)

METRICS["unsupervised"] = dataclasses.replace(METRICS["unsupervised"], fn=slow)
sys.exit(main(["evaluate", sys.argv[1], "--metrics", "mig", "unsupervised", "--set", "mig.num_train=2000",
               "--n-jobs", "1", "--no-progress"]))
"""


def test_sigterm_during_evaluate_keeps_the_computed_metrics_and_exits_143(trained_run, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    run = _copy_of(trained_run, tmp_path)
    marker = tmp_path / "slow-metric-started"
    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, str(run.path), str(marker)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), process.stderr.read() if process.poll() is not None else "the slow metric never started"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "nsvae evaluate: stopped by SIGTERM"
    assert "the 1 metric(s) already computed (mig)" in stderr
    assert set(read_eval(run.path)["results"]["default"]["metrics"]) == {"mig"}


def test_no_table_scores_on_pools_only(trained_run, tmp_path, capsys, monkeypatch):
    """``--no-table``: the synergy metric (which asks for the whole-dataset table) runs on the pool without encoding
    the 737,280 images first."""
    import importlib

    evaluate_module = importlib.import_module("nsvae.metrics.evaluate")  # the package exports a function of that name
    run = _copy_of(trained_run, tmp_path)

    def no_table(*args, **kwargs):
        raise AssertionError("the whole dataset was encoded")

    monkeypatch.setattr(evaluate_module, "encode_table", no_table)
    argv = ["evaluate", str(run.path), "--metrics", "synergy", "--no-table", "--no-progress", "--json", "--n-jobs", "1"]
    argv += ["--set", "synergy.num_train=600", "--set", "synergy.num_samples=300"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["encoding"]["table"] is False
    assert result["metrics"]["synergy"]["protocol"]["reference"] == "pool"
