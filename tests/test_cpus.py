"""One CPU count for every default, with a fallback where the affinity call does not exist (issue 17, §1)."""

from __future__ import annotations

import os

import pytest

from nsvae import cpus
from nsvae.data import dsprites, images


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no affinity mask here")
def test_the_affinity_mask_wins_where_there_is_one(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 5, 7})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert cpus.usable_cpus() == 3


def test_without_sched_getaffinity_the_cpu_count_is_used(monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: `data prepare` used to crash there."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpus.usable_cpus() == 6
    # The callers keep their own clamps: at most 4 dataset workers.
    assert dsprites._worker_count(None) == 4
    assert images._default_workers(10_000) == 4


def test_process_cpu_count_is_preferred_to_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "process_cpu_count", lambda: 2, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpus.usable_cpus() == 2
    assert dsprites._worker_count(None) == 2


def test_an_unknown_cpu_count_is_one(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cpus.usable_cpus() == 1
    assert dsprites._worker_count(None) == 1
    assert images._default_workers(10_000) == 1


def test_no_module_counts_cpus_itself():
    """One helper: no other module of the package asks the system for its CPUs."""
    from pathlib import Path

    src = Path(cpus.__file__).parent
    calls = ("sched_getaffinity", "cpu_count(")
    others = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if path.name != "cpus.py" and any(call in path.read_text(encoding="utf-8") for call in calls)
    ]
    assert others == []
