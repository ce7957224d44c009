import math

import numpy as np
import pytest

from nsvae import info
from tests.conftest import random_pmf


def test_entropy_of_uniform_and_units():
    p = np.full((4, 2), 1 / 8)
    assert info.entropy(p) == pytest.approx(3.0, abs=1e-15)
    assert info.entropy(p, base="e") == pytest.approx(3 * math.log(2), abs=1e-15)
    assert info.entropy(p, base=8) == pytest.approx(1.0, abs=1e-15)


def test_entropy_ignores_zero_cells():
    assert info.entropy(np.array([0.5, 0.5, 0.0])) == pytest.approx(1.0, abs=1e-15)
    assert info.entropy(np.array([1.0, 0.0])) == 0.0


def test_conditional_entropy_closed_form():
    # Y = X for a uniform bit, plus an independent uniform bit Z: H(Y | X, Z) = 0, H(Y | Z) = 1.
    p = np.zeros((2, 2, 2))
    for x in range(2):
        for z in range(2):
            p[x, z, x] = 0.25
    assert info.conditional_entropy(p) == pytest.approx(0.0, abs=1e-15)
    assert info.conditional_entropy(p, given=[1]) == pytest.approx(2.0 - 1.0 + 0.0, abs=1e-12)  # H(X,Y|Z) = 1


def test_mutual_information_identities(rng):
    p = random_pmf(rng, (3, 4, 5))
    i_whole = info.mutual_information(p)
    h_y = info.entropy(p.sum(axis=(0, 1)))
    assert i_whole == pytest.approx(h_y - info.conditional_entropy(p), abs=1e-12)
    # Chain rule: I(X1,X2;Y) = I(X1;Y) + I(X2;Y|X1)
    i1 = info.mutual_information(p, [0])
    h_y_given_x1 = info.entropy(p.sum(axis=1)) - info.entropy(p.sum(axis=(1, 2)))
    i2_given_1 = h_y_given_x1 - info.conditional_entropy(p)
    assert i_whole == pytest.approx(i1 + i2_given_1, abs=1e-12)


def test_mutual_information_zero_for_product():
    px = np.array([0.2, 0.3, 0.5])
    py = np.array([0.6, 0.4])
    assert info.mutual_information(np.outer(px, py)) == pytest.approx(0.0, abs=1e-15)


def test_kl_divergence_values():
    p = np.array([0.5, 0.5])
    q = np.array([0.25, 0.75])
    expected = 0.5 * math.log2(2) + 0.5 * math.log2(0.5 / 0.75)
    assert info.kl_divergence(p, q) == pytest.approx(expected, abs=1e-15)
    assert info.kl_divergence(p, p) == 0.0
    assert info.kl_divergence(p, np.array([1.0, 0.0])) == math.inf
    assert info.kl_divergence(np.array([1.0, 0.0]), p) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        info.kl_divergence(p, np.array([1.0, 0.0, 0.0]))


def test_specific_information_averages_to_mutual_information(rng):
    p = random_pmf(rng, (3, 4, 5))
    py = p.sum(axis=(0, 1))
    for axes in (0, 1, (0, 1)):
        spec = info.specific_information(p, axes)
        assert spec.shape == (5,)
        assert np.all(spec >= 0)
        assert float(py @ spec) == pytest.approx(info.mutual_information(p, [axes]), abs=1e-12)


def test_specific_information_literal_definition():
    p = info.gate("and")
    # p(x1 | y=0) = (2/3, 1/3), p(x1) = (1/2, 1/2); p(x1 | y=1) = (0, 1)
    expected0 = 2 / 3 * math.log2(4 / 3) + 1 / 3 * math.log2(2 / 3)
    spec = info.specific_information(p, 0)
    assert spec[0] == pytest.approx(expected0, abs=1e-15)
    assert spec[1] == pytest.approx(1.0, abs=1e-15)


def test_specific_information_nan_for_impossible_outcome():
    p = np.zeros((2, 3))
    p[0, 0] = p[1, 1] = 0.5
    spec = info.specific_information(p, 0)
    assert np.isnan(spec[2]) and spec[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "table, message",
    [
        (np.array([[0.5, 0.6], [0.0, -0.1]]), "negative"),
        (np.array([[0.5, np.nan], [0.25, 0.25]]), "NaN"),
        (np.array([[0.5, 0.6], [0.0, 0.1]]), "sums to 1.2"),
        (np.zeros((2, 0)), "empty target"),
        (np.array([1.0]), "rank 1"),
    ],
)
def test_bad_tables_are_rejected_with_a_reason(table, message):
    with pytest.raises(ValueError, match=message):
        info.mutual_information(table)


def test_normalize_rescales():
    p = info.normalize(np.array([[1.0, 1.0], [2.0, 0.0]]))
    assert p.sum() == pytest.approx(1.0) and p[1, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero total mass"):
        info.normalize(np.zeros((2, 2)))


def test_bad_base_and_predictors():
    p = info.gate("xor")
    with pytest.raises(ValueError, match="base"):
        info.entropy(p, base=1)
    with pytest.raises(ValueError, match="not a predictor axis"):
        info.mutual_information(p, [2])
    with pytest.raises(ValueError, match="repeats an axis"):
        info.s_max(p, [(0, 0), 1])
    with pytest.raises(ValueError, match="given twice"):
        info.s_max(p, [0, 0])
