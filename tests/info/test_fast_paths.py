"""The lean code paths agree with the general (reference) ones and keep the validation contract."""

import math

import numpy as np
import pytest

from nsvae import info
from nsvae.info import synergy
from tests.conftest import random_pmf

SHAPES = [(2, 2), (2, 2, 2), (3, 5, 2), (4, 4, 4), (8, 8, 8), (2, 2, 2, 2), (3, 3, 3, 3), (2, 3, 4, 5)]


@pytest.mark.parametrize("shape", SHAPES)
def test_wms_fast_path_equals_reference(rng, shape):
    for k in range(12):
        p = random_pmf(rng, shape, concentration=(0.1, 1.0, 5.0)[k % 3], zero_fraction=0.3 if k % 4 == 3 else 0.0)
        arr, groups = synergy._prepare(p, None)
        fast = synergy._wms_fast_nats(p, None)
        assert fast is not None
        assert fast == pytest.approx(synergy._wms_nats(arr, groups), abs=1e-12)
        assert info.wms(p) == pytest.approx(synergy._wms_nats(arr, groups) / math.log(2), abs=1e-12)


def test_wms_fast_path_with_groups_and_lists(rng):
    p = random_pmf(rng, (2, 3, 2, 3))
    for predictors in ([(0, 1), (2,)], [(0, 1), (1, 2)], [0, 1, 2], [(2,), 0, 1]):
        arr, groups = synergy._prepare(p, predictors)
        assert synergy._wms_fast_nats(p, predictors) == pytest.approx(synergy._wms_nats(arr, groups), abs=1e-12)
    # Groups that leave an axis out take the general path, with the same value.
    arr, groups = synergy._prepare(p, [0, 1])
    assert synergy._wms_fast_nats(p, [0, 1]) is None
    assert info.wms(p, [0, 1]) == pytest.approx(synergy._wms_nats(arr, groups) / math.log(2), abs=1e-15)
    # Nested lists are accepted as by every other function.
    assert info.wms(p.tolist()) == pytest.approx(info.wms(p), abs=1e-15)
    assert info.wms(info.gate("xor"), base="e") == pytest.approx(math.log(2), abs=1e-15)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.__setitem__((0, 0, 0), -0.01), "negative"),
        (lambda p: p.__setitem__((0, 1, 0), np.nan), "NaN"),
        (lambda p: p.__setitem__((1, 1, 1), np.inf), "NaN or infinite"),
        (lambda p: p.__imul__(1.01), "sums to"),
        (lambda p: p.__imul__(1 + 2e-9), "sums to"),
    ],
)
def test_wms_fast_path_keeps_validation(rng, mutate, message):
    p = random_pmf(rng, (2, 2, 2))
    mutate(p)
    with pytest.raises(ValueError, match=message):
        info.wms(p)


def test_wms_negative_entry_hidden_by_a_positive_sum_is_rejected():
    # A negative cell whose marginals stay positive must still be caught.
    p = np.full((2, 2, 2), 1 / 8)
    p[0, 0, 0] = -0.01
    p[1, 1, 1] += 0.135
    assert p.sum() == pytest.approx(1.0) and p.sum(axis=1).min() > 0 and p.sum(axis=0).min() > 0
    with pytest.raises(ValueError, match="negative"):
        info.wms(p)


def test_wms_accepts_mass_within_tolerance(rng):
    p = random_pmf(rng, (2, 2, 2)) * (1 + 5e-10)
    assert info.wms(p) == pytest.approx(info.wms(p / p.sum()), abs=1e-9)
