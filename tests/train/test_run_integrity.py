"""A run directory under faults (issue 16, points 4, 5, 7, 8, 9, 10): the config is checked before the directory
exists, a run without a checkpoint restarts, checkpoints are verified, links and stray files are left alone,
temporary files are cleaned, a full disk stops in one line and nothing completed is lost."""

from __future__ import annotations

import errno
import math
import os
import re
import signal
import warnings

import numpy as np
import pytest
import torch

from nsvae.errors import NsvaeWarning, UserError
from nsvae.train import Run, resume, start
from nsvae.train.run import DamagedCheckpoint, checksum_path
from nsvae.train.trainer import DiskFull
from tests.train.test_trainer import _params


def _same(a: Run, b: Run) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


# -- 4: the whole config is checked before a run directory exists ------------------------------------------


BAD = [
    ("vae", {"run.seed": -1}, "run.seed"),
    ("vae", {"run.seed": 2**64}, "run.seed"),
    ("vae", {"data.seed": -5}, "data.seed"),
    ("vae", {"optim.eps": 0.0}, "optim.eps"),
    ("vae", {"optim.eps": -1e-8}, "optim.eps"),
    ("vae", {"optim.eps": math.nan}, "optim.eps"),
    ("vae", {"optim.lr": math.inf}, "optim.lr"),
    ("factor_vae", {"factor_vae.d_lr": -1e-4}, "factor_vae.d_lr"),
    ("factor_vae", {"factor_vae.d_beta1": 2.0}, "factor_vae.d_beta1"),
    ("vae", {"common.proxy_omega": 2.0}, "common.proxy_omega"),
    ("beta_tcvae", {"data.batch_size": 1}, "data.batch_size"),
    ("beta_tcvae", {"beta_tcvae.beta": -1.0}, "beta_tcvae.beta"),
    ("nonsyn", {"nonsyn.alpha": math.nan}, "nonsyn.alpha"),
    ("beta_vae", {"beta_vae.beta": math.inf}, "beta_vae.beta"),
    ("beta_tcvae", {"beta_tcvae.gamma": math.nan}, "beta_tcvae.gamma"),
]


