"""The synergy metric's pool estimator: the fast paths give exactly the literal computation.

``PoolKernel`` sums log-kernels without copying them and fills its cache in
one reused buffer; ``eliminate_backward`` runs every factor's backward
elimination in lockstep and shares the kernel evaluations of factors that
reached the same set. Each is checked bit for bit against the plain
formulation written out here: the speed-up may not move a single number of
a study.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from nsvae.metrics.pid_bounds import pool_pid_information

synergy_module = importlib.import_module("nsvae.metrics.synergy_pool")
PoolKernel = synergy_module.PoolKernel


def _code(rng, n=300, d=6, sizes=(3, 4, 5), constant=()):
    """Posteriors that carry the factors (two latents each, plus noise latents), so eliminations take real paths."""
    factors = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    mean = rng.normal(0.0, 1.0, (n, d))
    for i in range(len(sizes)):
        mean[:, (2 * i) % d] += 1.5 * factors[:, i]
        mean[:, (2 * i + 1) % d] -= 0.7 * factors[:, i] * rng.normal(1.0, 0.3, n)
    logvar = rng.normal(-1.0, 0.4, (n, d))
    for j in constant:
        mean[:, j], logvar[:, j] = 0.0, 0.0
    z = mean + np.exp(logvar / 2) * rng.normal(size=(n, d))
    return z, mean, logvar, factors


def _literal_pieces(z, mean, logvar):
    squared = (z.T[:, :, None] - mean.T[:, None, :]) ** 2
    return (-0.5 * (squared * np.exp(-logvar).T[:, None, :] + logvar.T[:, None, :])).astype(np.float32)


def _literal_joint(z, mean, logvar, factors):
    """The pool joint term with each factor's elimination on its own, as first written (one factor per kernel call)."""
    n, d = mean.shape
    classes, priors = synergy_module.class_index(factors)
    kernel = PoolKernel(z, mean, logvar)
    varies = ~((np.ptp(mean, axis=0) == 0) & (np.ptp(logvar, axis=0) == 0))
    eye = np.eye(d, dtype=bool)
    singles = kernel.own_posteriors(classes, list(eye))
    joint, latents = [], []
    for i, (cls, prior) in enumerate(zip(classes, priors)):
        best = synergy_module.BestSubset(prior[cls])
        for j in range(d):
            best.consider(singles[j, i], eye[j])
        current = varies.copy()
        if current.sum() > 1:
            best.consider(kernel.own_posteriors([cls], [current])[0, 0], current)
        while current.sum() > 2:
            members = np.flatnonzero(current).tolist()
            scores = kernel.own_posteriors_without([cls], current, members)[:, 0]
            ces = []
            for own, j in zip(scores, members):
                mask = current.copy()
                mask[j] = False
                ces.append(best.consider(own, mask)[0])
            current[members[int(np.argmin(ces))]] = False
        joint.append(-(prior * np.log(prior)).sum() - best.ce)
        latents.append(best.latents)
    return np.array(joint), latents


def test_cached_pieces_are_the_literal_float32_log_kernels(rng):
    z, mean, logvar, _ = _code(rng, n=70, d=4)
    kernel = PoolKernel(z, mean, logvar, chunk=16)  # 70 = 4 chunks of 16 + 6: the last chunk is short
    assert kernel._cached.dtype == np.float32
    assert np.array_equal(kernel._cached, _literal_pieces(z, mean, logvar))


def test_summed_pieces_equal_numpys_sum_bit_for_bit(rng):
    pieces = rng.normal(0, 30, (9, 17, 23)).astype(np.float32)
    for _ in range(20):
        mask = rng.random(9) < 0.6
        if mask.any():
            assert np.array_equal(synergy_module._sum_pieces(pieces, mask), pieces[mask].sum(axis=0))


def test_uncached_kernel_gives_the_cached_posteriors(rng, monkeypatch):
    z, mean, logvar, factors = _code(rng, n=120, d=5)
    classes, _ = synergy_module.class_index(factors)
    subsets = [np.array([1, 0, 1, 1, 0], bool), np.ones(5, bool)]
    cached = PoolKernel(z, mean, logvar, chunk=32)
    monkeypatch.setattr(synergy_module, "_PIECES_BUDGET", 0)
    uncached = PoolKernel(z, mean, logvar, chunk=32)
    assert cached._cached is not None and uncached._cached is None
    assert np.array_equal(cached.own_posteriors(classes, subsets), uncached.own_posteriors(classes, subsets))
    base = np.ones(5, bool)
    drop = [0, 2, 4]
    assert np.array_equal(
        cached.own_posteriors_without(classes, base, drop), uncached.own_posteriors_without(classes, base, drop)
    )


@pytest.mark.parametrize("d, constant", [(6, ()), (6, (2,)), (3, ()), (2, ()), (5, (0, 4))])
def test_lockstep_elimination_is_the_per_factor_elimination(rng, d, constant):
    z, mean, logvar, factors = _code(rng, n=250, d=d, constant=constant)
    joint, _, _, _, details = synergy_module.pool_information(z, mean, logvar, factors)
    ref_joint, ref_latents = _literal_joint(z, mean, logvar, factors)
    assert np.array_equal(joint, ref_joint)
    assert [e["joint_latents"] for e in details] == ref_latents
    pid_joint = pool_pid_information(z, mean, logvar, factors)[2]
    assert np.array_equal(pid_joint, ref_joint)


def test_factors_share_kernel_evaluations_once_their_paths_meet(rng, monkeypatch):
    """The point of the lockstep: a factor given twice takes the same path, and its kernel evaluations are shared."""
    z, mean, logvar, factors = _code(rng, n=200, d=6, sizes=(3, 3, 3))
    factors = np.concatenate([factors, factors[:, :1]], axis=1)  # factor 3 is factor 0 again
    calls = {"n": 0}
    original = PoolKernel.own_posteriors_without

    def counted(self, classes, base, drop):
        calls["n"] += 1
        return original(self, classes, base, drop)

    monkeypatch.setattr(PoolKernel, "own_posteriors_without", counted)
    joint, _, _, _, details = synergy_module.pool_information(z, mean, logvar, factors)
    # the shared first step, then at most one call per distinct path per later step (5 -> 3 latents)
    assert calls["n"] <= 1 + 3 * (6 - 3) < 1 + 4 * (6 - 3)
    assert joint[3] == joint[0] and details[3] == details[0]
