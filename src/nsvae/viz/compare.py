"""Comparison figures across runs: the pictures of a method comparison.

- :func:`score_vs_reconstruction`: a disentanglement score against the
  reconstruction error, one point per run, coloured by setting (Kim & Mnih
  2018, Fig. 4: a good method sits top left).
- :func:`metric_bars`: one panel per metric, one bar per setting at the mean
  over seeds, an error bar of one standard deviation (ddof=1, drawn only with
  two or more seeds), and every seed as a dot so the spread is visible.
- :func:`proxy_over_training`: the synergy proxy (KL of the greedy worst set)
  over training per setting: the mean over seeds, with the min–max band.

The functions take plain numbers (labels, lists of values, logs) rather than
run directories, so they can be tested exactly and used on any results;
:mod:`nsvae.viz.report` gathers those numbers from runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..stats import mean_sd
from .curves import _pyplot, _series

#: Setting colours, in order of first appearance (matplotlib's tab10).
SETTING_COLOURS = [f"C{k}" for k in range(10)]


def _colour(k: int) -> str:
    return SETTING_COLOURS[k % len(SETTING_COLOURS)]


def score_vs_reconstruction(points: Sequence[Mapping[str, Any]], metric: str, recon_label: str = "reconstruction"):
    """Scatter of ``score`` (y) against ``recon`` (x): ``points`` are dicts with ``label``, ``recon``, ``score``.

    Points sharing a ``label`` (the seeds of one setting) share a colour and
    one legend entry.
    """
    if not points:
        raise ValueError(f"no run has both a reconstruction error and a {metric} score")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    labels = list(dict.fromkeys(p["label"] for p in points))
    for k, label in enumerate(labels):
        xs = [p["recon"] for p in points if p["label"] == label]
        ys = [p["score"] for p in points if p["label"] == label]
        ax.scatter(xs, ys, s=36, color=_colour(k), label=label, edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xlabel(recon_label)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against reconstruction error", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def metric_bars(table: Mapping[str, Mapping[str, Sequence[float]]], metrics: Sequence[str] | None = None):
    """Bars of ``table[setting][metric]`` (the values over seeds): mean, ±1 std, one dot per seed."""
    settings = list(table)
    if not settings:
        raise ValueError("no settings to compare")
    if metrics is None:
        metrics = list(dict.fromkeys(m for s in settings for m in table[s]))
    metrics = [m for m in metrics if any(table[s].get(m) for s in settings)]
    if not metrics:
        raise ValueError("no metric values to draw; evaluate the runs first (nsvae evaluate RUN)")
    plt = _pyplot()
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    width = max(3.2, 0.55 * len(settings) + 1.4)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 3.0 * rows), squeeze=False)
    x = np.arange(len(settings))
    for ax, metric in zip(axes.ravel(), metrics):
        for k, setting in enumerate(settings):
            values = list(table[setting].get(metric, ()))
            if not values:
                continue
            mean, std = mean_sd(values)
            ax.bar(k, mean, color=_colour(k), alpha=0.75, width=0.7)
            if len(values) > 1:
                ax.errorbar(k, mean, yerr=std, color="black", capsize=3, lw=1)
            jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(k + jitter, values, s=10, color="black", zorder=3)
        ax.set_title(metric, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(settings, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def proxy_over_training(groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], key: str = "synergy_proxy"):
    """Per setting (label -> the logs of its seeds): the mean of ``key`` over seeds and its min–max band.

    Seeds are compared at the steps every one of them logged (the runs of one
    setting log on the same schedule); a setting whose runs share no step is
    drawn run by run.
    """
    if not groups:
        raise ValueError("no runs to compare")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    drawn = 0
    for k, (label, logs) in enumerate(groups.items()):
        series = [_series(log, key) for log in logs]
        series = [(s, v) for s, v in series if v.size]
        if not series:
            continue
        common = set(series[0][0].tolist())
        for steps, _ in series[1:]:
            common &= set(steps.tolist())
        drawn += 1
        if len(series) > 1 and common:
            steps = np.array(sorted(common))
            stacked = np.stack([v[np.searchsorted(s, steps)] for s, v in series])
            ax.plot(steps, stacked.mean(axis=0), lw=1.4, color=_colour(k), label=f"{label} (n={len(series)})")
            ax.fill_between(steps, stacked.min(axis=0), stacked.max(axis=0), color=_colour(k), alpha=0.2, lw=0)
        else:
            for j, (steps, values) in enumerate(series):
                ax.plot(steps, values, lw=1.2, color=_colour(k), label=label if j == 0 else None)
    if not drawn:
        raise ValueError(f"no run logged {key!r}")
    ax.set_xlabel("step")
    ax.set_ylabel("KL of the greedy worst set (nats)")
    ax.set_title("synergy proxy over training (mean over seeds, min–max band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
