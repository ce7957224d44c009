"""kill -9 at random points of `train`, `sweep` and `data prepare` (issue 16, "fault-injection suite"): 20 kill points
each; after every kill nothing is left running, no lock is held, everything on disk verifies, and the next command
goes on from there; in the end the result is bit for bit the one of an uninterrupted command. Marked slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nsvae.config import dumps
from nsvae.locks import FileLock
from nsvae.train import Run, start
from tests.procs import descendants_of, wait_gone
from tests.train.conftest import tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")]

KILLS = 20
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
NSVAE = [sys.executable, "-m", "nsvae"]


def _kill_after(command: list[str], delay: float) -> tuple[int | None, list[int]]:
    """Start ``command``, SIGKILL it after ``delay`` seconds; returns its exit status (None if killed) and the
    processes it had started."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + delay
    children: list[int] = []
    while time.monotonic() < deadline and process.poll() is None:
        children = sorted(set(children) | set(descendants_of(process.pid)))
        time.sleep(0.05)
    if process.poll() is not None:
        return process.returncode, children
    children = sorted(set(children) | set(descendants_of(process.pid)))
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    left = wait_gone(children, timeout=60)
    for pid in left:  # only to clean up after a failure; the assertion below reports it
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"orphans after kill -9: {left}"
    return None, children


def _check_run(path: Path) -> None:
    run = Run(path)
    if not run.path.exists():
        return
    assert not FileLock(run.path / ".lock").busy()
    for _, checkpoint in run.checkpoints():
        assert run.verify_checkpoint(checkpoint) == "", checkpoint
    if (run.path / "status.json").exists():
        json.loads((run.path / "status.json").read_text())
    if run.log_path.exists():
        lines = [line for line in run.log_path.read_text().splitlines() if line.strip()]
        for line in lines[:-1]:
            json.loads(line)  # only the last line may be torn


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return Run(path).read_checkpoint()["model"]


def _same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_survives_20_kills(dsprites, tmp_path):
    changes = {"run.steps": 1500, "log.every": 10, "log.checkpoint_every": 25, "log.traversal_every": 100}
    config = tiny_config("vae", **changes, **{"log.tensorboard": True})
    reference = start(config, tmp_path / "reference")
    (tmp_path / "config.toml").write_text(dumps(config), encoding="utf-8")
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(16)
    survived = 0

    def command() -> list[str]:  # resume once a checkpoint exists, else the same command again (it restarts)
        again = (run_dir / "config.toml").is_file() and Run(run_dir).checkpoints()
        return NSVAE + (
            ["train", "--resume", str(run_dir), "--no-progress"]
            if again
            else ["train", str(tmp_path / "config.toml"), "--out", str(run_dir), "--no-progress"]
        )

    for k in range(KILLS):
        code, _ = _kill_after(command(), float(rng.uniform(0.5, 9.0)))
        _check_run(run_dir)
        if code is not None:  # a fast machine finished the run before this kill point: nothing left to kill
            assert code == 0 and Run(run_dir).status()["state"] == "finished", f"kill point {k}: exit {code}"
            break
        survived += 1
        if (run_dir / "config.toml").is_file() and Run(run_dir).status().get("state") == "finished":
            break  # killed while exiting, after the run had finished: a resume would rightly refuse it
    assert survived >= 5, f"only {survived} kill points hit the run before it finished"
    if Run(run_dir).status().get("state") != "finished":  # the loop ran out of kill points before the run ended
        done = subprocess.run(command(), env=ENV, capture_output=True)
        assert done.returncode == 0, done.stderr
    assert Run(run_dir).status()["state"] == "finished"
    _same(reference.path, run_dir)
    assert [e["step"] for e in Run(run_dir).log()] == [e["step"] for e in reference.log()]
    print(f"train: {KILLS} kill points, {survived} survived")


def test_data_prepare_survives_20_kills(dsprites, tmp_path):
    from nsvae.data import cache
    from nsvae.data import dsprites as ds

    root = tmp_path / "cache"
    command = NSVAE + ["data", "prepare", "dsprites", "--cache-dir", str(root), "--workers", "2", "--no-progress"]
    rng = np.random.default_rng(6)
    entry = root / "dsprites" / ds.GENERATED_KEY
    for k in range(KILLS):
        code, children = _kill_after(command, float(rng.uniform(0.5, 12.0)))
        assert code in (None, 0), f"kill point {k}: exit {code}"
        assert not FileLock(entry.parent / f".{entry.name}.lock").busy()
        if entry.exists():
            assert cache.verify_entry(entry, full=True) == ""
            entry_done = True
            break
    else:
        entry_done = False
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert cache.verify_entry(entry, full=True) == ""
    assert not list(entry.parent.glob(".*.building-*"))  # the leftovers of the killed builds are gone
    assert cache.read_meta(entry)["checksums"] == cache.read_meta(dsprites.entry)["checksums"]
    print(f"data prepare: {k + 1} kill points ({'the last completed' if entry_done else 'all killed'}), all survived")
    assert k + 1 == KILLS or entry_done


