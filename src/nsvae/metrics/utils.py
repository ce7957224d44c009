"""Shared pieces of the metrics: input checks, encoding in batches, discretisation, discrete MI.

Nothing here imports torch: a representation is any function
``represent(observations) -> (n, d) ndarray``. Randomness comes from an
explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import entr

#: ``represent(observations (n, C, H, W) float32) -> (n, d) array``.
Represent = Callable[[np.ndarray], np.ndarray]
#: ``represent_posterior(observations) -> (mean (n, d), logvar (n, d))`` of a diagonal Gaussian q(z|x).
RepresentPosterior = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class MetricInputError(ValueError):
    """Bad input to a metric (wrong shape, NaNs, a dataset without factors): the message says what to fix."""


# -- input checks ---------------------------------------------------------------------------------


def check_ground_truth(data: Any, metric: str) -> None:
    """Refuse datasets without ground-truth factors (CelebA, folders) with a clear message."""
    needed = ("factor_sizes", "factor_names", "sample_factors", "sample_observations_from_factors")
    missing = [a for a in needed if not hasattr(data, a)]
    if missing:
        name = getattr(data, "name", None) or type(data).__name__
        raise MetricInputError(
            f"{metric} needs a dataset with ground-truth factors (nsvae.data.GroundTruthData); "
            f"{name!r} has none (it lacks {', '.join(missing)}). Image-only datasets such as celeba "
            "can only be scored with the unsupervised metrics on a pool of codes."
        )
    sizes = tuple(int(s) for s in data.factor_sizes)
    if not sizes:
        raise MetricInputError(f"{metric}: the dataset exposes no ground-truth factors")
    if min(sizes) < 1:
        raise MetricInputError(f"{metric}: every factor needs at least one class, got sizes {sizes}")


def check_codes(codes: Any, n: int | None, what: str = "represent(observations)", d: int | None = None) -> np.ndarray:
    """A finite float64 ``(n, d)`` array, or :class:`MetricInputError` naming the problem."""
    try:
        arr = np.asarray(codes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricInputError(f"{what} must return a numeric (n, d) array: {exc}") from None
    if arr.ndim != 2:
        raise MetricInputError(
            f"{what} must return an (n, d) array (one row per observation, one column per latent), "
            f"got shape {arr.shape}; flatten or select the code before scoring"
        )
    if n is not None and arr.shape[0] != n:
        raise MetricInputError(f"{what} returned {arr.shape[0]} rows for {n} observations; it must keep the batch axis")
    if arr.shape[1] == 0:
        raise MetricInputError(f"{what} returned codes with 0 dimensions")
    if d is not None and arr.shape[1] != d:
        raise MetricInputError(f"{what} returned {arr.shape[1]} dimensions here but {d} before")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=0)).tolist()
        raise MetricInputError(
            f"{what} returned non-finite values (NaN or inf) in latent dimension(s) {bad}; "
            "a metric on such codes would be a silent NaN. Check the model (diverged training?) before scoring."
        )
    return arr


def check_posterior(mean: Any, logvar: Any, n: int | None, what: str = "represent_posterior") -> tuple:
    mu = check_codes(mean, n, f"{what} (mean)")
    lv = check_codes(logvar, n, f"{what} (logvar)")
    if lv.shape != mu.shape:
        raise MetricInputError(f"{what}: mean {mu.shape} and logvar {lv.shape} must have the same shape")
    return mu, lv


def constant_dims(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of dimensions that take a single value over the rows."""
    return np.ptp(codes, axis=0) == 0


# -- encoding ---------------------------------------------------------------------------------------


