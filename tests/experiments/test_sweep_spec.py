"""Sweep files: expansion into exactly named runs, validation with nearest-key hints, dry runs, presets."""

from __future__ import annotations

import pytest

from nsvae.cli import main
from nsvae.config import load_config
from nsvae.errors import UserError
from nsvae.experiments.sweep import load_sweep, loads_sweep, sweep_preset_names, sweep_preset_text

SPEC = """
name = "demo"
seeds = [0, 1]

[set]
"run.steps" = 30
log.tensorboard = false          # TOML's unquoted dotted keys work too

[[runs]]
config = "quick-nonsyn"
grid = { "nonsyn.alpha" = [2.5, 5.0], omega = [0.9] }

[[runs]]
config = "quick-vae"

[[runs]]
name = "bvae"
config = "quick-beta-vae"
set = { "beta_vae.beta" = 8 }
"""


def test_expansion_gives_exact_stable_names_settings_and_configs():
    sweep = loads_sweep(SPEC)
    names = [r.name for r in sweep.runs]
    assert names == [
        "nonsyn-alpha2.5-omega0.9-seed0",
        "nonsyn-alpha2.5-omega0.9-seed1",
        "nonsyn-alpha5-omega0.9-seed0",
        "nonsyn-alpha5-omega0.9-seed1",
        "vae-seed0",
        "vae-seed1",
        "bvae-seed0",
        "bvae-seed1",
    ]
    assert [r.setting for r in sweep.runs[:2]] == ["nonsyn-alpha2.5-omega0.9"] * 2
    assert [r.seed for r in sweep.runs] == [0, 1] * 4
    first = sweep.runs[0]
    # "omega" (a key found in one section only) is resolved to its dotted key.
    assert dict(first.values) == {"nonsyn.alpha": 2.5, "nonsyn.omega": 0.9, "run.seed": 0}
    assert first.config.nonsyn.alpha == 2.5 and first.config.run.seed == 0
    assert first.config.run.steps == 30 and first.config.log.tensorboard is False
    assert first.config.run.name == first.name
    # Everything else comes from the entry's preset.
    assert first.config.log.checkpoint_every == load_config("quick-nonsyn").log.checkpoint_every
    bvae = sweep.run("bvae-seed1")
    assert (bvae.config.method, bvae.config.beta_vae.beta, bvae.config.run.seed) == ("beta_vae", 8.0, 1)
    # Re-reading gives the same runs (names are a function of the file).
    assert [r.name for r in loads_sweep(SPEC).runs] == names
    assert sweep.name == "demo"


def test_names_of_strings_bools_methods_and_shared_leaves():
    sweep = loads_sweep(
        """
        [base]
        config = "quick-vae"
        [grid]
        method = ["vae", "beta_tcvae"]
        "log.tensorboard" = [true, false]
        "run.seed" = [3]
        "data.seed" = [7]
        """,
        default_name="x",
    )
    assert [r.name for r in sweep.runs] == [
        "vae-tensorboard-run_seed3-data_seed7",
        "vae-no-tensorboard-run_seed3-data_seed7",
        "beta_tcvae-tensorboard-run_seed3-data_seed7",
        "beta_tcvae-no-tensorboard-run_seed3-data_seed7",
    ]
    # Both seeds are left out of the setting.
    assert sweep.runs[0].setting == "vae-tensorboard"
    assert sweep.runs[0].config.data.seed == 7


def test_a_plain_list_of_overrides_and_a_single_base_run():
    sweep = loads_sweep(
        """
        [base]
        config = "quick-nonsyn"
        [[runs]]
        name = "faithful"
        [[runs]]
        name = "joint"
        set = { "nonsyn.update" = "joint" }
        """
    )
    assert [(r.name, r.config.nonsyn.update) for r in sweep.runs] == [("faithful", "two_step"), ("joint", "joint")]
    single = loads_sweep('[base]\nconfig = "quick-vae"\n', default_name="only")
    assert [r.name for r in single.runs] == ["vae"]


