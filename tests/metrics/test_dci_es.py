"""DCI-ES (Eastwood et al. 2023): explicitness from loss-capacity curves worked out by hand from the authors'
definition (andreinicolicioiu/DCI-ES, metrics/explitcitness.py), their baseline-loss tables, size, and D, C, I of
the random-forest probes on identity, duplicated, rotated, constant and noise codes of the toy dataset."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from nsvae import metrics
from nsvae.data.factor_grid import FactorGrid
from nsvae.metrics.protocols import resolve
from nsvae.metrics.utils import MetricInputError

from .toy import NoFactors, ToyData, constant, duplicated, flat, identity

dci_es_module = importlib.import_module("nsvae.metrics.dci_es")  # the package exports the function of the same name
explicitness_from_curve = dci_es_module.explicitness_from_curve

DATA = ToyData()  # factors of 2, 3, 4, 5 classes, none nominal: every probe is a regression
SMALL = {"num_train": 600, "num_test": 300, "max_depths": [1, 2, 4, 8], "num_trees": 10}


def run(represent, data=DATA, seed=0, **kw):
    return metrics.dci_es(data, represent, np.random.default_rng(seed), **{**SMALL, **kw})


def rotated(obs):
    """The latents of f2 and f3 rotated by 45 degrees."""
    z = flat(obs).copy()
    a, b = z[:, 2].copy(), z[:, 3].copy()
    z[:, 2], z[:, 3] = (a - b) / math.sqrt(2), (a + b) / math.sqrt(2)
    return z


def noise(obs):
    return np.random.default_rng(int(flat(obs).sum()) % 2**32).standard_normal((len(obs), 4))


# -- explicitness of a curve, by hand ----------------------------------------------------------------------------------


def test_explicitness_of_hand_made_curves():
    # flat at its lowest loss: nothing above the minimum, E = 1
    assert explicitness_from_curve([1, 2, 4], [0.3, 0.3, 0.3], 1.0) == 1.0
    # a straight fall from the baseline to 0: the area is exactly the normalising triangle, E = 0
    c = np.array([1, 2, 3, 4, 8, 10, 12, 14, 16, 18, 20, 32], dtype=float)
    assert explicitness_from_curve(c, 0.8 * (32 - c) / 31, 0.8) == pytest.approx(0.0, abs=1e-12)
    # running minimum [0.5, 0.2, 0.2, 0.1]; above 0.1: trapezoids 0.25 + 0.1 + 0.05 = 0.4; triangle 3 / 2
    assert explicitness_from_curve([1, 2, 3, 4], [0.5, 0.2, 0.3, 0.1], 1.0) == pytest.approx(1 - 0.4 / 1.5)
    # a rising curve is flattened to its first loss: E = 1
    assert explicitness_from_curve([1, 2, 3], [0.1, 0.5, 0.9], 1.0) == 1.0
    # high until the end, then a fall: area 30 + 0.5 against a triangle of 15.5, E < 0
    assert explicitness_from_curve([1, 31, 32], [1.0, 1.0, 0.0], 1.0) == pytest.approx(1 - 30.5 / 15.5)
    # the triangle assumes a lowest loss of 0 ("we assume l* = 0") even when the curve stops above it
    assert explicitness_from_curve([0, 1], [0.6, 0.4], 0.8) == pytest.approx(1 - 0.1 / 0.4)


def test_bad_curves_refused():
    with pytest.raises(MetricInputError, match="increase strictly"):
        explicitness_from_curve([1, 1, 2], [0.5, 0.4, 0.3], 1.0)
    with pytest.raises(MetricInputError, match=">= 2 capacities"):
        explicitness_from_curve([1], [0.5], 1.0)
    with pytest.raises(MetricInputError, match="baseline"):
        explicitness_from_curve([1, 2], [0.5, 0.4], 0.0)
    with pytest.raises(MetricInputError, match="max_depths"):
        run(identity, max_depths=[4, 2])
    # refused by resolve, before anything is encoded; a list equal to the protocol's depths is no change
    with pytest.raises(MetricInputError, match="increasing positive depths"):
        resolve("dci_es", overrides={"max_depths": [1]})
    same = resolve("dci_es", overrides={"max_depths": [1, 2, 3, 4, 8, 10, 12, 14, 16, 18, 20, 32]})
    assert same["name"] == "default" and same["max_depths"] == resolve("dci_es")["max_depths"]


def test_baseline_losses_are_the_authors_tables():
    base = dci_es_module.baseline_losses
    # src/simple_gather.py: dsprites [2/3, 1, 1, 1, 1]; mpi3d [5/6, 5/6, 1, 1, 2/3, 1, 1] (its discrete factors:
    # object colour, shape and background colour)
    assert base((3, 6, 40, 32, 32), [True, False, False, False, False]).tolist() == pytest.approx([2 / 3, 1, 1, 1, 1])
    mpi3d = base((6, 6, 2, 3, 3, 40, 40), [True, True, False, False, True, False, False])
    assert mpi3d.tolist() == pytest.approx([5 / 6, 5 / 6, 1, 1, 2 / 3, 1, 1])
    assert dci_es_module.size_score(5, 10) == 0.5


# -- the metric on constructed codes ---------------------------------------------------------------------------------


def test_identity_code():
    r = run(identity)
    assert r["size"] == 1.0 and r["informativeness_test"] == pytest.approx(1.0, abs=1e-9)
    assert r["disentanglement"] >= 0.99 and r["completeness"] >= 0.99
    losses = r["loss_capacity"]["test_loss"]
    assert losses["f0"] == [0.0] * 4  # a binary factor: one split
    # by hand: the best single split of a 4-class factor is {0, 1} | {2, 3}: within-variance 0.25 of 1.25, loss 0.2;
    # depth 2 separates every class. E = 1 - (0.2 / 2) / (7 / 2) = 1 - 0.2 / 7
    assert losses["f2"][0] == pytest.approx(0.2, abs=0.03) and losses["f2"][1:] == [0.0] * 3
    assert r["explicitness_per_factor"]["f2"] == pytest.approx(1 - 0.2 / 7, abs=0.005)
    for name, curve in losses.items():  # E is the curve's, the score the mean over factors
        assert r["explicitness_per_factor"][name] == explicitness_from_curve([1, 2, 4, 8], curve, 1.0)
    assert r["score"] == r["explicitness"] == pytest.approx(np.mean(list(r["explicitness_per_factor"].values())))


def test_duplicated_rotated_and_uninformative_codes():
    ident = run(identity)
    dup = run(duplicated)
    assert dup["size"] == 0.5 and dup["disentanglement"] >= 0.99
    # each factor's importance splits over its two copies: C about 1 - log 2 / log 8 = 2/3
    assert 0.6 <= dup["completeness"] <= 0.8
    rot = run(rotated)
    # f2 and f3 each need both rotated latents, about equally: those latents and factors score 1 - log 2 / log 4
    # = 0.5, the others 1, so D and C are about 0.75; and deeper probes are needed, so E falls
    assert rot["disentanglement"] == pytest.approx(0.75, abs=0.05)
    assert rot["completeness"] == pytest.approx(0.75, abs=0.05)
    assert rot["explicitness"] < ident["explicitness"] - 0.03 and rot["informativeness_test"] >= 0.99
    # a code that knows nothing: I near 0, a flat curve (no probe beats the smallest), so E near 1: E is read with I
    lost = run(noise)
    assert lost["informativeness_test"] <= 0.02 and lost["explicitness"] >= 0.99
    const = run(constant)
    assert const["explicitness"] == 1.0 and const["size"] == 1.0
    assert const["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    assert const["completeness"] == pytest.approx(0.0, abs=1e-9)


def test_nominal_factors_are_classified_against_chance():
    grid = FactorGrid((3, 4), nominal=("f0",))
    r = run(identity, data=grid)
    assert r["probe"] == {"f0": "classification (accuracy)", "f1": "regression (R^2)"}
    assert r["baseline_loss"] == pytest.approx({"f0": 2 / 3, "f1": 1.0})
    # one split isolates one of three classes: accuracy about 2/3 at depth 1
    assert r["loss_capacity"]["test_loss"]["f0"][0] == pytest.approx(1 / 3, abs=0.06)


def test_protocol_registration_and_opt_in():
    assert resolve("dci_es") == {
        "num_train": 10000,
        "num_test": 5000,
        "max_depths": (1, 2, 3, 4, 8, 10, 12, 14, 16, 18, 20, 32),
        "num_trees": 100,
        "name": "default",
    }
    assert "dci_es" in metrics.METRICS and "dci_es" not in metrics.DEFAULT_METRICS
    assert metrics.OPT_IN_METRICS == ("dci_es",)
    out = metrics.evaluate(DATA, identity, metrics=["dci_es"], overrides={"dci_es": SMALL}, progress=False, n_jobs=2)
    res = out["metrics"]["dci_es"]
    assert res["protocol"]["name"] == "default+custom" and res["size"] == 1.0
    assert out["encoding"]["pool"] == [600, 300]


def test_bad_input_is_one_clear_error():
    with pytest.raises(MetricInputError, match="ground-truth factors"):
        run(identity, data=NoFactors())
    with pytest.raises(MetricInputError, match=">= 2 latents"):
        run(lambda obs: identity(obs)[:, :1])
    with pytest.raises(MetricInputError, match="num_trees"):
        run(identity, num_trees=0)
