"""The entanglement protocol (Tokui & Sato 2022): every kind's code, and the directions each moves UniBound and the
synergy metric.

The codes are fixed functions of the factors of a small grid (3, 6, 8 classes and a hidden key) with posterior std
0.05, so each step's information terms are known or bounded: the authors' three attacks (redundancy, global mixing,
noised copy) and our two constructions (the one-time-pad dial, rotation) must move UniBound down and the matching PID
bound, and the synergy metric's S_max and WMS, the way their definitions say.
"""

import math

import numpy as np
import pytest
from scipy.stats import norm

from nsvae import metrics
from nsvae.metrics import entanglement as ent
from nsvae.metrics.utils import encode_table

SMALL = (3, 6, 8)
NAMES = ("shape", "scale", "posX")
KEY = 8


@pytest.fixture(scope="module")
def small_grid():
    return ent.EntanglementGrid(SMALL, NAMES, KEY)


def protocol_scores(data, kind, strength):
    table = encode_table(data, represent_posterior=ent.entangled_code(kind, strength, SMALL, KEY))
    u = metrics.unibound(data, table, np.random.default_rng(0), num_samples=4000, num_train=4000)
    s = metrics.synergy(data, table, np.random.default_rng(0), num_samples=1000, num_train=1000)
    return u, s


def gaussian_channel_information(size, alpha, noise_var):
    """I(y; alpha level(y) + N(0, noise_var)) in nats, y uniform on ``size`` classes (a 1-D integral)."""
    means = alpha * ent.level(np.arange(size), size)
    sd = math.sqrt(noise_var)
    x = np.linspace(means.min() - 10 * sd, means.max() + 10 * sd, 200001)
    mix = norm.pdf(x[:, None], means[None, :], sd).mean(axis=1)
    h_z = -np.trapezoid(mix * np.log(np.maximum(mix, 1e-300)), x)
    return h_z - 0.5 * math.log(2 * math.pi * math.e * noise_var)


# -- the codes ----------------------------------------------------------------------------------------------------


def factor_rows(data):
    """Every grid row's observation and its (exposed factors, key)."""
    idx = np.arange(len(data))
    obs = data.observations_at(idx)
    f = np.rint(np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)).astype(int)
    return obs, f[:, : len(SMALL)]


def test_every_kind_at_strength_zero_is_the_perfect_code(small_grid):
    obs, y = factor_rows(small_grid)
    base_mean = np.stack([ent.level(y[:, i], SMALL[i]) for i in range(len(SMALL))], axis=1)
    for kind in ent.KINDS:
        mean, logvar = ent.entangled_code(kind, 0.0, SMALL, KEY)(obs)
        assert mean == pytest.approx(base_mean) and logvar == pytest.approx(2 * math.log(ent.SIGMA)), kind
        assert ent.STRENGTHS[kind][0] == 0.0 and list(ent.STRENGTHS[kind]) == sorted(ent.STRENGTHS[kind]), kind
    with pytest.raises(ValueError, match="unknown entanglement kind"):
        ent.entangled_code("scramble", 0.5)


def test_the_authors_attacks_and_their_strengths(small_grid):
    """beam2d/disen: GlobalMixingAttack (mean, variance and sample -> (1 - a) v + a sum v; a = 0.5 in their training
    scripts), NoisedCopyAttack (a copy per latent with posterior N(mu, sigma^2 + std^2); std = 2.0 there)."""
    assert set(ent.AUTHORS_KINDS) <= set(ent.KINDS) and {"synergy", "rotation"}.isdisjoint(ent.AUTHORS_KINDS)
    assert ent.STRENGTHS["global_mixing"][-1] == 0.5
    assert 1 / 2.0 in ent.STRENGTHS["noised_copy"]
    assert ent.STRENGTHS["redundancy"] == (0.0, 0.5, 1.0, 1.5, 2.0)
    obs, y = factor_rows(small_grid)
    base_mean, base_logvar = ent.entangled_code("redundancy", 0.0, SMALL, KEY)(obs)
    var = np.exp(base_logvar)
    for alpha in (0.05, 0.5):
        mean, logvar = ent.entangled_code("global_mixing", alpha, SMALL, KEY)(obs)
        assert mean == pytest.approx((1 - alpha) * base_mean + alpha * base_mean.sum(1, keepdims=True))
        assert np.exp(logvar) == pytest.approx((1 - alpha) * var + alpha * var.sum(1, keepdims=True))
        # latent l is its own level plus alpha times the others'
        assert mean[:, 0] == pytest.approx(base_mean[:, 0] + alpha * base_mean[:, 1:].sum(1))
    for precision in (0.5, 2.0):
        mean, logvar = ent.entangled_code("noised_copy", precision, SMALL, KEY)(obs)
        assert mean.shape == (len(obs), 2 * len(SMALL))
        assert mean[:, len(SMALL) :] == pytest.approx(base_mean)  # the copy's mean is the latent's
        assert logvar[:, : len(SMALL)] == pytest.approx(base_logvar)
        assert np.exp(logvar[:, len(SMALL) :]) == pytest.approx(ent.SIGMA**2 + precision**-2)


