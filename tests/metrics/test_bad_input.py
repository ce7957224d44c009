"""Bad input gives one clear message, never a silent NaN score."""

import numpy as np
import pytest

from nsvae import metrics

from .toy import NoFactors, ToyData, identity

DATA = ToyData()
RNG = np.random.default_rng(0)


def nan_codes(obs):
    z = identity(obs)
    z[::7, 1] = np.nan
    return z


def wrong_shape(obs):
    return identity(obs)[:, None, :]


def dropped_rows(obs):
    return identity(obs)[:-1]


POOLED = [metrics.mig, metrics.dci, metrics.sap, metrics.modularity_explicitness, metrics.unsupervised]


@pytest.mark.parametrize("fn", POOLED + [metrics.beta_vae_score, metrics.factor_vae_score, metrics.active_units])
def test_nan_codes_refused(fn):
    with pytest.raises(ValueError, match=r"non-finite values .* dimension\(s\) \[1\]"):
        fn(DATA, nan_codes, RNG)


@pytest.mark.parametrize("fn", [metrics.mig, metrics.beta_vae_score, metrics.factor_vae_score])
def test_wrong_shape_refused(fn):
    with pytest.raises(ValueError, match=r"\(n, d\) array"):
        fn(DATA, wrong_shape, RNG)
    with pytest.raises(ValueError, match="rows for"):
        fn(DATA, dropped_rows, RNG)


@pytest.mark.parametrize(
    "fn",
    POOLED[:-1] + [metrics.beta_vae_score, metrics.factor_vae_score, metrics.chen_mig, metrics.synergy],
)
def test_dataset_without_factors_refused(fn):
    with pytest.raises(ValueError, match="ground-truth factors"):
        fn(NoFactors(), identity, RNG)


def test_constant_dimension_gives_numbers_not_nan():
    def with_dead(obs):
        z = identity(obs)
        return np.column_stack([z, np.zeros(len(z))])

    kw = {"num_train": 1000, "num_test": 500}
    mod = metrics.modularity_explicitness(DATA, with_dead, RNG, **kw)
    assert mod["modularity_per_code"][-1] == 0.0 and np.isfinite(mod["modularity"])
    assert mod["num_uninformative_codes"] == 1
    uns = metrics.unsupervised(DATA, with_dead, RNG, num_train=1000)
    assert uns["num_constant_dims"] == 1 and np.isfinite(uns["gaussian_total_correlation"])


def test_posterior_shape_mismatch_refused():
    def bad(obs):
        z = identity(obs)
        return z, z[:, :2]

    with pytest.raises(ValueError, match="same shape"):
        metrics.chen_mig(ToyData((2, 3, 4)), bad, RNG, num_samples=100)


def test_single_latent_refused_for_gap_metrics():
    def one(obs):
        return identity(obs)[:, :1]

    with pytest.raises(ValueError, match="at least 2 latent"):
        metrics.mig(DATA, one, RNG, num_train=500)
