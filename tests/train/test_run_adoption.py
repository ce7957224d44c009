"""A directory is adopted as a run only when nsvae provably wrote it, and a run that finished or has results is
never cleared implicitly (issue 29, cases 2 and 3)."""

from __future__ import annotations

import json
import shutil

import pytest

from nsvae.cli import main
from nsvae.errors import UserError
from nsvae.evaluation import write_eval
from nsvae.train import Run, resume, start
from nsvae.train.run import RUN_ID


def _result() -> dict:
    return {"seed": 0, "metrics": {"mig": {"score": 0.5}}, "seconds": {}}


def test_a_new_run_carries_its_identity_and_resume_keeps_it(tiny, tmp_path):
    run = start(tiny("vae"), tmp_path / "run")
    first = run.run_id()
    assert isinstance(first, str) and len(first) == 32 and run.provenance() == "run"
    resume(run, 14)
    assert Run(tmp_path / "run").run_id() == first


def test_resume_of_a_finished_run_without_checkpoints_keeps_its_results(tiny, tmp_path, capsys):
    run = start(tiny("vae"), tmp_path / "run")
    write_eval(run.path, 12, "default", _result())
    log = run.log_path.read_text()
    shutil.rmtree(run.checkpoint_dir)
    code = main(["train", "--resume", str(run.path), "--steps", "5", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "finished at step 12 and has no checkpoint to continue from; its results (eval.json) are kept" in err
    assert "--out NEW_DIR" in err and err.count("\n") == 1
    assert json.loads((run.path / "eval.json").read_text())["results"]["default"]["metrics"] == _result()["metrics"]
    assert run.log_path.read_text() == log and run.state == "finished"


def test_an_unfinished_run_with_results_is_not_cleared_either(tiny, tmp_path):
    run = start(tiny("vae"), tmp_path / "run")
    write_eval(run.path, 12, "default", _result())
    shutil.rmtree(run.checkpoint_dir)
    run.set_status("interrupted", step=3)
    with pytest.raises(UserError, match=r"has results and has no checkpoint .* its results \(eval.json\) are kept"):
        resume(run)
    with pytest.raises(UserError, match="has results"):
        start(tiny("vae"), run.path)
    assert (run.path / "eval.json").is_file()


def test_a_run_killed_before_its_first_checkpoint_still_restarts(tiny, tmp_path):
    run = start(tiny("vae"), tmp_path / "run")
    shutil.rmtree(run.checkpoint_dir)
    run.set_status("interrupted", step=3)
    again = resume(run)
    assert again.state == "finished" and again.checkpoints()


@pytest.mark.parametrize(
    "files",
    [
        {"config.toml": "[tool.black]\nline-length = 100\n"},
        {"config.toml": "[tool.black]\n", "status.json": '{"a": 1}', "log.jsonl": "x\n"},
        {"status.json": '{"state": "running", "step": 0}'},  # no identity: not provably nsvae's
        {"eval.json": '{"step": 1, "results": {}}'},
        {"eval-step5.json": '{"step": 5, "results": {}}'},
    ],
)
def test_a_directory_nsvae_did_not_write_is_never_adopted(tiny, tmp_path, files):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(UserError, match="that no nsvae run wrote there; nsvae does not write over them"):
        start(tiny("vae"), folder)
    assert {p.name: p.read_text() for p in folder.iterdir()} == files


def test_train_out_dot_never_replaces_the_users_input_config(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('# my notes\nmethod = "vae"\n[run]\nsteps = 3\n')
    code = main(["train", "config.toml", "--out", ".", "--no-progress"])
    assert code == 2 and "that no nsvae run wrote there" in capsys.readouterr().err
    assert (tmp_path / "config.toml").read_text().startswith("# my notes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_a_directory_with_other_files_only_is_used_and_they_are_kept(tiny, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    run = start(tiny("vae"), folder)
    assert run.state == "finished" and (folder / "notes.txt").read_text() == "keep me"


def test_a_run_from_before_run_ids_is_adopted_by_its_checkpoints(tiny, tmp_path):
    run = start(tiny("vae"), tmp_path / "run")
    status = json.loads((run.path / "status.json").read_text())
    del status[RUN_ID]
    (run.path / "status.json").write_text(json.dumps(status))
    assert run.run_id() is None and run.provenance() == "run"
    resume(run, 14)
    assert Run(run.path).run_id() is not None


def test_a_status_that_is_not_an_object_is_one_line_naming_it(tiny, tmp_path):
    run = start(tiny("vae"), tmp_path / "run")
    (run.path / "status.json").write_text("[]")
    with pytest.raises(UserError, match=r"status.json is not a run's status"):
        resume(run)


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("z_dim", "5", "model.z_dim 4 -> 5"),
        ("architecture", '"mlp"', "model.architecture 'conv' -> 'mlp'"),
        ("likelihood", '"gaussian"', "common.likelihood"),
    ],
)
def test_resume_refuses_a_config_edited_after_the_checkpoint_and_changes_nothing(tiny, tmp_path, key, value, shown):
    run = start(tiny("vae", **{"run.steps": 6}), tmp_path / "run")
    text = run.config_path.read_text()
    section = {"z_dim": "[model]", "architecture": "[model]", "likelihood": "[common]"}[key]
    lines = text.splitlines()
    at = lines.index(section)
    edited = [ln for ln in lines if not ln.startswith(f"{key} =")]
    edited.insert(edited.index(section) + 1, f"{key} = {value}")
    assert at >= 0
    run.config_path.write_text("\n".join(edited) + "\n")
    status = (run.path / "status.json").read_text()
    with pytest.raises(UserError, match=rf"no longer matches the run's checkpoint of step 6: .*{shown}"):
        resume(run, 12)
    assert (run.path / "status.json").read_text() == status
    assert run.config_path.read_text() == "\n".join(edited) + "\n"


def test_resume_refuses_a_changed_method_in_one_line(tiny, tmp_path, capsys):
    run = start(tiny("vae", **{"run.steps": 6}), tmp_path / "run")
    text = run.config_path.read_text().replace('method = "vae"', 'method = "factor_vae"')
    run.config_path.write_text(text)
    code = main(["train", "--resume", str(run.path), "--steps", "12", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "method 'vae' -> 'factor_vae'" in err and err.count("\n") == 1


def test_logging_and_the_device_may_change_on_resume(tiny, tmp_path):
    run = start(tiny("vae", **{"run.steps": 6}), tmp_path / "run")
    text = run.config_path.read_text().replace("every = 4", "every = 2")
    run.config_path.write_text(text)
    assert resume(run, 12, device="cpu").state == "finished"


def test_checkpoints_pruned_while_they_are_read_are_listed_again(tiny, tmp_path, monkeypatch):
    """issue 29, case 9: `report` of a training run failed when a checkpoint was pruned while the GIF was drawn."""
    from nsvae.train.run import CheckpointGone

    run = start(tiny("vae", **{"run.steps": 12, "log.keep_checkpoints": 3}), tmp_path / "run")
    steps = [s for s, _ in run.checkpoints()]
    assert steps == [5, 10, 12]
    real = Run.verify_checkpoint
    pruned = []

    def verify_while_training(self, path):
        if not pruned:  # the trainer writes a new checkpoint and prunes the oldest just as it is read
            pruned.append(path.name)
            path.unlink()
        return real(self, path)

    monkeypatch.setattr(Run, "verify_checkpoint", verify_while_training)
    models = Run(run.path).load_models()
    assert pruned == ["step_0000005.pt"] and [s for s, _ in models] == [10, 12]
    with pytest.raises(CheckpointGone, match="has no checkpoint of step 5"):
        Run(run.path).load_model(5)
    assert issubclass(CheckpointGone, UserError)
