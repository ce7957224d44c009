"""UniBound and the PID bounds (Tokui & Sato 2022): exact cores, the estimator, known codes.

Codes are fixed functions of the factors with posterior std 0.01-0.05, so
their information terms are known: a perfect code has unique information
H(y) and no redundancy or synergy; a copied factor no unique information and
redundancy H; a one-time pad synergy H. The entanglement protocol's kinds
are tested in ``test_entanglement.py``.
"""

import math

import numpy as np
import pytest
from scipy.stats import norm

from nsvae import info, metrics
from nsvae.metrics import entanglement as ent
from nsvae.metrics.pid_bounds import (
    pid_bounds,
    pool_pid_information,
    table_subset_information,
    unibound_from_information,
)
from nsvae.metrics.synergy_pool import pool_information
from nsvae.metrics.synergy_table import joint_information_full_table, table_grid
from nsvae.metrics.utils import MetricInputError, encode_table

from .toy import CodedGrid, posterior_coder

# -- the bounds: a pure function ------------------------------------------------------------------------------


def test_bounds_exact_values_and_equal_widths():
    b = pid_bounds(1.0, 0.4, 1.5)  # I(y; z_l) = 1, I(y; z_\l) = 0.4, I(y; z) = 1.5
    assert b["unique"] == pytest.approx((0.6, 1.0))
    assert b["redundancy"] == pytest.approx((0.0, 0.4))
    assert b["synergy"] == pytest.approx((0.1, 0.5))
    # one free parameter: R at its lower bound puts U at its upper and S at its lower
    widths = {atom: hi - lo for atom, (lo, hi) in b.items()}
    assert widths["unique"] == pytest.approx(widths["redundancy"]) == pytest.approx(widths["synergy"])


def test_bounds_hold_every_pid_of_random_distributions(rng):
    """Any decomposition with the PID identities lies in the bounds: Williams & Beer's I_min PID on random pmfs."""
    for _ in range(30):
        p = rng.dirichlet(np.ones(3 * 2 * 4)).reshape(3, 2, 4)
        i1 = info.mutual_information(p, predictors=[0], base="e")
        i2 = info.mutual_information(p, predictors=[1], base="e")
        i = info.mutual_information(p, base="e")
        wb = info.pid(p, base="e")
        b, swapped = pid_bounds(i1, i2, i), pid_bounds(i2, i1, i)
        atoms = [(b["unique"], wb.unique[0]), (swapped["unique"], wb.unique[1])]
        atoms += [(b["redundancy"], wb.redundancy), (b["synergy"], wb.synergy)]
        for (lo, hi), value in atoms:
            assert lo - 1e-9 <= value <= hi + 1e-9
        assert b["unique"][1] - b["unique"][0] > 1e-3  # the bounds are not trivially tight here


