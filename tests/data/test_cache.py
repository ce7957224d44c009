"""The cache: root resolution, atomic builds, one builder at a time, stale leftovers, clear errors."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from nsvae.atomic import write_json_atomic
from nsvae.data import cache
from nsvae.errors import UserError


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NSVAE_CACHE_DIR", str(tmp_path / "env"))
    assert cache.cache_root(tmp_path / "flag") == tmp_path / "flag"
    assert cache.cache_root() == tmp_path / "env"
    monkeypatch.delenv("NSVAE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "nsvae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache.cache_root() == Path.home() / ".cache" / "nsvae"


def test_unwritable_cache_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not writable.*--cache-dir"):
        cache.ensure_writable_dir(blocker / "cache")


def test_failed_build_leaves_the_old_entry_and_no_temporary(tmp_path):
    entry = tmp_path / "ds" / "key"
    with cache.building(entry, {"key": "key", "n": 1}) as tmp:
        (tmp / "data.txt").write_text("first")
    with pytest.raises(RuntimeError), cache.building(entry, {"key": "key", "n": 2}) as tmp:
        (tmp / "data.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert (entry / "data.txt").read_text() == "first"
    assert cache.read_meta(entry)["n"] == 1
    assert [p.name for p in entry.parent.iterdir()] == ["key"]


def test_rebuild_replaces_the_entry(tmp_path):
    entry = tmp_path / "ds" / "key"
    for n in (1, 2):
        with cache.building(entry, {"n": n}) as tmp:
            (tmp / "data.txt").write_text(str(n))
    meta = cache.read_meta(entry)
    assert (entry / "data.txt").read_text() == "2" and meta["n"] == 2 and set(meta["checksums"]) == {"data.txt"}
    assert sorted(p.name for p in entry.parent.iterdir()) == ["key"]


def _slow_prepare(entry: str, log: str) -> None:
    entry_path = Path(entry)
    with cache.entry_lock(entry_path):
        if cache.read_meta(entry_path) is not None:
            return
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        with cache.building(entry_path, {"builder": os.getpid()}) as tmp:
            for k in range(5):
                (tmp / f"part{k}").write_text(str(k))
                time.sleep(0.05)


def _race(target, n: int, *args: str) -> list[int | None]:
    """Run ``target(*args)`` in ``n`` spawned processes at once; their exit codes."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return [p.exitcode for p in procs]


def test_concurrent_prepares_build_once(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    assert _race(_slow_prepare, 3, str(entry), str(log)) == [0, 0, 0]
    assert len(log.read_text().split()) == 1
    files = sorted(f.name for f in entry.iterdir())
    assert files == [cache.STAMP_FILE, "meta.json", *[f"part{k}" for k in range(5)]]


def _killed_prepare(entry: str) -> None:
    with cache.entry_lock(Path(entry)), cache.building(Path(entry), {}) as tmp:
        (tmp / "half").write_text("x")
        time.sleep(60)


def test_killed_build_leaves_no_entry_and_its_leftover_is_cleaned(tmp_path):
    entry = tmp_path / "ds" / "key"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_killed_prepare, args=(str(entry),))
    proc.start()
    deadline = time.time() + 30
    while not list(entry.parent.glob(".key.building-*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(entry.parent.glob(".key.building-*"))
    assert cache.remove_stale_temporaries(entry.parent) == 0  # in progress: left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert not entry.exists()
    assert cache.remove_stale_temporaries(entry.parent) == 1
    assert not list(entry.parent.glob(".key.building-*"))


def test_write_json_atomic(tmp_path):
    path = tmp_path / "x" / "meta.json"
    write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["meta.json"]


def test_taking_the_entry_lock_removes_the_entrys_leftovers(tmp_path):
    """The preparation itself holds the entry's lock when it cleans up: its own leftovers must go (issue 16, 8)."""
    entry = tmp_path / "ds" / "key"
    for name in (".key.building-abc", ".key.old-123", ".other.building-x"):
        (entry.parent / name).mkdir(parents=True)
        (entry.parent / name / "images.npy").write_bytes(b"x")
    with cache.entry_lock(entry):
        left = sorted(p.name for p in entry.parent.iterdir() if not p.name.endswith(".lock"))
    assert left == [".other.building-x"]
    assert cache.remove_stale_temporaries(entry.parent) == 1
    assert not [p for p in entry.parent.iterdir() if not p.name.endswith(".lock")]


# -- ensure_entry: the one owner of "ready, else build it under its lock" ----------------------------


def _build_parts(log: str):
    def build(tmp: Path) -> dict:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        for k in range(3):
            (tmp / f"part{k}").write_text(str(k))
            time.sleep(0.05)
        return {"key": "key", "builder": os.getpid()}

    return build


def _ensure(entry: str, log: str) -> None:
    cache.ensure_entry(Path(entry), _build_parts(log))


def test_ensure_entry_builds_once_and_then_reuses(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    assert cache.ensure_entry(entry, _build_parts(str(log))) == entry
    meta = cache.read_meta(entry)
    assert meta["key"] == "key" and meta["builder"] == os.getpid()
    assert sorted(meta["checksums"]) == ["part0", "part1", "part2"] and cache.verify_entry(entry, full=True) == ""
    assert cache.ensure_entry(entry, _build_parts(str(log))) == entry  # ready: not built again
    assert len(log.read_text().split()) == 1
    cache.ensure_entry(entry, _build_parts(str(log)), force=True)
    assert len(log.read_text().split()) == 2
    assert sorted(p.name for p in entry.parent.iterdir()) == [".key.lock", "key"]


def test_ensure_entry_in_racing_processes_builds_once(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    assert _race(_ensure, 2, str(entry), str(log)) == [0, 0]
    assert len(log.read_text().split()) == 1
    assert cache.verify_entry(entry, full=True) == ""


def test_ensure_entry_rebuilds_a_damaged_entry_and_says_so(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    cache.ensure_entry(entry, _build_parts(str(log)))
    (entry / "part1").write_text("X")
    told = []
    cache.ensure_entry(
        entry,
        _build_parts(str(log)),
        check=lambda e: cache.verify_entry(e, full=True),
        on_damaged=lambda e, problem: told.append((e, problem)),
    )
    assert told == [(entry, "part1 differs from what was written (its SHA-256 does not match meta.json)")]
    assert len(log.read_text().split()) == 2 and (entry / "part1").read_text() == "1"


def test_ensure_entry_with_a_custom_readiness_test(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    cache.ensure_entry(entry, _build_parts(str(log)))
    cache.ensure_entry(entry, _build_parts(str(log)), ready=lambda e: (cache.read_meta(e) or {}).get("key") == "other")
    assert len(log.read_text().split()) == 2


def test_a_failed_build_leaves_nothing_but_the_old_entry(tmp_path):
    entry, log = tmp_path / "ds" / "key", tmp_path / "log"
    cache.ensure_entry(entry, _build_parts(str(log)))
    before = cache.read_meta(entry)

    def broken(tmp: Path) -> dict:
        (tmp / "part0").write_text("half")
        raise ValueError("the source is truncated")

    with pytest.raises(ValueError, match="truncated"):
        cache.ensure_entry(entry, broken, force=True)
    assert cache.read_meta(entry) == before and (entry / "part0").read_text() == "0"
    assert sorted(p.name for p in entry.parent.iterdir()) == [".key.lock", "key"]
