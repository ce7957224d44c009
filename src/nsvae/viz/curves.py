"""Training curves from a run's log (``log.jsonl``: one dict per logged step).

:func:`training_curves` draws, over steps: the reconstruction loss, the
total KL, the KL of each latent, the synergy proxy (KL of the greedy worst
set, logged for every method), and for the Non-Syn VAE how often each
latent has been in the best and in the worst set so far — the original's
console logs as figures. :func:`compare_synergy_proxy` puts the synergy
proxy of several runs on one axis (e.g. one per method).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Enough distinct colours for 10 latents (matplotlib's tab10).
_LATENT_COLOURS = [f"C{j}" for j in range(10)]


def _series(log: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(e["step"], e[key]) for e in log if key in e]
    if not rows:
        return np.zeros(0), np.zeros((0,))
    steps = np.array([r[0] for r in rows], dtype=np.float64)
    values = np.array([r[1] for r in rows], dtype=np.float64)
    return steps, values


def _pyplot():
    """pyplot on the Agg backend, with mathtext off: every text nsvae draws is plain (run names, methods, paths are
    the user's and may hold '$', which matplotlib would parse as mathematics and fail on). The one way the figure
    modules get pyplot."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def training_curves(log: Sequence[Mapping[str, Any]], title: str | None = None):
    """A figure of a run's curves; panels for selection rates only when the log has them."""
    if not log:
        raise ValueError("the log is empty: the run has not logged a step yet")
    plt = _pyplot()
    has_rates = any("best_rate" in e for e in log)
    panels = ["recon", "kl", "kl_per_dim", "synergy_proxy"] + (["best_rate", "worst_rate"] if has_rates else [])
    cols = 2
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.6 * rows), squeeze=False)
    titles = {
        "recon": "reconstruction (nats / image)",
        "kl": "total KL (nats)",
        "kl_per_dim": "KL per latent",
        "synergy_proxy": "synergy proxy: KL of the greedy worst set",
        "best_rate": "fraction of steps in the best set",
        "worst_rate": "fraction of steps in the worst set",
    }
    for ax, key in zip(axes.ravel(), panels):
        steps, values = _series(log, key)
        if values.ndim == 2:
            for j in range(values.shape[1]):
                ax.plot(steps, values[:, j], color=_LATENT_COLOURS[j % 10], lw=1, label=f"z{j}")
            ax.legend(fontsize=6, ncol=5, loc="best")
        else:
            ax.plot(steps, values, color="#377eb8", lw=1)
        if key in ("recon", "kl_per_dim") and values.size and np.nanmin(values) > 0:
            ax.set_yscale("log")
        if key in ("best_rate", "worst_rate"):
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(titles[key], fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def compare_synergy_proxy(logs: Mapping[str, Sequence[Mapping[str, Any]]]):
    """The synergy proxy over training for several runs (label -> log), on one axis."""
    if not logs:
        raise ValueError("no runs to compare")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for k, (label, log) in enumerate(logs.items()):
        steps, values = _series(log, "synergy_proxy")
        ax.plot(steps, values, lw=1.2, color=_LATENT_COLOURS[k % 10], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("KL of the greedy worst set (nats)")
    ax.set_title("synergy proxy over training", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
