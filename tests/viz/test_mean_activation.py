"""Mean-activation plots: the summaries are exact means, rows are the active latents."""

from __future__ import annotations

import numpy as np
import pytest

from nsvae.viz.mean_activation import active_units, dsprites_mean_activation, factor_means, mean_activation

SIZES = (3, 6, 40, 32, 32)


def test_factor_means_are_exact_group_means():
    factors = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    codes = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0], [7.0, 40.0]])
    means = factor_means(codes, factors, (2, 2), (0, 1))
    assert means.shape == (2, 2, 2)
    assert means[0, 1].tolist() == [2.0, 15.0] and means[1, 0].tolist() == [5.0, 30.0]
    assert np.isnan(means[0, 0]).all()
    assert factor_means(codes, factors, (2, 2), (0,))[:, 0].tolist() == [2.0, 6.0]


def test_active_units_uses_the_unbiased_variance():
    codes = np.array([[0.0, 0.0], [0.2, 0.09], [0.4, 0.18]])
    # unbiased variances: 0.04 and 0.0081; the biased one of the first column would be 0.0267
    assert active_units(codes).tolist() == [True, False]
    # Two images 0.15 apart: unbiased variance 0.01125 (active), biased 0.0056 (would not be).
    assert active_units(np.array([[0.0], [0.15]])).tolist() == [True]
    with pytest.raises(ValueError, match="NaN"):
        active_units(np.array([[np.nan], [1.0]]))


def synthetic(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, s, n) for s in SIZES], 1)
    codes = np.zeros((n, 5))
    codes[:, 0] = factors[:, 3] / 31  # posX
    codes[:, 2] = factors[:, 1] / 5  # scale
    codes[:, 4] = rng.normal(0, 0.001, n)  # collapsed
    return codes, factors


def test_dsprites_figure_has_one_row_per_active_latent():
    codes, factors = synthetic()
    fig = dsprites_mean_activation(codes, factors)
    axes = fig.axes
    assert len(axes) == 2 * 3  # latents 0 and 2 are active
    assert [ax.get_ylabel() for ax in axes[::3]] == ["z0", "z2"]
    # The heat map of z0 varies along rows (posX), as the original drew it.
    heat = axes[0].images[0].get_array()
    assert heat.shape == (32, 32)
    assert np.allclose(heat[:, 0], np.arange(32) / 31) and np.allclose(heat[5], 5 / 31)
    # One shared colour range and the original's colours.
    assert axes[0].images[0].get_clim() == axes[3].images[0].get_clim()
    assert [line.get_color() for line in axes[1].lines] == ["#4daf4a", "#e41a1c", "#377eb8"]


def test_general_figure_orders_rows_by_kl():
    codes, factors = synthetic()
    names = ("shape", "scale", "orientation", "posX", "posY")
    fig = mean_activation(codes, factors, names, SIZES, kl_per_dim=[1.0, 0, 3.0, 0, 0])
    labels = [ax.get_ylabel() for ax in fig.axes[::5]]
    assert labels == ["z2\nKL 3.00", "z0\nKL 1.00"]
    scale_curve = fig.axes[1].lines[0].get_ydata()  # z2 against scale
    assert np.allclose(scale_curve, np.arange(6) / 5)
