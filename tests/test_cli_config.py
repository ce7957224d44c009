"""nsvae config: list, show and copy out the shipped presets (the package holds them once)."""

from __future__ import annotations

import pytest

from nsvae.cli import main
from nsvae.config import load_config, preset_names, preset_text
from nsvae.experiments.sweep import load_sweep, sweep_preset_names, sweep_preset_text


def test_list_names_every_preset_with_its_kind(capsys):
    assert main(["config", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = {line.split()[0]: line.split()[1] for line in lines}
    assert {n: "train" for n in preset_names()}.items() <= kinds.items()
    assert {n: "sweep" for n in sweep_preset_names()}.items() <= kinds.items()
    assert len(lines) == len(preset_names()) + len(sweep_preset_names())


def test_show_prints_the_presets_text(capsys):
    assert main(["config", "show", "quick-nonsyn"]) == 0
    assert capsys.readouterr().out == preset_text("quick-nonsyn")
    assert main(["config", "show", "study-tuning"]) == 0
    assert capsys.readouterr().out == sweep_preset_text("study-tuning")


def test_copy_writes_a_file_that_runs_as_the_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "copy", "quick-vae"]) == 0
    copied = tmp_path / "quick-vae.toml"
    assert copied.read_text(encoding="utf-8") == preset_text("quick-vae")
    assert load_config(copied).method == "vae"
    assert main(["config", "copy", "study-tuning", "mine.toml"]) == 0
    mine = load_sweep(tmp_path / "mine.toml")
    assert [r.name for r in mine.runs] == [r.name for r in load_sweep("study-tuning").runs]
    (tmp_path / "sub").mkdir()
    assert main(["config", "copy", "vae", "sub"]) == 0 and (tmp_path / "sub" / "vae.toml").is_file()
    capsys.readouterr()
    copied.write_text("mine", encoding="utf-8")
    assert main(["config", "copy", "quick-vae"]) == 2
    assert "exists; choose another DEST or pass --force" in capsys.readouterr().err
    assert copied.read_text(encoding="utf-8") == "mine"  # nothing lost
    assert main(["config", "copy", "quick-vae", "--force"]) == 0
    assert copied.read_text(encoding="utf-8") == preset_text("quick-vae")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["config", "show", "quick-nonsin"], "did you mean 'quick-nonsyn'"),
        (["config", "show"], "needs a preset NAME"),
        (["config", "copy", "vae", "no/such/folder/x.toml"], "does not exist"),
        (["config", "list", "vae"], "takes no NAME"),
    ],
)
def test_bad_use_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
