import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_pmf(rng: np.random.Generator, shape, concentration: float = 1.0, zero_fraction: float = 0.0) -> np.ndarray:
    """A Dirichlet-random joint pmf, optionally with some cells set to zero."""
    p = rng.dirichlet(np.full(int(np.prod(shape)), concentration))
    if zero_fraction:
        p[rng.random(p.size) < zero_fraction] = 0.0
        if p.sum() == 0:
            p[0] = 1.0
        p /= p.sum()
    return p.reshape(shape)
