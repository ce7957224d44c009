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


def _shared_data_dir():
    """The project's shared test data (real dSprites frames): ``$NSVAE_SHARED_DATA``, ``../shared/data``
    beside the checkout, or the workplace's ``/work/shared/data``; tests that need it skip when absent."""
    import os
    from pathlib import Path

    candidates = [os.environ.get("NSVAE_SHARED_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"]
    candidates.append(Path("/work/shared/data"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "dsprites-official-frames.gif").is_file():
            return Path(candidate)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


SHARED_DATA = _shared_data_dir()


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own dataset cache: tests never read or write the user's."""
    import os

    root = tmp_path_factory.mktemp("nsvae-cache")
    old = os.environ.get("NSVAE_CACHE_DIR")
    os.environ["NSVAE_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("NSVAE_CACHE_DIR", None)
    else:
        os.environ["NSVAE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def dsprites(isolated_cache):
    """The full generated dSprites, prepared once per session (about 15 s), by two racing processes.

    Two processes prepare the same cache at the same time, as two training
    jobs on one machine would; both must succeed and leave one valid entry.
    """
    import subprocess
    import sys

    from nsvae import data

    code = "from nsvae import data; data.prepare('dsprites', progress=False)"
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    return data.load("dsprites", progress=False)
