"""Running sweeps of tiny runs: the local process pool (resume, failure, retry, skip) and Ray."""

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

from nsvae.cli import main
from nsvae.experiments.run_state import read_run_state, run_states
from nsvae.experiments.sweep import load_sweep, read_state
from nsvae.experiments.sweep_results import aggregate, gather_results
from nsvae.train import load_run

# Tiny runs (about a second of training each) of the VAE on dSprites, and a run whose image folder is missing
# until the test makes it: it fails, then succeeds on --retry-failed (image folders have no factors: no evaluation).
SPEC = """
name = "tiny"

[base]
config = "quick-vae"

[set]
"run.steps" = 12
"run.device" = "cpu"
"run.threads" = 1
"model.z_dim" = 4
"data.batch_size" = 8
"log.every" = 4
"log.traversal_every" = 0
"log.checkpoint_every" = 5
"log.keep_checkpoints" = 2
"log.tensorboard" = false
"log.console" = false
"log.progress" = false

[[runs]]
grid = { "run.seed" = [0, 1] }

[[runs]]
name = "broken"
set = { "data.dataset" = "folder", "data.source" = "IMAGES", "data.channels" = 1, "model.channels" = 1 }

[evaluation]
metrics = ["mig", "active_units"]
overrides = { mig = { num_train = 500 }, active_units = { num_train = 500 } }
"""


def _write_spec(tmp_path: Path, with_broken: bool = True) -> Path:
    text = SPEC.replace("IMAGES", str(tmp_path / "images"))
    if not with_broken:
        text = text[: text.index('[[runs]]\nname = "broken"')] + text[text.index("[evaluation]") :]
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _interrupt_at(step: int):
    def callback(s, logs):
        if s == step:
            raise KeyboardInterrupt

    return callback


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    run = load_run(run_dir)
    return run.read_checkpoint()["model"]


def _make_images(folder: Path) -> None:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")