class CodeTable:
    """Codes of every image of a finite, noise-free dataset, encoded once.

    A metric given a ``CodeTable`` as ``represent`` looks codes up by image
    index instead of rendering and encoding observations again: for a
    deterministic representation (an encoder's mean) this gives exactly the
    codes the encoder would return, and it turns the 1.9 million encodings
    of the β-VAE score into a table look-up. ``mean``/``logvar`` hold the
    Gaussian posterior when it was encoded too. Calling the table on
    observations falls back to the wrapped ``represent``.
    """

    def __init__(
        self, data: Any, codes: np.ndarray, represent: Represent | None = None, logvar: np.ndarray | None = None
    ):
        if getattr(data, "draws_noise", False):
            raise MetricInputError(f"{data.name} draws per-sample noise: its codes cannot be tabulated by image index")
        self.data = data
        self.codes = check_codes(codes, len(data), "the code table")
        self.logvar = None if logvar is None else check_codes(logvar, len(data), "the code table's logvar")
        self.represent = represent

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        if self.represent is None:
            raise MetricInputError("this CodeTable has no representation function for raw observations")
        return self.represent(observations)

    def codes_for_factors(self, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.codes[self.data.index_of(factors, rng)]


def encode_table(
    data: Any,
    represent: Represent | None = None,
    represent_posterior: RepresentPosterior | None = None,
    batch_size: int = 1024,
    progress: Any = None,
) -> CodeTable:
    """Encode every image of ``data`` once (in index order) into a :class:`CodeTable`.

    With ``represent_posterior`` the table holds the posterior mean as codes
    and its logvar; ``represent`` then defaults to the mean.
    """
    if represent is None and represent_posterior is None:
        raise MetricInputError("encode_table needs represent or represent_posterior")
    n = len(data)
    means, logvars = [], []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        obs = data.observations_at(idx)
        if represent_posterior is not None:
            mu, lv = check_posterior(*_split_posterior(represent_posterior(obs)), len(idx))
            means.append(mu)
            logvars.append(lv)
        else:
            means.append(check_codes(represent(obs), len(idx)))
        if progress is not None:
            progress.update(len(idx))
    codes = np.concatenate(means)
    logvar = np.concatenate(logvars) if logvars else None
    if represent is None:

        def represent(obs):  # noqa: F811 - the posterior mean
            return np.asarray(represent_posterior(obs)[0])

    return CodeTable(data, codes, represent, logvar)


def _split_posterior(out: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise MetricInputError("represent_posterior(observations) must return a pair (mean, logvar)")
    return out[0], out[1]


def represent_factors(
    data: Any,
    represent: Represent,
    factors: np.ndarray,
    rng: np.random.Generator,
    batch_size: int = 256,
    dim: int | None = None,
) -> np.ndarray:
    """Codes of observations drawn for ``factors`` (``(n, k)`` classes): float64 ``(n, d)``."""
    if isinstance(represent, CodeTable):
        return represent.codes_for_factors(factors, rng)
    out = []
    for start in range(0, len(factors), batch_size):
        f = factors[start : start + batch_size]
        obs = data.sample_observations_from_factors(f, rng)
        out.append(check_codes(represent(obs), len(f), d=dim))
        dim = out[-1].shape[1]
    if not out:
        raise MetricInputError("no observations to encode")
    return np.concatenate(out)


def represent_posterior_factors(
    data: Any, represent_posterior: RepresentPosterior, factors: np.ndarray, rng: np.random.Generator, batch_size=256
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior (mean, logvar) of observations drawn for ``factors``."""
    if isinstance(represent_posterior, CodeTable):
        if represent_posterior.logvar is None:
            raise MetricInputError("the code table holds no posterior logvar: encode it with represent_posterior")
        idx = data.index_of(factors, rng)
        return represent_posterior.codes[idx], represent_posterior.logvar[idx]
    means, logvars = [], []
    for start in range(0, len(factors), batch_size):
        f = factors[start : start + batch_size]
        obs = data.sample_observations_from_factors(f, rng)
        mu, lv = check_posterior(*_split_posterior(represent_posterior(obs)), len(f))
        means.append(mu)
        logvars.append(lv)
    return np.concatenate(means), np.concatenate(logvars)


@dataclass
class CodePool:
    """Ground-truth factors and codes of random observations, shared by the metrics that need only pairs.

    Rows ``[0, num_train)`` are the training split, the next ``num_test`` the
    test split (disentanglement_lib draws 10,000 + 5,000 points for DCI, SAP
    and modularity, 10,000 for MIG and the unsupervised scores). ``mean`` and
    ``logvar`` hold the Gaussian posterior when one was encoded.
    """

    factors: np.ndarray
    codes: np.ndarray
    num_train: int
    logvar: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_test(self) -> int:
        return len(self.factors) - self.num_train

    def train(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = self.num_train if n is None else n
        if n > self.num_train:
            raise MetricInputError(f"the pool holds {self.num_train} training points, {n} were asked for")
        return self.factors[:n], self.codes[:n]

    def test(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n = self.num_test if n is None else n
        if n > self.num_test:
            raise MetricInputError(f"the pool holds {self.num_test} test points, {n} were asked for")
        s = self.num_train
        return self.factors[s : s + n], self.codes[s : s + n]


def make_pool(
    data: Any,
    represent: Represent,
    rng: np.random.Generator,
    num_train: int,
    num_test: int = 0,
    batch_size: int = 256,
    represent_posterior: RepresentPosterior | None = None,
) -> CodePool:
    """Draw ``num_train + num_test`` uniform factor combinations and encode their observations."""
    factors = data.sample_factors(num_train + num_test, rng)
    if represent_posterior is not None:
        mean, logvar = represent_posterior_factors(data, represent_posterior, factors, rng, batch_size)
        return CodePool(factors, mean, num_train, logvar)
    if isinstance(represent, CodeTable):
        idx = data.index_of(factors, rng)
        logvar = None if represent.logvar is None else represent.logvar[idx]
        return CodePool(factors, represent.codes[idx], num_train, logvar)
    codes = represent_factors(data, represent, factors, rng, batch_size)
    logvar = None
    return CodePool(factors, codes, num_train, logvar)


def pool_or_sample(
    data: Any, represent: Represent, rng: np.random.Generator, pool: CodePool | None, num_train: int, num_test: int = 0
) -> CodePool:
    """The shared pool when it is large enough, else a fresh one drawn with ``rng``."""
    if pool is not None:
        if pool.num_train < num_train or pool.num_test < num_test:
            raise MetricInputError(
                f"the shared pool has {pool.num_train} train / {pool.num_test} test points; "
                f"this protocol needs {num_train} / {num_test}"
            )
        return pool
    return make_pool(data, represent, rng, num_train, num_test)


# -- discretisation and discrete information ---------------------------------------------------------


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Per column, the index (0..num_bins-1) of an equal-width bin between the column's min and max.

    The bins are numpy's ``np.histogram(column, num_bins)`` edges: the
    maximum falls in the last bin. A constant column (numpy then uses the
    range value +- 0.5) puts every row in one bin. This is disentanglement_lib's
    ``histogram_discretize`` less one (it counts bins from 1).
    """
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2:
        raise MetricInputError(f"codes must be (n, d), got shape {x.shape}")
    if num_bins < 1:
        raise MetricInputError(f"num_bins must be >= 1, got {num_bins}")
    out = np.empty(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram_bin_edges(x[:, j], num_bins)
        out[:, j] = np.digitize(x[:, j], edges[:-1]) - 1
    return out


def _relabel(col: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(col, return_inverse=True)
    return inverse.reshape(-1), len(values)


def contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Joint pmf table of two integer columns (rows: values of ``a``, columns: values of ``b``)."""
    ia, na = _relabel(np.asarray(a))
    ib, nb = _relabel(np.asarray(b))
    counts = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb)
    return counts / counts.sum()


def discrete_entropy(y: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of each column of an integer array ``(n, k)``."""
    y = np.asarray(y)
    if y.ndim == 1:
        y = y[:, None]
    out = np.empty(y.shape[1])
    for j in range(y.shape[1]):
        _, counts = np.unique(y[:, j], return_counts=True)
        out[j] = entr(counts / counts.sum()).sum()
    return out


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) of every column of ``a`` (n, d) with every column of ``b`` (n, k).

    Equal to ``nsvae.info.mutual_information(contingency(a_j, b_k), base='e')``
    and to scikit-learn's ``mutual_info_score`` (tests check both); negative
    rounding residue is clipped to 0.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if len(a) != len(b):
        raise MetricInputError(f"discrete_mutual_info needs as many rows in both arrays, got {len(a)} and {len(b)}")
    la = [_relabel(a[:, j]) for j in range(a.shape[1])]
    lb = [_relabel(b[:, k]) for k in range(b.shape[1])]
    ha = np.array([entr(np.bincount(i, minlength=m) / len(i)).sum() for i, m in la])
    hb = np.array([entr(np.bincount(i, minlength=m) / len(i)).sum() for i, m in lb])
    out = np.empty((a.shape[1], b.shape[1]))
    n = len(a)
    for j, (ia, na) in enumerate(la):
        for k, (ib, nb) in enumerate(lb):
            counts = np.bincount(ia * nb + ib, minlength=na * nb)
            out[j, k] = ha[j] + hb[k] - entr(counts / n).sum()
    return np.maximum(out, 0.0)


# -- results ------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain Python values for eval.json (numpy scalars and arrays become floats and lists)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_score(result: dict, metric: str) -> dict:
    """Refuse to return a NaN score: every float in the result must be finite (or explicitly None)."""
    for key, value in result.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FloatingPointError(f"{metric}: internal error, {key} is {value}; please report it with the input")
    return result
