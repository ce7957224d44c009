"""A sweep file's [[stages]]: the order its runs train in, and stages that run only when named."""

from __future__ import annotations

import pytest

from nsvae.errors import UserError
from nsvae.experiments import study
from nsvae.experiments.sweep import load_sweep, loads_sweep

HEAD = """
name = "staged"
[base]
config = "quick-vae"
[[runs]]
name = "a"
grid = { "run.seed" = [0, 1, 2] }
[[runs]]
name = "b"
grid = { "run.seed" = [0, 1, 2] }
[[runs]]
name = "c"
grid = { "run.seed" = [0] }
"""

STAGES = """
[[stages]]
name = "pairs"
settings = ["a", "b"]
seeds = [0, 1]
[[stages]]
name = "control"
settings = ["c"]
seeds = [0]
[[stages]]
name = "later"
settings = ["a", "b"]
seeds = [2]
on_request = true
"""


def test_runs_follow_the_stages_seed_by_seed_and_on_request_stages_wait_to_be_named():
    sweep = loads_sweep(HEAD + STAGES)
    names = [r.name for r in sweep.runs]
    assert names == ["a-seed0", "b-seed0", "a-seed1", "b-seed1", "c-seed0", "a-seed2", "b-seed2"]
    assert [(s.name, s.on_request) for s in sweep.stages] == [("pairs", False), ("control", False), ("later", True)]
    assert study.study_batches(sweep, names) == [["a-seed0", "b-seed0", "a-seed1", "b-seed1"], ["c-seed0"]]
    assert study.study_batches(sweep, names, "later") == [["a-seed2", "b-seed2"]]
    # what is done is left out; a stage with nothing left is no batch
    assert study.study_batches(sweep, ["b-seed1", "c-seed0", "a-seed2"]) == [["b-seed1"], ["c-seed0"]]
    assert study.stage_of(sweep, "c-seed0") == "control" and study.stage_of(sweep, "nope") is None
    with pytest.raises(UserError, match=r"--stage 'look-3': the study's stages are pairs, control, later"):
        study.study_batches(sweep, names, "look-3")


def test_without_stages_the_file_order_and_the_seed_batches_hold():
    sweep = loads_sweep(HEAD)
    assert [r.name for r in sweep.runs][:3] == ["a-seed0", "a-seed1", "a-seed2"] and sweep.stages == ()
    with pytest.raises(UserError, match="has no \\[\\[stages\\]\\]"):
        study.study_batches(sweep, [r.name for r in sweep.runs], "pairs")


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            '[[stages]]\nname = "s"\nsettings = ["a", "b", "c"]\nseeds = [0, 1, 2]\n',
            "no run of setting 'c' with seed 1",
        ),
        ('[[stages]]\nname = "s"\nsettings = ["a", "b"]\nseeds = [0, 1, 2]\n', "run 'c-seed0' is in no stage"),
        ('[[stages]]\nname = "s"\nsettings = ["z"]\nseeds = [0]\n', "no setting 'z' \\(the file's: a, b, c\\)"),
        (STAGES + '[[stages]]\nname = "again"\nsettings = ["c"]\nseeds = [0]\n', "'c-seed0' is already in stage"),
        (STAGES.replace('"later"', '"pairs"'), "two stages are named 'pairs'"),
        (STAGES.replace("seeds = [0]", "seeds = []"), "seeds must be a non-empty list of integers"),
        (STAGES.replace("on_request = true", 'on_request = "yes"'), "on_request must be true or false"),
        (STAGES.replace("on_request = true", "when = 1"), "unknown key 'when'"),
        ("stages = 3\n", "stages must be a list of tables"),
    ],
)
def test_bad_stages_say_what_is_wrong(stages, message):
    text = (
        HEAD.replace('name = "staged"', 'name = "staged"\n' + stages)
        if stages.startswith("stages =")
        else HEAD + stages
    )
    with pytest.raises(UserError, match=message):
        loads_sweep(text)


def test_the_authors_setting_study_runs_look_1_in_pairs_then_the_control_and_look_2_on_request():
    sweep = load_sweep("study-authors")
    stages = {s.name: s for s in sweep.stages}
    pairs = [f"{m}-seed{s}" for s in range(5) for m in ("vae", "nonsyn")]
    assert list(stages) == ["look-1", "control", "look-2"]
    assert list(stages["look-1"].runs) == pairs and not stages["look-1"].on_request
    assert list(stages["control"].runs) == ["beta_tcvae-seed0", "beta_tcvae-seed1", "beta_tcvae-seed2"]
    assert list(stages["look-2"].runs) == [f"{m}-seed{s}" for s in (5, 6, 7) for m in ("vae", "nonsyn")]
    assert stages["look-2"].on_request
    assert study.study_batches(sweep, [r.name for r in sweep.runs]) == [
        pairs,
        ["beta_tcvae-seed0", "beta_tcvae-seed1", "beta_tcvae-seed2"],
    ]