@pytest.mark.parametrize(("method", "changes", "key"), BAD, ids=[f"{k}={v}" for _, c, k in BAD for v in c.values()])
def test_a_bad_config_fails_before_the_run_directory_exists(tiny, tmp_path, method, changes, key):
    with pytest.raises(UserError) as info:
        start(tiny(method, **changes), tmp_path / "run")
    assert key in str(info.value) or key.split(".")[1] in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_fails_before_the_run_directory_exists(tiny, tmp_path):
    with pytest.raises(UserError, match="CUDA is not available"):
        start(tiny("vae", **{"run.device": "cuda:1"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_dataset_fails_before_the_run_directory_exists(tiny, tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    changes = {"data.dataset": "folder", "data.source": str(folder), "data.channels": 1, "data.batch_size": 32}
    with pytest.raises(UserError, match="data.batch_size = 32 is larger than folder"):
        start(tiny("vae", **changes), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_run_killed_before_its_first_checkpoint_is_restarted_by_the_same_command(tiny, tmp_path):
    config = tiny("vae", **{"log.checkpoint_every": 10, "log.traversal_every": 2})
    whole = start(config, tmp_path / "whole")

    def killed(step, logs):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        start(config, tmp_path / "run", callback=killed)
    run = Run(tmp_path / "run")
    assert run.exists() and not run.checkpoints() and list(run.traversal_dir.iterdir())
    (tmp_path / "run" / "notes.txt").write_text("mine")  # not the run's: kept
    again = start(config, tmp_path / "run")
    assert again.state == "finished" and (tmp_path / "run" / "notes.txt").read_text() == "mine"
    _same(whole, again)
    # --resume of a run without a checkpoint trains it from step 0 too
    with pytest.raises(KeyboardInterrupt):
        start(config, tmp_path / "run2", callback=killed)
    _same(whole, resume(tmp_path / "run2"))


# -- 5: checkpoints carry a checksum ------------------------------------------------------------------------


def _flip(path, offset=None) -> None:
    data = bytearray(path.read_bytes())
    k = len(data) // 2 if offset is None else offset
    data[k] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def pair(tiny, tmp_path):
    """An uninterrupted run and a copy interrupted at step 10 (checkpoints 5 and 10)."""
    config = tiny("vae", **{"log.keep_checkpoints": 5})
    whole = start(config, tmp_path / "whole")

    def stop(step, logs):
        if step == 10:
            os.kill(os.getpid(), signal.SIGTERM)

    part = start(config, tmp_path / "part", callback=stop)
    assert [s for s, _ in part.checkpoints()] == [5, 10]
    return whole, part


@pytest.mark.parametrize("damage", ["bitflip", "truncate", "header", "no-sidecar-bitflip", "zeros"])
def test_a_damaged_checkpoint_is_reported_and_resume_falls_back_to_the_newest_intact_one(pair, damage):
    whole, part = pair
    latest = part.checkpoint_path(10)
    if damage == "bitflip":
        _flip(latest)
    elif damage == "truncate":
        latest.write_bytes(latest.read_bytes()[:-100])
    elif damage == "header":
        _flip(latest, 0)
    elif damage == "no-sidecar-bitflip":  # a checkpoint of an older nsvae: its zip CRCs are checked
        checksum_path(latest).unlink()
        _flip(latest, len(latest.read_bytes()) - 4000)
    else:
        latest.write_bytes(bytes(latest.stat().st_size))
    with pytest.raises(DamagedCheckpoint) as info:
        part.read_checkpoint()
    message = str(info.value)
    assert str(latest) in message and "step_0000005.pt" in message and "\n" not in message
    with pytest.warns(NsvaeWarning) as caught:
        resumed = resume(part.path)
    text = str(caught[0].message)
    assert "step_0000010.pt" in text and "step_0000005.pt" in text
    assert (part.checkpoint_dir / "step_0000010.pt.damaged").is_file()
    assert resumed.state == "finished"
    _same(whole, resumed)
    assert [e["step"] for e in resumed.log()] == [e["step"] for e in whole.log()]


def test_an_intact_checkpoint_verifies_and_sha256sum_agrees(pair):
    import hashlib

    _, part = pair
    path = part.checkpoint_path()
    assert part.verify_checkpoint(path) == ""
    digest, name = checksum_path(path).read_text().split()
    assert name == path.name and digest == hashlib.sha256(path.read_bytes()).hexdigest()


# -- 7: links and stray files -------------------------------------------------------------------------------


def test_a_symlinked_checkpoint_directory_is_refused_and_nothing_outside_is_deleted(tiny, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for step in (1, 2, 3):
        (outside / f"step_{step:07d}.pt").write_bytes(b"precious")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").symlink_to(outside)
    with pytest.raises(UserError, match="symbolic link"):
        start(tiny("vae"), tmp_path / "run")
    assert sorted(p.name for p in outside.iterdir()) == [f"step_{s:07d}.pt" for s in (1, 2, 3)]
    # the same for a run that exists
    run = start(tiny("vae", **{"run.steps": 5}), tmp_path / "real")
    target = tmp_path / "moved"
    os.replace(run.checkpoint_dir, target)
    run.checkpoint_dir.symlink_to(target)
    with pytest.raises(UserError, match="symbolic link"):
        resume(run, steps=12)
    assert [p.name for p in target.glob("*.pt")] == ["step_0000005.pt"]


def test_stray_checkpoints_without_a_config_are_neither_adopted_nor_pruned(tiny, tmp_path):
    stray = tmp_path / "run" / "checkpoints"
    stray.mkdir(parents=True)
    for step in (1, 2, 3, 4):
        (stray / f"step_{step:07d}.pt").write_bytes(b"someone's")
    with pytest.raises(UserError, match="no config.toml"):
        start(tiny("vae"), tmp_path / "run")
    assert len(list(stray.iterdir())) == 4 and not (tmp_path / "run" / "config.toml").exists()


# -- 8: temporary files -------------------------------------------------------------------------------------


def test_leftover_temporary_files_are_removed_on_resume(pair):
    _, part = pair
    leftovers = [part.checkpoint_dir / ".step_0000015.pt.abc123.tmp", part.path / ".status.json.xyz.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    resume(part.path)
    assert not any(p.exists() for p in leftovers)


# -- 9: a full disk -----------------------------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_stops_in_one_line_and_the_run_resumes(pair, monkeypatch):
    from nsvae.train import run as run_module

    whole, part = pair
    original = run_module._HashingWriter.__init__

    class Full:  # a file that takes 2,000 bytes, then reports a full disk
        def __init__(self, handle):
            self.handle, self.n = handle, 0

        def write(self, data):
            self.n += len(data)
            if self.n > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def flush(self):
            self.handle.flush()

    def init(self, handle, digest):
        original(self, Full(handle), digest)

    monkeypatch.setattr(run_module._HashingWriter, "__init__", init)
    with pytest.raises(DiskFull) as info:
        resume(part.path, steps=12)
    message = str(info.value)
    assert "\n" not in message and "the checkpoint of step 10 is intact" in message and "--resume" in message
    assert [s for s, _ in part.checkpoints()] == [5, 10]
    assert part.verify_checkpoint(part.checkpoint_path(10)) == ""
    assert not list(part.checkpoint_dir.glob(".*.tmp"))
    monkeypatch.setattr(run_module._HashingWriter, "__init__", original)
    _same(whole, resume(part.path))


def test_a_full_disk_in_tensorboard_stops_in_one_line(tiny, tmp_path, monkeypatch):
    from tensorboard.summary.writer import record_writer

    original = record_writer.RecordWriter.write
    calls = {"n": 0}

    def write(self, data):
        calls["n"] += 1
        if calls["n"] > 30:  # the disk fills during training
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NsvaeWarning)  # the events of the last steps are lost, and said so
        with pytest.raises(DiskFull, match="no space left"):
            start(tiny("vae", **{"log.tensorboard": True, "run.steps": 40}), tmp_path / "run")
    status = Run(tmp_path / "run").status()
    assert status["state"] == "failed" and "no space left" in status["error"]
    assert re.search(r"at step \d+: training stopped; the checkpoint of step \d+ is intact", status["error"]), status
    monkeypatch.setattr(record_writer.RecordWriter, "write", original)
    assert resume(tmp_path / "run").status()["state"] == "finished"
    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    calls["n"] = 10**9  # a full disk from the first event written: before any checkpoint
    with pytest.raises(DiskFull, match="before the first checkpoint"):
        start(tiny("vae", **{"log.tensorboard": True}), tmp_path / "run2")


# -- 10: a torn last line of log.jsonl ----------------------------------------------------------------------


def test_a_torn_last_log_line_is_skipped_with_a_warning_and_report_and_plot_work(pair, tmp_path, capsys):
    from nsvae.cli import main

    whole, _ = pair
    with open(whole.log_path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 16, "recon": 1.2, "kl"')
    with pytest.warns(NsvaeWarning, match="last line .* incomplete"):
        assert [e["step"] for e in whole.log()] == [4, 8, 12]
    assert main(["plot", "curves", str(whole.path), "-o", str(tmp_path / "curves.png")]) == 0
    report = ["report", str(whole.path), "-o", str(tmp_path / "report.html"), "--no-traversals", "--samples", "0"]
    assert main(report) == 0
    err = capsys.readouterr().err
    assert "incomplete" in err
    lines = whole.log_path.read_text().splitlines()
    whole.log_path.write_text("\n".join([lines[0], "{broken", *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="line 2 is not a log entry"):
        whole.log()


# -- 11 and 12: what load_model and the config reader refuse ------------------------------------------------


def test_a_config_that_does_not_fit_the_checkpoint_and_a_checkpoint_without_model_are_one_line(pair, capsys):
    from nsvae.cli import main

    whole, _ = pair
    text = whole.config_path.read_text()
    whole.config_path.write_text(text.replace("z_dim = 4", "z_dim = 7"))
    with pytest.raises(UserError, match="does not fit the network") as info:
        whole.load_model()
    assert "\n" not in str(info.value)
    whole.config_path.write_text(text)
    state = whole.read_checkpoint()
    del state["model"]
    whole.write_checkpoint(state, 12, keep=5)
    with pytest.raises(UserError, match="has no 'model' entry"):
        Run(whole.path).load_model()
    assert main(["evaluate", str(whole.path), "--metrics", "mig"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'model'" in err


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    from nsvae.config import load_config

    path = tmp_path / "bom.toml"
    path.write_bytes(b'\xef\xbb\xbfmethod = "vae"\n[run]\nseed = 4\n')
    config = load_config(str(path))
    assert config.method == "vae" and config.run.seed == 4
