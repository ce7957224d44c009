"""Files that parse but have the wrong shape are one line naming the file, never a traceback (issue 29, case 11)."""

from __future__ import annotations

import json
import re

import pytest

from nsvae.cli import main
from nsvae.errors import UserError
from nsvae.experiments import study
from nsvae.experiments.sweep import read_state
from nsvae.train.run import Run


@pytest.mark.parametrize("text", ["[]", '{"runs": {"vae-seed0": []}}', '{"runs": [], "order": []}', '{"order": [1]}'])
def test_a_sweep_json_of_the_wrong_shape(tmp_path, capsys, text):
    (tmp_path / "sweep.json").write_text(text)
    with pytest.raises(UserError, match="sweep.json is not a sweep's state"):
        read_state(tmp_path)
    assert main(["results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "sweep.json is not a sweep's state" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "line",
    ['{"step": 1e400, "recon": 1.0}', '{"recon": "x"}', '{"step": 3, "recon": "x"}', '{"step": 3, "kl": [1]}'],
)
def test_a_log_line_of_the_wrong_shape_is_named(tmp_path, line):
    run = Run(tmp_path)
    good = json.dumps({"step": 1, "recon": 2.0, "kl": 1.0, "loss": "nan"})  # a diverged loss is written as "nan"
    run.log_path.write_text("\n".join([good, line, good]) + "\n")
    with pytest.raises(UserError, match=r"log.jsonl: line 2 is not a log entry"):
        run.log()
    run.log_path.write_text(good + "\n")
    assert run.log()[0]["loss"] == "nan"


def _finished_study(tmp_path, record) -> tuple[str, str]:
    folder = tmp_path / "studies" / "s"
    (folder / "runs" / "vae-seed0").mkdir(parents=True)
    (folder / "runs" / "vae-seed0" / "final.json").write_text(record if isinstance(record, str) else json.dumps(record))
    spec = tmp_path / "s.toml"
    spec.write_text('name = "s"\nseeds = [0]\n[base]\nconfig = "quick-vae"\n[set]\n"eval.every" = 5\n')
    return str(spec), str(folder.parent)


SYNERGY = {"i_joint": 1.0, "i_max": 0.2, "sum_single": 0.3, "entropy": 2.0}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("[]", "not a study run's final.json (it holds a list"),
        ('{"method": "vae", "seed": 0, "evaluation": ', "final.json is not valid JSON"),
        ({"method": "vae"}, "lacks a method (string) or a seed"),
        (
            {
                "method": "vae",
                "seed": 0,
                "evaluation": {"metrics": {"synergy": {"per_factor": {"x": {**SYNERGY, "entropy": 0}}}}},
            },
            "with entropy > 0",
        ),
        (
            {
                "method": "vae",
                "seed": 0,
                "evaluation": {"metrics": {"synergy": {"per_factor": {"x": {"i_joint": 1.0, "entropy": 2.0}}}}},
            },
            "lacks a finite i_joint, i_max",
        ),
    ],
)
def test_a_final_json_of_the_wrong_shape_is_named(tmp_path, capsys, record, message):
    spec, root = _finished_study(tmp_path, record)
    folder = tmp_path / "studies" / "s"
    with pytest.raises(UserError, match=re.escape(message)) as info:
        study.synergy_terms(folder)
    assert "final.json" in str(info.value)


def test_a_final_csv_cut_mid_row_is_named(tmp_path):
    path = tmp_path / "final.csv"
    path.write_text("method,seed,step,mig\nvae,0,10,0.5\nvae,1,10\n")
    with pytest.raises(UserError, match=r"final.csv: line 3 has fewer cells than the header"):
        study.read_table(path)
    path.write_text("method,seed,step,mig\nvae,0,10,0.5,9\n")
    with pytest.raises(UserError, match="line 2 has more cells"):
        study.read_table(path)


def test_info_weights_whose_sum_overflows(tmp_path, capsys):
    path = tmp_path / "w.csv"
    path.write_text("a,b,w\n0,0,1e308\n1,1,1e308\n")
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the weights add up to more than a float can hold" in err and err.count("\n") == 1
