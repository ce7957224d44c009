"""Every metric on constructed representations of a toy dataset: identity, constant, duplicated, permuted."""

import math

import numpy as np
import pytest

from nsvae import metrics

from .toy import ToyData, column_permuted, constant, duplicated, identity, row_shuffled

DATA = ToyData()  # factors of 2, 3, 4, 5 classes; chance = 1/4
SMALL = {"num_train": 2000, "num_test": 1000}


def run(fn, represent, seed=0, **kw):
    return fn(DATA, represent, np.random.default_rng(seed), **kw)


# -- beta-VAE score ----------------------------------------------------------------------------------------

BVAE = {"num_train": 400, "num_eval": 200}


def test_beta_vae_identity_and_duplicate():
    for rep in (identity, duplicated, column_permuted):
        r = run(metrics.beta_vae_score, rep, **BVAE)
        assert r["eval_accuracy"] >= 0.97, rep.__name__
        assert r["protocol"]["batch_size"] == 64 and r["protocol"]["num_train"] == 400


def test_beta_vae_constant_and_shuffled_near_chance():
    for rep in (constant, row_shuffled):
        r = run(metrics.beta_vae_score, rep, **BVAE)
        assert r["chance"] == 0.25
        assert 0.1 <= r["eval_accuracy"] <= 0.45, (rep.__name__, r["eval_accuracy"])


# -- FactorVAE score ---------------------------------------------------------------------------------------

FVAE = {"num_train": 300, "num_eval": 200, "num_variance_estimate": 2000}


def test_factor_vae_identity_exact():
    for rep in (identity, duplicated, column_permuted):
        r = run(metrics.factor_vae_score, rep, **FVAE)
        assert r["eval_accuracy"] == 1.0 and r["train_accuracy"] == 1.0, rep.__name__
    r = run(metrics.factor_vae_score, identity, **FVAE)
    assert r["num_active_dims"] == 4 and r["dimension_to_factor"] == ["f0", "f1", "f2", "f3"]
    assert run(metrics.factor_vae_score, duplicated, **FVAE)["num_active_dims"] == 8


def test_factor_vae_constant_is_zero_and_shuffled_low():
    r = run(metrics.factor_vae_score, constant, **FVAE)
    assert r["score"] == 0.0 and r["num_active_dims"] == 0
    r = run(metrics.factor_vae_score, row_shuffled, **FVAE)
    assert r["eval_accuracy"] <= 0.5


def test_factor_vae_prunes_small_dimensions():
    def rep(obs):
        z = identity(obs)
        return np.column_stack([z, 0.01 * z[:, 0]])  # std ~0.005 < 0.05: pruned

    r = run(metrics.factor_vae_score, rep, **FVAE)
    assert r["num_active_dims"] == 4 and r["active_dims"] == [0, 1, 2, 3]


# -- MIG -----------------------------------------------------------------------------------------------------


def test_mig_values():
    ident = run(metrics.mig, identity, num_train=4000)
    assert 0.99 <= ident["score"] <= 1.0
    assert run(metrics.mig, column_permuted, num_train=4000)["score"] == ident["score"]
    assert run(metrics.mig, duplicated, num_train=4000)["score"] == 0.0  # the top two latents tie
    assert run(metrics.mig, constant, num_train=4000)["score"] == 0.0
    assert run(metrics.mig, row_shuffled, num_train=4000)["score"] <= 0.02
    assert ident["protocol"]["num_bins"] == 20


# -- DCI -----------------------------------------------------------------------------------------------------


def test_dci_identity_constant_duplicate():
    kw = {"num_train": 600, "num_test": 300}
    r = run(metrics.dci, identity, **kw)
    assert r["disentanglement"] >= 0.95 and r["completeness"] >= 0.95
    assert r["informativeness_test"] == 1.0
    c = run(metrics.dci, constant, **kw)
    assert c["disentanglement"] == pytest.approx(0.0, abs=1e-9) and c["completeness"] == pytest.approx(0.0, abs=1e-9)
    assert c["informativeness_test"] <= 0.6  # the majority class of each factor
    d = run(metrics.dci, duplicated, **kw)
    assert d["disentanglement"] >= 0.95
    assert 1 - math.log(2) / math.log(8) - 0.05 <= d["completeness"] <= 1.0
    s = run(metrics.dci, row_shuffled, **kw)
    assert s["disentanglement"] <= 0.5 and s["informativeness_test"] <= 0.6


def test_dci_hist_gbt_option_recorded():
    r = run(metrics.dci, identity, num_train=600, num_test=300, model="hist_gbt")
    assert r["protocol"]["model"] == "hist_gbt" and r["protocol"]["name"] == "default+custom"
    assert r["disentanglement"] >= 0.95


# -- SAP -----------------------------------------------------------------------------------------------------


def test_sap_values():
    kw = {"num_train": 1000, "num_test": 500}
    ident = run(metrics.sap, identity, **kw)
    assert ident["score"] >= 0.2
    assert run(metrics.sap, duplicated, **kw)["score"] == 0.0  # identical columns, identical classifiers
    assert run(metrics.sap, constant, **kw)["score"] <= 0.05
    assert run(metrics.sap, row_shuffled, **kw)["score"] <= 0.1
    paper = run(metrics.sap, identity, protocol="paper", num_train=2000)
    assert paper["score"] >= 0.98 and paper["protocol"]["continuous_factors"] is True


# -- modularity / explicitness ---------------------------------------------------------------------------------


def test_modularity_explicitness():
    ident = run(metrics.modularity_explicitness, identity, **SMALL)
    assert ident["modularity"] >= 0.99
    const = run(metrics.modularity_explicitness, constant, **SMALL)
    assert const["modularity"] == 0.0 and const["num_uninformative_codes"] == 4
    assert const["explicitness_test"] == pytest.approx(0.5, abs=1e-12)  # constant scores: AUC 0.5
    assert ident["explicitness_test"] >= 0.7
    dup = run(metrics.modularity_explicitness, duplicated, **SMALL)
    assert dup["modularity"] >= 0.99  # each copy still talks about one factor
    assert run(metrics.modularity_explicitness, row_shuffled, **SMALL)["modularity"] <= 0.8


# -- unsupervised and active units ---------------------------------------------------------------------------


def test_unsupervised_scores():
    ident = run(metrics.unsupervised, identity, num_train=4000)
    assert 0 <= ident["gaussian_total_correlation"] <= 0.01  # independent factors
    assert ident["mutual_info_score"] <= 0.01
    dup = run(metrics.unsupervised, duplicated, num_train=4000)
    assert dup["gaussian_total_correlation"] is None and "singular" in dup["note"]
    assert dup["mutual_info_score"] >= 0.15  # copies share everything
    const = run(metrics.unsupervised, constant, num_train=500)
    assert const["num_constant_dims"] == 4 and const["gaussian_total_correlation"] == 0.0


def test_active_units():
    assert run(metrics.active_units, identity, num_train=500)["num_active"] == 4
    assert run(metrics.active_units, constant, num_train=500)["num_active"] == 0
    assert run(metrics.active_units, duplicated, num_train=500)["num_active"] == 8


def test_same_seed_same_result():
    a = run(metrics.beta_vae_score, identity, seed=3, **BVAE)
    b = run(metrics.beta_vae_score, identity, seed=3, **BVAE)
    assert a == b
