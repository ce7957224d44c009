"""The synergy metric on codes whose synergy is known, through both of its references.

Every code is a fixed function of the factors with posterior std 0.01 (the
latents that carry nothing sit at the prior N(0, 1)); the factor sizes are
dSprites' (3, 6, 40, 32, 32). "table": the posteriors of all 737,280 images
(as ``evaluate`` passes them), 1,000 scored samples; "pool": 2,000 random
points scored leave-one-out (the default; its bias, of order |V| / n nats a
term, stays under 0.01 of H there). Expected values:

- perfect code (each factor alone in its own latent): S_max = WMS = 0, I(z; v) = H(v);
- one outlier point (a latent mean at 50): nothing moves;
- one-time pad (v = z1 xor z2, z1 a fair coin hidden from the metric): S_max = WMS = 1 for v, 0 for the rest;
- a factor copied into two latents: S_max = 0, WMS = -1;
- a factor split into coarse (x // 8) and fine (x % 8) latents: I_max counts the finer part only,
  S_max = (log 32 - log 8) / log 32 = log 4 / log 32, while WMS = 0.
"""

import math

import numpy as np
import pytest

from nsvae import metrics
from nsvae.metrics.entanglement import level
from nsvae.metrics.synergy import synergy_from_posteriors
from nsvae.metrics.utils import encode_table

from .toy import CodedGrid, posterior_coder

SIZES = (3, 6, 40, 32, 32)
NAMES = ("shape", "scale", "orientation", "posX", "posY")
SIGMA = 0.01
PRIOR_LATENTS = 5
OPTS = {"table": {"num_train": 1000, "num_samples": 1000}, "pool": {"num_train": 2000, "num_samples": 2000}}


def coder(columns):
    return posterior_coder(columns, SIGMA, PRIOR_LATENTS)


def perfect_columns(sizes=SIZES, axes=range(5)):
    return [lambda f, i=i: level(f[:, i], sizes[i]) for i in axes]


def score(data, represent_posterior, reference, seed=0):
    source = (
        encode_table(data, represent_posterior=represent_posterior) if reference == "table" else represent_posterior
    )
    result = metrics.synergy(data, source, np.random.default_rng(seed), reference=reference, **OPTS[reference])
    assert result["protocol"]["reference"] == reference  # the estimator used, never "auto"
    return result


@pytest.fixture(scope="module")
def dsprites_grid():
    return CodedGrid(SIZES, NAMES)


@pytest.fixture(scope="module", params=["table", "pool"])
def perfect(request, dsprites_grid):
    return request.param, score(dsprites_grid, coder(perfect_columns()), request.param)


def test_a_perfect_code_has_no_synergy_and_all_the_information(perfect):
    _, result = perfect
    for name, size in zip(NAMES, SIZES):
        v = result["per_factor"][name]
        assert v["entropy"] == pytest.approx(math.log(size), rel=0.02)
        assert abs(v["s_max"]) <= 0.01 and abs(v["wms"]) <= 0.01, name
        assert v["i_joint"] >= 0.98 * v["entropy"], name
        assert v["max_single"] >= 0.98 * v["entropy"], name
        assert sum(v["single"]) - v["max_single"] <= 0.01 * v["entropy"], name  # the other latents know nothing
    assert abs(result["s_max"]) <= 0.01 and abs(result["wms"]) <= 0.01


def test_one_outlier_point_moves_nothing(perfect, dsprites_grid):
    reference, clean = perfect
    if reference == "table":

        def outlier_x(f):
            x = level(f[:, 3], 32)
            x[(f == 0).all(axis=1)] = 50.0  # image 0's posX latent
            return x

        columns = perfect_columns()
        columns[3] = outlier_x
        result = score(dsprites_grid, coder(columns), "table")
    else:
        # the pool must hold the outlier: score explicit posteriors whose first point sits at 50
        rng = np.random.default_rng(0)
        factors = dsprites_grid.sample_factors(OPTS["pool"]["num_samples"], rng)
        mean, logvar = coder(perfect_columns())(factors.astype(np.float32))
        mean[0, 3] = 50.0
        result = synergy_from_posteriors(factors, mean, logvar, np.random.default_rng(1), names=NAMES)
        clean = synergy_from_posteriors(
            factors, *coder(perfect_columns())(factors.astype(np.float32)), np.random.default_rng(1), names=NAMES
        )
    for name in NAMES:
        a, b = clean["per_factor"][name], result["per_factor"][name]
        for key in ("s_max", "wms"):
            assert abs(a[key] - b[key]) <= 0.01, (name, key)
        for key in ("i_joint", "i_max", "sum_single"):
            assert abs(a[key] - b[key]) / a["entropy"] <= 0.01, (name, key)


@pytest.mark.parametrize("reference", ["table", "pool"])
def test_a_one_time_pad_is_pure_synergy(reference):
    """bit = z1 xor z2 with z1 a fair coin (a hidden factor): neither latent alone says anything about bit."""
    sizes = (2, 2, 3, 6, 40, 32)
    data = CodedGrid(sizes, ("coin", "bit", "shape", "scale", "orientation", "posX"), exposed=(1, 2, 3, 4, 5))
    columns = [lambda f: level(f[:, 0], 2), lambda f: level(f[:, 0] ^ f[:, 1], 2)]
    columns += perfect_columns(sizes, range(2, 6))
    result = score(data, coder(columns), reference)
    bit = result["per_factor"]["bit"]
    assert bit["s_max"] >= 0.9 and bit["wms"] >= 0.9
    assert bit["max_single"] <= 0.01 * bit["entropy"]
    assert {0, 1} <= set(bit["joint_latents"])
    for name in ("shape", "scale", "orientation", "posX"):
        assert abs(result["per_factor"][name]["s_max"]) <= 0.01 and abs(result["per_factor"][name]["wms"]) <= 0.01


@pytest.mark.parametrize("reference", ["table", "pool"])
def test_a_copied_factor_is_redundant_and_a_split_factor_is_synergy_only_for_s_max(reference, dsprites_grid):
    """orientation copied into a second latent; posX split into coarse (x // 8) and fine (x % 8) latents."""
    columns = perfect_columns(axes=(0, 1, 2, 4))
    columns += [lambda f: level(f[:, 2], 40), lambda f: level(f[:, 3] // 8, 4), lambda f: level(f[:, 3] % 8, 8)]
    result = score(dsprites_grid, coder(columns), reference)
    copied, split = result["per_factor"]["orientation"], result["per_factor"]["posX"]
    assert abs(copied["s_max"]) <= 0.01
    assert copied["wms"] == pytest.approx(-1.0, abs=0.01)
    assert split["s_max"] == pytest.approx(math.log(4) / math.log(32), abs=0.01)
    assert abs(split["wms"]) <= 0.01
    assert split["i_joint"] >= 0.98 * split["entropy"]
    singles = sorted(split["single"], reverse=True)[:2]
    assert singles == pytest.approx([math.log(8), math.log(4)], abs=0.01 * math.log(32))
    for name in ("shape", "scale", "posY"):
        assert abs(result["per_factor"][name]["s_max"]) <= 0.01 and abs(result["per_factor"][name]["wms"]) <= 0.01
