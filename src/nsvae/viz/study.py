"""The figures of a study (``studies/<name>/``): learning curves per metric, and traversals of the best and worst seed.

- :func:`learning_curves`: one panel per metric, x = training step, one colour
  per method: the mean over seeds and the min–max band, from the rows of the
  study's ``results.csv`` (the curve protocol; docs/training.md); runs still
  training (``in-flight/<run>.csv``) are dashed lines of their own.
- :func:`best_and_worst`: per method, the traversal picture of the seed with
  the highest and the lowest final score of one metric, side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .compare import _colour
from .curves import _pyplot

#: Panel titles of the usual curve columns.
LABELS = {
    "factor_vae_score": "FactorVAE score",
    "mig": "MIG (binned)",
    "chen_mig": "Chen's MIG (pool)",
    "sap": "SAP",
    "active_units": "active units",
    "synergy": "synergy S_max (pool)",
    "synergy.wms": "synergy WMS (pool)",
    "synergy.proxy": "Non-Syn proxy: KL of the worst set (nats)",
    "train.recon": "reconstruction (nats)",
    "train.kl": "KL (nats)",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _series(rows: Sequence[Mapping[str, Any]], method: str, metric: str) -> dict[int, dict[int, float]]:
    """``{seed: {step: value}}`` of one method's rows that have a number for ``metric``."""
    per_seed: dict[int, dict[int, float]] = {}
    for r in rows:
        if r["method"] == method and _is_number(r.get(metric)):
            per_seed.setdefault(int(r["seed"]), {})[int(r["step"])] = float(r[metric])
    return per_seed


def learning_curves(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    title: str | None = None,
    in_flight: Sequence[Mapping[str, Any]] = (),
):
    """Per metric a panel; per method the mean over seeds at each step and the min–max band.

    A method's seeds are compared at the steps every one of them reached; a
    method with one seed is drawn as a line. ``in_flight`` rows (runs still
    training) are drawn apart, one dashed line per run in its method's colour,
    so that a run that has come half way does not cut the finished runs'
    curves short.
    """
    if not rows and not in_flight:
        raise ValueError("the study has no learning-curve rows yet")
    everything = [*rows, *in_flight]
    metrics = [m for m in metrics if any(_is_number(r.get(m)) for r in everything)]
    if not metrics:
        raise ValueError("none of the asked metrics has values in the study")
    methods = list(dict.fromkeys(str(r["method"]) for r in everything))
    plt = _pyplot()
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.9 * nrows), squeeze=False)
    for ax, metric in zip(axes.ravel(), metrics):
        for k, method in enumerate(methods):
            per_seed = _series(rows, method, metric)
            common = sorted(set.intersection(*(set(v) for v in per_seed.values()))) if per_seed else []
            if common:
                values = np.array([[curve[s] for s in common] for curve in per_seed.values()])
                ax.plot(common, values.mean(axis=0), color=_colour(k), lw=1.5, label=f"{method} (n={len(per_seed)})")
                if len(per_seed) > 1:
                    ax.fill_between(common, values.min(axis=0), values.max(axis=0), color=_colour(k), alpha=0.18, lw=0)
            for seed, curve in sorted(_series(in_flight, method, metric).items()):
                steps = sorted(curve)
                ax.plot(
                    steps,
                    [curve[s] for s in steps],
                    color=_colour(k),
                    lw=1.2,
                    ls="--",
                    marker=".",
                    label=f"{method} seed {seed}, training (to step {steps[-1]:,})",
                )
        ax.set_title(LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_axis_off()
    handles, labels = _legend_entries(axes.ravel()[: len(metrics)])
    ncol = max(1, min(4, len(labels)))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(title or "learning curves: mean over seeds, min–max band", fontsize=10)
    fig.tight_layout(rect=(0, 0.03 + 0.03 * -(-len(labels) // ncol), 1, 0.97))
    return fig


def _legend_entries(axes) -> tuple[list, list[str]]:
    """Every distinct line label over the panels, in first-seen order (a metric one method lacks must not drop that
    method from the legend)."""
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    return handles, labels


def extremes(final_rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, tuple[int, int]]:
    """Per method, ``(best seed, worst seed)`` by the final ``metric`` (ties: the lower seed)."""
    out: dict[str, tuple[int, int]] = {}
    for method in dict.fromkeys(str(r["method"]) for r in final_rows):
        mine = [r for r in final_rows if r["method"] == method and _is_number(r.get(metric))]
        scored = sorted((float(r[metric]), int(r["seed"])) for r in mine)
        if scored:
            best = max(scored, key=lambda t: (t[0], -t[1]))[1]
            worst = min(scored, key=lambda t: (t[0], t[1]))[1]
            out[method] = (best, worst)
    if not out:
        raise ValueError(f"no final {metric!r} score in the study")
    return out


def best_and_worst(study_dir: str | Path, final_rows: Sequence[Mapping[str, Any]], metric: str, run_names):
    """A figure: per method (row) the traversal of its best and its worst seed by final ``metric``.

    ``run_names[(method, seed)]`` names the run folder under ``study_dir/runs``.
    """
    from PIL import Image

    chosen = extremes(final_rows, metric)
    scores = {(str(r["method"]), int(r["seed"])): r.get(metric) for r in final_rows}
    plt = _pyplot()
    fig, axes = plt.subplots(len(chosen), 2, figsize=(9.0, 3.4 * len(chosen)), squeeze=False)
    for row, (method, (best, worst)) in enumerate(chosen.items()):
        for col, (which, seed) in enumerate((("best", best), ("worst", worst))):
            ax = axes[row, col]
            path = Path(study_dir) / "runs" / run_names[(method, seed)] / "traversal.png"
            ax.imshow(np.asarray(Image.open(path)), cmap="gray", interpolation="nearest")
            ax.set_title(f"{method}: {which} seed {seed} ({metric} {scores[(method, seed)]:.3f})", fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    return fig