def test_local_sweep_resumes_records_failures_skips_and_retries(dsprites, tmp_path, capsys):
    import nsvae

    spec = _write_spec(tmp_path)
    out = tmp_path / "sweep"
    sweep = load_sweep(spec)
    assert [r.name for r in sweep.runs] == ["vae-seed0", "vae-seed1", "broken"]

    # vae-seed1 was interrupted at step 7 by an earlier sweep: its last checkpoint is step 5.
    interrupted = out / "runs" / "vae-seed1"
    with pytest.raises(KeyboardInterrupt):
        nsvae.train(sweep.run("vae-seed1").config, out=interrupted, callback=_interrupt_at(7))
    assert load_run(interrupted).status()["state"] == "interrupted"

    code = main(["sweep", str(spec), "--out", str(out), "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 1, printed  # one run failed
    assert "3 runs in" in printed and "2 train, 1 resume" in printed
    assert "started vae-seed1 (resume)" in printed
    state = read_state(out)
    runs = state["runs"]
    assert run_states(out) == {"vae-seed0": "finished", "vae-seed1": "finished", "broken": "failed"}
    assert "does not exist" in read_run_state(out / "runs" / "broken").error and runs["broken"]["attempts"] == 1
    # sweep.json keeps the sweep's bookkeeping only: a run's state is its own status.json
    assert not {"state", "error", "step"} & set(runs["broken"])
    broken_status = json.loads((out / "runs" / "broken" / "status.json").read_text())
    assert broken_status["state"] == "failed" and "does not exist" in broken_status["error"]
    assert (out / "logs" / "broken.log").read_text().count("Traceback") == 1
    assert (out / "sweep.toml").read_text() == spec.read_text()
    for name in ("vae-seed0", "vae-seed1"):
        evaluation = json.loads((out / "runs" / name / "eval.json").read_text())
        assert evaluation["step"] == 12
        assert set(evaluation["results"]["default"]["metrics"]) == {"mig", "active_units"}

    # The resumed run ends with exactly the numbers of an uninterrupted one.
    reference = nsvae.train(sweep.run("vae-seed1").config, out=tmp_path / "reference")
    assert _same_log(load_run(interrupted).log()[-1], reference.log()[-1])
    resumed_weights, reference_weights = _weights(interrupted), _weights(reference.path)
    assert all(torch.equal(resumed_weights[k], reference_weights[k]) for k in reference_weights)

    # Again: finished runs are skipped, the failed one too (without --retry-failed).
    checkpoint = sorted((out / "runs" / "vae-seed0" / "checkpoints").iterdir())[-1]
    before = checkpoint.stat().st_mtime_ns
    assert main(["sweep", str(out), "--workers", "2"]) == 1
    printed = capsys.readouterr().out
    assert "2 done, 1 failed" in printed and "--retry-failed" in printed and "started" not in printed
    assert checkpoint.stat().st_mtime_ns == before
    assert read_state(out)["runs"]["broken"]["attempts"] == 1

    # The missing folder appears: --retry-failed runs the failed run again, and only it.
    _make_images(tmp_path / "images")
    assert main(["sweep", str(out), "--retry-failed"]) == 0
    printed = capsys.readouterr().out
    assert "started broken (train)" in printed and "started vae" not in printed
    runs = read_state(out)["runs"]
    broken = read_run_state(out / "runs" / "broken")
    assert broken.state == "finished" and runs["broken"]["attempts"] == 2 and broken.error == ""
    assert not (out / "runs" / "broken" / "eval.json").exists()  # an image folder has no ground-truth factors
    assert load_run(out / "runs" / "broken").status()["state"] == "finished"

    rows = gather_results(out)
    assert [r["run"] for r in rows] == ["vae-seed0", "vae-seed1", "broken"]
    assert all(r["state"] == "finished" for r in rows)
    assert [r["seed"] for r in rows] == [0, 1, 0]
    assert isinstance(rows[0]["metric.mig"], float) and "metric.mig" not in rows[2]
    settings = {a["setting"]: a for a in aggregate(rows)}
    assert (settings["vae"]["n"], settings["vae"]["seeds"], settings["broken"]["n"]) == (2, [0, 1], 1)
    mean, std = settings["vae"]["metric.mig"]
    values = [rows[0]["metric.mig"], rows[1]["metric.mig"]]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))

    # UDR: the two seeds of "vae" scored against each other from their latest checkpoints, the samples kept.
    from nsvae.evaluation import read_udr_sample, udr_sample_of_run
    from nsvae.experiments.sweep_results import add_udr
    from nsvae.metrics.udr import udr_scores

    left_out = add_udr(out, rows, device="cpu")
    samples = [read_udr_sample(out / "runs" / f"vae-seed{s}" / "udr_sample.npz") for s in (0, 1)]
    found = udr_scores([x["mean"] for x in samples], [x["logvar"] for x in samples])
    assert [rows[0]["metric.udr.informative"], rows[1]["metric.udr.informative"]] == found["informative"]
    if np.isnan(found["model_scores"]).any():  # ten steps rarely leave a latent with KL above 0.01: undefined
        assert "metric.udr" not in rows[0] and left_out[0].startswith("UDR is undefined for ")
    else:
        assert [rows[0]["metric.udr"], rows[1]["metric.udr"]] == pytest.approx(found["model_scores"])
    assert "metric.udr" not in rows[2]  # a setting of one run has no UDR
    fresh = udr_sample_of_run(load_run(out / "runs" / "vae-seed0"), device="cpu")
    assert np.array_equal(fresh["mean"], samples[0]["mean"]) and samples[0]["protocol"]["step"] == rows[0]["step"]


def _same_log(a: dict, b: dict) -> bool:
    skip = {"steps_per_s", "elapsed_s"}
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def test_a_changed_sweep_file_does_not_touch_existing_runs(dsprites, tmp_path, capsys):
    spec = _write_spec(tmp_path, with_broken=False)
    out = tmp_path / "sweep"
    sweep = load_sweep(spec)
    import nsvae

    nsvae.train(sweep.run("vae-seed0").config, out=out / "runs" / "vae-seed0")
    # Trained but not evaluated: the sweep would only evaluate it.
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [["vae-seed0", "evaluate"], ["vae-seed1", "train"]]
    spec.write_text(spec.read_text().replace('"model.z_dim" = 4', '"model.z_dim" = 5'), encoding="utf-8")
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with model.z_dim = 4 but the sweep file now asks for 5" in err and err.count("\n") == 1
    assert not (out / "sweep.json").exists()


