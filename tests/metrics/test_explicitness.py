"""Explicitness against a literal transcription of disentanglement_lib's procedure on the same codes.

The reference below follows ``compute_modularity_explicitness`` and
``explicitness_per_factor`` of disentanglement_lib
(``evaluation/metrics/modularity_explicitness.py``) step by step, in its own
layout (codes and factors as ``(num_codes, num_points)`` and
``(num_factors, num_points)``), written here with scikit-learn.
"""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer

from nsvae import metrics
from nsvae.metrics.utils import CodePool

from .toy import ToyData

DATA = ToyData((2, 3, 4, 5))
NUM_TRAIN, NUM_TEST = 1500, 700


def dlib_logistic_regression():
    """``LogisticRegression()`` as disentanglement_lib ran it (scikit-learn < 0.22: liblinear, one-vs-rest, C = 1).

    Today's liblinear refuses 3+ classes on its own, so the one-vs-rest that the
    old default did inside ``LogisticRegression`` is spelled out; its
    ``predict_proba`` normalises the per-class sigmoids the same way.
    """
    return OneVsRestClassifier(LogisticRegression(solver="liblinear", C=1.0))


def dlib_explicitness(mus_train, ys_train, mus_test, ys_test, normalize=True):
    """``(train, test)`` explicitness, step by step as disentanglement_lib; arrays are (codes|factors, points)."""
    if normalize:
        # utils.normalize_data: mean and std (numpy's, ddof 0) over the training points, per code ...
        mean_mus = np.mean(mus_train, axis=1)
        stddev_mus = np.std(mus_train, axis=1)
        mus_train = (mus_train - mean_mus[:, np.newaxis]) / stddev_mus[:, np.newaxis]
        # ... and the test codes scaled with the training statistics.
        mus_test = (mus_test - mean_mus[:, np.newaxis]) / stddev_mus[:, np.newaxis]
    explicitness_train = np.zeros([ys_train.shape[0], 1])
    explicitness_test = np.zeros([ys_test.shape[0], 1])
    for i in range(ys_train.shape[0]):
        x_train, x_test = np.transpose(mus_train), np.transpose(mus_test)
        clf = dlib_logistic_regression().fit(x_train, ys_train[i, :])
        pred_train = clf.predict_proba(x_train)
        pred_test = clf.predict_proba(x_test)
        # One indicator column per class present, roc_auc_score's default macro average over the columns.
        mlb = MultiLabelBinarizer()
        explicitness_train[i] = roc_auc_score(mlb.fit_transform(np.expand_dims(ys_train[i, :], 1)), pred_train)
        explicitness_test[i] = roc_auc_score(mlb.fit_transform(np.expand_dims(ys_test[i, :], 1)), pred_test)
    return float(np.mean(explicitness_train)), float(np.mean(explicitness_test))


def badly_scaled_codes(factors, rng):
    """Informative but noisy latents on scales from 0.001 to 1000, and one that mixes two factors."""
    f = factors.astype(np.float64)
    noise = rng.standard_normal((len(f), 5))
    return np.column_stack(
        [
            1000.0 * (f[:, 0] + 0.8 * noise[:, 0]),
            0.001 * (f[:, 1] + 0.9 * noise[:, 1]),
            f[:, 2] + 1.2 * noise[:, 2],
            0.01 * (np.sin(f[:, 3]) + 0.5 * noise[:, 3]),
            50.0 * (f[:, 2] - f[:, 3] + noise[:, 4]),
        ]
    )


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(7)
    factors = DATA.sample_factors(NUM_TRAIN + NUM_TEST, rng)
    return CodePool(factors, badly_scaled_codes(factors, rng), NUM_TRAIN)


def nsvae_explicitness(pool, seed=0):
    return metrics.modularity_explicitness(
        DATA, None, np.random.default_rng(seed), pool=pool, num_train=NUM_TRAIN, num_test=NUM_TEST
    )


def dlib_on(pool, normalize=True):
    y_train, x_train = pool.train(NUM_TRAIN)
    y_test, x_test = pool.test(NUM_TEST)
    return dlib_explicitness(x_train.T, y_train.T, x_test.T, y_test.T, normalize=normalize)


def test_explicitness_equals_disentanglement_lib_on_the_same_codes(pool):
    ours = nsvae_explicitness(pool)
    ref_train, ref_test = dlib_on(pool)
    assert ours["explicitness_train"] == pytest.approx(ref_train, abs=1e-9)
    assert ours["explicitness_test"] == pytest.approx(ref_test, abs=1e-9)
    # The codes are scaled badly enough that leaving out the standardisation is visible.
    raw_train, raw_test = dlib_on(pool, normalize=False)
    assert abs(raw_test - ref_test) > 1e-3 and abs(raw_train - ref_train) > 1e-3


def test_explicitness_does_not_depend_on_the_scale_or_offset_of_a_latent(pool):
    base = nsvae_explicitness(pool)
    rescaled = CodePool(pool.factors, pool.codes * np.array([1e-3, 1e4, -7.0, 300.0, 1.0]) + 42.0, pool.num_train)
    moved = nsvae_explicitness(rescaled)
    assert moved["explicitness_test"] == pytest.approx(base["explicitness_test"], abs=1e-6)
    assert moved["explicitness_train"] == pytest.approx(base["explicitness_train"], abs=1e-6)


def test_a_constant_latent_is_ignored_where_disentanglement_lib_divides_by_zero(pool):
    with_constant = CodePool(pool.factors, np.column_stack([pool.codes, np.full(len(pool.codes), 0.1)]), pool.num_train)
    base = nsvae_explicitness(pool)
    ours = nsvae_explicitness(with_constant)
    assert ours["explicitness_test"] == pytest.approx(base["explicitness_test"], abs=1e-12)
    assert ours["explicitness_train"] == pytest.approx(base["explicitness_train"], abs=1e-12)
    # The same latent constant on the training points only: its test values still carry no weight.
    drifting = with_constant.codes.copy()
    drifting[NUM_TRAIN:, -1] = np.linspace(-5.0, 5.0, NUM_TEST)
    ours = nsvae_explicitness(CodePool(pool.factors, drifting, pool.num_train))
    assert ours["explicitness_test"] == pytest.approx(base["explicitness_test"], abs=1e-12)
    # disentanglement_lib divides by the zero std of a latent that is exactly 0: NaN codes, which the fit refuses.
    # (For other constants its rounded mean can leave a std of ~1e-17 and a column of +-1 instead.)
    dead = np.column_stack([pool.codes, np.zeros(len(pool.codes))])
    y_train, y_test = pool.factors[:NUM_TRAIN], pool.factors[NUM_TRAIN:]
    with np.errstate(invalid="ignore", divide="ignore"), pytest.raises(ValueError, match="NaN"):
        dlib_explicitness(dead[:NUM_TRAIN].T, y_train.T, dead[NUM_TRAIN:].T, y_test.T)
