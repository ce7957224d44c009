"""Names that become path components (a study's, sweep's, run's, setting's) are one plain, portable file name
(issue 29, case 1: a study named '..' wrote its tables and runs outside studies/ and runs/)."""

from __future__ import annotations

import os

import pytest

from nsvae.cli import main
from nsvae.config import Config, apply_overrides
from nsvae.errors import UserError
from nsvae.experiments.sweep import loads_sweep
from nsvae.names import MAX_NAME_BYTES, check_path_component, path_component_problem

BAD = [
    "",
    ".",
    "..",
    "a/b",
    "a\\b",
    "nul\x00",
    "tab\tname",
    "bell\x07",
    "del\x7f",
    "c1\x85",
    "a:b",
    "q?",
    "star*",
    "pipe|",
    'quote"',
    "<x>",
    "dot.",
    "space ",
    "é" * 128,
]
GOOD = ["vae", "nonsyn-alpha2.5-seed0", ".hidden", "a..b", "étude", "x" * MAX_NAME_BYTES, "with space"]


@pytest.mark.parametrize("name", BAD)
def test_names_that_are_not_one_portable_file_name_are_refused(name):
    assert path_component_problem(name)
    with pytest.raises(UserError, match="the study name"):
        check_path_component(name, "the study name")


@pytest.mark.parametrize("name", GOOD)
def test_plain_names_pass(name):
    assert path_component_problem(name) == "" and check_path_component(name, "x") == name


def test_a_non_string_is_refused():
    assert "string" in path_component_problem(3)


SPEC = '[base]\nconfig = "quick-vae"\n[set]\n"eval.every" = 6\n'


@pytest.mark.parametrize(
    "text",
    [
        'name = ".."\n' + SPEC,
        'name = "."\n' + SPEC,
        'name = "s"\n' + SPEC + '[[runs]]\nname = ".."\n',
        'name = "s"\n' + SPEC + '[[runs]]\nname = "."\n',
        'name = "s"\n' + SPEC + '[[runs]]\nname = "x\\u0001y"\n',
    ],
)
def test_sweep_files_with_such_names_are_refused(text):
    with pytest.raises(UserError, match="must not"):
        loads_sweep(text)


def test_a_study_named_dot_dot_writes_nothing_outside_its_directories(tmp_path, capsys, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "results.csv").write_text("mine\n")
    spec = work / "s.toml"
    spec.write_text('name = ".."\n' + SPEC)
    monkeypatch.chdir(work)
    code = main(["study", str(spec), "--dry-run"])
    assert code == 2
    assert "name '..' must not be '..'" in capsys.readouterr().err
    code = main(["study", str(spec)])
    assert code == 2
    assert sorted(os.listdir(work)) == ["results.csv", "s.toml"] and (work / "results.csv").read_text() == "mine\n"
    assert sorted(os.listdir(tmp_path)) == ["cwd"]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "x\x00"])
def test_a_run_name_is_one_file_name(name):
    with pytest.raises(UserError, match="name must not"):
        apply_overrides(Config(), {"run.name": name})


def test_value_text_is_the_one_formatter_of_run_names_and_labels():
    # Run names are built from it, so these texts are frozen: a change would rename existing runs.
    from nsvae.names import value_text

    cases = [(2.5, "2.5"), (5.0, "5"), (1e-4, "0.0001"), (1e-5, "1e-05"), (0.1 + 0.2, "0.30000000000000004")]
    cases += [(True, "true"), (False, "false"), (3, "3"), ("vae", "vae"), (-0.0, "-0")]
    assert [value_text(v) for v, _ in cases] == [t for _, t in cases]
    assert all(float(value_text(v)) == v for v in (2.5, 5.0, 1e-4, 0.1 + 0.2, 1e300))  # floats read back exactly


def test_run_names_and_setting_labels_write_values_alike():
    from nsvae.experiments.sweep import loads_sweep

    sweep = loads_sweep('name = "x"\n[base]\nconfig = "quick-nonsyn"\n[grid]\n"nonsyn.alpha" = [2.5, 5.0, 1e-4]\n')
    assert [r.name for r in sweep.runs] == ["nonsyn-alpha2.5", "nonsyn-alpha5", "nonsyn-alpha0.0001"]
