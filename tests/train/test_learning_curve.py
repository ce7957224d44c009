"""Learning curves: evaluation during training changes nothing in training, follows its schedule, survives a resume,
and scores the same images in every run of one evaluation seed."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

from nsvae import data as nsvae_data
from nsvae.config import apply_overrides
from nsvae.errors import UserError
from nsvae.train import load_run, resume, start
from nsvae.train.learning_curve import (
    CURVE_FILE,
    CURVE_METRICS,
    CURVE_OVERRIDES,
    curve_overrides,
    evaluate_model,
    read_curve,
)

SMALL = {"eval.pool": 300, "eval.votes": 5}


def _weights(run) -> dict[str, torch.Tensor]:
    return run.read_checkpoint()["model"]


def test_a_run_with_curves_trains_exactly_the_weights_of_a_run_without(tiny, tmp_path):
    plain = start(tiny("nonsyn"), tmp_path / "plain")
    curved = start(tiny("nonsyn", **{"eval.every": 5, **SMALL}), tmp_path / "curved")
    a, b = _weights(plain), _weights(curved)
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [(e["step"], e["loss"]) for e in plain.log()]
    assert losses == [(e["step"], e["loss"]) for e in curved.log()]
    assert not (plain.path / CURVE_FILE).exists()


def test_the_curve_has_a_point_every_n_steps_and_at_the_last(tiny, tmp_path):
    run = start(tiny("vae", **{"eval.every": 5, **SMALL}), tmp_path / "run")
    curve = read_curve(run.path)
    assert [e["step"] for e in curve] == [5, 10, 12]
    for entry in curve:
        assert set(CURVE_METRICS) <= set(entry["metrics"])
        assert {"factor_vae_score", "mig", "chen_mig", "sap", "synergy", "synergy.wms", "synergy.proxy"} <= set(
            entry["scores"]
        )
        assert entry["seconds"] > 0 and entry["eval_seed"] == 0
        assert set(entry["part_seconds"]) == {"pool", *CURVE_METRICS}
        assert sum(entry["part_seconds"].values()) <= entry["seconds"]
        assert entry["metrics"]["chen_mig"]["protocol"]["population"] == "pool"
        assert entry["metrics"]["synergy"]["protocol"]["reference"] == "pool"
        assert entry["metrics"]["factor_vae_score"]["protocol"]["num_eval"] == 5


def test_a_resumed_run_has_the_curve_of_an_uninterrupted_one(tiny, tmp_path):
    config = tiny("vae", **{"eval.every": 3, "log.checkpoint_every": 4, **SMALL})
    whole = start(config, tmp_path / "whole")

    def interrupt(step, logs):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    part = start(config, tmp_path / "part", callback=interrupt)
    assert part.status()["step"] == 7
    # A kill between a point and the next checkpoint leaves a point the resumed run evaluates again:
    with open(part.path / CURVE_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": 9, "scores": {}, "metrics": {}, "seconds": 1.0}) + "\n")
    resumed = resume(part.path)
    steps = [e["step"] for e in read_curve(resumed.path)]
    assert steps == [3, 6, 9, 12]

    def scores(run):
        return [{k: v for k, v in e["scores"].items()} for e in read_curve(run.path)]

    assert scores(resumed) == scores(whole)


def test_a_torn_last_line_is_skipped_and_a_broken_one_elsewhere_is_an_error(tmp_path):
    good = json.dumps({"step": 2, "scores": {"mig": 0.1}, "metrics": {}, "seconds": 1.0})
    (tmp_path / CURVE_FILE).write_text(good + "\n" + '{"step": 4, "sco', encoding="utf-8")
    assert [e["step"] for e in read_curve(tmp_path)] == [2]
    (tmp_path / CURVE_FILE).write_text('{"step": 4, "sco\n' + good + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1"):
        read_curve(tmp_path)


class _Recording:
    """A dataset that records the factors it is asked to draw images for."""

    def __init__(self, data):
        self._data = data
        self.asked: list[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self._data, name)

    def sample_observations_from_factors(self, factors, rng):
        self.asked.append(np.array(factors))
        return self._data.sample_observations_from_factors(factors, rng)


class _LinearEncoder(torch.nn.Module):
    """A stand-in encoder whose codes vary with the image (so that the FactorVAE score draws its votes)."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(64 * 64, 4, generator=g))
        self.z_dim = 4

    def encode(self, x):
        mu = x.flatten(1) @ self.w / 10
        return mu, torch.full_like(mu, -2.0)


