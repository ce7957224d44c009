"""Sweeps under faults (issue 16, points 2 and 3): one process per sweep directory, no run trained twice, and no
worker outlives a killed driver. Marked slow: each test starts real sweeps (CI runs them in its slow command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nsvae.cli import main
from nsvae.experiments.run_state import run_states
from nsvae.experiments.sweep import read_state
from nsvae.train import load_run
from tests.procs import descendants_of, running, wait_gone, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")]

SPEC = """
name = "tiny"

[base]
config = "quick-vae"

[set]
"run.steps" = STEPS
"run.device" = "cpu"
"run.threads" = 1
"model.z_dim" = 4
"data.batch_size" = 8
"log.every" = 10
"log.traversal_every" = 0
"log.checkpoint_every" = 10
"log.keep_checkpoints" = 2
"log.tensorboard" = false
"log.console" = false
"log.progress" = false

[[runs]]
grid = { "run.seed" = [0, 1] }

[evaluation]
enabled = false
"""


def _spec(tmp_path: Path, steps: int) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC.replace("STEPS", str(steps)), encoding="utf-8")
    return path


def _command(spec: Path, out: Path, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "nsvae", "sweep", str(spec), "--out", str(out), "--workers", str(workers)]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _kill_tree(process: subprocess.Popen) -> None:
    for pid in [*descendants_of(process.pid), process.pid]:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def test_a_second_sweep_on_the_same_directory_is_refused_and_no_run_trains_twice(dsprites, tmp_path, capsys):
    spec, out = _spec(tmp_path, 300), tmp_path / "sweep"
    first = subprocess.Popen(_command(spec, out), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: (out / "runs" / "vae-seed0" / "status.json").is_file(), timeout=120)
        assert main(["sweep", str(spec), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"is being run by another process (pid {first.pid} " in err and err.count("\n") == 1
        stdout, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stdout + stderr
    finally:
        _kill_tree(first)
    runs = read_state(out)["runs"]
    assert {name: r["attempts"] for name, r in runs.items()} == {"vae-seed0": 1, "vae-seed1": 1}
    for name in runs:
        log = (out / "logs" / f"{name}.log").read_text()
        assert log.count(f"nsvae sweep: {name} in ") == 1
        assert [e["step"] for e in load_run(out / "runs" / name).log()] == list(range(10, 301, 10))


def test_kill_9_of_a_sweep_leaves_no_worker_and_the_same_command_finishes(dsprites, tmp_path):
    spec, out = _spec(tmp_path, 400), tmp_path / "sweep"
    command = _command(spec, out, workers=2)
    driver = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        checkpoints = [out / "runs" / f"vae-seed{s}" / "checkpoints" for s in (0, 1)]
        assert wait_until(lambda: all(c.is_dir() and any(c.glob("*.pt")) for c in checkpoints), timeout=180)
        workers = descendants_of(driver.pid)  # the forkserver and the two run workers
        assert len(workers) >= 3
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        assert wait_gone(workers, timeout=60) == []
    finally:
        _kill_tree(driver)
    # The workers were told to stop (SIGTERM when their parent died): they wrote a checkpoint and said so.
    for s in (0, 1):
        status = load_run(out / "runs" / f"vae-seed{s}").status()
        assert status["state"] == "interrupted" and status["signal"] == "SIGTERM", status
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for s in (0, 1):
        run = load_run(out / "runs" / f"vae-seed{s}")
        assert run.status()["state"] == "finished" and run.status()["step"] == 400
        assert [e["step"] for e in run.log()] == list(range(10, 401, 10))
    assert run_states(out)["vae-seed0"] == "finished"