def test_unibound_core_picks_the_best_latent_and_skips_constant_factors():
    h = np.array([math.log(4), math.log(2), 0.0])
    i_single = np.array([[math.log(4), 0.1, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    i_rest = np.array([[0.1, math.log(4), math.log(4)], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    i_joint = np.array([math.log(4), math.log(2), 0.0])  # factor 1: pure synergy between every latent and the rest
    out = unibound_from_information(i_single, i_rest, i_joint, h)
    f0, f1, f2 = out["per_factor"]
    assert f2 is None  # H = 0: skipped
    assert f0["latent"] == 0 and f0["unibound"] == pytest.approx(1 - 0.1 / math.log(4))
    assert f1["unibound"] == 0.0 and f1["max_synergy_lower"] == pytest.approx(1.0)
    assert out["unibound"] == pytest.approx((f0["unibound"] + 0.0) / 2)
    assert out["synergy_lower"] == pytest.approx(0.5)
    assert f0["per_latent"]["unique_lower"] == pytest.approx([1 - 0.1 / math.log(4), 0.0, 0.0])
    with pytest.raises(MetricInputError, match="shapes"):
        unibound_from_information(i_single, i_rest[:, :2], i_joint, h)


# -- the estimator --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blurred_table():
    """A small table whose posteriors overlap (every term strictly between 0 and H), and 200 scored samples."""
    data = CodedGrid((2, 3, 4, 5), ("h", "a", "b", "c"), exposed=(1, 2, 3))
    factors = data.factors_of(np.arange(len(data)))
    rng = np.random.default_rng(0)
    full = np.stack(np.unravel_index(np.arange(len(data)), (2, 3, 4, 5)), axis=1)
    mean = np.stack(
        [full[:, 0] + 0.3 * full[:, 1], 0.7 * full[:, 2], 0.5 * full[:, 3] - 0.4 * full[:, 1], rng.normal(size=120)], 1
    )
    logvar = rng.uniform(-2.0, 0.0, mean.shape)
    idx = rng.integers(0, len(data), 200)
    z = mean[idx] + np.exp(logvar[idx] / 2) * rng.standard_normal((200, 4))
    return data, factors, mean, logvar, idx, z


def test_table_terms_equal_sums_of_every_gaussian(blurred_table):
    """Every subset's term against the class posterior summed by hand with scipy; the joint equals synergy's."""
    data, factors, mean, logvar, idx, z = blurred_table
    drop = [[], [0], [1], [2], [3], [0, 2]]
    grid = table_grid(data, len(data))
    terms, h = table_subset_information(z, factors[idx], mean, logvar, drop, factors, grid)
    onehot, _ = table_subset_information(z, factors[idx], mean, logvar, drop, factors, None, chunk=7)
    assert onehot == pytest.approx(terms, abs=1e-7)
    joint, _ = joint_information_full_table(z, factors[idx], mean, logvar, factors, grid)
    assert terms[0] == pytest.approx(joint, abs=1e-7)
    for s, dropped in enumerate(drop):
        keep = [j for j in range(4) if j not in dropped]
        dens = np.prod([norm.pdf(z[:, j, None], mean[None, :, j], np.exp(logvar[None, :, j] / 2)) for j in keep], 0)
        for i in range(3):
            p_v = np.bincount(factors[:, i]) / len(factors)
            own = (dens * (factors[None, :, i] == factors[idx, i][:, None])).sum(1) / dens.sum(1)
            expected = -(p_v * np.log(p_v)).sum() + np.log((1 - 1e-3) * own + 1e-3 * p_v[factors[idx, i]]).mean()
            assert terms[s, i] == pytest.approx(expected, abs=1e-7), (dropped, i)
    assert 0.01 < terms.min() and terms.max() < 0.9 * h.min()  # informative, not saturated: a test that can fail


def test_pool_joint_is_the_synergy_metrics_and_rest_terms_are_its_family(blurred_table):
    _, factors, mean, logvar, idx, z = blurred_table
    i_single, i_rest, joint, h, details = pool_pid_information(z, mean[idx], logvar[idx], factors[idx])
    ref_joint, ref_h, _, _, ref_details = pool_information(z, mean[idx], logvar[idx], factors[idx])
    assert joint == pytest.approx(ref_joint, abs=1e-12) and h == pytest.approx(ref_h)
    assert [d["joint_latents"] for d in details] == [d["joint_latents"] for d in ref_details]
    for k in range(3):
        for ell in range(4):
            others = [j for j in range(4) if j != ell]
            assert i_rest[k, ell] >= i_single[k, others].max() - 1e-12  # the single latents are in the family
            assert i_rest[k, ell] <= joint[k] + 1e-12  # the joint's family is larger


# -- codes of known decomposition ------------------------------------------------------------------------------

SIZES = (3, 6, 10, 8, 8)
NAMES = ("shape", "scale", "orientation", "posX", "posY")
OPTS = {"table": {"num_samples": 500}, "pool": {"num_train": 1200}}


def score(data, represent_posterior, reference, seed=0):
    source = (
        encode_table(data, represent_posterior=represent_posterior) if reference == "table" else represent_posterior
    )
    result = metrics.unibound(data, source, np.random.default_rng(seed), reference=reference, **OPTS[reference])
    assert result["protocol"]["reference"] == reference
    return result


@pytest.mark.parametrize("reference", ["table", "pool"])
def test_perfect_code_copied_factor_and_one_time_pad(reference):
    """Factors (coin hidden, bit, shape, scale, orientation, posX): bit = z0 xor z1 with the coin in z0; orientation
    also copied into a second latent; the rest one latent each. Expected, / H: unique [1, 1] for shape, scale, posX;
    orientation: unique [0, 0], redundancy [1, 1]; bit: unique 0, synergy [1, 1] at z0 or z1."""
    sizes = (2, 2) + SIZES[:4]
    data = CodedGrid(sizes, ("coin", "bit") + NAMES[:4], exposed=(1, 2, 3, 4, 5))
    columns = [lambda f: ent.level(f[:, 0], 2), lambda f: ent.level(f[:, 0] ^ f[:, 1], 2)]
    columns += [lambda f, i=i: ent.level(f[:, i], sizes[i]) for i in range(2, 6)]
    columns += [lambda f: ent.level(f[:, 4], sizes[4])]  # orientation's copy
    result = score(data, posterior_coder(columns), reference)
    pf = result["per_factor"]
    for name in ("shape", "scale", "posX"):
        v = pf[name]
        assert v["unique"][0] >= 0.98 and v["unique"][1] >= 0.98, name
        assert v["redundancy"][1] <= 0.01 and v["synergy"][1] <= 0.01, name
        assert v["unibound"] >= 0.98
    orient = pf["orientation"]
    assert orient["unibound"] <= 0.01 and orient["unique"][1] <= 0.02
    assert orient["redundancy"][0] >= 0.97 and orient["max_redundancy_lower"] >= 0.97
    assert orient["latent"] in (4, 6)  # one of the two copies
    bit = pf["bit"]
    assert bit["unibound"] <= 0.01 and bit["max_synergy_lower"] >= 0.97
    for latent in (0, 1):  # the pad's latents: all synergy with the rest
        assert bit["per_latent"]["synergy_lower"][latent] >= 0.97
        assert bit["per_latent"]["synergy_upper"][latent] <= 1.0 + 1e-9
    assert result["score"] == pytest.approx(3 / 5, abs=0.02)
    assert result["synergy_lower"] == pytest.approx(1 / 5, abs=0.02)
    assert result["redundancy_lower"] == pytest.approx(1 / 5, abs=0.02)


def test_table_needs_a_table_and_a_pool_needs_posteriors():
    data = CodedGrid((3, 4), ("a", "b"))
    rep = posterior_coder([lambda f: ent.level(f[:, 0], 3), lambda f: ent.level(f[:, 1], 4)])
    with pytest.raises(MetricInputError, match="CodeTable with logvar"):
        metrics.unibound(data, rep, np.random.default_rng(0), reference="table")
    with pytest.raises(MetricInputError, match="num_samples"):
        metrics.unibound(data, rep, np.random.default_rng(0), num_samples=1)
