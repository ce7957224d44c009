"""IRS (Suter et al. 2019): disentanglement_lib's own test cases (irs_test.py) ported, and values worked out by hand
from its definition: a rotated pair of binary factors (closed form 1 / (1 + tan θ)), a latent of merged factor bins,
the max-deviation weights, duplicated latents and noise."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from nsvae import metrics
from nsvae.metrics.protocols import resolve
from nsvae.metrics.utils import MetricInputError, histogram_discretize

from .toy import NoFactors, ToyData, duplicated, flat, identity

irs_module = importlib.import_module("nsvae.metrics.irs")  # the package exports the function of the same name

# disentanglement_lib's IdentityObservationsData: 10 factors of 10 values, the observation is the factor vector
IDENTITY_DATA = ToyData((10,) * 10)


def run(represent, data=IDENTITY_DATA, seed=0, **kw):
    return metrics.irs(data, represent, np.random.default_rng(seed), **kw)


def zeros(obs):
    return np.zeros_like(flat(obs))


# -- disentanglement_lib's irs_test.py -------------------------------------------------------------------------------


def test_identity_reference_case():
    result = run(identity, num_train=3000)
    assert 0.9 <= result["score"] <= 1.0  # the reference's bound
    # by hand: with v_k fixed, latent k does not move at all, so its best IRS is exactly 1
    assert result["score"] == 1.0
    assert result["parents"] == list(IDENTITY_DATA.factor_names) and result["num_active_dims"] == 10
    # the reference's test swaps the discretiser for the identity; 20 equal-width bins keep 10 classes apart
    factors = IDENTITY_DATA.sample_factors(3000, np.random.default_rng(1))
    codes = factors + np.random.default_rng(2).normal(0, 0.3, factors.shape)
    raw = irs_module.irs_from_codes(factors, codes)["score"]
    binned = irs_module.irs_from_codes(histogram_discretize(factors, 20), codes)["score"]
    assert binned == raw and raw < 1.0


def test_zero_code_reference_case():
    result = run(zeros, num_train=3000)
    assert 0.0 <= result["score"] <= 0.1  # the reference's bound
    assert result["score"] == 0.0 and result["num_active_dims"] == 0 and result["active_dims"] == []


def test_constant_dims_are_dropped_reference_case():
    ys = np.random.RandomState(0).normal(0.0, 1.0, (100, 100))
    ys[0, :] = 1.0
    ys[-1, :] = 0.0
    # the reference's rows are latents; here latents are columns
    assert irs_module.active_dims(ys.T).tolist() == [False] + [True] * 98 + [False]
    # a constant column whose numpy variance is not 0 (the mean of 0.1s is not 0.1) is still constant
    assert np.full(3, 0.1).var() > 0 and irs_module.active_dims(np.full((3, 1), 0.1)).tolist() == [False]


# -- hand values -----------------------------------------------------------------------------------------------------


def balanced_grid(sizes, repeats=1) -> np.ndarray:
    """Every combination of the factor classes ``repeats`` times: every group of a factor value is balanced."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), axis=-1).reshape(-1, len(sizes))
    return np.tile(grid, (repeats, 1))


@pytest.mark.parametrize("theta", [0.0, math.pi / 16, math.pi / 8, math.pi / 4])
def test_rotated_binary_pair_closed_form(theta):
    """Two binary factors, both latents rotated by θ: latent 1 = cos θ f1 - sin θ f2. Fixing f1 leaves it moving by
    ± sin θ / 2 around the group mean, fixing f2 by ± cos θ / 2; its largest deviation from the overall mean is
    (cos θ + sin θ) / 2. So IRS[1, f1] = cos θ / (cos θ + sin θ), IRS[1, f2] = sin θ / (cos θ + sin θ), the same for
    latent 2, and the score is 1 / (1 + tan θ) for θ in [0, π/4]."""
    f = balanced_grid((2, 2), repeats=3).astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    z = np.column_stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]])
    core = irs_module.irs_from_codes(f.astype(np.int64), z)
    expected = np.array([[c, s], [s, c]]) / (c + s)
    np.testing.assert_allclose(core["irs_matrix"], expected, atol=1e-12)
    assert core["score"] == pytest.approx(1.0 / (1.0 + math.tan(theta)), abs=1e-12)
    if theta < math.pi / 4:  # at π/4 both factors tie and the first is taken, as numpy's argmax
        assert core["parents"].tolist() == [0, 1]


