"""A tiny ground-truth dataset for metric tests: the observation *is* the factor vector."""

from __future__ import annotations

import math

import numpy as np

from nsvae.data.base import ImageData
from nsvae.data.factor_grid import FactorGrid


class ToyData(FactorGrid):
    """Every factor exposed; observations are the factor classes as a float32 ``(n, 1, 1, K)`` image."""

    name = "toy"

    def __init__(self, sizes=(2, 3, 4, 5), names=None):
        super().__init__(sizes, names)


class NoFactors(ImageData):
    name = "pictures"

    @property
    def observation_shape(self):
        return (1, 2, 2)

    def __len__(self):
        return 10

    def observations_at(self, indices, rng=None):
        return np.zeros((len(np.atleast_1d(indices)), 1, 2, 2), np.float32)


def flat(obs):
    return np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)


def identity(obs):
    return flat(obs)


def constant(obs):
    return np.ones((len(obs), 4))


def duplicated(obs):
    z = flat(obs)
    return np.concatenate([z, z], axis=1)


def column_permuted(obs):
    return flat(obs)[:, [2, 0, 3, 1]]


def row_shuffled(obs):
    """A broken encoder: codes of the batch returned in a random row order."""
    z = flat(obs)
    return z[np.random.default_rng(int(z.sum() * 7919) % 2**32).permutation(len(z))]


def posterior_identity(sigma=0.05):
    def represent_posterior(obs):
        z = flat(obs)
        return z, np.full(z.shape, 2 * np.log(sigma))

    return represent_posterior


def posterior_xor(sigma=0.05):
    """Factors (a, b, c): latents (a, a XOR b, c): the code knows b only through two latents together."""

    def represent_posterior(obs):
        f = flat(obs).astype(np.int64)
        z = np.stack([f[:, 0], f[:, 0] ^ f[:, 1], f[:, 2]], axis=1).astype(np.float64)
        return z, np.full(z.shape, 2 * np.log(sigma))

    return represent_posterior


#: A row-major factor grid whose observation is the full factor vector, hidden factors included: lets a test
#: encoder read a hidden factor (a coin flip per image) that the metrics cannot see.
CodedGrid = FactorGrid


def posterior_coder(columns, sigma=0.01, prior_latents=1):
    """represent_posterior of a code built from functions of the full factor matrix (std ``sigma``), followed by
    ``prior_latents`` latents at the prior N(0, 1) that carry nothing."""

    def represent_posterior(obs):
        f = np.asarray(obs).reshape(len(obs), -1).astype(np.int64)
        informative = np.stack([fn(f) for fn in columns], axis=1)
        mean = np.concatenate([informative, np.zeros((len(f), prior_latents))], axis=1)
        logvar = np.zeros_like(mean)
        logvar[:, : len(columns)] = 2 * math.log(sigma)
        return mean, logvar

    return represent_posterior
