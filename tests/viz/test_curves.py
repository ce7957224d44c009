"""Training curves: the panels present and the plotted data equal the log."""

from __future__ import annotations

import numpy as np
import pytest

from nsvae.viz.curves import compare_synergy_proxy, training_curves


def fake_log(steps=5, rates=True):
    log = []
    for s in range(1, steps + 1):
        entry = {"step": s * 10, "recon": 100.0 / s, "kl": 10.0 + s, "kl_per_dim": [s, 2 * s, 0.01], "loss": 1.0}
        entry["synergy_proxy"] = 0.5 / s
        if rates:
            entry.update(best_rate=[1.0, 0.5, 0.0], worst_rate=[0.0, 0.5, 1.0])
        log.append(entry)
    return log


def test_panels_and_data_follow_the_log():
    fig = training_curves(fake_log(), title="run")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and titles[-1] == "fraction of steps in the worst set"
    recon = fig.axes[0].lines[0]
    assert recon.get_xdata().tolist() == [10, 20, 30, 40, 50]
    assert np.allclose(recon.get_ydata(), [100, 50, 100 / 3, 25, 20])
    per_dim = fig.axes[2].lines
    assert len(per_dim) == 3 and np.allclose(per_dim[1].get_ydata(), [2, 4, 6, 8, 10])


def test_methods_without_selection_rates_get_four_panels():
    fig = training_curves(fake_log(rates=False))
    assert sum(1 for ax in fig.axes if ax.get_title()) == 4


def test_empty_log_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        training_curves([])


def test_comparison_has_one_line_per_run():
    fig = compare_synergy_proxy({"nonsyn": fake_log(), "vae": fake_log(3)})
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["nonsyn", "vae"]
    assert len(lines[1].get_xdata()) == 3
