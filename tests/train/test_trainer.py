"""The trainer: one run per method, exact resume, checkpoints, divergence, signals, the Python API."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch

import nsvae
from nsvae import objectives
from nsvae.config import apply_overrides
from nsvae.errors import UserError
from nsvae.train import Run, TrainingDiverged, load_run, resume, start

CORE_KEYS = {"step", "recon", "kl", "kl_per_dim", "synergy_proxy", "loss", "steps_per_s", "elapsed_s"}
TIMING_KEYS = {"steps_per_s", "elapsed_s"}


@pytest.mark.parametrize("method", list(objectives.METHODS))
def test_one_run_per_method(tiny, tmp_path, method):
    run = start(tiny(method), tmp_path / "run")
    assert run.state == "finished" and run.status()["step"] == 12
    lines = run.log()
    assert [line["step"] for line in lines] == [4, 8, 12]
    for line in lines:
        assert CORE_KEYS <= set(line)
        assert len(line["kl_per_dim"]) == 4
        assert all(np.isfinite(line[k]) for k in ("recon", "kl", "synergy_proxy", "loss"))
        assert line["kl"] == pytest.approx(sum(line["kl_per_dim"]))
    if method == "nonsyn":
        assert {"best", "worst", "best_rate", "worst_rate", "syn"} <= set(lines[-1])
        rates = np.add(lines[-1]["best_rate"], lines[-1]["worst_rate"])
        assert np.allclose(rates, 1.0)  # every latent is in exactly one of the two sets each step
        assert sum(lines[-1]["best_share"]) == pytest.approx(1.0)  # the original's count / total count
    if method == "factor_vae":
        assert {"tc", "d_loss"} <= set(lines[-1])
    assert [s for s, _ in run.checkpoints()] == [10, 12]  # every 5 steps, the final one, the last 2 kept
    assert sorted(p.name for p in run.traversal_dir.iterdir()) == ["step_0000006.png", "step_0000012.png"]
    config = run.config  # the resolved config: data seed and dataset size filled in
    assert config.data.seed == 3 and config.common.dataset_size == 737_280
    assert config.method == method


def _params(run: Run) -> dict[str, torch.Tensor]:
    state = run.read_checkpoint()
    tensors = dict(state["model"])
    tensors.update({f"obj.{k}": v for k, v in _flatten(state["objective"])})
    return tensors


def _flatten(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{prefix}.{i}")


def _same_numbers(a: Run, b: Run) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key
    strip = [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in a.log()]
    assert strip == [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in b.log()]
    sa, sb = a.read_checkpoint(), b.read_checkpoint()
    assert sa["loader"] == sb["loader"] and sa["loader2"] == sb["loader2"]
    assert torch.equal(sa["noise_rng"], sb["noise_rng"])


@pytest.mark.parametrize("method", list(objectives.METHODS))
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tiny, tmp_path, method):
    config = tiny(method, **{"log.checkpoint_every": 4, "log.keep_checkpoints": 5})
    whole = start(config, tmp_path / "whole")

    def interrupt(step, logs):
        if step == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    part = start(config, tmp_path / "part", callback=interrupt)
    status = part.status()
    assert (status["state"], status["step"], status["signal"], status["exit_code"]) == (
        "interrupted",
        6,
        "SIGTERM",
        143,
    )
    assert [s for s, _ in part.checkpoints()] == [4, 6]
    resumed = resume(tmp_path / "part")
    assert resumed.state == "finished"
    assert [s for s, _ in resumed.checkpoints()] == [4, 6, 8, 12]
    _same_numbers(whole, resumed)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers were put back


def test_extending_a_finished_run_equals_training_longer(tiny, tmp_path):
    long = start(tiny("vae"), tmp_path / "long")
    short = start(tiny("vae", **{"run.steps": 7}), tmp_path / "short")
    with pytest.raises(UserError, match="finished at step 7; pass --steps"):
        resume(short)
    with pytest.raises(UserError, match="already at step 7"):
        resume(short, steps=5)
    extended = resume(short, steps=12)
    assert extended.config.run.steps == 12
    pa, pb = _params(long), _params(extended)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_extending_a_run_with_the_pytorch04_adam_equals_training_longer(tiny, tmp_path):
    changes = {"optim.eps_placement": "pytorch0.4"}
    long = start(tiny("nonsyn", **changes), tmp_path / "long")
    short = start(tiny("nonsyn", **changes, **{"run.steps": 7}), tmp_path / "short")
    extended = resume(short, steps=12)
    assert extended.config.optim.eps_placement == "pytorch0.4"
    pa, pb = _params(long), _params(extended)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    modern = _params(start(tiny("nonsyn"), tmp_path / "modern"))
    assert not all(torch.equal(pa[k], modern[k]) for k in pa)  # the option changes the numbers


def test_a_run_from_before_eps_placement_and_the_mws_default_resumes_as_it_was(tiny, tmp_path):
    # A run directory written before optim.eps_placement existed and while beta_tcvae.estimator defaulted
    # to "mss": its config.toml has every key of its day (estimator = "mss" among them), none for eps_placement.
    config = tiny("beta_tcvae", **{"beta_tcvae.estimator": "mss"})
    long = start(config, tmp_path / "long")
    old = start(apply_overrides(config, {"run.steps": 7}), tmp_path / "old")
    path = old.path / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert 'eps_placement = "modern"' in text and 'estimator = "mss"' in text
    path.write_text(text.replace('eps_placement = "modern"\n', ""), encoding="utf-8")
    extended = resume(old.path, steps=12)
    assert (extended.config.optim.eps_placement, extended.config.beta_tcvae.estimator) == ("modern", "mss")
    pa, pb = _params(long), _params(extended)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_keep_last_checkpoints(tiny, tmp_path):
    run = start(tiny("vae", **{"log.checkpoint_every": 2, "log.keep_checkpoints": 3}), tmp_path / "run")
    assert [s for s, _ in run.checkpoints()] == [8, 10, 12]
    # no temporary files left; each checkpoint has its checksum beside it
    assert sorted(p.name for p in run.checkpoint_dir.iterdir() if p.suffix != ".pt") == [
        f"step_{s:07d}.pt.sha256" for s in (8, 10, 12)
    ]
    state = run.read_checkpoint(10)
    assert state["step"] == 10 and state["loader"]["position"] == 10


def _fail_at(monkeypatch, step: int, how: str):
    from nsvae.objectives.selection import NonFiniteKL

    cls = objectives.METHODS["vae"][1]
    original = cls.train_step

    def train_step(self, x, x2=None, generator=None):
        logs = original(self, x, x2, generator)
        if self.iteration == step:
            if how == "raise":
                raise NonFiniteKL("KL per latent must be finite, got [nan, 0.1]")
            logs["loss"] = float("inf") if how == "inf" else float("nan")
        return logs

    monkeypatch.setattr(cls, "train_step", train_step)


@pytest.mark.parametrize("how", ["inf", "nan", "raise"])
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch, how):
    _fail_at(monkeypatch, 7, how)
    with pytest.raises(TrainingDiverged) as info:
        start(tiny("vae"), tmp_path / "run")
    message = str(info.value)
    assert "training diverged at step 7" in message and "step_0000005.pt" in message
    run = load_run(tmp_path / "run")
    status = run.status()
    assert status["state"] == "failed" and status["step"] == 5 and status["error"] == message
    assert "\n" not in message
    assert [s for s, _ in run.checkpoints()] == [5]  # the bad state was not written
    assert [line["step"] for line in run.log()] == [4]


def test_a_divergence_before_any_checkpoint_says_so(tiny, tmp_path, monkeypatch):
    _fail_at(monkeypatch, 2, "nan")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written before"):
        start(tiny("vae"), tmp_path / "run")


def test_run_directory_refuses_to_be_reused(tiny, tmp_path):
    start(tiny("vae", **{"run.steps": 2}), tmp_path / "run")
    with pytest.raises(UserError, match="already holds a run; continue it with `nsvae train --resume"):
        start(tiny("vae"), tmp_path / "run")
    with pytest.raises(UserError, match="not a run directory"):
        resume(tmp_path / "nothing")


def test_a_run_is_trained_by_one_process_at_a_time(tiny, tmp_path):
    import subprocess
    import sys

    run = start(tiny("vae", **{"run.steps": 2}), tmp_path / "run")
    code = "import sys, time; from nsvae.train import Run; h = Run(sys.argv[1]).lock(); h.__enter__(); print('held')"
    code += "; time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"being trained by another process [(]pid {holder.pid} "):
            resume(run, steps=4)
    finally:
        holder.kill()
        holder.wait()
    assert resume(run, steps=4).status()["step"] == 4  # the holder's death freed the lock


def test_load_run_encode_decode(tiny, tmp_path, dsprites):
    start(tiny("nonsyn"), tmp_path / "run")
    run = nsvae.load_run(tmp_path / "run")
    images = dsprites.observations_at([0, 1, 2])
    mu, logvar = run.encode(images)
    assert isinstance(mu, np.ndarray) and mu.shape == (3, 4) and logvar.shape == (3, 4)
    pictures = run.decode(mu)
    assert isinstance(pictures, np.ndarray) and pictures.shape == (3, 1, 64, 64)
    assert pictures.min() >= 0 and pictures.max() <= 1
    mu_t, _ = run.encode(torch.from_numpy(images[0]))  # one image, torch in -> torch out
    assert isinstance(mu_t, torch.Tensor) and torch.allclose(mu_t[0], torch.from_numpy(mu[0]))
    assert run.decode(mu_t, logits=True).shape == (1, 1, 64, 64)
    model = run.load_model(step=10)
    assert not model.training and model.z_dim == 4
    assert not np.allclose(run.encode(images)[0], mu)  # step 10's encoder, not step 12's
    with pytest.raises(UserError, match="no checkpoint of step 3"):
        run.load_model(step=3)
    with pytest.raises(UserError, match="not a run directory"):
        nsvae.load_run(tmp_path)


def test_python_api_with_keys_and_tensorboard(tiny, tmp_path):
    config = apply_overrides(tiny("beta_vae"), {"log.tensorboard": True})
    run = nsvae.train(config, tmp_path / "run", steps=4, beta_vae__beta=2, overrides=["log.every=2"])
    assert run.config.run.steps == 4 and run.config.beta_vae.beta == 2.0 and run.config.log.every == 2
    assert [line["step"] for line in run.log()] == [2, 4]
    events = list(run.events_dir.iterdir())
    assert events and events[0].name.startswith("events.out.tfevents")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.events_dir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/recon", "loss/kl", "synergy_proxy", "kl_per_dim/z0", "kl_per_dim/z3", "beta_vae/loss"} - tags <= {
        "beta_vae/loss"
    }
    assert {"loss/recon", "loss/kl", "synergy_proxy", "kl_per_dim/z3"} <= tags
    assert [e.step for e in acc.Scalars("loss/recon")] == [2, 4]


def test_log_lines_are_json(tiny, tmp_path):
    run = start(tiny("nonsyn", **{"run.steps": 4}), tmp_path / "run")
    for raw in run.log_path.read_text().splitlines():
        json.loads(raw)


def test_deterministic_mode_runs_and_restores_the_global_flags(tiny, tmp_path):
    plain = start(tiny("factor_vae", **{"run.steps": 4}), tmp_path / "plain")
    strict = start(tiny("factor_vae", **{"run.steps": 4, "run.deterministic": True}), tmp_path / "strict")
    assert strict.state == "finished"
    assert not torch.are_deterministic_algorithms_enabled()
    pa, pb = _params(plain), _params(strict)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)  # on the CPU the default path is deterministic already


def test_training_leaves_the_callers_random_state_alone(tiny, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    start(tiny("vae", **{"run.steps": 2}), tmp_path / "run")
    assert torch.equal(torch.rand(3), expected)
