"""Algorithm cores as pure functions, with exact values."""

import importlib
import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from nsvae import info
from nsvae.metrics import utils
from nsvae.metrics.chen_mig import mixture_logpdf_exact, mixture_logpdf_grid
from nsvae.metrics.factor_vae import majority_vote_accuracy
from nsvae.metrics.mig import mig_from_mi
from nsvae.metrics.protocols import PROTOCOLS, resolve

# the package exports functions of the same names as these modules
dci = importlib.import_module("nsvae.metrics.dci")
sap = importlib.import_module("nsvae.metrics.sap")
modularity = importlib.import_module("nsvae.metrics.modularity")
unsupervised = importlib.import_module("nsvae.metrics.unsupervised")


def test_histogram_discretize_exact():
    x = np.column_stack([np.arange(20) / 19.0, np.full(20, 3.0), np.r_[np.zeros(10), np.ones(10)]])
    b = utils.histogram_discretize(x, 20)
    assert b[:, 0].tolist() == list(range(20))  # one value per bin, the maximum in the last bin
    assert np.unique(b[:, 1]).size == 1  # constant column: one bin
    assert b[:, 2].tolist() == [0] * 10 + [19] * 10
    assert utils.histogram_discretize(np.array([[0.0], [0.5], [1.0]]), 2)[:, 0].tolist() == [0, 1, 1]


def test_discrete_mutual_info_matches_info_and_sklearn(rng):
    a = rng.integers(0, 5, size=(3000, 3))
    b = np.column_stack([a[:, 0] % 2, rng.integers(0, 4, 3000)])
    m = utils.discrete_mutual_info(a, b)
    for j in range(3):
        for k in range(2):
            ref = info.mutual_information(utils.contingency(a[:, j], b[:, k]), base="e")
            assert m[j, k] == pytest.approx(ref, abs=1e-12)
            assert m[j, k] == pytest.approx(mutual_info_score(a[:, j], b[:, k]), abs=1e-12)
    assert m[0, 0] == pytest.approx(utils.discrete_entropy(b[:, :1])[0], abs=1e-12)  # b0 is a function of a0


def test_dci_from_importance_matrices():
    eye = np.eye(3)
    assert dci.disentanglement(eye) == pytest.approx(1.0, abs=1e-8)
    assert dci.completeness(eye) == pytest.approx(1.0, abs=1e-8)
    assert dci.disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-12)
    assert dci.completeness(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-12)
    r = np.array([[0.6, 0.2], [0.0, 0.2]])
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert dci.disentanglement(r) == pytest.approx(0.8 * (1 - h) + 0.2 * 1.0, abs=1e-8)
    assert dci.completeness(r) == pytest.approx(0.6, abs=1e-8)
    assert dci.disentanglement(np.zeros((2, 2))) == pytest.approx(0.0, abs=1e-12)  # all-zero R: uniform
    with pytest.raises(ValueError, match="at least 2"):
        dci.disentanglement(np.ones((1, 3)))


def test_majority_vote_exact():
    train = np.array([[5, 0, 1], [1, 4, 3]])  # factors x dims
    evals = np.array([[2, 1, 0], [0, 1, 4]])
    tr, ev, cls = majority_vote_accuracy(train, evals)
    assert cls.tolist() == [0, 1, 1]
    assert tr == pytest.approx((5 + 4 + 3) / 14)
    assert ev == pytest.approx((2 + 1 + 4) / 8)


def test_mig_from_mi_exact():
    mi = np.array([[1.0, 0.1], [0.2, 0.5], [0.0, 0.4]])
    score, gaps = mig_from_mi(mi, np.array([2.0, 1.0]))
    assert gaps.tolist() == pytest.approx([0.4, 0.1])
    assert score == pytest.approx(0.25)


def test_modularity_exact_and_dead_code():
    mi = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert modularity.modularity_per_code(mi).tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert modularity.modularity(mi) == pytest.approx(0.5)


def test_sap_cores_exact(rng):
    assert sap.top_two_gap(np.array([[0.9, 0.2], [0.5, 0.3], [0.1, 0.25]])) == pytest.approx((0.4 + 0.05) / 2)
    v = rng.normal(size=(500, 1))
    z = np.column_stack([3 * v[:, 0] + 1, np.ones(500), -v[:, 0]])
    s = sap.squared_correlation_matrix(z, v)
    assert s[:, 0] == pytest.approx([1.0, 0.0, 1.0])


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.8])
def test_gaussian_scores_closed_form(rho):
    cov = np.array([[1.0, rho], [rho, 1.0]])
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)
    w = 4 - 2 * (math.sqrt(1 + rho) + math.sqrt(1 - rho))
    assert unsupervised.gaussian_wasserstein_correlation(cov) == pytest.approx(w, abs=1e-12)
    scaled = cov * np.outer([2.0, 0.5], [2.0, 0.5])  # TC is scale free
    assert unsupervised.gaussian_total_correlation(scaled) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)


def test_singular_covariance_tc_is_none_not_nan():
    assert unsupervised.gaussian_total_correlation(np.ones((2, 2))) is None


def test_mixture_grid_matches_exact(rng):
    m = 4000
    cases = [
        (rng.normal(size=m), np.full(m, 2 * math.log(0.1))),
        (rng.integers(0, 32, m) / 8 + 0.01 * rng.normal(size=m), 2 * np.log(rng.uniform(0.01, 0.05, m))),
        (0.05 * rng.normal(size=m), rng.normal(-0.1, 0.05, m)),
    ]
    for mu, lv in cases:
        idx = rng.choice(m, 1000, replace=False)
        z = mu[idx] + np.exp(0.5 * lv[idx]) * rng.normal(size=1000)
        exact = mixture_logpdf_exact(z, mu, lv)
        grid, _ = mixture_logpdf_grid(z, mu, lv)
        assert abs(exact.mean() - grid.mean()) < 2e-4
        assert np.abs(exact - grid).max() < 0.1


def test_mixture_exact_single_gaussian():
    z = np.array([-1.0, 0.0, 2.0])
    lp = mixture_logpdf_exact(z, np.zeros(3), np.full(3, math.log(4.0)))  # sigma = 2
    assert lp == pytest.approx(-0.5 * math.log(2 * math.pi * 4) - z**2 / 8, abs=1e-12)


def test_protocols_resolve():
    p = resolve("factor_vae_score", "default")
    assert p == dict(PROTOCOLS["factor_vae_score"]["default"], name="default")
    assert p["prune_threshold"] == 0.05 and p["batch_size"] == 64
    assert resolve("mig", "default", {"num_train": 500})["name"] == "default+custom"
    with pytest.raises(ValueError, match="unknown protocol parameter"):
        resolve("mig", "default", {"bins": 3})
    with pytest.raises(ValueError, match="no protocol"):
        resolve("mig", "nope")
    for metric, table in PROTOCOLS.items():  # every paper protocol names the same parameters as the default
        assert set(table["paper"]) == set(table["default"]), metric
