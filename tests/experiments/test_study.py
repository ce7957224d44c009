"""Studies: finished runs leave their small files under studies/<name>/; nothing done is trained twice."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from nsvae.cli import main
from nsvae.errors import UserError
from nsvae.evaluation import read_udr_sample
from nsvae.experiments import study
from nsvae.experiments.sweep import loads_sweep

SPEC = """
name = "tiny-study"
seeds = [0, 1]

[base]
config = "quick-vae"

[set]
"run.steps" = 12
"run.device" = "cpu"
"run.threads" = 1
"model.z_dim" = 4
"data.batch_size" = 8
"log.every" = 6
"log.traversal_every" = 0
"log.checkpoint_every" = 6
"log.tensorboard" = false
"log.console" = false
"log.progress" = false
"eval.every" = 6
"eval.pool" = 300
"eval.votes" = 5

[evaluation]
metrics = ["mig", "active_units"]
overrides = { mig = { num_train = 300 }, active_units = { num_train = 300 } }
"""


@pytest.fixture
def spec(tmp_path, dsprites) -> Path:
    path = tmp_path / "tiny-study.toml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def _run(spec: Path, tmp_path: Path, *extra: str) -> int:
    return main(
        ["study", str(spec), "--studies-dir", str(tmp_path / "studies"), "--work-dir", str(tmp_path / "work"), *extra]
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_study_leaves_each_runs_files_and_the_tables(spec, tmp_path):
    assert _run(spec, tmp_path, "--workers", "1") == 0
    root = tmp_path / "studies" / "tiny-study"
    for name in ("vae-seed0", "vae-seed1"):
        folder = root / "runs" / name
        files = {p.name for p in folder.iterdir()}
        assert files == {"config.toml", "curve.csv", "final.json", "traversal.png", "udr_sample.npz"}
        record = json.loads((folder / "final.json").read_text())
        # UDR's fixed sample, so that the study's UDR needs no checkpoint: the published size, the final step
        assert record["udr_sample"] == {"file": "udr_sample.npz", "num_data_points": 1000, "seed": 0, "step": 12}
        sample = read_udr_sample(folder / "udr_sample.npz")
        assert sample["mean"].shape == sample["logvar"].shape == (1000, 4) and sample["factors"].shape == (1000, 5)
        assert record["method"] == "vae" and record["step"] == 12
        assert set(record["scores"]) == {"mig", "active_units"}
        assert record["machine"]["cores"] >= 1 and "commit" in record["code"]
        # the CPU and the instruction set of torch's kernels: training is bit-exact on one CPU, not across them
        assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert "cpu" in record["machine"]
        assert record["seconds"]["curve_evaluations"] > 0
    assert (root / "study.toml").read_text() == SPEC
    with open(root / "results.csv", encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    assert header[:3] == ["method", "seed", "step"]
    assert {"factor_vae_score", "mig", "chen_mig", "sap", "synergy", "synergy.wms", "synergy.proxy"} <= set(header)
    rows = _rows(root / "results.csv")
    assert [(r["method"], r["seed"], r["step"]) for r in rows] == [
        ("vae", "0", "6"),
        ("vae", "0", "12"),
        ("vae", "1", "6"),
        ("vae", "1", "12"),
    ]
    assert all(r["train.recon"] for r in rows)
    final = _rows(root / "final.csv")
    assert [(r["method"], r["seed"], r["step"]) for r in final] == [("vae", "0", "12"), ("vae", "1", "12")]


def test_done_runs_are_skipped_lost_files_exported_again_lost_runs_retrained(spec, tmp_path, capsys):
    assert _run(spec, tmp_path, "--workers", "1") == 0
    root = tmp_path / "studies" / "tiny-study"
    checkpoint = next((tmp_path / "work" / "runs" / "vae-seed0" / "checkpoints").iterdir())
    mtime = checkpoint.stat().st_mtime_ns
    capsys.readouterr()
    assert _run(spec, tmp_path) == 0
    assert "every run is done" in capsys.readouterr().out
    # The study's files of a run are lost but its directory is there: exported again, not retrained.
    shutil.rmtree(root / "runs" / "vae-seed0")
    assert _run(spec, tmp_path) == 0
    assert (root / "runs" / "vae-seed0" / "final.json").is_file()
    assert checkpoint.stat().st_mtime_ns == mtime
    # Both lost (a fresh machine): the run starts over, and only that run.
    seed1 = (root / "runs" / "vae-seed1" / "final.json").stat().st_mtime_ns
    shutil.rmtree(root / "runs" / "vae-seed0")
    shutil.rmtree(tmp_path / "work")
    assert _run(spec, tmp_path, "--workers", "1") == 0
    assert (root / "runs" / "vae-seed0" / "final.json").is_file()
    assert (root / "runs" / "vae-seed1" / "final.json").stat().st_mtime_ns == seed1
    assert not (tmp_path / "work" / "runs" / "vae-seed1").exists()


def test_a_study_without_curves_or_with_a_changed_spec_is_refused(spec, tmp_path):
    no_curve = loads_sweep(SPEC.replace('"eval.every" = 6', '"eval.every" = 0'))
    with pytest.raises(UserError, match="eval.every"):
        study.check_study(no_curve)
    (tmp_path / "studies" / "tiny-study").mkdir(parents=True)
    (tmp_path / "studies" / "tiny-study" / "study.toml").write_text("name = 'other'\n")
    assert _run(spec, tmp_path) == 2


def test_dry_run_lists_done_and_left(spec, tmp_path, capsys):
    assert _run(spec, tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 runs, 0 done" in out and "vae-seed0  left" in out
    assert not (tmp_path / "studies").exists()


def test_commit_commits_the_study_files_alone(spec, tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (repo / "other.txt").write_text("staged, not part of the study\n")
    (repo / ".gitignore").write_text("runs/\n")  # a common rule that also matches studies/NAME/runs/
    git("add", "other.txt")
    code = main(
        [
            "study",
            str(spec),
            "--studies-dir",
            str(repo / "studies"),
            "--work-dir",
            str(tmp_path / "work"),
            "--workers",
            "1",
            "--only",
            "vae-seed0",
            "--commit",
        ]
    )
    assert code == 0
    # the sweep's count line speaks of the selected run only, not of the one --only leaves alone
    assert f"nsvae sweep: tiny-study: 1 of its 2 runs in {tmp_path / 'work'} - 1 train\n" in capsys.readouterr().out
    log = git("log", "--format=%s")
    assert log.strip() == "study tiny-study: run vae-seed0 (1/2)"
    files = git("show", "--name-only", "--format=", "HEAD").split()
    assert "other.txt" not in files
    assert "studies/tiny-study/runs/vae-seed0/final.json" in files and "studies/tiny-study/results.csv" in files
    run_files = {
        f"studies/tiny-study/runs/vae-seed0/{n}"
        for n in ("config.toml", "curve.csv", "traversal.png", "udr_sample.npz")
    }
    assert run_files <= set(files)
    assert "other.txt" in git("diff", "--cached", "--name-only")


def test_every_methods_first_three_seeds_run_before_the_later_seeds():
    entries = '\n[[runs]]\nname = "a"\n\n[[runs]]\nname = "b"\n'
    text = SPEC.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4]") + entries
    sweep = loads_sweep(text)
    names = [r.name for r in sweep.runs]
    batches = study.seed_batches(sweep, names)
    assert batches == [
        ["a-seed0", "a-seed1", "a-seed2", "b-seed0", "b-seed1", "b-seed2"],
        ["a-seed3", "a-seed4", "b-seed3", "b-seed4"],
    ]
    assert study.seed_batches(sweep, ["b-seed4", "a-seed1"]) == [["a-seed1"], ["b-seed4"]]


def test_in_flight_curve_points_are_written_and_replaced_by_the_finished_files(spec, tmp_path, capsys):
    import nsvae

    sweep = loads_sweep(SPEC)
    work = tmp_path / "work"
    # a run of the study that has trained (here: all of it) but whose files never went into the study
    nsvae.train(sweep.run("vae-seed1").config, out=work / "runs" / "vae-seed1")
    assert _run(spec, tmp_path, "--in-flight") == 0
    assert "curve points of 1 run(s) in flight (vae-seed1 12)" in capsys.readouterr().out
    in_flight = tmp_path / "studies" / "tiny-study" / "in-flight" / "vae-seed1.csv"
    rows = _rows(in_flight)
    assert [(r["method"], r["seed"], r["step"]) for r in rows] == [("vae", "1", "6"), ("vae", "1", "12")]
    assert rows[0]["mig"] and rows[0]["train.recon"]
    assert _run(spec, tmp_path, "--workers", "1") == 0
    assert not in_flight.exists()  # the run's files replaced its in-flight points
    assert (tmp_path / "studies" / "tiny-study" / "runs" / "vae-seed1" / "final.json").is_file()


# -- carrying a run's training state in the repository (nsvae.experiments.study_carry) ----------------------------


def test_a_carried_run_resumes_on_a_fresh_machine_as_the_kept_machine_would_have(spec, tmp_path, capsys):
    import os
    import signal
    import tarfile

    import torch

    import nsvae
    from nsvae.train.learning_curve import read_curve
    from nsvae.train.run import Run

    config = loads_sweep(SPEC).run("vae-seed1").config
    whole = nsvae.train(config, out=tmp_path / "whole")

    def stop_at_7(step, logs):
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    work = tmp_path / "work"
    nsvae.train(config, out=work / "runs" / "vae-seed1", callback=stop_at_7)
    assert _run(spec, tmp_path, "--in-flight", "--carry") == 0
    assert "training state of 1 run(s) carried (vae-seed1 7)" in capsys.readouterr().out
    carried = tmp_path / "studies" / "tiny-study" / "in-flight" / "vae-seed1.run.tar"
    with tarfile.open(carried) as archive:
        names = set(archive.getnames())
    assert {"checkpoints/step_0000007.pt", "checkpoints/step_0000007.pt.sha256", "config.toml", "status.json"} <= names
    assert "checkpoints/step_0000006.pt" not in names and ".lock" not in names  # the newest checkpoint alone

    shutil.rmtree(work)  # a machine that was not kept
    assert _run(spec, tmp_path, "--status") == 0
    assert "resumed from there where a run's directory is absent): vae-seed1 (step 7)" in capsys.readouterr().out
    assert _run(spec, tmp_path, "--workers", "1", "--only", "vae-seed1") == 0
    assert f"vae-seed1: restored from {carried} (step 7)" in capsys.readouterr().out
    assert (tmp_path / "studies" / "tiny-study" / "runs" / "vae-seed1" / "final.json").is_file()
    assert not carried.exists()  # the finished files replace it
    resumed = Run(work / "runs" / "vae-seed1")
    mine, theirs = resumed.read_checkpoint()["model"], whole.read_checkpoint()["model"]
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert [e["scores"] for e in read_curve(resumed.path)] == [e["scores"] for e in read_curve(whole.path)]


def test_packing_takes_the_newest_intact_checkpoint_and_unpacking_checks_it(tmp_path, dsprites, capsys):
    import io
    import tarfile

    import nsvae
    from nsvae.experiments.study_carry import carried_step, pack_run, restore_carried, unpack_run
    from nsvae.train.run import Run

    config = loads_sweep(SPEC).run("vae-seed0").config
    run = nsvae.train(config, out=tmp_path / "run", overrides=["log.keep_checkpoints=2"])
    assert [s for s, _ in run.checkpoints()] == [6, 12]
    newest = run.checkpoint_path(12)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped bit: its SHA-256 no longer matches
    newest.write_bytes(bytes(data))
    carried = tmp_path / "in-flight" / "vae-seed0.run.tar"
    assert pack_run(run.path, carried) == 6 and carried_step(carried) == 6
    written = carried.stat().st_mtime_ns
    assert pack_run(run.path, carried) == 6 and carried.stat().st_mtime_ns == written  # the same step: kept as is

    assert unpack_run(carried, tmp_path / "restored") == 6
    assert [s for s, _ in Run(tmp_path / "restored").checkpoints()] == [6]
    with pytest.raises(UserError, match="exists"):
        unpack_run(carried, tmp_path / "restored")
    # A directory already there is kept (its own checkpoint goes on); the message says how to use the newer one.
    shutil.rmtree(tmp_path / "restored" / "checkpoints")
    (tmp_path / "work").mkdir()
    (tmp_path / "restored").rename(tmp_path / "work" / "vae-seed0")
    assert restore_carried(carried.parent, tmp_path / "work", ["vae-seed0"]) == {}
    out = capsys.readouterr().out
    assert "holds step 6 but" in out and "is kept" in out

    # A carried file whose checkpoint was damaged in the repository restores nothing.
    damaged = tmp_path / "damaged.run.tar"
    with tarfile.open(carried) as source, tarfile.open(damaged, "w") as target:
        for member in source.getmembers():
            content = source.extractfile(member).read()
            if member.name.endswith(".pt"):
                content = content[:-100] + bytes(100)
            member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    with pytest.raises(UserError, match="damaged"):
        unpack_run(damaged, tmp_path / "never")
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".never.*"))

    # A member that is not a plain file inside the run (a link, a path that climbs out) is refused.
    for bad in ("link", "climb"):
        hostile = tmp_path / f"{bad}.run.tar"
        with tarfile.open(hostile, "w") as target:
            member = tarfile.TarInfo("checkpoints/step_0000006.pt" if bad == "link" else "../outside.txt")
            if bad == "link":
                member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
            else:
                member.size = 2
            target.addfile(member, None if bad == "link" else io.BytesIO(b"hi"))
        with pytest.raises(UserError, match="not a readable carried run .*unexpected member"):
            unpack_run(hostile, tmp_path / "never")
        assert not (tmp_path / "never").exists() and not (tmp_path / "outside.txt").exists()

    # No intact checkpoint at all: nothing is written.
    run.checkpoint_path(6).write_bytes(b"not a checkpoint")
    assert pack_run(run.path, tmp_path / "none.run.tar") is None and not (tmp_path / "none.run.tar").exists()


def test_carry_goes_with_in_flight(spec, tmp_path, capsys):
    assert _run(spec, tmp_path, "--carry") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--carry goes with --in-flight" in err