def test_run_protocol_scores_the_perfect_code_once_and_returns_a_row_per_step():
    rows = ent.run_protocol(
        kinds=("global_mixing", "noised_copy"),
        strengths={"global_mixing": (0.0, 0.5), "noised_copy": (0.0, 2.0)},
        metrics=("mig",),
        sizes=SMALL,
        key_levels=KEY,
    )
    assert [(r["kind"], r["step"], r["strength"]) for r in rows] == [
        ("global_mixing", 0, 0.0),
        ("global_mixing", 1, 0.5),
        ("noised_copy", 0, 0.0),
        ("noised_copy", 1, 2.0),
    ]
    assert rows[0]["mig"] == rows[2]["mig"] and rows[0]["seconds"] == rows[2]["seconds"]  # one evaluation, shared
    assert rows[0]["mig"] >= 0.95 and rows[3]["mig"] <= 0.05  # the copy's mean is an exact duplicate: no gap
    assert rows[1]["unibound"] is None  # metrics that did not run


# -- directions and exact values ----------------------------------------------------------------------------------


def test_redundancy_attack_lowers_unibound_to_the_copy_s_gaussian_channel(small_grid):
    """The copies z_d+j = alpha (U mu)_j + N(0, 1 + alpha^2 sigma^2): given the other latents, the rest knows y_l
    through alpha level(y_l) + N(0, 1 + alpha^2 sigma^2) (U has unit columns), so U_l's lower bound is H minus that."""
    previous = None
    for alpha in (0.0, 1.0, 2.0):
        u, s = protocol_scores(small_grid, "redundancy", alpha)
        for name, size in zip(NAMES, SMALL):
            expected = 1 - gaussian_channel_information(size, alpha, 1 + (alpha * ent.SIGMA) ** 2) / math.log(size)
            assert u["per_factor"][name]["unibound"] == pytest.approx(expected, abs=0.03), (alpha, name)
        assert abs(s["s_max"]) <= 0.01  # the originals keep every specific information: no synergy
        if previous is not None:
            assert u["score"] < previous[0]["score"] - 0.05
            assert u["redundancy_lower"] > previous[0]["redundancy_lower"] + 0.05
            assert s["wms"] < previous[1]["wms"] - 0.05  # the copies add their information to the sum
        previous = (u, s)
    assert previous[0]["synergy_lower"] <= 0.01


def test_global_mixing_lowers_unibound_and_keeps_the_joint(small_grid):
    """Latent l = level(y_l) + alpha sum_{j != l} level(y_j): the rest of the latents learns y_l as alpha grows (R
    rises, UniBound falls), while all latents together keep every factor (the mixing is invertible for alpha < 1).
    At the authors' alpha = 0.5 every latent is dominated by the others: UniBound near 0, and the single latents
    have lost the specific information that the joint keeps (S_max large)."""
    alphas = ent.STRENGTHS["global_mixing"]
    scores = [protocol_scores(small_grid, "global_mixing", alpha) for alpha in alphas]
    uni = [u["score"] for u, _ in scores]
    assert uni[0] >= 0.98
    for before, after in zip(uni, uni[1:]):
        assert after < before - 0.1
    assert uni[-1] <= 0.1
    red = [u["redundancy_lower"] for u, _ in scores]
    assert red[0] <= 0.01 and red[0] + 0.1 < red[1] < red[2] - 0.1 < red[3] - 0.2  # up to alpha = 0.1
    for u, _ in scores:
        for name in NAMES:
            assert u["per_factor"][name]["i_joint"] >= 0.98 * u["per_factor"][name]["entropy"]
    s_max = [s["s_max"] for _, s in scores]
    assert abs(s_max[0]) <= 0.01 and s_max[-1] >= 0.3


