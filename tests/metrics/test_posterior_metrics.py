"""Chen et al.'s MIG on known posteriors, the synergy score on XOR and identity codes, evaluate()."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from nsvae import metrics
from nsvae.metrics.synergy import synergy_from_posteriors, synergy_proxy

from .toy import ToyData, identity, posterior_identity, posterior_xor

# -- Chen et al.'s MIG ---------------------------------------------------------------------------------------


def test_chen_mig_identity_posteriors():
    data = ToyData((3, 4, 5))
    r = metrics.chen_mig(data, posterior_identity(0.05), np.random.default_rng(0), num_samples=2000)
    assert r["score"] >= 0.97
    assert r["factors_used"] == ["f0", "f1", "f2"]
    mi = np.array(r["mutual_information"])
    assert np.diag(mi) == pytest.approx(np.log([3, 4, 5]), abs=0.02)  # I(z_k; v_k) = H(v_k) = log K
    assert np.abs(mi - np.diag(np.diag(mi))).max() <= 0.02


def test_chen_mig_uses_logvar_as_log_variance():
    """All posteriors N(0, 0.25): every marginal entropy is 0.5 log(2 pi e 0.25) (the logvar-as-log-sigma bug
    would give sigma = 0.25 and 0.5 log(2 pi e / 16))."""
    data = ToyData((50, 60))  # 3,000 images: one sample each

    def rep(obs):
        return np.zeros((len(obs), 2)), np.full((len(obs), 2), math.log(0.25))

    r = metrics.chen_mig(data, rep, np.random.default_rng(1), num_samples=4000, density="exact")
    assert r["marginal_entropy"] == pytest.approx([0.5 * math.log(2 * math.pi * math.e * 0.25)] * 2, abs=0.03)
    assert r["score"] <= 0.02


def test_chen_mig_grid_equals_exact_and_excludes_a_nominal_shape():
    data = ToyData((3, 4, 5), names=("shape", "posX", "posY"))
    data.all_nominal_factors = ("shape",)  # as dSprites declares it
    g = metrics.chen_mig(data, posterior_identity(0.3), np.random.default_rng(2), num_samples=1500)
    e = metrics.chen_mig(data, posterior_identity(0.3), np.random.default_rng(2), protocol="paper", num_samples=1500)
    assert g["factors_used"] == ["posX", "posY"] and g["protocol"]["exclude_factors"] == ["shape"]
    assert e["protocol"]["density"] == "exact"
    assert g["score"] == pytest.approx(e["score"], abs=2e-3)
    assert 0.2 < g["score"] < 0.9  # sigma 0.3 blurs classes 1 apart: informative but not perfect


def test_chen_mig_on_a_random_pool_approaches_the_whole_dataset():
    """population = "pool" (the learning curves' estimate): the mixtures over random points instead of every
    image. On a grid of 8 x 10 x 12 images (sigma 0.2, classes 1 apart) 4,000 random points give the
    whole-dataset MIG within 0.02; evaluate() hands it the shared pool."""
    data = ToyData((8, 10, 12))
    rep = posterior_identity(0.2)
    whole = metrics.chen_mig(data, rep, np.random.default_rng(3), num_samples=4000)
    pool = metrics.chen_mig(data, rep, np.random.default_rng(3), num_samples=4000, population="pool")
    assert pool["protocol"]["population"] == "pool" and whole["protocol"]["population"] == "dataset"
    assert pool["score"] == pytest.approx(whole["score"], abs=0.02)
    result = metrics.evaluate(
        data,
        represent_posterior=rep,
        metrics=["chen_mig", "mig"],
        overrides={"chen_mig": {"population": "pool", "num_samples": 4000}, "mig": {"num_train": 1000}},
        table=False,
        progress=False,
    )
    assert result["encoding"]["pool"] == [4000, 0]
    assert result["metrics"]["chen_mig"]["score"] == pytest.approx(whole["score"], abs=0.02)
    with pytest.raises(metrics.MetricInputError, match="population"):
        metrics.chen_mig(data, rep, np.random.default_rng(3), population="sample")


# -- synergy -------------------------------------------------------------------------------------------------

SYN = {"num_train": 1500, "num_samples": 1500}


def test_synergy_xor_and_identity():
    data = ToyData((2, 2, 3), names=("a", "b", "c"))
    xor = metrics.synergy(data, posterior_xor(), np.random.default_rng(0), **SYN)
    assert xor["protocol"]["reference"] == "pool"  # a plain function: no table to read
    pf = xor["per_factor"]
    assert pf["b"]["s_max"] >= 0.9 and pf["b"]["wms"] >= 0.9  # b only in (a, a xor b) together
    assert pf["b"]["max_single"] <= 0.01
    assert abs(pf["a"]["s_max"]) <= 0.02 and abs(pf["c"]["s_max"]) <= 0.02
    assert 0.3 <= xor["s_max"] <= 0.35  # mean over three factors: (1 + 0 + 0) / 3
    ident = metrics.synergy(data, posterior_identity(), np.random.default_rng(0), **SYN)
    assert all(abs(v["s_max"]) <= 0.02 for v in ident["per_factor"].values())
    assert all(v["i_joint"] == pytest.approx(v["entropy"], abs=0.02) for v in ident["per_factor"].values())


def test_pool_terms_of_noise_latents_are_zero_not_biased():
    """Six latents of pure noise about a 40-class factor: the 20-bin plug-in estimator this metric used
    before reported ~0.5 nats in their sum at n = 4,000; the leave-one-out classifiers report ~0."""
    rng = np.random.default_rng(0)
    n = 2000
    factors = np.stack([rng.integers(0, 40, n), rng.integers(0, 2, n)], axis=1)
    mean, logvar = rng.standard_normal((n, 6)), np.full((n, 6), -4.0)
    r = synergy_from_posteriors(factors, mean, logvar, np.random.default_rng(1))
    for v in r["per_factor"].values():
        assert abs(v["sum_single"]) <= 0.01 and abs(v["i_joint"]) <= 0.01
        assert abs(v["s_max"]) <= 0.01 and abs(v["wms"]) <= 0.01


def test_synergy_terms_see_the_posterior_noise():
    """A latent whose mean tracks the factor 1e-3 apart under unit posterior noise carries ~no information
    (binned means would call it perfectly informative)."""
    rng = np.random.default_rng(2)
    n = 2000
    factors = rng.integers(0, 4, (n, 1))
    mean = np.stack([1e-3 * factors[:, 0], rng.standard_normal(n)], axis=1)
    logvar = np.zeros((n, 2))
    sampled = synergy_from_posteriors(factors, mean, logvar, np.random.default_rng(3))
    assert sampled["per_factor"]["factor_0"]["max_single"] <= 0.02
    assert sampled["per_factor"]["factor_0"]["i_joint"] <= 0.02


def test_pool_specific_information_is_the_leave_one_out_log_ratio():
    """The pool's single-latent specific information, recomputed by a literal loop over the points."""
    from nsvae.metrics.synergy_pool import PRIOR_WEIGHTS

    rng = np.random.default_rng(4)
    n = 60
    factors = rng.integers(0, 3, (n, 1))
    mean = np.stack([factors[:, 0] + 0.5 * rng.standard_normal(n), rng.standard_normal(n)], axis=1)
    logvar = rng.uniform(-2.0, 0.0, (n, 2))
    r = synergy_from_posteriors(factors, mean, logvar, np.random.default_rng(5))
    z = mean + np.exp(0.5 * logvar) * np.random.default_rng(5).standard_normal(mean.shape)
    p = np.bincount(factors[:, 0], minlength=3) / n
    singles = []
    for j in range(2):
        own = np.empty(n)
        for i in range(n):
            dens = np.array(
                [
                    np.exp(-0.5 * (z[i, j] - mean[m, j]) ** 2 / np.exp(logvar[m, j])) / np.exp(0.5 * logvar[m, j])
                    for m in range(n)
                ]
            )
            dens[i] = 0.0
            own[i] = dens[factors[:, 0] == factors[i, 0]].sum() / dens.sum()
        p_own = p[factors[:, 0]]
        best = min((-(np.log((1 - lam) * own + lam * p_own)).mean(), lam) for lam in PRIOR_WEIGHTS)
        singles.append(-best[0] - np.log(p_own).mean())
    assert r["per_factor"]["factor_0"]["single"] == pytest.approx(singles, abs=1e-6)


def test_synergy_refuses_bad_options():
    from nsvae.metrics.utils import MetricInputError

    data = ToyData((2, 2, 3))
    with pytest.raises(MetricInputError, match="reference must be one of"):
        metrics.synergy(data, posterior_identity(), np.random.default_rng(0), reference="median", **SYN)
    with pytest.raises(MetricInputError, match="num_samples must be an integer >= 2"):
        metrics.synergy(data, posterior_identity(), np.random.default_rng(0), num_samples=1, num_train=10)
    with pytest.raises(MetricInputError, match="unknown protocol parameter"):
        metrics.synergy(data, posterior_identity(), np.random.default_rng(0), num_bins=20)


def test_full_table_joint_term_equals_a_literal_posterior_computation():
    """The whole-dataset estimator against scipy's Gaussian densities summed by hand, on a 2 x 3 grid."""
    from scipy.stats import multivariate_normal

    from nsvae.metrics.synergy_table import joint_information_full_table

    rng = np.random.default_rng(7)
    grid_factors = np.stack(np.unravel_index(np.arange(6), (2, 3)), axis=1)
    mean, logvar = rng.normal(size=(6, 2)), rng.normal(scale=0.3, size=(6, 2)) - 1.0
    picks = rng.integers(0, 6, 40)
    z = mean[picks] + np.exp(0.5 * logvar[picks]) * rng.standard_normal((40, 2))
    dens = np.array([[multivariate_normal(mean[m], np.diag(np.exp(logvar[m]))).pdf(zi) for m in range(6)] for zi in z])
    expected = []
    for k, size in enumerate((2, 3)):
        post = np.stack([dens[:, grid_factors[:, k] == v].sum(axis=1) for v in range(size)], axis=1)
        post /= post.sum(axis=1, keepdims=True)
        own = post[np.arange(40), grid_factors[picks, k]]
        expected.append(np.log(size) + np.mean(np.log((1 - 1e-3) * own + 1e-3 / size)))
    by_grid, h = joint_information_full_table(z, grid_factors[picks], mean, logvar, grid=((2, 3), (0, 1)), chunk=7)
    by_onehot, _ = joint_information_full_table(z, grid_factors[picks], mean, logvar, table_factors=grid_factors)
    assert h == pytest.approx(np.log([2, 3]), abs=1e-12)
    assert by_grid == pytest.approx(expected, abs=1e-6)  # not clipped at 0: an estimate, noise included
    assert by_onehot == pytest.approx(by_grid, abs=1e-6)


def test_synergy_with_the_code_table_uses_the_whole_dataset():
    from nsvae.metrics.utils import MetricInputError, encode_table

    data = ToyData((2, 2, 3), names=("a", "b", "c"))
    opts = {"num_train": 1500, "num_samples": 300}
    for represent, expect_b in ((posterior_xor(), "synergy"), (posterior_identity(), "none")):
        table = encode_table(data, represent_posterior=represent)
        r = metrics.synergy(data, table, np.random.default_rng(0), **opts)
        assert r["protocol"]["reference"] == "table"  # "auto" resolved and recorded
        pf = r["per_factor"]
        assert {v["estimator"] for v in pf.values()} == {"table"}
        # the table knows every posterior: I(z; v) is H(v) to within the 1e-3 prior mixture
        assert all(v["i_joint"] == pytest.approx(v["entropy"], abs=0.01) for v in pf.values())
        assert (pf["b"]["s_max"] >= 0.95) == (expect_b == "synergy")
        assert abs(pf["a"]["s_max"]) <= 0.02 and abs(pf["c"]["s_max"]) <= 0.02
    pooled = metrics.synergy(data, table, np.random.default_rng(0), reference="pool", **opts)
    assert pooled["protocol"]["reference"] == "pool"
    assert pooled["per_factor"]["a"]["estimator"] == "pool"
    with pytest.raises(MetricInputError, match="CodeTable with logvar"):
        metrics.synergy(data, posterior_identity(), np.random.default_rng(0), reference="table", **opts)


def test_table_single_terms_equal_exact_integrals():
    """The grid's specific information against a fine trapezoid integral of exact Gaussian mixtures."""
    from nsvae.metrics.synergy_table import table_single_latent_information

    rng = np.random.default_rng(8)
    n = 40
    classes = rng.integers(0, 3, n)
    mean = (classes + 0.7 * rng.standard_normal(n))[:, None]
    logvar = rng.uniform(-3.0, 0.0, (n, 1))
    specs, p_vs, _ = table_single_latent_information(mean, logvar, [classes], [3])
    x = np.linspace(-8, 11, 400001)
    comp = np.exp(-0.5 * (x[None, :] - mean) ** 2 / np.exp(logvar)) / np.sqrt(2 * np.pi * np.exp(logvar)) / n
    joint = np.stack([comp[classes == y].sum(axis=0) for y in range(3)])
    marg = joint.sum(axis=0)
    p = np.bincount(classes, minlength=3) / n
    expected = [
        np.trapezoid(joint[y] / p[y] * np.log(np.maximum(joint[y], 1e-300) / (p[y] * marg)), x) for y in range(3)
    ]
    assert p_vs[0] == pytest.approx(p, abs=1e-15)
    assert specs[0][0] == pytest.approx(expected, abs=1e-3)


def test_synergy_proxy_worst_set():
    mean = np.zeros((4, 3))
    logvar = np.zeros((4, 3))
    mean[:, 0] = 2.0  # KL 2 nats
    mean[:, 1] = 1.0  # KL 0.5
    p = synergy_proxy(mean, logvar, omega=0.9)
    assert p["kl_per_dim"] == pytest.approx([2.0, 0.5, 0.0])
    assert p["best"] == [0, 1] and p["worst"] == [2] and p["kl_worst"] == 0.0


# -- evaluate ------------------------------------------------------------------------------------------------

FAST = {
    "beta_vae_score": {"num_train": 200, "num_eval": 100},
    "factor_vae_score": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 2000},
    "dci": {"num_train": 500, "num_test": 300, "model": "hist_gbt"},
    "sap": {"num_train": 500, "num_test": 300},
    "modularity_explicitness": {"num_train": 1000, "num_test": 500},
    "chen_mig": {"num_samples": 1000},
    "synergy": {"num_train": 1000, "num_samples": 1000},
    "infomec": {"num_train": 1000},
}


