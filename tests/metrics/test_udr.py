"""UDR (Duan et al. 2020): disentanglement_lib's own test cases (udr_test.py) ported, and values worked out by hand
from its definitions: identity, permuted and sign-flipped, rotated and pure-noise codes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nsvae.metrics.udr import (
    DEFAULT_PROTOCOL,
    gaussian_kl,
    lasso_matrix,
    relative_strength,
    spearman_matrix,
    udr_sample,
    udr_scores,
)
from nsvae.metrics.utils import MetricInputError
from tests.metrics.toy import ToyData, posterior_identity


def test_relative_strength_reference_cases():
    assert relative_strength(np.eye(3)) == 1.0
    assert relative_strength(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])) == pytest.approx(2 / 3)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert relative_strength(np.zeros((3, 3))) == 0.0
    assert math.isnan(relative_strength(np.zeros((0, 0))))
    # by hand: a 2 x 3 matrix; columns 1, 1/2, 0; rows 1/2... per definition max^2 / sum
    m = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 0.0]])
    cols = (1.0 + 0.25 / 1.0 + 0.0) / 3
    rows = (1.0 / 1.5 + 0.25 / 0.5) / 2
    assert relative_strength(m) == pytest.approx((cols + rows) / 2)


def test_spearman_matrix_reference_cases():
    rng = np.random.RandomState(0)
    vec1 = rng.random_sample((1000, 3))
    assert np.allclose(spearman_matrix(vec1, vec1.copy()), np.eye(3), atol=0.1)
    vec1 = rng.random_sample((1000, 3))
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(spearman_matrix(vec1, vec2), expected, atol=0.1)
    # exact: scipy's Spearman correlation of every pair
    from scipy.stats import spearmanr

    a, b = rng.random_sample((50, 2)), rng.random_sample((50, 3))
    assert spearman_matrix(a, b)[1, 2] == pytest.approx(abs(spearmanr(a[:, 1], b[:, 2])[0]), abs=1e-12)


def test_lasso_matrix_reference_cases():
    rng = np.random.RandomState(0)
    vec1 = rng.random_sample((1000, 3)) * 10.0
    assert np.allclose(lasso_matrix(vec1, vec1.copy()), np.eye(3), atol=0.2)
    vec1 = rng.random_sample((1000, 3)) * 10.0
    vec2 = vec1.copy()
    vec2[:, 1] = vec2[:, 0]
    expected = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.allclose(lasso_matrix(vec1, vec2), expected, atol=0.2)


def _informative(codes: np.ndarray) -> np.ndarray:
    return np.full(codes.shape, math.log(0.01))  # KL well above 0.01 for every latent


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_permutation_and_sign_flips_do_not_matter(correlation):
    rng = np.random.RandomState(0)
    a = rng.random_sample((1000, 10))
    b = a[:, rng.permutation(10)]
    b[:, rng.choice(10, 5)] *= -1.0
    scores = udr_scores([a, b], [_informative(a), _informative(b)], correlation=correlation)
    assert all(0.8 <= s <= 1.0 for s in scores["model_scores"])
    assert scores["informative"] == [10, 10] and scores["pairwise"][0][0] is None


def test_uninformative_latents_are_left_out_by_the_kl_filter():
    rng = np.random.RandomState(0)
    first = rng.random_sample((1000, 1))
    noise = 1e-3 * rng.random_sample((1000, 9))  # mean near 0 with logvar 0: KL near 0, not informative
    code = np.concatenate([first, noise], axis=1)
    logvar = np.concatenate([np.full((1000, 1), math.log(0.01)), np.zeros((1000, 9))], axis=1)
    kept = udr_scores([code, code], [logvar, logvar], filter_low_kl=True)
    dropped = udr_scores([code, code], [logvar, logvar], filter_low_kl=False)
    assert kept["informative"] == [1, 1]
    assert all(0.8 <= s <= 1.0 for s in kept["model_scores"])
    assert all(0.0 <= s <= 0.2 for s in dropped["model_scores"])
    # by hand: without the filter R is 10 x 10 with one non-zero entry, the Lasso coefficient of a standardised
    # latent on itself, 1 - alpha = 0.9; each side's mean of max^2 / sum is 0.9 / 10
    assert dropped["model_scores"][0] == pytest.approx(0.09, abs=1e-9)


def test_a_rotated_code_scores_lower_than_a_permuted_one_and_noise_lowest():
    rng = np.random.default_rng(1)
    # a full factorial grid: its columns' rank correlations are exactly 0, so a permutation scores exactly 1
    grid = np.array(np.meshgrid(*[np.arange(5.0)] * 4, indexing="ij")).reshape(4, -1).T
    lv_grid = np.full(grid.shape, math.log(0.01))
    same = udr_scores([grid, -grid[:, [1, 0, 3, 2]]], [lv_grid, lv_grid], correlation="spearman")["model_scores"][0]
    assert same == pytest.approx(1.0, abs=1e-12)
    a = rng.standard_normal((4000, 4))
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    rotated = a.copy()
    rotated[:, 0], rotated[:, 1] = c * a[:, 0] - s * a[:, 1], s * a[:, 0] + c * a[:, 1]
    noise = rng.standard_normal((4000, 4))
    lv = np.full(a.shape, math.log(0.01))
    turned = udr_scores([a, rotated], [lv, lv], correlation="spearman")["model_scores"][0]
    lost = udr_scores([a, noise], [lv, lv], correlation="spearman")["model_scores"][0]
    # by hand: the rotated pair's 2 x 2 block is about 0.69 everywhere (Spearman of a 45-degree mix of two
    # Gaussians): max^2 / sum = 0.35 on 2 of 4 latents, 1 on the others; sample noise lowers it a little
    assert turned == pytest.approx((2 * 1.0 + 2 * 0.345) / 4, abs=0.04)
    assert lost < 0.2


def test_a_model_scores_the_median_over_the_others():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((500, 3))
    lv = np.full(a.shape, math.log(0.01))
    noise = rng.standard_normal((500, 3))
    scores = udr_scores([a, a[:, [2, 0, 1]], noise], [lv, lv, lv], correlation="spearman")
    pair = np.array([[np.nan if v is None else v for v in row] for row in scores["pairwise"]])
    for i in range(3):
        assert scores["model_scores"][i] == pytest.approx(np.median(np.delete(pair[:, i], i)))
    assert scores["model_scores"][2] < scores["model_scores"][0]


def test_gaussian_kl_closed_form():
    assert gaussian_kl(np.zeros((4, 2)), np.zeros((4, 2))) == pytest.approx([0.0, 0.0])
    assert gaussian_kl(np.ones((3, 1)), np.zeros((3, 1)))[0] == pytest.approx(0.5)


def test_bad_input_is_one_clear_error():
    a = np.zeros((5, 2))
    with pytest.raises(MetricInputError, match="at least 2 models"):
        udr_scores([a], [a])
    with pytest.raises(MetricInputError, match="model 1's mean and logvar"):
        udr_scores([a, np.zeros((4, 2))], [a, np.zeros((4, 2))])
    with pytest.raises(MetricInputError, match="correlation must be one of"):
        udr_scores([a, a], [a, a], correlation="pearson")
    with pytest.raises(MetricInputError, match="NaN"):
        udr_scores([a, np.full((5, 2), np.nan)], [a, a])


def test_the_sample_is_the_same_for_every_model_and_follows_the_protocol():
    data = ToyData()
    first = udr_sample(data, posterior_identity(), num_data_points=200, seed=0)
    second = udr_sample(data, posterior_identity(0.1), num_data_points=200, seed=0)
    assert np.array_equal(first["factors"], second["factors"]) and first["factors"].shape == (200, 4)
    assert np.array_equal(first["mean"], first["factors"].astype(np.float32))
    assert first["mean"].dtype == np.float32 and first["logvar"].shape == (200, 4)
    assert DEFAULT_PROTOCOL == {
        "num_data_points": 1000,
        "correlation": "lasso",
        "lasso_alpha": 0.1,
        "filter_low_kl": True,
        "kl_threshold": 0.01,
        "seed": 0,
    }
