"""SLURM sweeps without a cluster (issue 28): the resources each job asks for, the sbatch script submitit writes
(through fake sbatch and srun commands), the job ids kept in sweep.json, jobs watched instead of submitted twice,
--status, the one-line errors, and the whole job protocol (checkpoint, requeue, resume) through submitit's local
executor. tests/experiments/test_sweep_slurm_cluster.py runs a real cluster (slow)."""

from __future__ import annotations

import os
import pickle
import signal
import sys
from pathlib import Path

import pytest
import torch

from nsvae.cli import main
from nsvae.errors import UserError
from nsvae.experiments import slurm_jobs, slurm_pool
from nsvae.experiments.slurm_resources import SlurmRequest, parse_mem, parse_time, resolve_resources
from nsvae.experiments.sweep import load_sweep, loads_sweep, read_state
from nsvae.train import Run, start
from tests.faults.test_kill_points import SWEEP
from tests.procs import running, wait_gone

submitit = pytest.importorskip("submitit", reason="submitit is not installed (pip install 'nsvae[slurm]')")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fake SLURM commands are shell scripts")


def _spec(tmp_path: Path, extra: str = "", steps: int = 600) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SWEEP.replace('"run.steps" = 600', f'"run.steps" = {steps}') + extra, encoding="utf-8")
    return path


# -- resources ----------------------------------------------------------------------------------------------------


def test_each_job_asks_for_the_files_resources_and_the_command_line_wins(tmp_path):
    text = (
        SWEEP
        + """
[resources]
cpus = 2
gpus = 1
[slurm]
partition = "gpu"
time = "1-02:30:00"
mem = "16g"
account = "lab"
setup = ["module load cuda"]
sbatch = { qos = "high", "--exclusive" = true }
"""
    )
    sweep = loads_sweep(text)
    resources = resolve_resources(sweep.slurm, sweep.cpus, sweep.gpus, SlurmRequest(), "tiny.toml")
    assert resources.submitit_parameters("nsvae-tiny", runs=3) == {
        "job_name": "nsvae-tiny",
        "time": (24 + 2) * 60 + 30,
        "cpus_per_task": 2,
        "array_parallelism": 3,
        "gpus_per_node": 1,
        "partition": "gpu",
        "mem": "16G",
        "account": "lab",
        "setup": ["module load cuda"],
        "additional_parameters": {"qos": "high", "exclusive": True},
    }
    assert resources.describe() == (
        "partition gpu, 26 h 30 min, 2 CPUs, 1 GPU, 16G memory, account lab, --qos=high, --exclusive=True per run"
    )
    request = SlurmRequest(partition="debug", time="45", cpus=1, gpus=0, mem="500", max_running=2)
    wins = resolve_resources(sweep.slurm, sweep.cpus, sweep.gpus, request, "tiny.toml")
    params = wins.submitit_parameters("nsvae-tiny", runs=3)
    assert (params["partition"], params["time"], params["cpus_per_task"], params["mem"]) == ("debug", 45, 1, "500")
    assert "gpus_per_node" not in params and params["array_parallelism"] == 2


def test_a_dry_run_shows_what_each_job_would_ask_for(tmp_path, capsys):
    spec = _spec(tmp_path, '[slurm]\npartition = "debug"\ntime = 30\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep"), "--dry-run", "--slurm", "--gpus", "1"]) == 0
    assert "SLURM: partition debug, 30 min, 1 CPU, 1 GPU per run" in capsys.readouterr().out.splitlines()
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("text", "minutes"),
    [(90, 90), ("90", 90), ("1:30", 2), ("2:00:00", 120), ("1-0", 1440), ("1-2:30", 1590), ("0-0:0:30", 1)],
)
def test_time_limits_are_read_as_sbatch_reads_them(text, minutes):
    assert parse_time(text, "--time") == minutes


@pytest.mark.parametrize("text", ["0", "soon", "1.5", "-5", "1:2:3:4", True, 2.5])
def test_a_time_limit_sbatch_would_not_take_is_refused(text):
    with pytest.raises(UserError, match="--time must be"):
        parse_time(text, "--time")


