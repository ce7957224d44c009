"""Chen et al.'s MIG on known posteriors, the synergy score on XOR and identity codes, evaluate()."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from nsvae import metrics
from nsvae.metrics.synergy import synergy_proxy

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


def test_chen_mig_grid_equals_exact_and_excludes_shape_on_dsprites():
    data = ToyData((3, 4, 5), names=("shape", "posX", "posY"))
    data.name = "dsprites_toy"
    g = metrics.chen_mig(data, posterior_identity(0.3), np.random.default_rng(2), num_samples=1500)
    e = metrics.chen_mig(data, posterior_identity(0.3), np.random.default_rng(2), protocol="paper", num_samples=1500)
    assert g["factors_used"] == ["posX", "posY"] and g["protocol"]["exclude_factors"] == ["shape"]
    assert e["protocol"]["density"] == "exact"
    assert g["score"] == pytest.approx(e["score"], abs=2e-3)
    assert 0.2 < g["score"] < 0.9  # sigma 0.3 blurs classes 1 apart: informative but not perfect


# -- synergy -------------------------------------------------------------------------------------------------

SYN = {"num_train": 1500, "num_samples": 1500, "num_reference": 1500}


def test_synergy_xor_and_identity():
    data = ToyData((2, 2, 3), names=("a", "b", "c"))
    xor = metrics.synergy(data, posterior_xor(), np.random.default_rng(0), **SYN)
    pf = xor["per_factor"]
    assert pf["b"]["s_max"] >= 0.9 and pf["b"]["wms"] >= 0.9  # b only in (a, a xor b) together
    assert pf["b"]["max_single"] <= 0.01
    assert pf["a"]["s_max"] <= 0.05 and pf["c"]["s_max"] <= 0.05
    assert 0.28 <= xor["s_max"] <= 0.36  # mean over three factors: (1 + 0 + 0) / 3
    ident = metrics.synergy(data, posterior_identity(), np.random.default_rng(0), **SYN)
    assert all(v["s_max"] <= 0.05 for v in ident["per_factor"].values())
    assert all(v["i_joint"] == pytest.approx(v["entropy"], abs=0.02) for v in ident["per_factor"].values())


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
    "synergy": {"num_train": 1000, "num_samples": 1000, "num_reference": 1000},
}


def test_evaluate_all_metrics_shared_encodings():
    data = ToyData((2, 3, 4))
    calls = []

    def rep(obs):
        calls.append(len(obs))
        return posterior_identity(0.05)(obs)

    out = metrics.evaluate(data, represent_posterior=rep, overrides=FAST, seed=7, progress=False)
    assert set(out["metrics"]) == set(metrics.METRICS)
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
