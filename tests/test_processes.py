"""Worker processes: the start method chosen per platform and forced by NSVAE_START_METHOD; liveness (issue 17, §1)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from nsvae import processes


def test_the_preferred_start_method_is_used_where_the_platform_has_it(monkeypatch):
    monkeypatch.delenv(processes.START_METHOD_ENV, raising=False)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["fork", "spawn", "forkserver"])
    assert processes.start_context("forkserver").get_start_method() == "forkserver"
    assert processes.start_context("fork").get_start_method() == "fork"


def test_without_the_preferred_method_it_is_spawn(monkeypatch):
    """Windows has neither fork nor forkserver: pools and sweeps start their workers with spawn there."""
    monkeypatch.delenv(processes.START_METHOD_ENV, raising=False)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert processes.start_context("forkserver").get_start_method() == "spawn"
    assert processes.start_context("fork").get_start_method() == "spawn"


def test_the_environment_forces_one_method(monkeypatch):
    monkeypatch.setenv(processes.START_METHOD_ENV, "spawn")
    assert processes.start_context("forkserver").get_start_method() == "spawn"
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setenv(processes.START_METHOD_ENV, "fork")
    with pytest.raises(ValueError, match="NSVAE_START_METHOD='fork' is not a start method of this platform"):
        processes.start_context("spawn")


def test_pid_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert processes.pid_alive(multiprocessing.current_process().pid)
    assert not processes.pid_alive(child.pid)  # reaped: gone (its pid is not reused this fast)
    assert not processes.pid_alive(0) and not processes.pid_alive(-5)
