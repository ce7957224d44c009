"""The training step reads nothing back from the device between log steps (issue 15, "ready for a GPU").

On CUDA every read of a tensor's value on the host (``float``, ``item``, ``tolist``,
``cpu``, ``numpy``, ``bool``) waits for the GPU. These tests count those calls on the
CPU, where the same code runs: two runs that differ only in their number of steps
(logs and checkpoints only at their last step) must make the same number of reads,
so a step between log steps makes none (the Non-Syn VAE: exactly one, its selection's
copy of the per-latent KLs, which is overlapped with the ELBO backward).
"""

from __future__ import annotations

import math

import pytest
import torch

from nsvae import objectives
from nsvae.objectives.step_logs import StepLogs
from nsvae.train import load_run, start
from nsvae.train.divergence import DivergenceWatch
from nsvae.train.trainer import TrainingDiverged

READS = ("item", "tolist", "cpu", "numpy", "__float__", "__bool__", "__int__")


def _count_reads(monkeypatch) -> dict[str, int]:
    counts = dict.fromkeys(READS, 0)
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts


def _reads_of_a_run(tiny, tmp_path, monkeypatch, method: str, steps: int) -> dict[str, int]:
    config = tiny(
        method,
        **{
            "run.steps": steps,
            "log.every": steps,
            "log.checkpoint_every": steps,
            "log.traversal_every": 0,
            "log.tensorboard": False,
        },
    )
    with monkeypatch.context() as patch:
        counts = _count_reads(patch)
        start(config, tmp_path / f"{method}-{steps}")
    return counts


@pytest.mark.parametrize("method", list(objectives.METHODS))
def test_steps_between_log_steps_read_nothing_from_the_device(tiny, tmp_path, monkeypatch, method):
    short = _reads_of_a_run(tiny, tmp_path, monkeypatch, method, 6)
    long = _reads_of_a_run(tiny, tmp_path, monkeypatch, method, 14)
    per_step = {k: (long[k] - short[k]) / 8 for k in READS}
    expected = dict.fromkeys(READS, 0.0)
    if method == "nonsyn":
        # the greedy selection's one copy of the d per-latent KLs, then read as a list on the host
        expected["cpu"] = expected["tolist"] = 1.0
    assert per_step == expected


def test_step_logs_copy_once_when_first_read(monkeypatch):
    logs = StepLogs(
        {
            "recon": torch.tensor(2.5),
            "kl_per_dim": torch.tensor([0.125, 1.0, 2.0], dtype=torch.float64),
            "loss": torch.tensor(6.0),
            "best": [2, 1],
        },
        proxy_omega=0.9,
    )
    assert "kl" in logs and "synergy_proxy" in logs and len(logs) == 6
    with monkeypatch.context() as patch:
        counts = _count_reads(patch)
        values = dict(logs)
        again = logs["loss"]
    assert counts["cpu"] == 1 and counts["tolist"] == 1 and sum(counts.values()) == 2
    assert list(values) == ["recon", "kl", "kl_per_dim", "synergy_proxy", "loss", "best"]
    assert values["kl"] == 3.125 and values["kl_per_dim"] == [0.125, 1.0, 2.0] and again == 6.0
    # The greedy best set at omega 0.9 is {2, 1}: 2.0, then 1.0 (0.9 * 3.0 > 2.0; 0.9 * 2.125 < 2.0 for latent 0),
    # and latent 0 stays out (0.9 * 3.125 < 3.0).
    assert values["synergy_proxy"] == 0.125
    logs["loss"] = float("nan")
    assert math.isnan(logs["loss"]) and math.isnan(logs.raw("loss"))


def test_the_device_record_keeps_the_first_bad_step_and_its_values():
    watch = DivergenceWatch("cpu")
    finite = {"loss": torch.tensor(3.0), "recon": torch.tensor(2.0), "kl_per_dim": torch.tensor([0.5, 0.5])}
    for step in (1, 2):
        watch.watch(StepLogs(finite), step)
    assert watch.found(sync=True) == ""
    watch.watch(StepLogs({**finite, "recon": torch.tensor(float("inf")), "loss": torch.tensor(float("inf"))}), 3)
    watch.watch(StepLogs({**finite, "kl_per_dim": torch.tensor([float("nan"), 0.0])}), 4)
    assert watch.found(sync=False) == ""  # not read from the device yet
    assert watch.found(sync=True) == "at step 3: loss is not finite (loss=inf, recon=inf, kl=1)"


def test_a_nan_inside_the_device_tensors_stops_the_run_before_its_next_log_or_checkpoint(tiny, tmp_path, monkeypatch):
    cls = objectives.METHODS["vae"][1]
    original = cls.train_step

    def train_step(self, *args, **kwargs):
        logs = original(self, *args, **kwargs)
        if self.iteration == 7:
            logs["recon"] = torch.tensor(float("nan"))  # stays a tensor: found at the next read of the device
        return logs

    monkeypatch.setattr(cls, "train_step", train_step)
    config = tiny("vae", **{"log.every": 4, "log.checkpoint_every": 5, "log.traversal_every": 0})
    with pytest.raises(TrainingDiverged) as info:
        start(config, tmp_path / "run")
    assert str(info.value).startswith("training diverged at step 7: recon is not finite (loss=")
    run = load_run(tmp_path / "run")
    assert [s for s, _ in run.checkpoints()] == [5] and [line["step"] for line in run.log()] == [4]
