"""Learning curves: a run scores itself every ``eval.every`` steps on one fixed evaluation set.

The evaluation set is every random draw the curve metrics make (the shared
pool of 10,000 + 5,000 points, the FactorVAE score's vote batches, the
synergy metric's scored samples). Each draw comes from a generator that is a
function of ``eval.seed`` and the metric's name only
(:func:`nsvae.metrics.evaluate.metric_rng`), never of the model: two runs
with the same ``eval.seed`` on the same dataset score exactly the same images
at every step, and a study gives every run the same seed. The points are
encoded afresh at each evaluation (the model changed); nothing is tabulated,
so an evaluation costs the encoding of about 80,000 images, not 737,280.

The curve protocol (:data:`CURVE_OVERRIDES`) is the default protocol of
each metric with three named reductions, so a point costs a few percent of
a run's training:

- FactorVAE score: 500 + 500 votes of L = 64 (disentanglement_lib: 10,000 +
  5,000); its standard error at a score near 0.7 is about 0.02;
- Chen's MIG: the mixtures over the pool's first 10,000 posteriors instead
  of all 737,280 images (``population = "pool"``);
- the synergy metric: the leave-one-out pool reference on 2,000 points
  instead of the whole-dataset table.

The final evaluation of a run (``nsvae evaluate``, a study's last step) uses
the full default protocols; a study records both, so the gap between the
curve's last point and the final numbers is measured, not assumed.

Evaluating does not touch training's randomness (the encoder runs in
inference mode and the metrics draw from numpy generators only): a run with
curves computes exactly the weights of a run without (a test checks it).
Each point is one line of ``eval_curve.jsonl`` in the run directory (step,
seconds in all and per part, the scores as ``nsvae results`` names them, and
the full metric results) and, through the trainer's trackers (TensorBoard,
W&B, MLflow: :func:`nsvae.train.trackers.curve_scalars`), scalars under
``eval/``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

CURVE_FILE = "eval_curve.jsonl"
#: The metrics of a learning curve (the synergy result also carries the Non-Syn proxy: KL of the greedy-worst set).
CURVE_METRICS = ("factor_vae_score", "mig", "chen_mig", "sap", "active_units", "synergy")
#: The curve protocol at the default ``eval.pool`` and ``eval.votes``: each metric's default protocol with these
#: parameters changed (module docstring).
CURVE_OVERRIDES: dict[str, dict[str, Any]] = {
    "factor_vae_score": {"num_train": 500, "num_eval": 500},
    "chen_mig": {"population": "pool"},
    "synergy": {"reference": "pool"},
}


def curve_overrides(pool: int = 10_000, votes: int = 500, whole_dataset: bool = False) -> dict[str, dict[str, Any]]:
    """The curve protocol for a pool of ``pool`` training points (+ ``pool // 2`` test points) and ``votes``
    FactorVAE training and evaluation votes; the defaults give :data:`CURVE_OVERRIDES`. ``whole_dataset``:
    Chen's MIG and the synergy metric keep their default (whole-dataset) population and reference."""
    if pool == 10_000:
        out = {k: dict(v) for k, v in CURVE_OVERRIDES.items()}
    else:
        test = pool // 2
        out = {
            "factor_vae_score": {"num_variance_estimate": pool},
            "mig": {"num_train": pool},
            "chen_mig": {"population": "pool", "num_samples": pool},
            "sap": {"num_train": pool, "num_test": test},
            "active_units": {"num_train": pool},
            "synergy": {"reference": "pool", "num_train": pool, "num_samples": min(2000, pool)},
        }
    out["factor_vae_score"].update(num_train=votes, num_eval=votes)
    if whole_dataset:
        out["chen_mig"].pop("population")
        out["synergy"].pop("reference")
        out = {name: params for name, params in out.items() if params}
    return out


def evaluate_model(
    model, data, seed: int, device=None, pool: int = 10_000, votes: int = 500, whole_dataset: bool = False
) -> dict[str, Any]:
    """Score ``model`` with the curve metrics and protocol (:func:`curve_overrides`) on the evaluation set of ``seed``.

    ``whole_dataset``: encode every image first (``eval.whole_dataset``).
    The model is put in eval mode for the encoding and back in train mode
    afterwards. Returns :func:`nsvae.metrics.evaluate`'s result.
    """
    from ..metrics import evaluate
    from .latents import posterior_encoder

    was_training = model.training
    try:
        return evaluate(
            data,
            represent_posterior=posterior_encoder(model, device),
            metrics=CURVE_METRICS,
            protocol="default",
            overrides=curve_overrides(pool, votes, whole_dataset),
            seed=seed,
            table=whole_dataset,
            progress=False,
        )
    finally:
        model.train(was_training)


def curve_scores(result: dict[str, Any]) -> dict[str, float]:
    """One number per column: the scores as ``nsvae results`` names them, plus the Non-Syn proxy.

    ``synergy.proxy`` is the KL (nats) of the greedy-worst set under
    ``omega`` = 0.9, the quantity the Non-Syn VAE penalises.
    """
    from ..metrics.evaluate import table_scores

    scores = table_scores(result)
    proxy = result.get("metrics", {}).get("synergy", {}).get("proxy")
    if isinstance(proxy, dict):
        scores["synergy.proxy"] = float(proxy["kl_worst"])
    return scores


def curve_entry(step: int, result: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The ``eval_curve.jsonl`` line of one evaluation (``part_seconds``: encoding the pool, then each metric)."""
    return {
        "step": int(step),
        "seconds": float(seconds),
        "part_seconds": {name: float(value) for name, value in result.get("seconds", {}).items()},
        "eval_seed": int(result["seed"]),
        "scores": curve_scores(result),
        "metrics": result["metrics"],
    }


def read_curve(run_dir) -> list[dict[str, Any]]:
    """The learning curve of a run: every ``eval_curve.jsonl`` line, in step order.

    A torn last line (a kill in mid-write) is skipped; an unreadable line
    elsewhere is an error.
    """
    from pathlib import Path

    from ..errors import UserError

    path = Path(run_dir) / CURVE_FILE
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break
            raise UserError(f"{path}: line {i + 1} is not valid JSON; delete the file to re-evaluate") from None
    return sorted(out, key=lambda e: e["step"])


class CurveRecorder:
    """Evaluates at the steps of the schedule and appends to the run's curve file."""

    def __init__(self, run, config, dataset):
        self.run = run
        self.every = int(config.eval.every)
        self.final_step = int(config.run.steps)
        self.seed = int(config.eval.seed)
        self.pool = int(config.eval.pool)
        self.votes = int(config.eval.votes)
        self.whole_dataset = bool(config.eval.whole_dataset)
        self.dataset = dataset
        self.path = run.path / CURVE_FILE
        if self.every > 0 and not hasattr(dataset, "factor_sizes"):
            from ..errors import UserError

            raise UserError(
                f"eval.every = {self.every}: learning curves need a dataset with ground-truth factors "
                f"(such as dsprites); {config.data.dataset} has none. Set eval.every = 0"
            )
        if self.every > 0 and self.whole_dataset:
            from ..errors import UserError
            from ..metrics.evaluate import tabulable

            if not tabulable(dataset):
                raise UserError(
                    f"eval.whole_dataset = true: {config.data.dataset} has no fixed set of images to encode (it "
                    "draws new noise per image). Set eval.whole_dataset = false"
                )

    @property
    def active(self) -> bool:
        return self.every > 0

    def due(self, step: int) -> bool:
        return self.active and (step % self.every == 0 or step == self.final_step)

    def truncate(self, step: int) -> None:
        """On resume: forget the points after the checkpoint (they are evaluated again)."""
        from ..atomic import write_text_atomic

        if not self.path.is_file():
            return
        kept = [json.dumps(e, separators=(", ", ": ")) + "\n" for e in read_curve(self.run.path) if e["step"] <= step]
        write_text_atomic(self.path, "".join(kept))

    def record(self, step: int, model, device) -> dict[str, Any]:
        t0 = time.perf_counter()
        result = evaluate_model(model, self.dataset, self.seed, device, self.pool, self.votes, self.whole_dataset)
        entry = curve_entry(step, result, time.perf_counter() - t0)
        text = json.dumps(_finite(entry), separators=(", ", ": "), allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
        return entry


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become their string spelling (the metrics never return them)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value
