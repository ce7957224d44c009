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


def _hy(p):
    py = p.reshape(-1, p.shape[-1]).sum(axis=0)
    py = py[py > 0]
    return -float(np.sum(py * np.log(py)))


@pytest.mark.parametrize("shape", [(2, 2, 2), (3, 4, 2), (4, 4, 4), (2, 2, 2, 2), (3, 3, 3, 3), (2, 3, 2, 3)])
@pytest.mark.parametrize("zero_fraction", [0.0, 0.3])
def test_lean_vk_solver_matches_reference(shape, zero_fraction):
    from nsvae.info import vk_solver

    rng = np.random.default_rng(sum(shape) + int(10 * zero_fraction))
    groups = [(i,) for i in range(len(shape) - 1)]
    for _ in range(4):
        p = random_pmf(rng, shape, zero_fraction=zero_fraction)
        fast = vk_solver._solve_fast(p, groups, _hy(p), 1e-10, 500)
        ref = vk_solver._solve(vk_solver._Problem(p, groups), _hy(p), p, 1e-10, 500)
        assert fast is not None
        if zero_fraction == 0.0:
            assert fast.gap <= 1e-10  # the lean path certifies dense tables on its own
        if fast.gap <= 1e-10:
            # Both certified: each value lies within its own gap of the true minimum.
            assert abs(fast.value - ref.value) <= fast.gap + ref.gap + 1e-13
            assert fast.lower_bound <= ref.value + 1e-13 and ref.lower_bound <= fast.value + 1e-13
            assert fast.max_constraint_violation <= 1e-12
            q = fast.distribution
            assert q.shape == p.shape and np.all(q >= 0)
            for g in groups:
                drop = tuple(a for a in range(p.ndim - 1) if a not in g)
                assert np.abs(q.sum(axis=drop) - p.sum(axis=drop)).max() <= 1e-12
            assert info.mutual_information(q, base="e") == pytest.approx(fast.value, abs=1e-12)


def test_lean_vk_solver_overlapping_groups_and_public_api(rng):
    from nsvae.info import vk_solver

    p = random_pmf(rng, (2, 2, 2, 2))
    groups = [(0, 1), (1, 2)]
    fast = vk_solver._solve_fast(p, groups, _hy(p), 1e-10, 500)
    ref = vk_solver._solve(vk_solver._Problem(p, groups), _hy(p), p, 1e-10, 500)
    assert fast is not None and fast.gap <= 1e-10
    assert abs(fast.value - ref.value) <= fast.gap + ref.gap + 1e-13
    sol = info.solve_i_vk(p, groups, base="e")
    assert sol.gap <= 1e-10 and sol.max_constraint_violation <= 1e-12


def test_lean_vk_solver_declines_large_problems():
    from nsvae.info import vk_fast

    p = np.full((12, 12, 12), 1 / 12**3)
    assert vk_fast.structure_for(p, [(0,), (1,)]) is None
    assert info.solve_i_vk(p).gap <= 1e-9
