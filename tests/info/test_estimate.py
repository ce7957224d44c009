import math

import numpy as np
import pytest

from nsvae import info
from nsvae.info.estimate import _miller_madow_nats


def test_counts_from_samples_tallies_and_relabels():
    samples = np.array([[5, -1, 0], [5, 7, 1], [9, 7, 1], [5, 7, 1]])
    counts, labels = info.counts_from_samples(samples)
    assert [list(v) for v in labels] == [[5, 9], [-1, 7], [0, 1]]
    assert counts.shape == (2, 2, 2)
    assert counts[0, 1, 1] == 2 and counts[0, 0, 0] == 1 and counts[1, 1, 1] == 1 and counts.sum() == 4
    counts2, _ = info.counts_from_samples(samples[:, :2], target=samples[:, 2])
    assert np.array_equal(counts, counts2)


def test_plugin_is_the_empirical_measure(rng):
    x = rng.integers(0, 3, size=(400, 2))
    y = (x[:, 0] + x[:, 1] + rng.integers(0, 2, 400)) % 3
    counts, _ = info.counts_from_samples(x, target=y)
    est = info.estimate(counts, "mutual_information", correction="none", n_bootstrap=0)
    assert est.plugin == pytest.approx(info.mutual_information(counts / counts.sum()), abs=1e-12)
    assert est.value == est.plugin
    assert math.isnan(est.ci_low) and est.n_samples == 400


def test_miller_madow_formula_exactly():
    counts = np.array([[[3, 0], [1, 2]], [[0, 4], [2, 0]]])  # 12 observations
    groups = [(0,), (1,)]
    n = counts.sum()

    def occupied(a):
        return np.count_nonzero(a)

    whole = (occupied(counts.sum(-1)) + occupied(counts.sum((0, 1))) - occupied(counts) - 1) / (2 * n)
    assert _miller_madow_nats("mutual_information", counts, groups) == pytest.approx(whole)
    part0 = (occupied(counts.sum((1, 2))) + 2 - occupied(counts.sum(1)) - 1) / (2 * n)
    part1 = (occupied(counts.sum((0, 2))) + 2 - occupied(counts.sum(0)) - 1) / (2 * n)
    assert _miller_madow_nats("wms", counts, groups) == pytest.approx(whole - part0 - part1)


@pytest.mark.parametrize("correction", ["miller-madow", "quadratic", "bootstrap"])
def test_corrections_reduce_the_bias_of_independent_data(correction):
    # X1, X2, Y independent and uniform on 4 symbols: I = 0, plug-in bias ~ 63/(2N ln 2) bits.
    plugin, corrected = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        samples = rng.integers(0, 4, size=(300, 3))
        est = info.estimate_from_samples(samples, "mutual_information", correction=correction, n_bootstrap=40, rng=seed)
        plugin.append(est.plugin)
        corrected.append(est.value)
    assert np.mean(plugin) > 0.05
    assert abs(np.mean(corrected)) < 0.4 * np.mean(plugin)


def test_synergy_estimates_recover_xor():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, size=(2000, 2))
    y = x[:, 0] ^ x[:, 1]
    est = info.estimate_from_samples(
        x, ["mutual_information", "s_max", "wms", "s_vk"], target=y, n_bootstrap=100, rng=1
    )
    for name in ("mutual_information", "s_max", "wms", "s_vk"):
        assert est[name].value == pytest.approx(1.0, abs=0.02)
        assert est[name].ci_low <= est[name].value <= est[name].ci_high
        assert est[name].ci_high - est[name].ci_low < 0.05


def test_confidence_interval_covers_the_truth_most_of_the_time():
    # AND gate with 500 trials: I = 0.8113 bits.
    truth = info.mutual_information(info.gate("and"))
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2, size=(500, 2))
        est = info.estimate_from_samples(x, "mutual_information", target=x[:, 0] & x[:, 1], n_bootstrap=200, rng=seed)
        covered += est.ci_low <= truth <= est.ci_high
    assert covered >= 16


def test_same_seed_same_numbers():
    x = np.random.default_rng(3).integers(0, 3, size=(200, 3))
    a = info.estimate_from_samples(x, ["s_max", "s_vk"], n_bootstrap=20, rng=11)
    b = info.estimate_from_samples(x, ["s_max", "s_vk"], n_bootstrap=20, rng=11)
    assert a == b


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(measures="s_vk", correction="miller-madow"), "Miller–Madow"),
        (dict(measures="entropy_rate"), "unknown measure"),
        (dict(correction="magic"), "unknown correction"),
        (dict(confidence=1.5), "confidence"),
    ],
)
def test_bad_arguments(kwargs, message):
    counts = np.array([[3, 1], [1, 3]])
    with pytest.raises(ValueError, match=message):
        info.estimate(counts, **kwargs)


def test_bad_samples():
    with pytest.raises(ValueError, match="integer symbols"):
        info.counts_from_samples(np.array([[0.5, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="at least two columns"):
        info.counts_from_samples(np.array([[1], [2]]))
    with pytest.raises(ValueError, match="one entry per trial"):
        info.counts_from_samples(np.array([[1], [2]]), target=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="at least 2 trials"):
        info.counts_from_samples(np.array([[1, 2]]))


def test_a_measure_does_not_depend_on_the_other_measures_or_the_bootstrap_size():
    x = np.random.default_rng(5).integers(0, 3, size=(300, 3))
    alone = info.estimate_from_samples(x, "s_vk", n_bootstrap=0, rng=2)
    together = info.estimate_from_samples(x, ["s_max", "s_vk"], n_bootstrap=30, rng=2)["s_vk"]
    assert alone.value == together.value and alone.plugin == together.plugin


def test_pid_needs_two_predictors():
    with pytest.raises(ValueError, match="2 to 4 predictors, not 1"):
        info.pid(np.full((2, 2), 0.25))