def test_two_models_are_scored_on_the_same_images(dsprites):
    dataset = nsvae_data.load("dsprites", progress=False)
    asked, scores = [], []
    for seed in (0, 1):
        recording = _Recording(dataset)
        result = evaluate_model(_LinearEncoder(seed), recording, seed=7, pool=300, votes=5)
        asked.append(np.concatenate(recording.asked))
        scores.append(result["metrics"]["factor_vae_score"])
    assert scores[0]["num_active_dims"] > 0 and scores[1]["num_active_dims"] > 0
    assert len(asked[0]) == 300 + 150 + 2 * 5 * 64  # the pool, then the votes
    assert np.array_equal(asked[0], asked[1])


def test_the_default_curve_protocol_is_the_documented_one():
    assert curve_overrides() == CURVE_OVERRIDES
    small = curve_overrides(pool=600, votes=20)
    assert small["synergy"] == {"reference": "pool", "num_train": 600, "num_samples": 600}
    assert small["sap"] == {"num_train": 600, "num_test": 300}
    assert small["factor_vae_score"] == {"num_variance_estimate": 600, "num_train": 20, "num_eval": 20}


@pytest.mark.parametrize("key, value", [("eval.every", -1), ("eval.pool", 10), ("eval.votes", 0), ("eval.seed", -1)])
def test_bad_eval_settings_are_refused_with_the_key(key, value):
    from nsvae.config import Config

    with pytest.raises(UserError, match=key.split(".")[1]):
        apply_overrides(Config(), {key: value})


def test_the_curve_is_off_by_default_and_outside_a_runs_setting():
    from nsvae.config import Config
    from nsvae.config.schema import defines_setting

    assert Config().eval.every == 0
    assert not defines_setting("eval.every") and not defines_setting("eval.seed")


def test_run_log_is_untouched_by_curves(tiny, tmp_path):
    run = start(tiny("vae", **{"eval.every": 6, **SMALL}), tmp_path / "run")
    assert all("recon" in e for e in load_run(run.path).log())


def test_curves_on_a_dataset_without_factors_are_refused_with_the_key(tmp_path):
    from nsvae.config import Config
    from nsvae.train.learning_curve import CurveRecorder
    from nsvae.train.run import Run

    config = apply_overrides(Config(), {"eval.every": 5})
    with pytest.raises(UserError, match="eval.every = 5: learning curves need a dataset with ground-truth factors"):
        CurveRecorder(Run(tmp_path), config, object())
    assert not CurveRecorder(Run(tmp_path), Config(), object()).due(5)


class _FactorEncoder(torch.nn.Module):
    """A 'model' whose posterior sits on the factors of a FactorGrid observation (its factor vector)."""

    z_dim = 3

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([1.0, 0.5, 2.0]))

    def encode(self, x):
        factors = x.flatten(1)[:, :3]
        return factors * self.scale, torch.full_like(factors, -4.0)


def test_whole_dataset_curves_use_the_final_evaluations_synergy_and_chen_mig_protocols():
    from nsvae.config.schema import EvalConfig
    from nsvae.data.factor_grid import FactorGrid

    assert curve_overrides(whole_dataset=True) == {"factor_vae_score": {"num_train": 500, "num_eval": 500}}
    small = curve_overrides(pool=300, votes=5, whole_dataset=True)
    assert "reference" not in small["synergy"] and "population" not in small["chen_mig"]
    grid = FactorGrid((4, 5, 6))
    model = _FactorEncoder()
    whole = evaluate_model(model, grid, seed=0, pool=100, votes=5, whole_dataset=True)
    pooled = evaluate_model(model, grid, seed=0, pool=100, votes=5)
    assert whole["encoding"]["table"] is True and pooled["encoding"]["table"] is False
    assert whole["metrics"]["synergy"]["protocol"]["reference"] == "table"
    assert pooled["metrics"]["synergy"]["protocol"]["reference"] == "pool"
    assert whole["metrics"]["chen_mig"]["protocol"]["population"] == "dataset"
    assert pooled["metrics"]["chen_mig"]["protocol"]["population"] == "pool"
    assert model.training  # back in train mode
    with pytest.raises(ValueError, match="whole_dataset must be true or false"):
        EvalConfig(whole_dataset="yes")


def test_whole_dataset_curves_refuse_a_dataset_without_fixed_images(tmp_path):
    from nsvae.train.learning_curve import CurveRecorder

    class Noisy:
        factor_sizes = (3,)
        draws_noise = True

        def observations_at(self, idx):
            raise AssertionError("not reached")

    class FakeRun:
        path = tmp_path

    from nsvae.config.schema import Config

    config = apply_overrides(Config(), {"eval.every": 5, "eval.whole_dataset": True})
    with pytest.raises(UserError, match="eval.whole_dataset = true: .* draws new noise per image"):
        CurveRecorder(FakeRun(), config, Noisy())
