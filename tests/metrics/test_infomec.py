"""InfoMEC (Hsu et al. 2023): InfoM and InfoC of hand-made NMI matrices, exact values on a balanced grid with discrete
latents (identity 1, duplicated latents InfoC = 3/7), the estimator checked against scikit-learn's, InfoE's input-free
baseline, the pruning rule, and the continuous metric on identity, duplicated, rotated, constant and noise codes."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, mutual_info_score

from nsvae import metrics
from nsvae.metrics.protocols import resolve
from nsvae.metrics.utils import MetricInputError

from .toy import NoFactors, ToyData, constant, duplicated, flat, identity

infomec_module = importlib.import_module("nsvae.metrics.infomec")  # the package exports the function of that name
infom_infoc = infomec_module.infom_infoc

DATA = ToyData()  # factors of 2, 3, 4, 5 classes


def run(represent, data=DATA, seed=0, **kw):
    return metrics.infomec(data, represent, np.random.default_rng(seed), **{"num_train": 2000, **kw})


def rotated(obs):
    """The latents of f2 and f3 rotated by 45 degrees."""
    z = flat(obs).copy()
    a, b = z[:, 2].copy(), z[:, 3].copy()
    z[:, 2], z[:, 3] = (a - b) / math.sqrt(2), (a + b) / math.sqrt(2)
    return z


def noise(obs):
    return np.random.default_rng(int(flat(obs).sum()) % 2**32).standard_normal((len(obs), 4))


def balanced_grid(sizes, repeats=1) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), axis=-1).reshape(-1, len(sizes))
    return np.tile(grid, (repeats, 1))


# -- InfoM and InfoC from NMI, by hand -------------------------------------------------------------------------------


def test_infom_infoc_of_hand_made_matrices():
    everything = np.ones(3, dtype=bool)
    # per latent max/sum: 1, 1, 1/2 -> mean 5/6, (5/6 - 1/2) / (1/2) = 2/3; per factor 1/1.5 -> (2/3 - 1/3) / (2/3)
    m, c = infom_infoc(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), everything)
    assert m == pytest.approx(2 / 3) and c == pytest.approx(1 / 2)
    assert infom_infoc(np.eye(3), everything) == (1.0, 1.0)
    assert infom_infoc(np.full((3, 3), 0.4), everything) == pytest.approx((0.0, 0.0))
    # an inactive latent is pruned whatever it knows
    m, c = infom_infoc(np.array([[1.0, 0.0, 0.9], [0.0, 1.0, 0.9]]), np.array([True, True, False]))
    assert (m, c) == (1.0, 1.0)


def test_infom_infoc_where_the_reference_divides_zero_by_zero():
    # no active latent: 0 and 0 (the authors' later tripod returns 0 there)
    assert infom_infoc(np.eye(2), np.zeros(2, dtype=bool)) == (0.0, 0.0)
    # an active latent that knows nothing is left out of InfoM's mean; InfoC: each factor in one of 3 latents
    assert infom_infoc(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.ones(3, dtype=bool)) == (1.0, 1.0)
    # a factor no latent knows counts 1/L in InfoC: (mean(1, 1/2) - 1/2) / (1 - 1/2) = 1/2
    m, c = infom_infoc(np.array([[1.0, 0.0], [0.0, 0.0]]), np.ones(2, dtype=bool))
    assert m == 1.0 and c == pytest.approx(0.5)
    # one active latent: InfoC's normalisation 1 - 1/L is 0
    assert infom_infoc(np.array([[1.0, 0.2], [0.5, 0.1]]), np.array([True, False])) == (pytest.approx(1 / 3), None)


# -- the estimator -----------------------------------------------------------------------------------------------------


def test_discrete_latents_on_a_balanced_grid_are_exact():
    """On a full factorial grid every pair of different factors is exactly independent: NMI is the identity, and
    duplicated latents give InfoC = (1/2 - 1/8) / (1 - 1/8) = 3/7 exactly."""
    f = balanced_grid((2, 3, 4, 5), repeats=2)
    nmi = infomec_module.normalised_mutual_information(f, f, discrete_latents=True)
    np.testing.assert_allclose(nmi, np.eye(4), atol=1e-12)
    active = infomec_module.active_latents(f, discrete_latents=True)
    assert infom_infoc(nmi, active) == pytest.approx((1.0, 1.0), abs=1e-12)
    doubled = np.concatenate([f, f], axis=1)
    nmi2 = infomec_module.normalised_mutual_information(f, doubled, discrete_latents=True)
    m, c = infom_infoc(nmi2, infomec_module.active_latents(doubled, discrete_latents=True))
    assert m == pytest.approx(1.0, abs=1e-12) and c == pytest.approx(3 / 7, abs=1e-12)


def test_continuous_nmi_is_scikit_learns_knn_estimator_over_the_plug_in_entropy(rng):
    factors = rng.integers(0, 4, size=(1500, 2))
    codes = np.column_stack([factors[:, 0] + rng.normal(0, 0.7, 1500), 5.0 + 3.0 * rng.standard_normal(1500)])
    nmi = infomec_module.normalised_mutual_information(factors, codes, n_neighbors=10, seed=3)
    for k in range(2):
        entropy = mutual_info_score(factors[:, k], factors[:, k])  # the reference's H
        for j in range(2):
            column = (codes[:, j] - codes[:, j].mean()) / codes[:, j].std()
            ref = mutual_info_classif(column[:, None], factors[:, k], n_neighbors=10, random_state=0)[0]
            assert nmi[k, j] == pytest.approx(ref / entropy, abs=1e-9)
    assert nmi[0, 0] > 0.3 and nmi[1, 1] < 0.02


def test_infoe_baseline_is_the_input_free_balanced_model(rng):
    """The reference fits its logistic regression on an all-zero input for H_0; with balanced class weights that
    model is the uniform prediction, log |classes|, even for unbalanced classes."""
    labels = rng.choice(4, size=600, p=[0.55, 0.25, 0.15, 0.05])
    model = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=100).fit(np.zeros((600, 3)), labels)
    fitted = log_loss(labels, model.predict_proba(np.zeros((600, 3))))
    assert infomec_module.uniform_log_loss(labels) == pytest.approx(fitted, abs=1e-9)
    assert infomec_module.uniform_log_loss(labels) == pytest.approx(math.log(4))


def test_pruning_follows_the_range_rule():
    codes = np.column_stack([np.linspace(-2, 2, 50), np.linspace(0, 0.19, 50), np.linspace(0, 0.21, 50)])
    assert infomec_module.active_latents(codes).tolist() == [True, False, True]  # range 4: the cut is 4 / 20 = 0.2
    assert infomec_module.active_latents(codes, active_range_fraction=0.1).tolist() == [True, False, False]
    assert infomec_module.active_latents(codes, discrete_latents=True).tolist() == [True, True, True]


# -- the metric on constructed codes -----------------------------------------------------------------------------------


def test_identity_and_duplicated_codes():
    ident = run(identity)
    assert ident["infom"] >= 0.97 and ident["infoc"] >= 0.97 and ident["infoe"] >= 0.99
    assert ident["score"] == ident["infom"] and ident["num_active"] == 4
    np.testing.assert_allclose(np.array(ident["nmi"]), np.eye(4), atol=0.03)
    dup = run(duplicated)
    assert dup["infom"] >= 0.97 and dup["infoc"] == pytest.approx(3 / 7, abs=0.02)  # the exact value above, estimated


def test_rotated_constant_and_noise_codes():
    ident = run(identity)
    rot = run(rotated)
    # each rotated latent knows both of its factors: those latents' max/sum is about 0.58 (the kNN estimates are
    # 0.27 and 0.37 of each factor's entropy), so InfoM is about (mean(1, 1, 0.58, 0.58) - 1/4) / (3/4) = 0.72
    assert rot["infom"] == pytest.approx(0.72, abs=0.04) and rot["infoc"] < ident["infoc"] - 0.2
    # an unpenalised linear probe does not care about an invertible linear map of its input
    assert rot["infoe"] == pytest.approx(ident["infoe"], abs=0.01)
    const = run(constant)
    assert (const["infom"], const["infoc"], const["num_active"]) == (0.0, 0.0, 0)
    assert const["infoe"] == pytest.approx(0.0, abs=1e-12)  # all-zero features: the fit stays at the uniform start
    lost = run(noise)
    assert lost["infoe"] <= 0.01 and np.max(lost["nmi"]) <= 0.04


def test_pruned_latent_leaves_infom_and_infoc_alone():
    def with_small_copy(obs):
        z = identity(obs)
        return np.column_stack([z, 0.01 * z[:, 0]])  # range 0.01 < 4 / 20: inactive, though it knows f0 entirely

    r = run(with_small_copy)
    ident = run(identity)
    assert r["active_latents"] == [True] * 4 + [False] and np.array(r["nmi"])[0, 4] >= 0.97
    assert r["infom"] == pytest.approx(ident["infom"], abs=0.01)
    assert r["infoc"] == pytest.approx(ident["infoc"], abs=0.01)


def test_single_class_factor_is_skipped_and_protocol_recorded():
    grid = ToyData((3, 1, 4))
    r = run(identity, data=grid)
    assert r["skipped_factors"] == ["f1"] and r["nmi_factors"] == ["f0", "f2"] and len(r["nmi"]) == 2
    assert r["protocol"]["name"] == "default+custom" and r["protocol"]["n_neighbors"] == 10
    assert resolve("infomec") == {
        "num_train": 10000,
        "discrete_latents": False,
        "n_neighbors": 10,
        "active_range_fraction": 0.05,
        "name": "default",
    }


def test_registered_in_evaluate_and_default():
    assert "infomec" in metrics.DEFAULT_METRICS and metrics.METRICS["infomec"].fn is metrics.infomec
    overrides = {"infomec": {"num_train": 1000}}
    out = metrics.evaluate(DATA, identity, metrics=["infomec"], overrides=overrides, progress=False)
    assert out["metrics"]["infomec"]["infom"] >= 0.95 and out["encoding"]["pool"] == [1000, 0]


def test_bad_input_is_one_clear_error():
    with pytest.raises(MetricInputError, match="ground-truth factors"):
        run(identity, data=NoFactors())
    with pytest.raises(MetricInputError, match=">= 2 factors that vary"):
        run(identity, data=ToyData((3, 1)))
    with pytest.raises(MetricInputError, match="active_range_fraction"):
        run(identity, active_range_fraction=1.5)
    with pytest.raises(MetricInputError, match="n_neighbors"):
        run(identity, n_neighbors=0)