def test_config_files_are_found_beside_the_sweep_file(tmp_path):
    (tmp_path / "mine.toml").write_text('method = "vae"\n[run]\nsteps = 7\n', encoding="utf-8")
    (tmp_path / "s.toml").write_text('seeds = [4]\n[base]\nconfig = "mine.toml"\n', encoding="utf-8")
    sweep = load_sweep(tmp_path / "s.toml")
    assert sweep.name == "s"
    assert [(r.name, r.config.run.steps) for r in sweep.runs] == [("vae-seed4", 7)]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[base]\nconfig = "quick-vae"\n[grid]\n"nonsyn.alpah" = [1]\n',
            r"unknown config key 'nonsyn\.alpah'.*'nonsyn\.alpha'",
        ),
        ('[base]\nconfig = "quick-vae"\n[grdi]\n"run.seed" = [1]\n', r"unknown key 'grdi'; did you mean 'grid'"),
        ('[base]\nconfig = "quick-vae"\n[grid]\n"run.seed" = 1\n', r"'run\.seed' must be a non-empty list"),
        ('[base]\nconfig = "quick-vae"\n[grid]\n"run.seed" = [1, 1]\n', "lists a value twice"),
        ('[base]\nconfig = "quick-vea"\n', r"did you mean 'quick-vae'"),
        ('[base]\nconfig = "quick-vae"\n[grid]\n"run.steps" = [0]\n', "steps must be at least 1"),
        ('[base]\nconfig = "quick-vae"\n[grid]\nbeta = [1]\n', "ambiguous"),
        (
            '[base]\nconfig = "quick-vae"\n[evaluation]\nmetrics = ["mgi"]\n',
            r"unknown metric 'mgi'; did you mean 'mig'",
        ),
        ('[base]\nconfig = "quick-vae"\n[evaluation.overrides]\nmig = { bins = 3 }\n', "unknown protocol parameter"),
        ('[base]\nconfig = "quick-vae"\n[[runs]]\n[[runs]]\n', "would both be named 'vae'"),
        ("seeds = [1]\n", "no config"),
        ("seeds = [1\n", "not valid TOML"),
        ('seeds = [1]\n[base]\nconfig = "quick-vae"\n[grid]\n"run.seed" = [2]\n', "give the seeds once"),
        # issue 29, case 13: inf gave an OverflowError traceback after the sweep directory existed, nan an error
        # without the key
        ('[base]\nconfig = "quick-vae"\n[resources]\ncpus = inf\n', r"\[resources\] cpus must be a finite number"),
        ('[base]\nconfig = "quick-vae"\n[resources]\ncpus = nan\n', r"\[resources\] cpus must be a finite number"),
        ('[base]\nconfig = "quick-vae"\n[resources]\ngpus = inf\n', r"\[resources\] gpus must be a finite number"),
    ],
)
def test_bad_sweep_files_say_what_is_wrong(text, message):
    with pytest.raises(UserError, match=message):
        loads_sweep(text)


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_cli_errors_are_one_line_with_exit_status_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\nconfig = "quick-vae"\n[grid]\n"nonsyn.alpah" = [1]\n', encoding="utf-8")
    err = _one_line_error(capsys, ["sweep", str(bad), "--dry-run"])
    assert "did you mean 'nonsyn.alpha'" in err and err.startswith("nsvae sweep: error:")
    assert "did you mean 'quick-comparison'" in _one_line_error(capsys, ["sweep", "quick-comparsion"])
    assert "does not exist" in _one_line_error(capsys, ["sweep", str(tmp_path / "missing.toml")])
    assert "--workers must be at least 1" in _one_line_error(capsys, ["sweep", "quick-vae-x.toml", "--workers", "0"])
    assert "give a SWEEP" in _one_line_error(capsys, ["sweep"])
    assert "not a sweep directory" in _one_line_error(capsys, ["results", str(tmp_path)])
    assert "does not exist" in _one_line_error(capsys, ["results", str(tmp_path / "nothing")])


def test_dry_run_lists_the_runs_and_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "demo.toml"
    spec.write_text(SPEC, encoding="utf-8")
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"demo: 8 runs in {out} (evaluation: beta_vae_score, factor_vae_score, mig, dci, sap, "
        "modularity_explicitness, unsupervised, active_units, chen_mig, synergy, unibound, irs, infomec)"
    )
    assert lines[1].split() == [
        "nonsyn-alpha2.5-omega0.9-seed0",
        "train",
        "nonsyn,",
        "30",
        "steps",
        "nonsyn.alpha=2.5",
        "nonsyn.omega=0.9",
        "run.seed=0",
    ]
    assert lines[-1].split() == ["bvae-seed1", "train", "beta_vae,", "30", "steps", "run.seed=1"]
    assert len(lines) == 9
    assert not out.exists()


def test_sweep_presets_load():
    names = sweep_preset_names()
    assert {"quick-comparison", "comparison", "quick-nonsyn-vs-vae", "study-tuning", "study-paper"} <= set(names)
    for name in names:
        assert load_sweep(name).text == sweep_preset_text(name), name
    quick = load_sweep("quick-comparison")
    assert {r.config.method for r in quick.runs} == {"nonsyn", "vae", "beta_vae", "factor_vae", "beta_tcvae"}
    assert all(r.config.run.steps <= 1500 for r in quick.runs)
    assert {r.seed for r in quick.runs} == {0, 1}
    alphas = {(r.config.nonsyn.alpha, r.config.nonsyn.omega) for r in quick.runs if r.config.method == "nonsyn"}
    assert alphas == {(2.5, 0.8), (2.5, 0.9), (5.0, 0.8), (5.0, 0.9)}
    full = load_sweep("comparison")
    assert len(full.runs) == 120 and full.gpus == 1
    assert {r.config.run.steps for r in full.runs} == {149_760}
    assert not full.evaluation.metrics  # every metric
