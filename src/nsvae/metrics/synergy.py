"""Synergy of a representation about each ground-truth factor (the project's own metric).

For a factor v_k and the latents z = (z_1..z_d) of the encoder's posterior:

- S_max(z; v_k) = I(z; v_k) - I_max, with I_max = sum_v p(v) max_j I(z_j; v_k = v)
  (Williams & Beer 2010; the synergy measure of the Non-Syn VAE);
- WMS(z; v_k) = I(z; v_k) - sum_j I(z_j; v_k) (negative under redundancy);

both divided by H(v_k), so 1 means "everything the code knows about v_k is
only in combinations of latents" and 0 "no synergy".

**Single-latent terms** I(z_j; v_k) and the specific information
I(z_j; v_k = v) come from :mod:`nsvae.info` on the joint table of v_k and
the 20-bin histogram of one posterior sample z_j ~ q(z_j|x) per point
(``num_train`` random points; ``codes="mean"`` bins the means instead),
Miller–Madow corrected (:func:`single_latent_terms`).

**Joint term** I(z; v_k) cannot be tabulated (20^d cells). It is
H(v_k) minus the cross-entropy of a classifier q~(v | z) on samples
z_i ~ q(z|x_i), mixed with the prior, q~ = (1 - 1e-3) q + 1e-3 p(v), so
that it is never 0. Any classifier's cross-entropy is >= H(v|z), so this is
a lower bound of I(z; v_k); it is raised to the best single-latent term
when that is larger (data processing: I(z; v) >= I(z_j; v)). So S_max and
WMS here are conservative: sampling noise aside, they do not report
synergy that is not there. Two classifiers:

- with the posteriors of **every** image (a :class:`CodeTable` with
  logvar, as :func:`nsvae.metrics.evaluate` builds for finite noise-free
  datasets), the exact class posterior of the model's joint
  (:func:`joint_information_full_table`): tight;
- otherwise the leave-one-out mixture of the ``num_samples`` pool
  posteriors, widths scaled by the best of 1, 2, 4, 8, 16 per factor
  (:func:`joint_information_lower_bound`): consistent as the reference set
  grows, but loose for factors with many classes.

H(v_k) and p(v) of the normalisation are the plug-in values of the pool points.

**Training-time proxy**: the Non-Syn VAE's penalty on held-out points: the
mean KL(q(z_j|x) || N(0, 1)) per latent over the pool, the exact greedy scan
of ``nsvae.objectives.selection.greedy_select`` with ``omega``, and the KL of
the worst set (nats).
"""

from __future__ import annotations

import math

import numpy as np

from .. import info
from ..objectives.selection import greedy_select  # numpy only: keeps the metrics torch-free
from .protocols import resolve
from .utils import (
    CodePool,
    CodeTable,
    MetricInputError,
    check_ground_truth,
    check_posterior,
    check_score,
    contingency,
    discrete_entropy,
    histogram_discretize,
    make_pool,
)

REFERENCE = (
    "S_max: Williams & Beer 2010 (arXiv:1004.2515); WMS: Griffith & Koch 2014; "
    "Non-Syn VAE: Barrientos & Sootla 2018; estimators: docs/metrics.md"
)
_PRIOR_MIX = 1e-3
#: Which codes the single-latent terms see: posterior samples z ~ q(z|x) (the joint term's variable) or means.
CODE_KINDS = ("sampled", "mean")
BIAS_CORRECTIONS = ("miller-madow", "none")
#: The joint term's reference posteriors: the whole dataset when tabulated ("auto"), always ("table"), or the pool.
JOINT_REFERENCES = ("auto", "table", "pool")
_LOG_2PI = math.log(2.0 * math.pi)


