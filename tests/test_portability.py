"""nsvae starts where POSIX-only modules are missing (Windows): every module imports and every command's --help works.

A subprocess removes what Windows lacks before importing anything of nsvae:
the modules ``fcntl``, ``resource``, ``termios``, ``pwd``, ``grp`` (their
import raises ImportError) and the signals Windows has no number for. It then
imports every module of the package and runs ``nsvae --help`` and
``--help`` of every command and subcommand (issue 17, §1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import contextlib, importlib, io, json, pkgutil, signal, sys

    for name in ("fcntl", "resource", "termios", "pwd", "grp"):
        sys.modules[name] = None  # import raises ImportError, as on Windows
    for name in ("SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGQUIT", "SIGPIPE", "SIGCHLD"):
        delattr(signal, name)

    import nsvae
    from nsvae import cli

    failed = {}
    modules = [m.name for m in pkgutil.walk_packages(nsvae.__path__, "nsvae.")]
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed[name] = repr(exc)

    def commands(parser, path):
        yield path
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    yield from commands(sub, [*path, name])

    helped = {}
    for path in commands(cli.build_parser(), []):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            try:
                code = cli.main([*path, "--help"])
            except SystemExit as exit:
                code = exit.code
        helped[" ".join(path)] = [code, "usage:" in out.getvalue()]
    print(json.dumps({"modules": modules, "failed": failed, "helped": helped}))
    """
)


def test_every_module_and_every_help_works_without_posix_only_modules():
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    assert {"nsvae.locks", "nsvae.processes", "nsvae.data.cache", "nsvae.train.run"} <= set(report["modules"])
    helped = report["helped"]
    assert {"", "train", "sweep", "data", "data prepare"} <= set(helped)
    assert {path: result for path, result in helped.items() if result != [0, True]} == {}


def test_locks_need_no_fcntl_import():
    """The lock module gets its system lock from filelock, never from fcntl directly."""
    from pathlib import Path

    import nsvae

    src = Path(nsvae.__file__).parent
    assert [p.name for p in src.rglob("*.py") if "import fcntl" in p.read_text(encoding="utf-8")] == []


def test_a_path_with_slashes_is_a_path_on_windows_too(monkeypatch):
    """On Windows os.sep is a backslash, and users still write configs/x: a missing file, not a preset name."""
    import os

    import pytest

    from nsvae.config import load_config
    from nsvae.errors import UserError
    from nsvae.experiments.sweep import load_sweep

    monkeypatch.setattr(os, "sep", "\\")
    with pytest.raises(UserError, match=r"^config file configs/missing does not exist$"):
        load_config("configs/missing")
    with pytest.raises(UserError, match=r"^config file configs\\missing does not exist$"):
        load_config("configs\\missing")
    with pytest.raises(UserError, match=r"^sweep file sweeps/missing does not exist$"):
        load_sweep("sweeps/missing")


def test_names_that_would_be_directories_on_windows_are_refused():
    import pytest

    from nsvae.config import load_config
    from nsvae.config.schema import apply_overrides
    from nsvae.errors import UserError
    from nsvae.experiments.sweep import loads_sweep

    with pytest.raises((ValueError, UserError), match=r"must not contain '/' or '\\'"):
        apply_overrides(load_config("quick-vae"), {"run.name": "a\\b"})
    with pytest.raises(UserError, match=r"name 'a\\\\b' must not contain '/' or '\\'"):
        loads_sweep('name = "a\\\\b"\n[base]\nconfig = "quick-vae"\n')
