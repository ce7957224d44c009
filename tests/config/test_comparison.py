"""Runs compared side by side share everything but the objective: the key list, the differences, the presets."""

from __future__ import annotations

import pytest

from nsvae.config import Config, apply_overrides
from nsvae.config.comparison import OBJECTIVE_SECTIONS, KeyDifference, differences, may_differ, warning_lines
from nsvae.config.schema import flatten, valid_keys
from nsvae.experiments.sweep import load_sweep, sweep_preset_names


def config(**keys) -> Config:
    return apply_overrides(Config(), keys)


def test_the_keys_every_compared_run_must_share():
    compared = [k for k in valid_keys() if not may_differ(k)]
    assert {
        "run.steps",
        "data.dataset", "data.source", "data.batch_size", "data.origin", "data.crop", "data.crop_size",
        "data.channels",
        "model.architecture", "model.z_dim", "model.channels", "model.fc_relus", "model.convtranspose_init",
        "optim.lr", "optim.beta1", "optim.beta2", "optim.eps",
        "common.likelihood", "common.proxy_omega",
    } <= set(compared)  # fmt: skip
    # The data, the network and the VAE's optimiser are compared whole, keys added later included.
    for section in ("data", "model", "optim"):
        assert {k for k in valid_keys() if k.startswith(f"{section}.") and k != "data.seed"} <= set(compared)
    # [run] and [common] key by key: a new key there must be placed on purpose (here, or comparison.FREE_KEYS).
    assert [k for k in compared if k.split(".")[0] in ("run", "common")] == [
        "run.steps",
        "common.likelihood",
        "common.proxy_omega",
    ]
    assert OBJECTIVE_SECTIONS == ("nonsyn", "beta_vae", "factor_vae", "beta_tcvae", "dip_vae")
    for free in ("method", "run.seed", "data.seed", "run.name", "log.every", "factor_vae.d_lr", "nonsyn.alpha"):
        assert may_differ(free), free


def test_differences_name_each_key_its_values_and_the_runs_that_have_them():
    configs = [
        ("nonsyn", config(method="nonsyn", **{"nonsyn.alpha": 5.0, "model.fc_relus": "paper", "run.seed": 0})),
        ("nonsyn", config(method="nonsyn", **{"nonsyn.alpha": 5.0, "model.fc_relus": "paper", "run.seed": 1})),
        ("vae", config(method="vae", **{"run.steps": 1200, "run.seed": 3, "log.every": 7, "run.device": "cpu"})),
        ("factor_vae", config(method="factor_vae", **{"factor_vae.d_lr": 1e-3, "optim.lr": 1e-3})),
    ]
    found = differences(configs)
    assert found == [
        KeyDifference("run.steps", ((149_760, ("nonsyn", "factor_vae")), (1200, ("vae",)))),
        KeyDifference("model.fc_relus", (("paper", ("nonsyn",)), ("final", ("vae", "factor_vae")))),
        KeyDifference("optim.lr", ((1e-4, ("nonsyn", "vae")), (1e-3, ("factor_vae",)))),
    ]
    assert found[1].describe() == 'model.fc_relus: "paper" (nonsyn); "final" (vae, factor_vae)'
    # The objective, its table, seeds and bookkeeping alone are no difference; a mapping and flat dicts work too.
    same = {
        "a": config(method="nonsyn", **{"nonsyn.alpha": 1.0, "run.seed": 4, "run.name": "a", "log.console": False}),
        "b": flatten(config(method="beta_tcvae", **{"beta_tcvae.beta": 8.0, "data.seed": 2, "run.threads": 1})),
    }
    assert differences(same) == []


def test_a_key_one_run_lacks_is_a_difference_and_long_name_lists_are_cut():
    old = {k: v for k, v in flatten(Config()).items() if k != "model.convtranspose_init"}
    found = differences([("new", Config()), ("old", old)])
    assert [d.key for d in found] == ["model.convtranspose_init"]
    assert found[0].describe() == 'model.convtranspose_init: "modern" (new); (absent) (old)'
    many = [(f"r{i}", config(**{"data.batch_size": 32 if i else 64})) for i in range(6)]
    (batch,) = differences(many)
    assert batch.describe(max_names=2) == "data.batch_size: 64 (r0); 32 (r1, r2 and 3 more)"


def test_warning_lines_are_a_headline_and_one_line_per_key():
    assert warning_lines([]) == []
    lines = warning_lines(differences({"x": config(**{"run.steps": 5}), "y": config()}), what="settings")
    assert len(lines) == 2
    assert lines[0].startswith("warning: the settings compared here differ outside their objectives' own tables")
    assert "[nonsyn], [beta_vae], [factor_vae], [beta_tcvae]" in lines[0]
    assert lines[1] == "run.steps: 5 (x); 149760 (y)"