def test_merged_bins_and_deviation_weights_by_hand():
    """A 40-class factor in 20 bins: each bin holds two neighbouring classes, so its latent moves by ± 0.5 around the
    bin's mean; its largest deviation is 19.5 (classes 0..39), IRS = 1 - 0.5 / 19.5. The binary factor's latent
    scores 1 with largest deviation 0.5. The score weighs them 19.5 : 0.5."""
    f = balanced_grid((40, 2), repeats=2)
    core = irs_module.irs_from_codes(histogram_discretize(f, 20), f.astype(np.float64))
    assert core["irs_matrix"][0, 0] == pytest.approx(1 - 0.5 / 19.5, abs=1e-12)
    assert core["per_latent"].tolist() == pytest.approx([1 - 0.5 / 19.5, 1.0], abs=1e-12)
    assert core["max_deviations"].tolist() == pytest.approx([19.5, 0.5])
    assert core["score"] == pytest.approx(((1 - 0.5 / 19.5) * 19.5 + 1.0 * 0.5) / 20.0, abs=1e-12)


def test_duplicated_latents_and_protocol_record():
    result = run(duplicated, data=ToyData(), num_train=2000)
    assert result["score"] == 1.0 and result["parents"] == ["f0", "f1", "f2", "f3"] * 2
    assert result["protocol"] == {"num_train": 2000, "num_bins": 20, "diff_quantile": 0.99, "name": "default+custom"}
    assert resolve("irs") == {"num_train": 10000, "num_bins": 20, "diff_quantile": 0.99, "name": "default"}
    assert resolve("irs", "paper")["diff_quantile"] == 1.0


def test_noise_codes():
    """Codes independent of the factors: within every group a latent spreads as much as overall, so IRS = 1 - q / m
    with q the 0.99 quantile of |z - mean| and m its maximum. Uniform noise on [-1, 1]: q ≈ 0.99, m ≈ 1, IRS ≈ 0.015
    (the group means are off by sampling). Gaussian noise is **not** near 0: q ≈ 2.58 (the 0.995 normal quantile),
    m ≈ 3.9 at 10,000 points, IRS ≈ 0.34."""

    def uniform(obs):
        return np.random.default_rng(int(flat(obs).sum()) % 2**32).uniform(-1, 1, (len(obs), 4))

    def gaussian(obs):
        return np.random.default_rng(int(flat(obs).sum()) % 2**32).standard_normal((len(obs), 4))

    toy = ToyData()
    assert run(uniform, data=toy, num_train=10000)["score"] <= 0.03
    assert run(uniform, data=toy, num_train=10000, protocol="paper")["score"] <= 0.01  # the maximum, not a quantile
    assert 0.25 <= run(gaussian, data=toy, num_train=10000)["score"] <= 0.45


def test_registered_in_evaluate_and_default():
    assert "irs" in metrics.DEFAULT_METRICS and metrics.METRICS["irs"].fn is metrics.irs
    out = metrics.evaluate(ToyData(), identity, metrics=["irs"], overrides={"irs": {"num_train": 1000}}, progress=False)
    assert out["metrics"]["irs"]["score"] == 1.0 and out["encoding"]["pool"] == [1000, 0]


def test_bad_input_is_one_clear_error():
    def nan_codes(obs):
        z = identity(obs)
        z[::5, 2] = np.nan
        return z

    with pytest.raises(MetricInputError, match=r"non-finite values .* dimension\(s\) \[2\]"):
        run(nan_codes, data=ToyData(), num_train=200)
    with pytest.raises(MetricInputError, match="ground-truth factors"):
        run(identity, data=NoFactors())
    with pytest.raises(MetricInputError, match="diff_quantile"):
        run(identity, data=ToyData(), num_train=200, diff_quantile=1.5)
    with pytest.raises(MetricInputError, match="unknown protocol parameter"):
        run(identity, data=ToyData(), batch_size=16)