SWEEP = """
name = "tiny"
[base]
config = "quick-vae"
[set]
"run.steps" = 600
"run.device" = "cpu"
"run.threads" = 1
"model.z_dim" = 4
"data.batch_size" = 8
"log.every" = 10
"log.traversal_every" = 0
"log.checkpoint_every" = 20
"log.keep_checkpoints" = 2
"log.tensorboard" = false
"log.console" = false
"log.progress" = false
[[runs]]
grid = { "run.seed" = [0, 1] }
[evaluation]
enabled = false
"""


def test_sweep_survives_20_kills(dsprites, tmp_path):
    from nsvae.experiments.sweep import load_sweep, read_state

    spec = tmp_path / "tiny.toml"
    spec.write_text(SWEEP, encoding="utf-8")
    out = tmp_path / "sweep"
    command = NSVAE + ["sweep", str(spec), "--out", str(out), "--workers", "2"]
    rng = np.random.default_rng(3)
    for k in range(KILLS):
        code, children = _kill_after(command, float(rng.uniform(1.0, 9.0)))
        if code is not None:  # a fast machine finished the sweep before this kill point
            assert code == 0, f"kill point {k}: the sweep exited with {code}"
            assert k >= 5, f"only {k} kill points hit the sweep before it finished"
            break
        assert not FileLock(out / ".lock").busy()
        if (out / "sweep.json").exists():
            read_state(out)
        for s in (0, 1):
            _check_run(out / "runs" / f"vae-seed{s}")
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = load_sweep(spec)
    for s in (0, 1):
        name = f"vae-seed{s}"
        reference = start(sweep.run(name).config, tmp_path / f"reference{s}")
        _same(reference.path, out / "runs" / name)
    print(f"sweep: {KILLS} kill points, all survived")


EVALUATE_KILLS = 10
# DCI (the project's worker pool, two processes), MIG and SAP on small pools: tens of seconds, so kill points fall
# into the encoding, the pool, DCI's workers and the metrics after them.
EVALUATE_ARGS = ["--metrics", "mig", "dci", "sap", "--n-jobs", "2", "--no-progress"] + [
    arg
    for setting in (
        "mig.num_train=3000",
        "dci.num_train=3000",
        "dci.num_test=1500",
        "sap.num_train=3000",
        "sap.num_test=1500",
    )
    for arg in ("--set", setting)
]


def test_evaluate_survives_kills(dsprites, tmp_path):
    """issue 29, case 7: kill -9 and SIGTERM at random points of `evaluate` leave no worker running, no lock held and
    every evaluation file readable; SIGTERM keeps the metrics already computed; the next evaluate gives the numbers
    of an uninterrupted one."""
    from nsvae.evaluation import EVAL_LOCK, read_eval

    run = start(tiny_config("vae", **{"run.steps": 10, "log.checkpoint_every": 10}), tmp_path / "run")
    command = NSVAE + ["evaluate", str(run.path), *EVALUATE_ARGS]
    began = time.monotonic()
    reference = subprocess.run(command + ["--json"], env=ENV, capture_output=True, text=True)
    duration = time.monotonic() - began
    assert reference.returncode == 0, reference.stderr
    expected = json.loads(reference.stdout)["metrics"]
    (run.path / "eval.json").unlink()
    rng = np.random.default_rng(29)
    for k in range(EVALUATE_KILLS):
        delay = float(rng.uniform(0.5, max(1.0, 0.9 * duration)))
        if k % 3 == 2:  # every third point a SIGTERM: the computed metrics are kept, exit 143
            process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(delay)
            children = descendants_of(process.pid)
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=120)
            # -SIGTERM: the signal came before the evaluation began (imports, loading), when it still kills at once
            assert process.returncode in (0, 143, -signal.SIGTERM), (
                f"kill point {k}: exit {process.returncode}: {stderr}"
            )
            assert wait_gone(children, timeout=60) == [], f"kill point {k}: orphans after SIGTERM"
        else:
            _kill_after(command, delay)
        assert not FileLock(run.path / EVAL_LOCK).busy()
        record = read_eval(run.path)  # absent, or whole and of the right shape
        if record is not None:
            kept = record["results"]["default"]["metrics"]
            assert all(kept[name] == expected[name] for name in kept), f"kill point {k}: a kept metric differs"
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert read_eval(run.path)["results"]["default"]["metrics"] == expected
    print(f"evaluate: {EVALUATE_KILLS} kill points in an evaluation of {duration:.0f} s, all survived")
