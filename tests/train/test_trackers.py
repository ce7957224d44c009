"""W&B and MLflow beside TensorBoard, read back with each tool's own reader.

MLflow through its own client (``MlflowClient``) on the local file store; W&B's offline runs through the reader W&B
ships (``wandb leet inspect --json``, its transaction-log inspector). Nothing here reaches a server: W&B runs offline
(its address is pointed at a closed local port, in case anything tried) and both libraries' telemetry is off.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nsvae.config import Config, apply_overrides, dumps, loads
from nsvae.config.schema import flatten
from nsvae.errors import NsvaeWarning, UserError
from nsvae.train import Run, resume, start
from nsvae.train.trackers import (
    SweepMembership,
    curve_scalars,
    in_sweep,
    log_evaluation,
    read_records,
    source_commit,
    step_scalars,
)

mlflow = pytest.importorskip("mlflow")
wandb = pytest.importorskip("wandb")

# W&B's CLI through the interpreter that imports it: an environment that borrows its packages from another (the
# sdist test's) has no `wandb` script of its own beside its python.
WANDB_CLI = [sys.executable, "-m", "wandb"]
SMALL_CURVE = {"eval.every": 6, "eval.pool": 300, "eval.votes": 5}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No key, no server, no telemetry; W&B's own settings and caches in the test's folder."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: a stray request fails here
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # Absent, as in a fresh shell (nsvae turns MLflow's file store on itself), and restored after the test.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


def _client(run: Run):
    from mlflow.tracking import MlflowClient

    record = read_records(run)["mlflow"]
    return MlflowClient(tracking_uri=record["tracking_uri"]), record["run_id"]


def _history(client, run_id: str) -> dict[str, dict[int, float]]:
    """metric -> {step: value}, every point MLflow holds (a step logged twice would show as two points)."""
    out: dict[str, dict[int, float]] = {}
    for key in client.get_run(run_id).data.metrics:
        points = client.get_metric_history(run_id, key)
        assert len({p.step for p in points}) == len(points), f"{key} has a step twice"
        out[key] = {p.step: p.value for p in points}
    return out


def _expected(run: Run) -> dict[str, dict[int, float]]:
    """What TensorBoard gets, from log.jsonl and eval_curve.jsonl: tag -> {step: value}."""
    from nsvae.train.learning_curve import read_curve

    out: dict[str, dict[int, float]] = {}
    for entry in run.log():
        for tag, value in step_scalars(entry, run.config.method).items():
            out.setdefault(tag, {})[entry["step"]] = value
    for point in read_curve(run.path):
        for tag, value in curve_scalars(point).items():
            out.setdefault(tag, {})[point["step"]] = value
    return out


def _params(config: Config) -> dict[str, str]:
    return {k: "" if v is None else str(list(v) if isinstance(v, tuple) else v) for k, v in flatten(config).items()}


# -- the config key ------------------------------------------------------------------------------------------------


def test_log_trackers_is_a_checked_list_from_toml_set_and_python():
    assert Config().log.trackers == ()
    config = apply_overrides(Config(), ['log.trackers=["mlflow", "wandb"]'])  # --set log.trackers='["mlflow"]'
    assert config.log.trackers == ("mlflow", "wandb")
    assert 'trackers = ["mlflow", "wandb"]' in dumps(config) and loads(dumps(config)) == config
    assert apply_overrides(Config(), ["log.trackers=mlflow"]).log.trackers == ("mlflow",)  # one name: a list of one
    assert apply_overrides(Config(), {"trackers": ["wandb"]}).log.trackers == ("wandb",)  # nsvae.train(trackers=...)
    with pytest.raises(UserError, match="did you mean 'mlflow'"):
        apply_overrides(Config(), ['log.trackers=["mlfow"]'])
    with pytest.raises(UserError, match="names wandb more than once"):
        apply_overrides(Config(), ['log.trackers=["wandb", "wandb"]'])
    with pytest.raises(UserError, match=r"'log.trackers' must be a list of names"):
        apply_overrides(Config(), ["log.trackers=3"])
    with pytest.raises(UserError, match="did you mean 'log.trackers'"):
        apply_overrides(Config(), ["log.trakers=mlflow"])


def test_a_tracker_that_is_not_installed_is_one_line_and_exit_2_before_training(
    dsprites, tmp_path, capsys, monkeypatch
):
    import importlib.util

    from nsvae.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    out = tmp_path / "run"
    args = ["train", "quick-vae", "--out", str(out), "--steps", "4", "--no-progress", "--device", "cpu"]
    assert main([*args, "--set", 'log.trackers=["wandb"]']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "nsvae[wandb]"' in err, err
    assert not out.exists()


def test_an_mlflow_database_without_its_libraries_is_refused_before_training(monkeypatch):
    import importlib.util

    from nsvae.train.trackers import check_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "alembic" else real(name, *a))
    with pytest.raises(UserError, match=r"'sqlite:////tmp/m.db' is a database, which needs .*alembic"):
        check_installed(("mlflow",), "sqlite:////tmp/m.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql+psycopg2://host/db")
    with pytest.raises(UserError, match="is a database"):
        check_installed(("mlflow",))
    check_installed(("mlflow",), "http://127.0.0.1:5000")  # a server: its client is all mlflow-skinny needs
    check_installed(("wandb",))


# -- MLflow --------------------------------------------------------------------------------------------------------


def test_mlflow_holds_every_scalar_step_image_and_param_and_a_resume_continues_its_run(tiny, tmp_path):
    config = tiny("nonsyn", **{"log.trackers": ["mlflow"], "log.tensorboard": True, **SMALL_CURVE})
    run = start(config, tmp_path / "run")
    client, run_id = _client(run)
    assert read_records(run)["mlflow"]["tracking_uri"] == (tmp_path / "run" / "mlruns").resolve().as_uri()
    expected = _expected(run)
    assert {k: set(v) for k, v in expected.items()}["loss/recon"] == {4, 8, 12}
    assert {"eval/mig", "eval/factor_vae_score", "eval/seconds", "best_rate/z0", "nonsyn/syn_loss"} <= set(expected)
    assert _history(client, run_id) == expected
    # ... which is what TensorBoard holds (its events keep float32 values).
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run.events_dir))
    events.Reload()
    assert set(events.Tags()["scalars"]) == set(expected) and events.Tags()["images"] == ["traversal"]
    for tag, points in expected.items():
        board = {e.step: e.value for e in events.Scalars(tag)}
        assert board.keys() == points.keys() and all(board[k] == pytest.approx(v, rel=1e-6) for k, v in points.items())
    logged = client.get_run(run_id)
    assert logged.data.params == _params(run.config)
    assert logged.info.status == "FINISHED" and logged.info.run_name == "run"
    assert logged.data.tags["nsvae.version"] == __import__("nsvae").__version__
    assert logged.data.tags["torch.version"] == __import__("torch").__version__
    assert logged.data.tags.get("mlflow.source.git.commit") == source_commit()
    assert client.get_experiment(logged.info.experiment_id).name == "nsvae"  # log.project outside a sweep
    # The traversals as MLflow's step-indexed images ("images/<key>+step+<step>+...png"), pixel for pixel.
    pngs = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    by_step = {int(p.split("+step+")[1].split("+")[0]): p for p in pngs}
    assert sorted(by_step) == [6, 12] and all(Path(p).name.startswith("traversal+") for p in pngs)
    for step, path in by_step.items():
        copy = client.download_artifacts(run_id, path, str(tmp_path))
        ours = run.traversal_dir / f"step_{step:07d}.png"
        assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(ours)))

    # A resume continues the same MLflow run: the same id, the steps after 12, the changed run.steps as a tag.
    again = resume(run.path, steps=20)
    assert read_records(again)["mlflow"]["run_id"] == run_id
    expected = _expected(again)
    assert expected["loss/recon"].keys() == {4, 8, 12, 16, 20}
    assert _history(client, run_id) == expected
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.data.params["run.steps"] == "12"
    assert logged.data.tags["config.run.steps"] == "20"
    assert len(client.search_runs([logged.info.experiment_id])) == 1


def test_an_evaluation_adds_the_headline_scores_to_the_runs_tracker_run(tiny, tmp_path):
    from nsvae.evaluation import evaluate_run
    from nsvae.metrics.evaluate import headline_scores

    run = start(tiny("vae", **{"log.trackers": ["mlflow", "wandb"]}), tmp_path / "run")
    result = evaluate_run(run, metrics=["mig"], overrides={"mig": {"num_train": 1000}}, progress=False, n_jobs=1)
    score = headline_scores(result)["mig"]
    client, run_id = _client(run)
    history = _history(client, run_id)
    assert history["final/default/mig"] == {12: score}
    assert client.get_run(run_id).info.status == "FINISHED"
    training, evaluation = _wandb_sessions(run)  # the evaluation continues the W&B run: its summary gets the score
    assert _run_record(evaluation)["run_id"] == _run_record(training)["run_id"] == read_records(run)["wandb"]["id"]
    summary = {}
    for record in evaluation:
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    assert summary["final/default/mig"] == score and summary["final/step"] == 12
    assert not _rows(evaluation)  # no history rows: the training's curves are left as they were


def test_a_sweeps_run_is_grouped_by_sweep_and_setting_in_the_sweeps_store(tiny, tmp_path):
    sweep_dir = tmp_path / "sweep"
    membership = SweepMembership(sweep="lr-sweep", setting="lr=0.001", seed=3, sweep_dir=sweep_dir)
    with in_sweep(membership):
        run = start(tiny("vae", **{"log.trackers": ["mlflow", "wandb"]}), sweep_dir / "runs" / "lr=0.001-seed3")
    client, run_id = _client(run)
    assert read_records(run)["mlflow"]["tracking_uri"] == (sweep_dir / "mlruns").resolve().as_uri()
    logged = client.get_run(run_id)
    assert client.get_experiment(logged.info.experiment_id).name == "lr-sweep"
    tags = logged.data.tags
    assert (tags["sweep"], tags["setting"], tags["seed"]) == ("lr-sweep", "lr=0.001", "3")
    (session,) = _wandb_sessions(run)
    header = _run_record(session)
    assert (header["run_group"], header["job_type"], header["display_name"]) == ("lr-sweep", "lr=0.001", run.path.name)


SWEEP = """
name = "tiny-trackers"