def single_latent_terms(
    codes_binned: np.ndarray, factor: np.ndarray, bias_correction: str = "miller-madow"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(I(z_j; v) per j, specific information I(z_j; v = .) (d, |V|), p(v))`` in nats via nsvae.info.

    With ``bias_correction="miller-madow"`` each specific information
    I(z_j; v = y) loses (B_y - 1) / (2 n_y) - (B - 1) / (2 n), where B_y bins
    are occupied among the n_y points of class y and B among all n points;
    averaged over p(y) this is exactly the Miller–Madow correction of the
    mutual information, (B_zv - B_z - B_v + 1) / (2n), so the corrected terms
    stay consistent: sum_y p(y) I(z_j; v = y) = I(z_j; v). It removes most
    of the plug-in bias of about (20 - 1)(|V| - 1) / (2n) nats per latent,
    which for 40 orientations and n = 10,000 is 0.04 nats per latent, 0.4
    over ten uninformative latents (measured: 0.37 -> 0.08; sparsely filled
    tail bins keep the rest).
    """
    if bias_correction not in BIAS_CORRECTIONS:
        raise MetricInputError(f"synergy: bias_correction must be one of {BIAS_CORRECTIONS}, got {bias_correction!r}")
    d = codes_binned.shape[1]
    mis, specs = np.empty(d), []
    p_v = None
    for j in range(d):
        table = contingency(codes_binned[:, j], factor)
        spec = info.specific_information(table, 0, base="e")
        if bias_correction == "miller-madow":
            n = len(factor)
            n_y = table.sum(axis=0) * n
            occupied_y = (table > 0).sum(axis=0)
            occupied = int((table.sum(axis=1) > 0).sum())
            spec = spec - ((occupied_y - 1) / (2.0 * n_y) - (occupied - 1) / (2.0 * n))
        p_v = table.sum(axis=0)
        specs.append(spec)
        mis[j] = float(np.sum(p_v * spec))
    return mis, np.array(specs), p_v


#: Posterior widths are scaled by these factors; the bound keeps the best (any q(v|z) gives a valid bound).
BANDWIDTHS = (1.0, 2.0, 4.0, 8.0, 16.0)


def joint_information_lower_bound(
    z: np.ndarray,
    mean: np.ndarray,
    logvar: np.ndarray,
    factors: np.ndarray,
    chunk: int = 512,
    bandwidths=BANDWIDTHS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(I^(z; v_k), H(v_k), chosen bandwidth)`` per factor in nats, by the leave-one-out posterior-mixture classifier.

    ``z`` (n, d) are samples of the posteriors ``(mean, logvar)`` (n, d) of the
    same n points, whose classes are ``factors`` (n, K). Row i is scored
    against the mixture of the other n - 1 posteriors, their standard
    deviations scaled by each of ``bandwidths`` (with few reference points in
    a large factor space the unscaled mixture is overconfident); the smallest
    cross-entropy per factor is kept (a choice among 5 classifiers on n
    points: its optimism is negligible next to the sampling noise).
    """
    n, d = mean.shape
    a = np.exp(-logvar)  # 1 / sigma^2
    ma = mean * a
    quad_m = -0.5 * (mean * ma).sum(axis=1)
    log_norm = -0.5 * logvar.sum(axis=1)  # per reference m; the bandwidth adds a constant common to every m
    k = factors.shape[1]
    onehots, priors, h_v = [], [], np.empty(k)
    for i in range(k):
        values, inv = np.unique(factors[:, i], return_inverse=True)
        oh = np.zeros((n, len(values)))
        oh[np.arange(n), inv] = 1.0
        onehots.append((oh, inv.reshape(-1)))
        pv = oh.mean(axis=0)
        priors.append(pv)
        h_v[i] = float(-(pv * np.log(pv)).sum())
    bw = np.asarray(bandwidths, dtype=np.float64)
    ce = np.zeros((len(bw), k))
    for start in range(0, n, chunk):
        zi = z[start : start + chunk]
        rows = np.arange(len(zi))
        # -0.5 sum_j (z_ij - mu_mj)^2 / sigma_mj^2
        quad = -0.5 * (zi * zi) @ a.T + zi @ ma.T + quad_m[None, :]
        for b_idx, t in enumerate(bw):
            logk = quad / (t * t) + log_norm[None, :]
            logk[rows, start + rows] = -np.inf  # leave one out
            logk -= logk.max(axis=1, keepdims=True)
            w = np.exp(logk)
            total = w.sum(axis=1)
            for i in range(k):
                oh, inv = onehots[i]
                own = (w @ oh)[rows, inv[start : start + chunk]] / total
                p = (1.0 - _PRIOR_MIX) * own + _PRIOR_MIX * priors[i][inv[start : start + chunk]]
                ce[b_idx, i] -= np.log(p).sum()
    ce /= n
    best = ce.argmin(axis=0)
    return np.maximum(h_v - ce[best, np.arange(k)], 0.0), h_v, bw[best]


def joint_information_full_table(
    z: np.ndarray,
    factors: np.ndarray,
    table_mean: np.ndarray,
    table_logvar: np.ndarray,
    table_factors: np.ndarray | None = None,
    grid: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
    chunk: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """``(I^(z; v_k), H(v_k))`` per factor in nats, with the posterior of v_k given z under the whole dataset.

    The model's joint is x uniform over the N images of the table and
    z ~ q(z|x), so its exact class posterior is
    q(v | z) = sum_{m: v_m = v} q(z|x_m) / sum_m q(z|x_m), summed over **every**
    image (the scored point included: it belongs to the population).
    Scoring samples ``z`` (n, d) of uniformly drawn images with classes
    ``factors`` (n, K), I^ = H(v_k) - mean_i [-log q~(v_k(x_i) | z_i)] with
    q~ = (1 - 1e-3) q + 1e-3 p(v): a lower bound of I(z; v_k) that is tight
    up to the 1e-3 mixture (at most 0.001 nats) and Monte Carlo noise.

    The class sums need ``table_factors`` (N, K), or ``grid = (all_factor_sizes,
    exposed_axes)`` when the table is in row-major factor order (dSprites),
    which turns them into reshapes and sums. Memory: a few (chunk, N) arrays
    (float32 weights), about 0.3 GB for dSprites at chunk 32.
    """
    mean = np.asarray(table_mean, dtype=np.float64)
    n_table, d = mean.shape
    a = np.exp(-np.asarray(table_logvar, dtype=np.float64))
    ma = mean * a
    const = -0.5 * (mean * ma).sum(axis=1) - 0.5 * np.asarray(table_logvar, dtype=np.float64).sum(axis=1)
    k = factors.shape[1]
    if grid is not None:
        sizes, exposed = grid
        if int(np.prod(sizes)) != n_table:
            raise MetricInputError(f"synergy: the factor grid {sizes} does not match the table's {n_table} rows")
        priors = [np.full(sizes[axis], 1.0 / sizes[axis]) for axis in exposed]
    else:
        if table_factors is None or len(table_factors) != n_table:
            raise MetricInputError("synergy: the full-table joint term needs the factors of every table row")
        onehots, priors = [], []
        for i in range(k):
            values = np.asarray(table_factors[:, i])
            size = int(max(values.max(), factors[:, i].max())) + 1
            oh = np.zeros((n_table, size), dtype=np.float32)
            oh[np.arange(n_table), values] = 1.0
            onehots.append(oh)
            priors.append(oh.mean(axis=0).astype(np.float64))
    h_v = np.array([float(-(pv[pv > 0] * np.log(pv[pv > 0])).sum()) for pv in priors])
    ce = np.zeros(k)
    for start in range(0, len(z), chunk):
        zc = np.asarray(z[start : start + chunk], dtype=np.float64)
        fc = factors[start : start + chunk]
        rows = np.arange(len(zc))
        logk = -0.5 * (zc * zc) @ a.T + zc @ ma.T + const[None, :]
        logk -= logk.max(axis=1, keepdims=True)
        w = np.exp(logk.astype(np.float32))
        del logk
        total = w.sum(axis=1, dtype=np.float64)
        if grid is not None:
            wg = w.reshape(len(zc), *sizes)
        for i in range(k):
            if grid is not None:
                axis = exposed[i]
                others = tuple(ax + 1 for ax in range(len(sizes)) if ax != axis)
                sums = wg.sum(axis=others, dtype=np.float64)
            else:
                sums = (w @ onehots[i]).astype(np.float64)
            own = sums[rows, fc[:, i]] / total
            ce[i] -= np.log((1.0 - _PRIOR_MIX) * own + _PRIOR_MIX * priors[i][fc[:, i]]).sum()
    ce /= len(z)
    return np.maximum(h_v - ce, 0.0), h_v


def _table_grid(data, n_table: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(all factor sizes, exposed axes)`` when the table's rows are the row-major factor grid, else ``None``."""
    sizes = getattr(data, "all_factor_sizes", None)
    exposed = getattr(data, "exposed_factors", None)
    if sizes is None or exposed is None or int(np.prod(sizes)) != n_table:
        return None
    probe = np.array([0, n_table - 1, n_table // 2, n_table // 3])
    expected = np.stack(np.unravel_index(probe, tuple(sizes)), axis=1)[:, list(exposed)]
    return (
        (tuple(int(s) for s in sizes), tuple(int(e) for e in exposed))
        if np.array_equal(data.factors_of(probe), expected)
        else None
    )


def synergy_proxy(mean: np.ndarray, logvar: np.ndarray, omega: float) -> dict:
    """The Non-Syn VAE penalty on given posteriors: KL of the greedy worst set (nats, mean over points)."""
    kl = 0.5 * (mean**2 + np.exp(logvar) - logvar - 1.0).mean(axis=0)
    best, worst = greedy_select(kl.tolist(), omega)
    return {
        "kl_per_dim": kl.tolist(),
        "best": best,
        "worst": worst,
        "kl_worst": float(kl[worst].sum()) if worst else 0.0,
        "kl_total": float(kl.sum()),
        "omega": omega,
    }


def synergy_from_posteriors(
    factors: np.ndarray,
    mean: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    num_bins: int = 20,
    num_samples: int | None = None,
    names=None,
    codes: str = "sampled",
    bias_correction: str = "miller-madow",
    reference: dict | None = None,
) -> dict:
    """The synergy core on explicit posteriors of random points and their factor classes.

    ``codes="sampled"`` (default) bins one posterior sample z ~ q(z|x) per
    point for the single-latent terms, the same random variable as the
    joint term; ``"mean"`` bins the posterior means, as the discrete MIG
    does (latents whose means vary far less than their posterior noise
    then look informative, which inflates the single terms).

    ``reference``: the whole dataset's posteriors (``mean``, ``logvar``, and
    ``factors`` or ``grid``) for :func:`joint_information_full_table`,
    scoring the first ``num_samples`` points; without it the joint term is
    the leave-one-out mixture of the ``num_samples`` points themselves.
    """
    mu, lv = check_posterior(mean, logvar, len(factors))
    factors = np.asarray(factors)
    if mu.shape[1] < 2:
        raise MetricInputError("synergy among latents needs at least 2 latent dimensions")
    if codes not in CODE_KINDS:
        raise MetricInputError(f"synergy: codes must be one of {CODE_KINDS}, got {codes!r}")
    names = list(names) if names is not None else [f"factor_{i}" for i in range(factors.shape[1])]
    z_all = mu + np.exp(0.5 * lv) * rng.standard_normal(mu.shape)
    binned = histogram_discretize(z_all if codes == "sampled" else mu, num_bins)
    m = len(mu) if num_samples is None else min(num_samples, len(mu))
    if reference is None:
        joint, _, bandwidth = joint_information_lower_bound(z_all[:m], mu[:m], lv[:m], factors[:m])
        estimator = "pool mixture (leave-one-out)"
    else:
        joint, _ = joint_information_full_table(
            z_all[:m],
            factors[:m],
            reference["mean"],
            reference["logvar"],
            reference.get("factors"),
            reference.get("grid"),
        )
        bandwidth = np.ones(factors.shape[1])
        estimator = "whole-dataset posterior"
    h_plugin = discrete_entropy(factors)
    per_factor, s_vals, w_vals = {}, [], []
    for i, name in enumerate(names):
        mis, specs, p_v = single_latent_terms(binned, factors[:, i], bias_correction)
        i_max = float(np.sum(p_v * np.nan_to_num(specs, nan=0.0).max(axis=0)))
        h = float(h_plugin[i])
        if h <= 0:
            per_factor[name] = {"skipped": "the factor takes one value in the sample"}
            continue
        # data processing: I(z; v) >= I(z_j; v) >= I(bin(z_j); v), so the best single term is also a lower bound
        i_joint = max(float(joint[i]), float(mis.max()))
        s = max(0.0, i_joint - i_max) / h
        w = (i_joint - float(mis.sum())) / h
        per_factor[name] = {
            "s_max": s,
            "wms": w,
            "i_joint": i_joint,
            "i_joint_mixture": float(joint[i]),
            "i_max": i_max,
            "sum_single": float(mis.sum()),
            "max_single": float(mis.max()),
            "entropy": h,
            "joint_bandwidth": float(bandwidth[i]),
            "joint_estimator": estimator,
        }
        s_vals.append(s)
        w_vals.append(w)
    if not s_vals:
        raise MetricInputError("synergy: every factor takes a single value in the sample")
    return {"s_max": float(np.mean(s_vals)), "wms": float(np.mean(w_vals)), "per_factor": per_factor}


def synergy(
    data,
    represent_posterior,
    rng: np.random.Generator,
    *,
    protocol="default",
    pool: CodePool | None = None,
    **overrides,
) -> dict:
    """Normalised S_max and WMS of the latents about each factor, and the greedy-worst-set KL proxy.

    ``represent_posterior(obs) -> (mean, logvar)`` or a posterior
    :class:`CodeTable`; ``pool`` (with ``logvar``) supplies the points.
    Returns ``score`` (mean normalised S_max), ``s_max``, ``wms``,
    ``per_factor`` and ``proxy``.
    """
    check_ground_truth(data, "synergy")
    p = resolve("synergy", protocol, overrides)
    need = max(p["num_train"], p["num_samples"])
    if pool is None or pool.logvar is None:
        if isinstance(represent_posterior, CodeTable):
            pool = make_pool(data, represent_posterior, rng, need)
        else:
            pool = make_pool(data, None, rng, need, represent_posterior=represent_posterior)
    if pool.logvar is None:
        raise MetricInputError("synergy needs posteriors: pass represent_posterior(obs) -> (mean, logvar)")
    if pool.num_train < need:
        raise MetricInputError(f"synergy needs {need} pool points, the pool has {pool.num_train}")
    if p["num_reference"] != p["num_samples"]:
        raise MetricInputError("synergy: num_reference must equal num_samples (leave-one-out on one set)")
    if p["joint_reference"] not in JOINT_REFERENCES:
        raise MetricInputError(
            f"synergy: joint_reference must be one of {JOINT_REFERENCES}, got {p['joint_reference']!r}"
        )
    factors, mean = pool.factors[: p["num_train"]], pool.codes[: p["num_train"]]
    logvar = pool.logvar[: p["num_train"]]
    reference, num_joint = None, p["num_samples"]
    table = represent_posterior if isinstance(represent_posterior, CodeTable) else None
    if p["joint_reference"] == "table" and (table is None or table.logvar is None):
        raise MetricInputError(
            "synergy: joint_reference='table' needs the posteriors of every image (a CodeTable with logvar); "
            "use evaluate(), which encodes finite noise-free datasets once, or joint_reference='pool'"
        )
    if p["joint_reference"] != "pool" and table is not None and table.logvar is not None:
        grid = _table_grid(data, len(table.codes))
        reference = {"mean": table.codes, "logvar": table.logvar, "grid": grid}
        if grid is None:
            reference["factors"] = data.factors_of(np.arange(len(table.codes)))
        num_joint = p["num_joint"]
    core = synergy_from_posteriors(
        factors,
        mean,
        logvar,
        rng,
        p["num_bins"],
        num_joint,
        data.factor_names,
        codes=p["codes"],
        bias_correction=p["bias_correction"],
        reference=reference,
    )
    result = {
        "metric": "synergy",
        "score": core["s_max"],
        "s_max": core["s_max"],
        "wms": core["wms"],
        "per_factor": core["per_factor"],
        "proxy": synergy_proxy(mean, logvar, p["omega"]),
        "units": "fractions of H(v_k); raw terms in nats",
        "reference": REFERENCE,
        "protocol": p,
    }
    return check_score(result, "synergy")
