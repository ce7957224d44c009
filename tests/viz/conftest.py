"""Tiny trained runs laid out as a sweep directory, with evaluation results whose numbers the tests know."""

from __future__ import annotations

import json

import pytest

from nsvae.config import Config, apply_overrides

#: run name -> (method, seed, scores written into its eval.json)
REPORT_RUNS = {
    "nonsyn-s0": ("nonsyn", 0, {"mig": 0.1, "factor_vae_score": 0.5, "synergy": 0.3}),
    "nonsyn-s1": ("nonsyn", 1, {"mig": 0.3, "factor_vae_score": 0.7, "synergy": 0.1}),
    "vae-s0": ("vae", 0, {"mig": 0.05, "factor_vae_score": 0.4, "synergy": 0.2}),
}


def tiny_report_config(method: str, seed: int, name: str) -> Config:
    return apply_overrides(
        Config(),
        {
            "method": method,
            "run.name": name,
            "run.seed": seed,
            "run.steps": 4,
            "run.device": "cpu",
            "run.threads": 1,
            "model.z_dim": 3,
            "data.batch_size": 8,
            "log.every": 1,
            "log.checkpoint_every": 4,
            "log.traversal_every": 0,
            "log.tensorboard": False,
            "log.console": False,
            "log.progress": False,
        },
    )


def fake_evaluation(scores: dict[str, float], step: int = 4) -> dict:
    """An eval.json in the layout nsvae.evaluation writes, with the given headline scores."""
    metrics = {
        name: {"metric": name, "score": score, "protocol": {"name": "default", "num_train": 10}}
        for name, score in scores.items()
    }
    if "synergy" in metrics:
        metrics["synergy"].update(
            s_max=scores["synergy"],
            wms=-0.1,
            per_factor={"shape": {"s_max": scores["synergy"], "wms": -0.1, "i_joint": 0.5, "entropy": 1.0986}},
            proxy={"kl_worst": 0.25},
        )
    result = {"metrics": metrics, "seconds": dict.fromkeys(scores, 0.5), "seed": 0, "step": step, "protocol": "default"}
    return {"step": step, "results": {"default": result}}


@pytest.fixture(scope="session")
def report_sweep(dsprites, tmp_path_factory):
    """A directory ``SWEEP/runs/<name>`` of three tiny evaluated runs (2 Non-Syn seeds, 1 VAE)."""
    import nsvae.train

    sweep = tmp_path_factory.mktemp("sweep")
    for name, (method, seed, scores) in REPORT_RUNS.items():
        run = nsvae.train(tiny_report_config(method, seed, name), out=sweep / "runs" / name)
        (run.path / "eval.json").write_text(json.dumps(fake_evaluation(scores)), encoding="utf-8")
    return sweep
