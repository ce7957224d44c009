"""`nsvae sweep --slurm` on a real single-node SLURM cluster (tests/slurm_cluster.py; issue 28): a job sent SIGTERM
checkpoints, requeues itself and resumes; a job SLURM requeues (scontrol requeue) resumes the same way; a cancelled
job (scancel) is reported by the driver and by --status; the sweep is then finished on the local pool and run again
on SLURM with nothing to do; every run equals one trained without interruption. Marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nsvae.train import Run, start
from tests.faults.test_kill_points import SWEEP
from tests.slurm_cluster import ClusterUnavailable, start_cluster

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SLURM is Linux's")]

pytest.importorskip("submitit", reason="submitit is not installed (pip install 'nsvae[slurm]')")

NSVAE = [sys.executable, "-m", "nsvae"]
#: Long enough to be stopped twice at a checkpoint (every 20 steps) while it trains: about a minute of training.
STEPS = 900


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    except ClusterUnavailable as exc:
        if not exc.installable:
            pytest.skip(f"no SLURM cluster can be started here: {exc}")
        pytest.fail(f"the single-node SLURM cluster did not start: {exc}")
    yield cluster
    cluster.stop()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return Run(path).read_checkpoint()["model"]


def _same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _wait(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def _step(run_dir: Path) -> int:
    status = run_dir / "status.json"
    try:
        return int(json.loads(status.read_text()).get("step") or 0) if status.is_file() else 0
    except ValueError:  # caught between the write and the rename of another process: read again
        return 0


def _checkpointed(run_dir: Path, past: int) -> bool:
    found = Run(run_dir).checkpoints() if run_dir.is_dir() else []
    return bool(found) and found[-1][0] >= past


def _job_of(out: Path, name: str) -> str:
    return json.loads((out / "sweep.json").read_text())["runs"][name]["slurm"]["job"]


def _requeued(cluster, job: str, run_dir: Path) -> int:
    """Wait until ``job`` waits again after its requeue, check that its run stopped at a checkpoint, and let the job
    start now (SLURM holds a requeued job back for a couple of minutes: its BeginTime); returns that step."""
    _wait(lambda: cluster.jobs().get(job, ("", ""))[0] == "PENDING", f"job {job} to be requeued")
    step = _step(run_dir)
    assert 0 < step < STEPS and Run(run_dir).checkpoints()[-1][0] == step
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    return step


def _recorded_jobs(out: Path) -> dict[str, str] | None:
    if not (out / "sweep.json").is_file():
        return None
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    return {name: entry["slurm"]["job"] for name, entry in runs.items() if "slurm" in entry} or None


def test_a_sweep_on_slurm_resumes_requeued_jobs_reports_a_cancelled_one_and_moves_to_the_local_pool(
    slurm_cluster, dsprites, tmp_path
):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SWEEP.replace('"run.steps" = 600', f'"run.steps" = {STEPS}'), encoding="utf-8")
    out = tmp_path / "sweep"
    env = {**slurm_cluster.env, "PYTHONUNBUFFERED": "1", "NSVAE_SLURM_POLL_SECONDS": "1"}
    command = NSVAE + ["sweep", str(spec), "--out", str(out), "--slurm", "--time", "1:00:00"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = out / "runs"
    try:
        jobs = _wait(lambda: (found := _recorded_jobs(out)) and len(found) == 2 and found, "the jobs in sweep.json")
        first, second = jobs["vae-seed0"], jobs["vae-seed1"]
        assert first.split("_")[0] == second.split("_")[0]  # one job array: a task per run
        both = (runs / "vae-seed0", runs / "vae-seed1")
        _wait(lambda: all(_checkpointed(run, 100) for run in both), "both runs' checkpoints at step 100", 240)

        # scancel: the run stops with a checkpoint; the driver reports the cancelled job.
        slurm_cluster.run("scancel", second)
        # SIGTERM to the job's step (as before a preemption): checkpoint, then nsvae requeues the job itself.
        slurm_cluster.run("scancel", "--signal=TERM", first)
        stopped_at = _requeued(slurm_cluster, first, runs / "vae-seed0")
        # SLURM's own requeue (as a preemption that requeues): the job stops with a checkpoint and leaves it to SLURM.
        _wait(lambda: _checkpointed(runs / "vae-seed0", stopped_at + 100), "vae-seed0 to train on after its requeue")
        slurm_cluster.run("scontrol", "requeue", first)
        _requeued(slurm_cluster, first, runs / "vae-seed0")
        printed, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 1, printed
    assert f"cancelled vae-seed1: its SLURM job {second} was cancelled" in printed, printed
    assert "finished vae-seed0 at step 900" in printed, printed
    job_log = (out / "slurm" / f"{first}_0_log.out").read_text()
    # submitit's handler checkpointed and requeued (its "Requeued job" line is missing when scontrol reported a
    # failure of a requeue that took effect: the queue then decided, slurm_pool.requeue_if_stopped).
    assert job_log.count("Starting with JobEnvironment") == 3 and "Calling checkpoint method" in job_log, job_log
    cancelled_step = _step(runs / "vae-seed1")
    assert 0 < cancelled_step < STEPS and Run(runs / "vae-seed1").checkpoints()[-1][0] == cancelled_step

    status = subprocess.run(NSVAE + ["sweep", str(out), "--status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == f"tiny ({out}): 1 cancelled, 1 finished", status.stdout
    assert lines[2].split() == ["vae-seed0", "finished", "900", first, "COMPLETED"], status.stdout
    assert lines[3].split() == ["vae-seed1", "cancelled", f"{cancelled_step:,}", second, "CANCELLED"], status.stdout
    assert lines[4].strip() == f"error: its SLURM job {second} was cancelled", status.stdout
    logs = [str(out / "logs" / "vae-seed1.log")] + [str(out / "slurm" / f"{second}_0_log.{x}") for x in ("out", "err")]
    assert lines[5].strip() == f"logs: {', '.join(logs)}", status.stdout

    # The local pool finishes the cancelled run from its checkpoint; SLURM then has nothing left to do.
    local = subprocess.run(NSVAE + ["sweep", str(out), "--workers", "1"], env=env, capture_output=True, text=True)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "1 resume, 1 done" in local.stdout, local.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "2 done" in again.stdout and "submitted" not in again.stdout, again.stdout
    assert set(slurm_cluster.jobs()) == {first, second}  # no job was submitted for them again

    from nsvae.experiments.sweep import load_sweep

    sweep = load_sweep(spec)
    for name in ("vae-seed0", "vae-seed1"):
        reference = start(sweep.run(name).config, tmp_path / f"reference-{name}")
        _same(reference.path, runs / name)
