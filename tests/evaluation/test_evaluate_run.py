"""``nsvae evaluate``: a trained run scored with shared encodings, eval.json written and merged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.config import Config, apply_overrides
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