[base]
config = "quick-vae"

[set]
"run.steps" = 8
"run.device" = "cpu"
"run.threads" = 1
"model.z_dim" = 4
"data.batch_size" = 8
"log.every" = 4
"log.traversal_every" = 0
"log.checkpoint_every" = 8
"log.tensorboard" = false
"log.console" = false
"log.progress" = false
"log.trackers" = ["mlflow"]

[[runs]]
grid = { "run.seed" = [0, 1] }

[evaluation]
metrics = ["mig"]
overrides = { mig = { num_train = 500 } }
"""


def test_a_sweep_gives_each_run_its_tracker_run_in_the_sweeps_experiment_with_its_final_scores(
    dsprites, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    from nsvae.cli import main

    spec = tmp_path / "tiny.toml"
    spec.write_text(SWEEP, encoding="utf-8")
    out = tmp_path / "sweep"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the workers wrote the store; a reader opts in as well
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny-trackers")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["vae-seed0", "vae-seed1"]
    for name, logged in runs.items():
        assert (logged.data.tags["sweep"], logged.data.tags["setting"]) == ("tiny-trackers", "vae")
        assert logged.data.tags["seed"] == name[-1] and logged.info.status == "FINISHED"
        score = json.loads((out / "runs" / name / "eval.json").read_text())["results"]["default"]["metrics"]["mig"]
        assert logged.data.metrics["final/default/mig"] == score["score"]
        assert read_records(Run(out / "runs" / name))["mlflow"]["run_id"] == logged.info.run_id


def test_a_sweep_naming_a_tracker_that_is_not_installed_stops_before_any_run(tmp_path, capsys, monkeypatch):
    import importlib.util

    from nsvae.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    spec = tmp_path / "tiny.toml"
    spec.write_text(SWEEP, encoding="utf-8")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "nsvae[mlflow]"' in err, err
    assert not (tmp_path / "sweep" / "runs").exists()


def test_the_sweep_worker_finds_its_runs_sweep_and_setting(tmp_path):
    from nsvae.experiments.sweep import write_state
    from nsvae.experiments.worker import Task, _sweep_membership

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    write_state(sweep_dir, {"name": "s1", "order": ["a-seed2"], "runs": {"a-seed2": {"setting": "a", "seed": 2}}})
    config = apply_overrides(Config(), {"log.trackers": ["mlflow"]})
    task = Task("a-seed2", str(sweep_dir / "runs" / "a-seed2"), str(tmp_path / "log"), {}, {}, 1)
    assert _sweep_membership(task, config) == SweepMembership("s1", "a", 2, sweep_dir)
    assert _sweep_membership(task, Config()) is None  # no trackers: nothing to group
    elsewhere = Task("a-seed2", str(tmp_path / "a-seed2"), str(tmp_path / "log"), {}, {}, 1)
    assert _sweep_membership(elsewhere, config) is None


# -- W&B -----------------------------------------------------------------------------------------------------------


def _wandb_sessions(run: Run) -> list[list[dict]]:
    """Each offline W&B session of the run (a start, a resume, an evaluation), oldest first, as the records W&B's
    own reader prints."""
    sessions = []
    for path in (run.path / "wandb").glob("offline-run-*/run-*.wandb"):
        text = subprocess.run(
            [*WANDB_CLI, "leet", "inspect", "--json", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        sessions.append([json.loads(line) for line in text.splitlines() if line.strip()])
    return sorted(sessions, key=lambda records: _run_record(records)["start_time"])


def _run_record(records: list[dict]) -> dict:
    return next(r["run"] for r in records if r["type"] == "run")


def _rows(records: list[dict]) -> list[dict]:
    return [r["history"]["item"] for r in records if r["type"] == "history"]


def test_wandb_runs_offline_in_the_run_directory_and_a_resume_continues_its_run(tiny, tmp_path):
    config = tiny("nonsyn", **{"log.trackers": ["wandb"], **SMALL_CURVE})
    run = start(config, tmp_path / "run")
    run_id = read_records(run)["wandb"]["id"]
    (session,) = _wandb_sessions(run)
    header = _run_record(session)
    assert header["run_id"] == run_id and header["project"] == "nsvae" and header["display_name"] == "run"
    assert header["telemetry"]["feature"]["offline"] is True
    config_doc = header["config"]["update"]
    assert config_doc["run"]["seed"] == 3 and config_doc["log"]["trackers"] == ["wandb"]
    assert config_doc["versions"]["nsvae"] == __import__("nsvae").__version__
    assert config_doc["versions"]["torch"] == __import__("torch").__version__
    assert config_doc["versions"]["git_commit"] == source_commit()

    def logged(sessions) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for records in sessions:
            for row in _rows(records):
                for key, value in row.items():
                    scalar = not key.startswith(("_", "traversal.")) and key != "step"
                    if scalar and isinstance(value, (int, float)):
                        out.setdefault(key, {})[row["step"]] = value
        return out

    assert logged([session]) == _expected(run)
    pictures = [row for row in _rows(session) if row.get("traversal._type") == "image-file"]
    assert [row["step"] for row in pictures] == [6, 12]
    (folder,) = (run.path / "wandb").glob("offline-run-*")
    assert all((folder / "files" / row["traversal.path"]).is_file() for row in pictures)
    assert [r["exit"]["exit_code"] for r in session if r["type"] == "exit"] == [0]

    again = resume(run.path, steps=20)
    first, second = _wandb_sessions(again)
    assert _run_record(second)["run_id"] == run_id and _run_record(second)["resume"] is True
    assert sorted({row["step"] for row in _rows(second) if "loss/recon" in row}) == [16, 20]
    assert logged([first, second]) == _expected(again)


def test_wandb_with_a_key_but_no_server_logs_offline_instead(tiny, tmp_path, monkeypatch):
    from nsvae.train import trackers

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # online asked for; the server (a closed local port) never answers
    monkeypatch.setattr(trackers, "WANDB_ONLINE_TIMEOUT", 3.0)
    with pytest.warns(NsvaeWarning, match=r"W&B could not start online .*; logging offline in .*wandb sync"):
        run = start(tiny("vae", **{"log.trackers": ["wandb"]}), tmp_path / "run")
    (session,) = _wandb_sessions(run)
    assert _run_record(session)["run_id"] == read_records(run)["wandb"]["id"]
    assert sorted({row["step"] for row in _rows(session) if "loss/recon" in row}) == [4, 8, 12]


# -- failures ------------------------------------------------------------------------------------------------------


def test_a_tracker_whose_calls_raise_is_turned_off_with_one_warning_and_the_run_goes_on(tiny, tmp_path, monkeypatch):
    from nsvae.train import trackers

    calls = {"n": 0}

    def broken(self, step, values):
        calls["n"] += 1
        raise RuntimeError("the tracking server is gone\n(a second line of its traceback)")

    monkeypatch.setattr(trackers.MlflowTracker, "scalars", broken)
    config = tiny("vae", **{"log.trackers": ["mlflow", "wandb"], "log.tensorboard": True})
    reference = start(tiny("vae"), tmp_path / "reference")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = start(config, tmp_path / "run")
    ours = [w for w in caught if issubclass(w.category, NsvaeWarning)]
    assert len(ours) == 1 and calls["n"] == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert "\n" not in message and "MLflow failed" in message and "the tracking server is gone" in message
    assert run.state == "finished" and [e["step"] for e in run.log()] == [4, 8, 12]
    assert [s for s, _ in run.checkpoints()] == [10, 12]
    assert sorted(p.name for p in run.traversal_dir.iterdir()) == ["step_0000006.png", "step_0000012.png"]
    assert list(run.events_dir.glob("events.out.tfevents.*"))
    assert [e["recon"] for e in run.log()] == [e["recon"] for e in reference.log()]  # the same training
    (session,) = _wandb_sessions(run)  # the other tracker went on
    assert sorted({row["step"] for row in _rows(session) if "loss/recon" in row}) == [4, 8, 12]


def test_a_tracker_that_cannot_start_is_left_out_with_one_warning(tiny, tmp_path, monkeypatch):
    import mlflow.tracking

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to the tracking server")

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", unreachable)
    with pytest.warns(NsvaeWarning, match=r"MLflow could not start \(ConnectionError: no route"):
        run = start(tiny("vae", **{"log.trackers": ["mlflow"]}), tmp_path / "run")
    assert run.state == "finished" and read_records(run) == {}
    log_evaluation(run, 12, {"mig": 0.5}, "default")  # nothing recorded: nothing to log, and no error


def test_an_interrupted_run_marks_its_tracker_runs_and_its_resume_finishes_them(tiny, tmp_path):
    def interrupt_at_7(step, logs):
        if step == 7:
            raise KeyboardInterrupt

    config = tiny("vae", **{"log.trackers": ["mlflow", "wandb"]})
    with pytest.raises(KeyboardInterrupt):
        start(config, tmp_path / "run", callback=interrupt_at_7)
    run = Run(tmp_path / "run")
    client, run_id = _client(run)
    assert client.get_run(run_id).info.status == "KILLED"
    assert [r["exit"]["exit_code"] for r in _wandb_sessions(run)[0] if r["type"] == "exit"] == [130]
    resume(run.path)
    assert client.get_run(run_id).info.status == "FINISHED" and read_records(run)["mlflow"]["run_id"] == run_id
    assert _history(client, run_id) == _expected(run)
    interrupted, resumed = _wandb_sessions(run)
    assert [r["exit"]["exit_code"] for r in resumed if r["type"] == "exit"] == [0]
    assert _run_record(resumed)["run_id"] == _run_record(interrupted)["run_id"]


def test_trackers_json_is_cleared_with_a_run_that_starts_again(tiny, tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.set_status("running", step=0)
    (run.path / "trackers.json").write_text('{"mlflow": {"run_id": "old"}}')
    run.clear()
    assert not (run.path / "trackers.json").exists()