@pytest.mark.slow
def test_sigint_stops_a_sweep_with_checkpoints_and_the_same_command_resumes_it(dsprites, tmp_path):
    spec = _write_spec(tmp_path, with_broken=False)
    text = (
        spec.read_text()
        .replace('"run.steps" = 12', '"run.steps" = 150')
        .replace('"log.checkpoint_every" = 5', '"log.checkpoint_every" = 10')
    )
    spec.write_text(text.replace('metrics = ["mig", "active_units"]', "enabled = false"), encoding="utf-8")
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "nsvae", "sweep", str(spec), "--out", str(out), "--workers", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = [out / "runs" / f"vae-seed{s}" / "checkpoints" for s in (0, 1)]
    deadline = time.time() + 120
    while time.time() < deadline and not all(c.is_dir() and any(c.glob("*.pt")) for c in checkpoints):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    # no worker was killed before its exit handlers ran (the resource tracker would warn of tqdm's semaphores)
    assert "leaked semaphore" not in stderr, stderr
    assert run_states(out) == {"vae-seed0": "interrupted", "vae-seed1": "interrupted"}, stdout + stderr
    steps = [load_run(out / "runs" / f"vae-seed{s}").status()["step"] for s in (0, 1)]
    assert all(0 < s < 150 for s in steps)

    finish = subprocess.run(command, env=env, capture_output=True, text=True)
    assert finish.returncode == 0 and "leaked semaphore" not in finish.stderr, finish.stdout + finish.stderr
    assert all(load_run(out / "runs" / f"vae-seed{s}").status()["state"] == "finished" for s in (0, 1))
    import nsvae

    reference = nsvae.train(load_sweep(spec).run("vae-seed0").config, out=tmp_path / "reference")
    assert _same_log(load_run(out / "runs" / "vae-seed0").log()[-1], reference.log()[-1])


# A private Ray instance starts about ten processes (raylet, GCS, agents): 20-40 s on an idle 2-core machine, minutes
# on a busy one. It stays in the default run so that CI (whose pinned environment includes ray) checks the Ray path.
def test_the_same_sweep_through_ray(dsprites, tmp_path, capsys):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'nsvae[ray]')")
    spec = _write_spec(tmp_path, with_broken=False)
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--ray", "local", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "submitted vae-seed0 (train)" in printed
    assert run_states(out) == {"vae-seed0": "finished", "vae-seed1": "finished"}
    assert all((out / "runs" / name / "eval.json").is_file() for name in ("vae-seed0", "vae-seed1"))
    rows = gather_results(out)
    assert [r["run"] for r in rows] == ["vae-seed0", "vae-seed1"] and all("metric.mig" in r for r in rows)
    # Run again through Ray: nothing to do.
    assert main(["sweep", str(out), "--ray", "local"]) == 0
    assert "2 done" in capsys.readouterr().out
    # Ray's driver SIGTERM handler does not outlive the sweep (the trainer's own handling relies on the default).
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_local_sweep_under_spawn_gives_the_runs_of_this_process(dsprites, tmp_path, monkeypatch, capsys):
    """Windows has no forkserver: each run is a spawned process there, with the same numbers (issue 17, §1)."""
    import nsvae
    from nsvae import processes

    spec = _write_spec(tmp_path, with_broken=False)
    spec.write_text(spec.read_text().replace('metrics = ["mig", "active_units"]', "enabled = false"), encoding="utf-8")
    out = tmp_path / "sweep"
    monkeypatch.setenv(processes.START_METHOD_ENV, "spawn")
    methods = []
    real_context = processes.start_context

    def context(preferred):
        chosen = real_context(preferred)
        methods.append(chosen.get_start_method())
        return chosen

    monkeypatch.setattr(processes, "start_context", context)
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "2"]) == 0, capsys.readouterr()
    assert methods == ["spawn"]
    assert run_states(out) == {"vae-seed0": "finished", "vae-seed1": "finished"}
    sweep = load_sweep(spec)
    reference = nsvae.train(sweep.run("vae-seed1").config, out=tmp_path / "reference")
    assert _same_log(load_run(out / "runs" / "vae-seed1").log()[-1], reference.log()[-1])


def test_a_worker_is_stopped_by_a_lost_driver_only_while_its_run_goes_on(monkeypatch):
    """The lifeline's end SIGTERMs a run in progress; a worker that has its record lets its exit handlers run."""
    import multiprocessing
    import threading

    from nsvae.experiments import local_pool

    sent = []
    monkeypatch.setattr(local_pool.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    for ended in (False, True):
        lifeline, keep_alive = multiprocessing.Pipe(duplex=False)
        reported = threading.Event()
        if ended:
            reported.set()
        keep_alive.close()  # the driver is gone (or has closed it after receiving the record)
        local_pool._watch_driver(lifeline, reported)
    assert sent == [(os.getpid(), signal.SIGTERM)]