def _comparing_presets() -> list[str]:
    """The presets that put methods side by side (a tuning study varies the optimiser on purpose: tested below)."""
    return [
        n
        for n in sweep_preset_names()
        if len({r.config.method for r in load_sweep(n).runs}) > 1 and not n.endswith("-tuning")
    ]


def test_the_tuning_study_compares_methods_only_at_one_learning_rate_on_the_papers_network():
    runs = load_sweep("study-tuning").runs
    rates = sorted({r.config.optim.lr for r in runs})
    assert rates == [1e-4, 3e-4, 1e-3]
    for lr in rates:
        group = [(r.name, r.config) for r in runs if r.config.optim.lr == lr]
        assert {c.method for _, c in group} == {"vae", "beta_vae"}
        assert differences(group) == []
    for run in runs:
        model = run.config.model
        assert (model.fc_relus, model.convtranspose_init, model.architecture) == ("paper", "pytorch0.4", "conv")
        assert run.config.eval.every > 0 and run.config.data.batch_size == 64


def test_the_presets_that_compare_methods_are_the_known_three_at_least():
    assert {"comparison", "quick-comparison", "quick-nonsyn-vs-vae"} <= set(_comparing_presets())


@pytest.mark.parametrize("name", _comparing_presets())
def test_every_sweep_preset_comparing_methods_differs_only_in_the_objective(name):
    runs = load_sweep(name).runs
    assert differences([(r.name, r.config) for r in runs]) == []
    # ... and what they share is the paper's network (docs/reference/original-implementation.md §3),
    # as the seed compares them.
    first = runs[0].config
    assert (first.model.fc_relus, first.model.convtranspose_init, first.model.architecture) == (
        "paper",
        "pytorch0.4",
        "conv",
    )
    # The paper's Adam; study-cpu's learning rate is the one study-tuning chose (docs/results.md).
    lr = 1e-3 if name == "study-cpu" else 1e-4
    assert (first.optim.lr, first.optim.beta1, first.optim.beta2, first.optim.eps) == (lr, 0.9, 0.999, 1e-8)
    assert first.data.batch_size == 64


def test_the_authors_setting_study_trains_as_study_paper_does():
    """study-authors' runs are study-paper's rows for their methods and seeds: every key that changes what a
    run trains to is equal; only logging and the curve protocol (the [log] and [eval] tables) may differ."""
    paper = {r.name: r.config for r in load_sweep("study-paper").runs}
    authors = load_sweep("study-authors").runs
    assert {r.config.method for r in authors} == {"vae", "nonsyn", "beta_tcvae"}
    for run in authors:
        mine = flatten(run.config)
        # study-paper has seeds 0-4; a later seed's row is its seed-0 row with the seed changed
        row = (
            paper[run.name]
            if run.name in paper
            else apply_overrides(paper[f"{run.setting}-seed0"], {"run.seed": run.seed, "run.name": run.name})
        )
        theirs = flatten(row)
        assert mine.keys() == theirs.keys()
        differing = {k for k in mine if mine[k] != theirs[k]}
        assert all(k.split(".", 1)[0] in ("log", "eval") for k in differing), (run.name, differing)
    by_method = {r.config.method: r.config for r in authors}
    nonsyn = by_method["nonsyn"].nonsyn
    assert (nonsyn.alpha, nonsyn.omega, nonsyn.update, nonsyn.selection) == (5.0, 0.9, "two_step", "greedy")
    assert by_method["beta_tcvae"].beta_tcvae.beta == 6.0
    assert by_method["vae"].run.steps == 149760 and by_method["vae"].optim.lr == 1e-4


def test_the_equal_rates_factor_vae_is_study_cpus_but_for_the_discriminators_learning_rate():
    cpu = {r.seed: r.config for r in load_sweep("study-cpu").runs if r.config.method == "factor_vae"}
    runs = load_sweep("study-cpu-factor-equal-rates").runs
    assert sorted(r.seed for r in runs) == [0, 1, 2, 3, 4]
    for run in runs:
        mine, theirs = flatten(run.config), flatten(cpu[run.seed])
        differing = {k for k in mine if mine[k] != theirs[k]} - {"run.name"}
        assert differing == {"factor_vae.d_lr"}
        assert run.config.factor_vae.d_lr == run.config.optim.lr == 1e-3 and cpu[run.seed].factor_vae.d_lr == 1e-4