def test_evaluate_all_metrics_shared_encodings():
    data = ToyData((2, 3, 4))
    calls = []

    def rep(obs):
        calls.append(len(obs))
        return posterior_identity(0.05)(obs)

    out = metrics.evaluate(data, represent_posterior=rep, overrides=FAST, seed=7, progress=False)
    assert set(out["metrics"]) == set(metrics.DEFAULT_METRICS) == set(metrics.METRICS) - set(metrics.OPT_IN_METRICS)
    assert out["seed"] == 7 and set(out["versions"]) >= {"numpy", "scikit-learn", "nsvae", "scipy"}
    assert out["encoding"]["table"] is True
    assert sum(calls) == len(data)  # every image encoded once, nothing else
    for name, res in out["metrics"].items():
        assert "protocol" in res and "name" in res["protocol"], name
    assert out["metrics"]["factor_vae_score"]["score"] == 1.0
    assert out["metrics"]["mig"]["score"] >= 0.99
    json.dumps(out, allow_nan=False)  # eval.json: plain JSON, no NaN


def test_evaluate_table_equals_direct_encoding():
    data = ToyData((2, 3, 4))
    kw = {"metrics": ["beta_vae_score", "factor_vae_score", "mig"], "overrides": FAST, "seed": 1, "progress": False}
    a = metrics.evaluate(data, identity, table=True, **kw)["metrics"]
    b = metrics.evaluate(data, identity, table=False, **kw)["metrics"]
    assert a == b


def test_evaluate_refuses_posterior_metrics_without_posterior():
    with pytest.raises(ValueError, match="posterior"):
        metrics.evaluate(ToyData(), identity, metrics=["chen_mig"], progress=False)


def test_metrics_do_not_import_torch():
    code = "import sys, nsvae.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
