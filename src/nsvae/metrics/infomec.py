"""InfoMEC: InfoM (modularity), InfoE (explicitness) and InfoC (compactness) (Hsu, Dorrell, Whittington, Wu &
Finn 2023, "Disentanglement via Latent Quantization", NeurIPS 2023), as the authors' standalone
``disentangle/metrics/infomec.py`` (kylehkhsu/latent_quantization) computes them.

**Normalised mutual information.** NMI[k, j] = I(v_k; z_j) / H(v_k) for every
factor k and latent j, H the plug-in entropy of the sampled factor (nats).
Continuous latents are **not** binned: each latent is standardised and
I(v_k; z_j) is scikit-learn's ``mutual_info_classif`` with ``n_neighbors`` =
10, the k-nearest-neighbour estimator of Ross (2014) for a continuous
variable and a discrete one (clipped at 0). Discrete latents
(``discrete_latents=True``, e.g. a quantised code) are label-encoded and the
MI is the plug-in one.

**Pruning.** A continuous latent is active when its range (max - min over the
points) exceeds ``active_range_fraction`` = 1/20 of the largest latent range;
a discrete latent when it takes more than one value. Only active latents
enter InfoM and InfoC; InfoE uses every latent.

**InfoM** = (mean over active latents j of max_k NMI[k, j] / Σ_k NMI[k, j] − 1/K) / (1 − 1/K):
1 when each active latent informs about one factor only, 0 when it informs
about all alike. **InfoC** = (mean over factors k of max_j NMI[k, j] /
Σ_j NMI[k, j] − 1/L) / (1 − 1/L) over the L active latents: 1 when each factor
is captured by one latent. **InfoE** = mean over factors of
(H_0 − CE) / H_0, where CE is the training log loss of an unpenalised
multinomial logistic regression (lbfgs, tol 1e-4, at most 100 iterations,
``class_weight="balanced"``) from the standardised code (one-hot for discrete
latents) to the factor, and H_0 the log loss of the same model given no
input: with balanced class weights that model predicts the uniform
distribution, so H_0 = log |classes| exactly (the reference fits it on an
all-zero input and gets the same number; a test checks it).

Where the reference divides 0 by 0 (its result is NaN), this module defines
the number: a code with no active latent scores InfoM = InfoC = 0 (the same
authors' later ``kylehkhsu/tripod`` returns 0 there); an active latent with
no information about any factor (NMI column all 0) is left out of InfoM's mean,
as the same repository's ``mutual_information.py`` leaves out such latents
from its modularity ratio (InfoM = 0 when none is left); a factor no active
latent informs about counts as 1/L in InfoC (no compactness); with a single
active latent InfoC is undefined (1 − 1/L = 0) and reported as ``None``.
Factors with a single class in the sample are left out (``skipped_factors``).
"""

from __future__ import annotations

import warnings

import numpy as np

from .protocols import resolve
from .utils import (
    CodePool,
    MetricInputError,
    check_ground_truth,
    check_score,
    discrete_entropy,
    discrete_mutual_info,
    pool_or_sample,
)

REFERENCE = (
    "Hsu et al. 2023, Disentanglement via Latent Quantization (NeurIPS); infomec.py of kylehkhsu/latent_quantization"
)


