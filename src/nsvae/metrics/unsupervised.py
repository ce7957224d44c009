"""Unsupervised scores of a code (disentanglement_lib's ``unsupervised_metrics``; Locatello et al. 2019).

On the mean code of 10,000 random observations, with C its covariance:

- Gaussian total correlation: TC = 1/2 (sum_j log C_jj - log det C), the TC of
  a Gaussian with covariance C (nats).
- Gaussian Wasserstein correlation: W = 2 tr C - 2 tr (D^1/2 C D^1/2)^1/2 with
  D = diag C: the squared 2-Wasserstein distance between N(0, C) and
  N(0, diag C) (Dowson & Landau 1982); ``..._norm`` divides by tr C. Computed
  from the eigenvalues of the symmetric D^1/2 C D^1/2 (disentanglement_lib
  takes ``sqrtm`` of the non-symmetric D C; the trace is the same).
- Mutual information score: mean over pairs j != j' of the plug-in MI of the
  20-bin codes (nats).

Constant dimensions have no density: they are left out of the Gaussian
scores (their count is reported). When the remaining covariance is singular
(linearly dependent dimensions, e.g. a duplicated latent) the Gaussian TC is
infinite: it is then reported as ``None`` with a note, never as NaN.
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import (
    CodePool,
    MetricInputError,
    check_score,
    constant_dims,
    discrete_mutual_info,
    histogram_discretize,
    pool_or_sample,
)

REFERENCE = "Locatello et al. 2019 (ICML), disentanglement_lib unsupervised_metrics"


def gaussian_total_correlation(cov: np.ndarray) -> float | None:
    """TC of N(0, cov) in nats; None when ``cov`` is singular (the TC is then infinite)."""
    c = np.asarray(cov, dtype=np.float64)
    sign, logdet = np.linalg.slogdet(c)
    diag = np.diag(c)
    if sign <= 0 or (diag <= 0).any():
        return None
    tc = 0.5 * (np.sum(np.log(diag)) - logdet)
    # A numerically singular matrix (condition ~ 1/eps) gives a huge, meaningless TC.
    if np.linalg.cond(c / np.sqrt(np.outer(diag, diag))) > 1e12:
        return None
    return float(max(tc, 0.0))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and N(0, diag cov)."""
    c = np.asarray(cov, dtype=np.float64)
    s = np.sqrt(np.clip(np.diag(c), 0.0, None))
    eig = np.linalg.eigvalsh(s[:, None] * c * s[None, :])
    return float(max(2.0 * np.trace(c) - 2.0 * np.sqrt(np.clip(eig, 0.0, None)).sum(), 0.0))


def mutual_info_score(codes: np.ndarray, num_bins: int = 20) -> float:
    d = codes.shape[1]
    if d < 2:
        raise MetricInputError("the mutual information score needs at least 2 latent dimensions")
    disc = histogram_discretize(codes, num_bins)
    mi = discrete_mutual_info(disc, disc)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised(
    data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides
) -> dict:
    """Gaussian TC, Wasserstein correlation (raw and normalised) and the discrete MI score.

    ``data`` needs ``sample_factors`` and observations (a ground-truth set);
    with a ``pool`` of codes any dataset works.
    """
    p = resolve("unsupervised", protocol, overrides)
    if pool is None and not hasattr(data, "sample_factors"):
        raise MetricInputError(
            "unsupervised scores draw random observations through sample_factors; for an image-only dataset "
            "pass a pool of codes (nsvae.metrics.utils.CodePool)"
        )
    _, codes = pool_or_sample(data, represent, rng, pool, p["num_train"]).train(p["num_train"])
    const = constant_dims(codes)
    live = codes[:, ~const]
    result: dict = {"metric": "unsupervised", "num_constant_dims": int(const.sum())}
    if live.shape[1] == 0:
        result.update(gaussian_total_correlation=0.0, gaussian_wasserstein_correlation=0.0)
        result["gaussian_wasserstein_correlation_norm"] = 0.0
        result["note"] = "every dimension is constant: the Gaussian scores are 0 by convention"
    else:
        cov = np.atleast_2d(np.cov(live, rowvar=False))
        tc = gaussian_total_correlation(cov)
        wc = gaussian_wasserstein_correlation(cov)
        result.update(
            gaussian_total_correlation=tc,
            gaussian_wasserstein_correlation=wc,
            gaussian_wasserstein_correlation_norm=wc / float(np.trace(cov)),
        )
        if tc is None:
            result["note"] = "the covariance is singular (linearly dependent dimensions): the Gaussian TC is infinite"
    result["mutual_info_score"] = mutual_info_score(codes, p["num_bins"])
    result["units"] = "nats"
    result["reference"] = REFERENCE
    result["protocol"] = p
    return check_score(result, "unsupervised")