def test_memory_is_read_as_sbatch_reads_it():
    assert [parse_mem(v, "--mem") for v in (4000, "4000", "16g", "2T")] == ["4000", "4000", "16G", "2T"]
    for bad in ("1.5G", "lots", "16 GB", -1):
        with pytest.raises(UserError, match="--mem must be memory"):
            parse_mem(bad, "--mem")


# -- one-line errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        (
            '[slurm]\npartiton = "gpu"\n',
            ["--slurm", "--time", "60"],
            "unknown key 'partiton'; did you mean 'partition'?",
        ),
        ("[slurm]\nsbatch = { partition = 'x' }\n", ["--slurm"], "'partition' is set by nsvae; give it as partition"),
        ('[slurm]\ntime = "soon"\n', ["--slurm"], "[slurm] time must be a time limit as sbatch takes it"),
        ("", ["--slurm"], "a SLURM job needs a time limit: give --time (e.g. --time 4:00:00)"),
        ("", ["--slurm", "--time", "60", "--cpus", "1.5"], "--cpus must be a whole number of at least 1 for SLURM"),
        ("", ["--slurm", "--time", "60", "--mem", "lots"], "--mem must be memory as sbatch takes it"),
        ("", ["--partition", "debug"], "--partition is a SLURM resource: give it with --slurm"),
        ("", ["--slurm", "--time", "60", "--ray", "local"], "--ray and --slurm exclude each other"),
        ("", ["--slurm", "--time", "60", "--workers", "0"], "--workers must be at least 1, got 0"),
    ],
)
def test_bad_slurm_settings_are_one_line_errors(tmp_path, capsys, extra, args, message):
    out = tmp_path / "sweep"
    assert main(["sweep", str(_spec(tmp_path, extra)), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nsvae sweep: error: ") and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("command", ["sweep", "study"])
def test_without_submitit_slurm_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    if command == "study":  # a study's runs draw learning curves and end with an evaluation
        spec = tmp_path / "study.toml"
        text = SWEEP.replace('"log.progress" = false', '"log.progress" = false\n"eval.every" = 300')
        spec.write_text(text.replace("enabled = false", 'metrics = ["mig"]'), encoding="utf-8")
        args = ["study", str(spec), "--studies-dir", str(tmp_path / "studies"), "--work-dir", str(tmp_path / "w")]
    else:
        args = ["sweep", str(_spec(tmp_path)), "--out", str(tmp_path / "w")]
    assert main([*args, "--slurm", "--time", "60"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"nsvae {command}: error: SLURM sweeps need submitit: install the extra, pip install 'nsvae[slurm]'"]


# -- through submitit's SLURM executor, with fake sbatch and srun ---------------------------------------------------

FAKE_SBATCH = """#!/bin/sh
n=$(ls "$FAKE_SLURM" | grep -c '^sbatch-')
cp "$1" "$FAKE_SLURM/sbatch-$n.sh"
if [ -n "$FAKE_SBATCH_ERROR" ]; then printf '%b\\n' "$FAKE_SBATCH_ERROR" >&2; exit 1; fi
echo "Submitted batch job $((42 + n))"
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` (keeps each script, answers job 42, 43, ...) and ``srun`` on PATH; the queue is ``queue``, a dict
    the test fills (``slurm_jobs.queue_states`` reads it); the driver polls at once and waits no grace."""
    folder = tmp_path / "fake-slurm"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(folder))
    monkeypatch.setenv("NSVAE_SLURM_POLL_SECONDS", "0.01")
    monkeypatch.setattr(slurm_pool, "RESULT_GRACE_S", 0.0)
    queue: dict[str, str] = {}
    monkeypatch.setattr(slurm_jobs, "queue_states", lambda jobs: {j: queue[j] for j in jobs if j in queue})
    return folder, queue


def test_the_runs_go_to_sbatch_as_one_job_array_and_their_jobs_are_recorded(tmp_path, capsys, fake_slurm):
    folder, queue = fake_slurm
    queue.update({"42_0": "CANCELLED", "42_1": "OUT_OF_MEMORY"})  # both end without a result of the run's
    spec = _spec(tmp_path, '[slurm]\nsetup = ["echo set up"]\nsbatch = { qos = "high" }\n')
    out = tmp_path / "sweep"
    args = ["sweep", str(spec), "--out", str(out), "--slurm", "--partition", "debug", "--time", "1:30:00"]
    assert main([*args, "--mem", "2G", "--cpus", "2", "--workers", "1"]) == 1
    printed = capsys.readouterr().out
    script = (folder / "sbatch-0.sh").read_text()
    for line in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --job-name=nsvae-tiny",
        "#SBATCH --mem=2G",
        "#SBATCH --partition=debug",
        "#SBATCH --qos=high",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --time=90",
        f"#SBATCH --output={(out / 'slurm').resolve()}/%A_%a_0_log.out",
        "echo set up",
    ]:
        assert line in script.splitlines(), script
    assert not list(folder.glob("sbatch-1.sh"))  # one sbatch for the sweep
    slurm_dir = (out / "slurm").resolve()
    assert (
        f"nsvae sweep: SLURM job 42: 2 run(s), partition debug, 1 h 30 min, 2 CPUs, 0 GPUs, 2G memory, --qos=high "
        f"per run; at most 1 at once; job logs in {slurm_dir}"
    ) in printed
    assert "[0/2] submitted vae-seed0 (train) as SLURM job 42_0" in printed
    assert "[0/2] submitted vae-seed1 (train) as SLURM job 42_1" in printed
    assert "cancelled vae-seed0: its SLURM job 42_0 was cancelled" in printed
    oom = f"its SLURM job 42_1 ended OUT_OF_MEMORY without a result (job log {slurm_dir}/42_1_0_log.err)"
    assert f"failed vae-seed1: {oom}" in printed
    assert "nsvae sweep: SLURM job cancelled: vae-seed0 (stopped with a checkpoint; the same command resumes them)" in (
        printed
    )
    runs = read_state(out)["runs"]
    for i, name in enumerate(("vae-seed0", "vae-seed1")):
        entry = runs[name]["slurm"]
        assert entry["job"] == f"42_{i}" and entry["state"] == queue[f"42_{i}"] and entry["submitted"]
        assert (entry["stdout"], entry["stderr"]) == (f"slurm/42_{i}_0_log.out", f"slurm/42_{i}_0_log.err")
        assert runs[name]["attempts"] == 1
        assert (out / "slurm" / f"42_{i}_submitted.pkl").is_file()  # the pickled run each job executes
    # The failure is in the run's own record (the next sweep skips it until --retry-failed); the cancel is not.
    assert Run(out / "runs" / "vae-seed1").status()["error"] == oom
    assert not (out / "runs" / "vae-seed0").exists()

    assert main(["sweep", str(out), "--status"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"tiny ({out}): 1 cancelled, 1 failed",
        "  run        state      step  SLURM job  job state",
        "  vae-seed0  cancelled        42_0       CANCELLED",
        "      error: its SLURM job 42_0 was cancelled",
        f"      logs: {out}/slurm/42_0_0_log.out, {out}/slurm/42_0_0_log.err",
        "  vae-seed1  failed        0  42_1       OUT_OF_MEMORY",
        f"      error: {oom}",
        f"      logs: {out}/slurm/42_1_0_log.out, {out}/slurm/42_1_0_log.err",
    ]


def test_sbatch_refusing_the_jobs_is_one_line(tmp_path, capsys, fake_slurm, monkeypatch):
    monkeypatch.setenv(
        "FAKE_SBATCH_ERROR",
        "sbatch: error: invalid partition specified: nope\\nsbatch: error: Batch job submission failed: "
        "Invalid partition name specified",
    )
    args = ["sweep", str(_spec(tmp_path)), "--out", str(tmp_path / "sweep"), "--slurm", "--time", "60"]
    assert main([*args, "--partition", "nope"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "nsvae sweep: error: sbatch refused the sweep's jobs: invalid partition specified: nope; Batch job "
        "submission failed: Invalid partition name specified"
    ]


def test_without_sbatch_here_slurm_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    args = ["sweep", str(_spec(tmp_path)), "--out", str(tmp_path / "sweep"), "--slurm", "--time", "60"]
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [
        "nsvae sweep: error: SLURM's sbatch and srun are not on PATH: run the --slurm sweep on a node of the cluster "
        "(a login node)"
    ]


def test_a_job_an_earlier_driver_submitted_is_watched_not_submitted_again(tmp_path, capsys, fake_slurm, monkeypatch):
    folder, queue = fake_slurm
    out = tmp_path / "sweep"
    command = ["sweep", str(_spec(tmp_path)), "--out", str(out), "--slurm", "--time", "60"]

    def detach(jobs):  # Ctrl-C while the jobs wait in the queue: the driver stops waiting, the jobs stay
        if jobs:  # (the driver's first look, before it submits, is at no job)
            os.kill(os.getpid(), signal.SIGINT)
        return dict.fromkeys(jobs, "PENDING")

    monkeypatch.setattr(slurm_jobs, "queue_states", detach)
    assert main(command) == 128 + signal.SIGINT
    captured = capsys.readouterr()
    assert "no longer waiting; the SLURM jobs go on (--status shows them, the same command waits for them again, " in (
        captured.err
    )
    assert "scancel --name=nsvae-tiny cancels them" in captured.err
    # Later both jobs run and end; the same command waits for them, submitting nothing.
    queue.update({"42_0": "RUNNING", "42_1": "PENDING"})
    monkeypatch.setattr(slurm_jobs, "queue_states", lambda jobs: {j: queue[j] for j in jobs if j in queue})
    assert main(["sweep", str(out), "--status"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()[2:]] == [
        ["vae-seed0", "running", "42_0", "RUNNING"],
        ["vae-seed1", "queued", "42_1", "PENDING"],
    ]
    slurm = (out / "slurm").resolve()
    reads = []

    def jobs_end(jobs):
        reads.append(sorted(jobs))
        if len(reads) == 2:  # the first read is the driver's check for jobs still queued
            (slurm / "42_0_0_result.pkl").write_bytes(pickle.dumps(("success", {"state": "finished", "step": 600})))
            queue.update({"42_0": "COMPLETED", "42_1": "CANCELLED"})
        return {j: queue[j] for j in jobs if j in queue}

    monkeypatch.setattr(slurm_jobs, "queue_states", jobs_end)
    assert main(command) == 1
    printed = capsys.readouterr().out
    assert "[0/2] watching vae-seed0 (train) as SLURM job 42_0" in printed, printed
    assert "[0/2] watching vae-seed1 (train) as SLURM job 42_1" in printed, printed
    assert "finished vae-seed0 at step 600" in printed and "cancelled vae-seed1" in printed, printed
    assert "submitted" not in printed and sorted(p.name for p in folder.glob("sbatch-*.sh")) == ["sbatch-0.sh"]
    runs = read_state(out)["runs"]
    assert [runs[n]["attempts"] for n in ("vae-seed0", "vae-seed1")] == [1, 1]
    assert [runs[n]["slurm"]["state"] for n in ("vae-seed0", "vae-seed1")] == ["COMPLETED", "CANCELLED"]


# -- the job's side: checkpoint, requeue, resume ------------------------------------------------------------------


class _Environment:
    def __init__(self, cluster: str, job_id: str = "12_3"):
        self.cluster, self.job_id = cluster, job_id


@pytest.mark.parametrize(
    ("cluster", "queue", "ends"),
    [
        ("slurm", {"12_3": "RUNNING"}, False),  # scancel --signal=TERM, the warning before the time limit: requeue here
        ("slurm", {"12_3": "COMPLETING"}, True),  # scancel, scontrol requeue, a preemption: SLURM decides
        ("slurm", {}, True),  # gone from the queue
        ("slurm", None, True),  # the queue cannot be read: a cancelled job is never revived
        ("local", None, False),  # submitit's local executor: the job is this process's to requeue
    ],
)
def test_a_stopped_job_requeues_itself_only_when_slurm_is_not_ending_it(monkeypatch, cluster, queue, ends):
    monkeypatch.setattr(slurm_jobs, "queue_states", lambda jobs: queue)
    assert slurm_pool._slurm_ends_the_job(_Environment(cluster)) is ends


@pytest.mark.parametrize(("queue_after", "exits"), [({"12_3": "REQUEUED"}, True), ({"12_3": "RUNNING"}, False)])
def test_a_requeue_scontrol_calls_failed_is_judged_by_the_queue(monkeypatch, queue_after, exits):
    """Seen under load: `scontrol requeue` exited non-zero although the job was requeued; the attempt then wrote an
    "interrupted" result and the driver stopped watching a job that ran again. The queue now decides."""
    import subprocess

    queues = iter([{"12_3": "RUNNING"}, queue_after])  # before the requeue; after scontrol's refusal
    monkeypatch.setattr(slurm_jobs, "queue_states", lambda jobs: next(queues))

    def refused(signum, frame):
        raise subprocess.CalledProcessError(1, ["scontrol", "requeue", "12_3"])

    record = {"state": "interrupted", "phase": "train", "error": "", "step": 119}
    if exits:
        with pytest.raises(SystemExit) as info:
            slurm_pool.requeue_if_stopped(record, refused, 12, _Environment("slurm"))
        assert info.value.code == slurm_pool.EXIT_LEFT_TO_SLURM
    else:  # still RUNNING: the requeue truly failed; the driver reports the run interrupted
        assert slurm_pool.requeue_if_stopped(record, refused, 12, _Environment("slurm")) is record
    finished = {"state": "finished", "phase": "train", "error": "", "step": 900}
    assert slurm_pool.requeue_if_stopped(finished, refused, 12, _Environment("slurm")) is finished


def test_a_job_stopped_by_sigterm_checkpoints_requeues_and_resumes_exactly(dsprites, tmp_path, capsys, monkeypatch):
    """submitit's local executor runs the same protocol as SLURM: its controller forwards SIGTERM to the job, which
    checkpoints; submitit's handler requeues it (exit 144, the controller starts it again) and the run resumes."""

    def local_executor(folder):
        return submitit.LocalExecutor(folder=folder, max_num_timeout=slurm_pool.MAX_TIMEOUTS)

    stopped: list[str] = []
    out = tmp_path / "sweep"

    def queue(jobs):  # a local job's id is its controller's pid: it runs as long as that process does
        for job in jobs:
            run_dir = out / "runs" / "vae-seed0"
            if not stopped and job == read_state(out)["runs"]["vae-seed0"]["slurm"]["job"]:
                if Run(run_dir).checkpoints() and Run(run_dir).checkpoints()[-1][0] >= 40:
                    stopped.append(job)
                    os.kill(int(job), signal.SIGTERM)  # the controller forwards it to the job
        return {job: "RUNNING" if running(int(job)) else "COMPLETED" for job in jobs}

    monkeypatch.setattr(slurm_pool, "_slurm_executor", local_executor)
    monkeypatch.setattr(slurm_jobs, "queue_states", queue)
    monkeypatch.setenv("NSVAE_SLURM_POLL_SECONDS", "0.2")
    spec = _spec(tmp_path, steps=120)
    command = ["sweep", str(spec), "--out", str(out), "--slurm", "--time", "60", "--only", "vae-seed0"]
    try:
        assert main(command) == 0
    finally:  # a failed test leaves no job training: the controllers are this test's (their pids are the jobs)
        controllers = [int(e["slurm"]["job"]) for e in read_state(out)["runs"].values() if "slurm" in e]
        for pid in [p for p in controllers if running(p)]:
            os.kill(pid, signal.SIGKILL)
        assert wait_gone(controllers) == []
    printed = capsys.readouterr().out
    assert stopped, "vae-seed0 finished before the test could stop it"
    assert "finished vae-seed0 at step 120" in printed, printed
    runs = read_state(out)["runs"]
    assert runs["vae-seed0"]["slurm"]["job"] == stopped[0] and runs["vae-seed0"]["slurm"]["state"] == "COMPLETED"
    job_log = (out / runs["vae-seed0"]["slurm"]["stdout"]).read_text()
    assert job_log.count("Starting with JobEnvironment") == 2 and "Requeued job" in job_log, job_log
    run_log = (out / "logs" / "vae-seed0.log").read_text()
    assert run_log.count("nsvae sweep: vae-seed0: interrupted") == 1, run_log
    assert main(command) == 0 and "1 done" in capsys.readouterr().out  # nothing left, nothing submitted
    reference = start(load_sweep(spec).run("vae-seed0").config, tmp_path / "reference")
    wa, wb = Run(reference.path).read_checkpoint()["model"], Run(out / "runs" / "vae-seed0").read_checkpoint()["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