def standardise(codes: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit variance (ddof 0); a constant column to zeros (scikit-learn's
    ``StandardScaler``, which the reference uses)."""
    z = np.asarray(codes, dtype=np.float64)
    sd = z.std(axis=0)
    return (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def normalised_mutual_information(
    factors: np.ndarray, codes: np.ndarray, discrete_latents: bool = False, n_neighbors: int = 10, seed: int = 0
) -> np.ndarray:
    """NMI ``(K, d)``: I(v_k; z_j) / H(v_k) in the reference's estimator (module docstring).

    Every factor needs at least two classes (its entropy is the denominator). ``seed`` draws the 1e-10 jitter
    scikit-learn adds to continuous values to break ties (the reference leaves it unseeded).
    """
    f = np.asarray(factors)
    entropy = discrete_entropy(f)
    if (entropy <= 0).any():
        raise MetricInputError("normalised_mutual_information: every factor needs at least two classes")
    if discrete_latents:
        return discrete_mutual_info(f, np.asarray(codes)) / entropy[:, None]
    from sklearn.feature_selection import mutual_info_classif

    z = standardise(codes)
    nmi = np.empty((f.shape[1], z.shape[1]))
    for k in range(f.shape[1]):
        nmi[k] = (
            mutual_info_classif(z, f[:, k], discrete_features=False, n_neighbors=n_neighbors, random_state=seed + k)
            / entropy[k]
        )
    return nmi


def active_latents(codes: np.ndarray, discrete_latents: bool = False, active_range_fraction: float = 0.05):
    """Mask of the latents InfoM and InfoC keep (module docstring)."""
    z = np.asarray(codes, dtype=np.float64)
    ranges = z.max(axis=0) - z.min(axis=0)
    if discrete_latents:
        return ranges > 0
    return ranges > active_range_fraction * ranges.max()


def _preference(matrix: np.ndarray, axis: int) -> np.ndarray:
    """max / sum along ``axis``; NaN where the sum is 0."""
    total = matrix.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, matrix.max(axis=axis) / np.where(total > 0, total, 1.0), np.nan)


def infom_infoc(nmi: np.ndarray, active: np.ndarray) -> tuple[float, float | None]:
    """``(InfoM, InfoC)`` from NMI ``(K, d)`` and the active-latent mask (module docstring for the 0/0 cases)."""
    m = np.asarray(nmi, dtype=np.float64)
    mask = np.asarray(active, dtype=bool)
    if m.ndim != 2 or m.shape[0] < 2 or mask.shape != (m.shape[1],):
        raise MetricInputError(f"InfoM/InfoC need NMI (K >= 2 factors, d latents) and d flags, got {m.shape}")
    num_factors, num_active = m.shape[0], int(mask.sum())
    if num_active == 0:
        return 0.0, 0.0
    pruned = m[:, mask]
    per_latent = _preference(pruned, axis=0)
    informed = np.isfinite(per_latent)
    infom = 0.0
    if informed.any():
        infom = float((per_latent[informed].mean() - 1 / num_factors) / (1 - 1 / num_factors))
    if num_active == 1:
        return infom, None
    per_factor = np.nan_to_num(_preference(pruned, axis=1), nan=1 / num_active)
    return infom, float((per_factor.mean() - 1 / num_active) / (1 - 1 / num_active))


def uniform_log_loss(labels: np.ndarray) -> float:
    """Log loss of the uniform prediction over the classes present: what the reference's input-free,
    class-balanced logistic regression predicts."""
    return float(np.log(np.unique(labels).size))


def predictive_information(features: np.ndarray, labels: np.ndarray) -> float:
    """(H_0 − CE) / H_0 of one factor (module docstring); ``features`` already standardised or one-hot."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    h0 = uniform_log_loss(labels)
    if h0 == 0:
        raise MetricInputError("InfoE: a factor with a single class has no information to predict")
    # C = inf is "no penalty" (the reference's penalty=None, deprecated by scikit-learn 1.9); lbfgs on several
    # classes is the multinomial model (the reference's multi_class="multinomial", which 1.9 no longer accepts).
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=np.inf, tol=1e-4, class_weight="balanced", solver="lbfgs", max_iter=100)
    # BLAS threads on a shared machine cost far more than they give on 10,000 x d (0.6 s per fit on one
    # thread, 2.9 s on two busy cores), as in DCI
    with warnings.catch_warnings(), threadpool_limits(1):
        # 100 iterations do not converge on separable classes: the reference stops there too
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, labels)
    cross_entropy = log_loss(labels, model.predict_proba(features), labels=model.classes_)
    return (h0 - cross_entropy) / h0


def infoe(factors: np.ndarray, codes: np.ndarray, discrete_latents: bool = False) -> np.ndarray:
    """InfoE of each factor (mean over factors = InfoE)."""
    if discrete_latents:
        from sklearn.preprocessing import OneHotEncoder

        features = OneHotEncoder().fit_transform(np.asarray(codes))
    else:
        features = standardise(codes)
    f = np.asarray(factors)
    return np.array([predictive_information(features, f[:, k]) for k in range(f.shape[1])])


def infomec(
    data, represent, rng: np.random.Generator, *, protocol="default", pool: CodePool | None = None, **overrides
):
    """InfoM (``score``), InfoE and InfoC of the mean code (module docstring).

    Returns ``infom``, ``infoe``, ``infoc`` (``None`` with one active latent), ``infoe_per_factor``, ``nmi``
    (factors x latents, every latent), ``active_latents`` (flags), ``num_active`` and ``protocol``.
    """
    check_ground_truth(data, "infomec")
    p = resolve("infomec", protocol, overrides)  # also checks the values
    factors, codes = pool_or_sample(data, represent, rng, pool, p["num_train"]).train(p["num_train"])
    names = list(data.factor_names)
    varied = discrete_entropy(factors) > 0
    if varied.sum() < 2:
        raise MetricInputError(f"infomec needs >= 2 factors that vary in the sample, got {int(varied.sum())}")
    kept = factors[:, varied]
    nmi = normalised_mutual_information(
        kept, codes, p["discrete_latents"], int(p["n_neighbors"]), seed=int(rng.integers(2**31 - 1))
    )
    active = active_latents(codes, p["discrete_latents"], p["active_range_fraction"])
    m, c = infom_infoc(nmi, active)
    explicit = infoe(kept, codes, p["discrete_latents"])
    kept_names = [n for n, v in zip(names, varied) if v]
    result = {
        "metric": "infomec",
        "infom": m,
        "infoe": float(explicit.mean()),
        "infoc": c,
        "infoe_per_factor": dict(zip(kept_names, explicit.tolist())),
        "nmi": nmi.tolist(),
        "nmi_factors": kept_names,
        "active_latents": active.tolist(),
        "num_active": int(active.sum()),
        "reference": REFERENCE,
        "protocol": p,
    }
    if c is None:
        result["note"] = "a single active latent: InfoC's normalisation 1 - 1/L is 0, so InfoC is undefined"
    skipped = [n for n, v in zip(names, varied) if not v]
    if skipped:
        result["skipped_factors"] = skipped
    result["score"] = result["infom"]
    return check_score(result, "infomec")