def test_noised_copy_raises_redundancy_and_lowers_unibound_to_the_copy_s_channel(small_grid):
    """A copy mu_l + N(0, sigma^2 + std^2) of every latent: the rest knows y_l through that channel alone, so U_l's
    lower bound is H minus its information and R's lower bound is that information; the original keeps everything,
    so no synergy, and WMS = -R."""
    previous = None
    for precision in (0.0, 0.5, 2.0):  # std = inf (no copy), 2 (the authors'), 0.5
        u, s = protocol_scores(small_grid, "noised_copy", precision)
        for name, size in zip(NAMES, SMALL):
            shared = 0.0
            if precision > 0:
                shared = gaussian_channel_information(size, 1.0, ent.SIGMA**2 + precision**-2) / math.log(size)
            pf = u["per_factor"][name]
            assert pf["unibound"] == pytest.approx(1 - shared, abs=0.03), (precision, name)
            assert pf["max_redundancy_lower"] == pytest.approx(shared, abs=0.03), (precision, name)
            assert pf["latent"] == NAMES.index(name)  # the sharp original, not its copy
        assert abs(s["s_max"]) <= 0.01 and u["synergy_lower"] <= 0.01
        assert s["wms"] == pytest.approx(-u["redundancy_lower"], abs=0.03)
        if previous is not None:
            assert u["score"] < previous[0]["score"] - 0.05
            assert u["redundancy_lower"] > previous[0]["redundancy_lower"] + 0.05
            assert s["wms"] < previous[1]["wms"] - 0.05
        previous = (u, s)


def test_synergy_attack_moves_unibound_and_synergy_exactly(small_grid):
    """Latent l = level((y_l + k_l(u)) mod |V_l|) and the key u in one more latent: U_l = log|V_l| - H(k_l),
    S = H(k_l), exactly; the synergy metric's S_max (and WMS) equal S / H too."""
    previous = None
    for beta in (0.0, 0.5, 1.0):
        u, s = protocol_scores(small_grid, "synergy", beta)
        shares = [ent.pad_key_entropy(size, beta, KEY) / math.log(size) for size in SMALL]
        for name, share in zip(NAMES, shares):
            pf = u["per_factor"][name]
            assert pf["unibound"] == pytest.approx(1 - share, abs=0.02), (beta, name)
            assert pf["max_synergy_lower"] == pytest.approx(share, abs=0.02), (beta, name)
            assert s["per_factor"][name]["s_max"] == pytest.approx(share, abs=0.02), (beta, name)
        assert u["redundancy_lower"] <= 0.01
        if previous is not None:
            assert u["score"] < previous[0]["score"] - 0.1
            assert s["s_max"] > previous[1]["s_max"] + 0.1
            assert u["synergy_lower"] > previous[0]["synergy_lower"] + 0.1
        previous = (u, s)
    assert previous[0]["score"] <= 0.05  # a full pad (up to the key's rounding) leaves no unique information


def test_rotation_lowers_unibound_and_makes_pairs_share(small_grid):
    """(scale, posX) rotated by theta: each rotated latent mixes both factors, so each factor is shared by the pair;
    shape untouched. On a discrete grid the information is not monotone in theta (angles whose tangent is a small
    ratio make projections collide: 3 pi / 16 gives less redundancy and more synergy than pi / 8), so only the
    steps 0, pi / 16, pi / 8 and the symmetric pi / 4 are held."""
    thetas = (0.0, math.pi / 16, math.pi / 8, math.pi / 4)
    scores = [protocol_scores(small_grid, "rotation", theta) for theta in thetas]
    uni = [u["score"] for u, _ in scores]
    assert uni[0] >= 0.98 and uni[0] - 0.3 > uni[1] > uni[2] + 0.05
    assert uni[3] <= 1 / 3 + 0.02  # shape's 1 and two factors with no unique information
    for u, _ in scores:
        assert u["per_factor"]["shape"]["unibound"] >= 0.98
    at_45 = scores[3][0]["per_factor"]
    for name in ("scale", "posX"):
        assert at_45[name]["unibound"] <= 0.02 and at_45[name]["max_redundancy_lower"] >= 0.2
    s_max = [s["s_max"] for _, s in scores]
    assert abs(s_max[0]) <= 0.01 and s_max[3] > s_max[0] + 0.1
