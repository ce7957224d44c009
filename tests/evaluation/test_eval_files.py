"""The evaluation files of a run: results are merged per step, never replaced wholesale, and never lost to a
second evaluate of the same run running at the same time (issue 29, cases 4 and 5)."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from nsvae.errors import UserError
from nsvae.evaluation import read_eval, step_eval_path, write_eval


def _result(*metrics: str, seed: int = 0) -> dict:
    return {
        "seed": seed,
        "metrics": {m: {"score": float(len(m))} for m in metrics},
        "seconds": {m: 1.0 for m in metrics},
    }


def _metrics(record: dict) -> set[str]:
    return set(record["results"]["default"]["metrics"])


def test_alternating_steps_keep_every_steps_results(tmp_path):
    # evaluate R --metrics mig; ... --step 10; evaluate R --metrics sap; ... --step 10
    write_eval(tmp_path, 20, "default", _result("mig"))
    write_eval(tmp_path, 10, "default", _result("mig"))
    write_eval(tmp_path, 20, "default", _result("sap"))
    write_eval(tmp_path, 10, "default", _result("sap"))
    latest = read_eval(tmp_path)
    assert latest["step"] == 10 and _metrics(latest) == {"mig", "sap"}
    kept = json.loads(step_eval_path(tmp_path, 20).read_text())
    assert kept["step"] == 20 and _metrics(kept) == {"mig", "sap"}
    # the latest step has no second copy beside eval.json
    assert not step_eval_path(tmp_path, 10).exists()


def test_a_newer_result_of_a_kept_step_wins_and_other_protocols_stay(tmp_path):
    write_eval(tmp_path, 20, "default", _result("mig"))
    write_eval(tmp_path, 20, "quick", _result("dci"))
    write_eval(tmp_path, 10, "default", _result("sap"))
    write_eval(tmp_path, 20, "default", {"seed": 0, "metrics": {"mig": {"score": 9.0}}, "seconds": {}})
    latest = read_eval(tmp_path)
    assert latest["results"]["default"]["metrics"]["mig"]["score"] == 9.0
    assert set(latest["results"]["quick"]["metrics"]) == {"dci"}


def _writer(path: str, worker: int) -> None:
    for i in range(15):
        write_eval(path, 20, "default", _result(f"m{worker}_{i}"))


def test_concurrent_evaluates_of_one_run_keep_both_results(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert all(p.exitcode == 0 for p in workers)
    assert _metrics(read_eval(tmp_path)) == {f"m{w}_{i}" for w in range(4) for i in range(15)}


@pytest.mark.parametrize("text", ['{"results": {"default": []}}', '"x"', "[]", '{"step": 3}'])
def test_an_eval_file_of_the_wrong_shape_is_one_line_naming_it(tmp_path, text):
    (tmp_path / "eval.json").write_text(text)
    with pytest.raises(UserError, match="eval.json"):
        read_eval(tmp_path)
    with pytest.raises(UserError, match="eval.json"):
        write_eval(tmp_path, 20, "default", _result("mig"))


def test_a_run_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """issue 29, case 14: on a read-only run directory evaluate computed everything, then failed writing."""
    from nsvae import evaluation
    from nsvae.config import Config

    class Run:
        path = tmp_path
        config = Config()

        def checkpoints(self):
            return [(1, tmp_path / "c.pt")]

        def load_model(self, *args, **kwargs):
            raise AssertionError("the model must not be loaded before the write check")

    real = type(tmp_path).write_bytes

    def read_only(path, data):
        if path.parent == tmp_path:
            raise PermissionError(13, "Permission denied")
        return real(path, data)

    monkeypatch.setattr(type(tmp_path), "write_bytes", read_only)
    with pytest.raises(UserError, match=r"cannot write the evaluation into .* \(Permission denied\)"):
        evaluation.evaluate_run(Run(), metrics=["mig"], progress=False)


def test_metrics_a_one_latent_model_cannot_have_are_refused_before_any_work(tmp_path):
    """issue 29, case 14: a z_dim 1 model ran the default evaluation for 92 s, then failed on MIG, writing nothing."""
    from nsvae import evaluation
    from nsvae.config import Config, apply_overrides

    class Run:
        path = tmp_path
        config = apply_overrides(Config(), {"model.z_dim": 1})

        def checkpoints(self):
            return [(1, tmp_path / "c.pt")]

        def load_model(self, *args, **kwargs):
            raise AssertionError("nothing may be encoded before the check")

    with pytest.raises(UserError, match=r"^mig, sap compare latents .* z_dim 1; evaluate the others with --metrics "):
        evaluation.evaluate_run(Run(), metrics=["mig", "factor_vae_score", "sap", "active_units"], progress=False)
    with pytest.raises(UserError, match="--metrics factor_vae_score active_units$"):
        evaluation.evaluate_run(Run(), metrics=["mig", "factor_vae_score", "sap", "active_units"], progress=False)
