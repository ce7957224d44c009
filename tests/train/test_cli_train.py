"""``nsvae train``: exit codes, messages, SIGTERM in a real process and resuming it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nsvae import cli, objectives
from nsvae import config as config_module
from nsvae.config import dumps
from nsvae.train import load_run

from .conftest import tiny_config


def _write(tmp_path: Path, config, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(dumps(config), encoding="utf-8")
    return path


def test_train_and_resume_from_the_command_line(dsprites, tmp_path, capsys):
    config = _write(tmp_path, tiny_config("vae"))
    assert cli.main(["train", str(config), "--out", str(tmp_path / "run"), "--set", "run.steps=4"]) == 0
    out = capsys.readouterr().out
    assert f"in {tmp_path / 'run'}" in out and "finished 4 steps" in out
    assert load_run(tmp_path / "run").config.run.steps == 4
    assert cli.main(["train", "--resume", str(tmp_path / "run"), "--steps", "6"]) == 0
    assert load_run(tmp_path / "run").status()["step"] == 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "quick-nonsin"], "no config file or preset named 'quick-nonsin'; did you mean 'quick-nonsyn'?"),
        (["train", "quick-vae", "--set", "vae.beta=3"], "unknown config key 'vae.beta'; did you mean 'beta_vae.beta'?"),
        (["train", "quick-vae", "--set", "nonsyn.omega=2"], "config key 'nonsyn.omega': omega must be in (0, 1)"),
        (["train", "quick-vae", "--set", "run.steps"], "--set expects KEY=VALUE"),
        (["train", "quick-vae", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
        (["train"], "give a CONFIG"),
        (["train", "--resume", "does/not/exist"], "is not a run directory"),
        (["train", "quick-vae", "--resume", "x"], "--resume RUN takes only"),
        (["train", "missing.toml"], "config file missing.toml does not exist"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nsvae train: error: ") and message in err
    assert err.count("\n") == 1


def test_existing_run_is_not_overwritten(dsprites, tmp_path, capsys):
    config = _write(tmp_path, tiny_config("vae", **{"run.steps": 2}))
    assert cli.main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    assert cli.main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_divergence_exits_1(dsprites, tmp_path, monkeypatch, capsys):
    cls = objectives.METHODS["vae"][1]
    original = cls.train_step

    def train_step(self, *args, **kwargs):
        logs = original(self, *args, **kwargs)
        if self.iteration == 3:
            logs["recon"] = float("nan")
        return logs

    monkeypatch.setattr(cls, "train_step", train_step)
    config = _write(tmp_path, tiny_config("vae"))
    assert cli.main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "training diverged at step 3: recon is not finite" in err
    assert load_run(tmp_path / "run").state == "failed"


def test_print_config_and_list_presets(capsys):
    assert cli.main(["train", "quick-nonsyn", "--set", "nonsyn.alpha=2", "--steps", "7", "--print-config"]) == 0
    config = config_module.loads(capsys.readouterr().out)
    assert (config.nonsyn.alpha, config.run.steps, config.run.name) == (2.0, 7, "quick-nonsyn")
    assert cli.main(["train", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in config_module.preset_names())


def test_sigterm_writes_a_checkpoint_and_resume_continues(dsprites, tmp_path):
    config = _write(tmp_path, tiny_config("nonsyn", **{"run.steps": 100_000, "log.checkpoint_every": 1000}))
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "nsvae", "train", str(config), "--out", str(run_dir), "--no-progress"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run_dir / "log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 2):  # it is training
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted at step" in out and "--resume" in out
    run = load_run(run_dir)
    status = run.status()
    assert status["state"] == "interrupted" and status["signal"] == "SIGTERM"
    stopped = status["step"]
    assert [s for s, _ in run.checkpoints()] == [stopped]
    assert json.loads(log.read_text().splitlines()[-1])["step"] <= stopped
    assert cli.main(["train", "--resume", str(run_dir), "--steps", str(stopped + 3), "--no-progress"]) == 0
    assert run.state == "finished" and run.checkpoints()[-1][0] == stopped + 3


def test_import_nsvae_stays_light():
    code = "import sys, nsvae; assert 'torch' not in sys.modules; assert callable(nsvae.train); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"
