"""Run several metrics on one representation with shared encodings: the library core of ``nsvae evaluate``.

1. With a finite, noise-free dataset (dSprites) and a metric that needs many
   encodings (β-VAE score: 1.9 million images under the default protocol;
   FactorVAE score: 0.96 million; Chen's MIG: every image), every image is
   encoded **once** into a :class:`~nsvae.metrics.utils.CodeTable` and the
   metrics look codes up by image index (``table="auto"``). For a
   deterministic representation this gives exactly the numbers the metrics
   would get by encoding their own batches.
2. One pool of random points (factors and codes, and the posterior when
   given) as large as the chosen metrics' protocols ask for (``10,000 +
   5,000`` under the default protocol) is shared by MIG, DCI, SAP, modularity/explicitness,
   the unsupervised scores, active units, the FactorVAE score's global
   variances, the synergy score, IRS, InfoMEC and DCI-ES. disentanglement_lib draws these points
   separately for each metric (each with random seed 0); sharing them changes
   which random points are used, not the protocol.
3. Every metric gets its own random generator derived from ``seed`` and its
   name, so a metric's result does not depend on which other metrics ran.

The result is the content of ``eval.json``: every metric's dict (scores and
its ``protocol``), the seed, the versions of numpy, scipy, scikit-learn and
nsvae, and the seconds each step took.
"""

from __future__ import annotations

import dataclasses
import platform
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .active_units import active_units
from .beta_vae import beta_vae_score
from .chen_mig import chen_mig
from .dci import dci
from .dci_es import dci_es
from .factor_vae import factor_vae_score
from .infomec import infomec
from .irs import irs
from .mig import mig
from .modularity import modularity_explicitness
from .pid_bounds import unibound
from .protocols import resolve
from .sap import sap
from .synergy import synergy
from .unsupervised import unsupervised
from .utils import CodeTable, MetricInputError, Represent, RepresentPosterior, encode_table, jsonable, make_pool


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    """What :func:`evaluate` needs to know of a metric; adding a metric is one :data:`METRICS` entry.

    ``fn(data, source, rng, protocol=..., **params)`` returns the metric's result dict. ``source`` is the code
    (``represent``) or, with ``needs_posterior``, the Gaussian posterior (``represent_posterior``)."""

    fn: Callable[..., dict]
    #: Reads the encoder's posterior (mean, logvar), not the code alone.
    needs_posterior: bool = False
    #: Reads the shared pool of encoded points (all metrics of one evaluation share one pool, drawn once).
    uses_pool: bool = True
    #: Whether a metric that does not always read the pool does under these resolved parameters (Chen's MIG with
    #: ``population = "pool"``).
    pool_when: Callable[[dict], bool] | None = None
    #: Parameters that ask the pool for training points (the pool is as large as the largest ask).
    pool_train_params: tuple[str, ...] = ("num_train", "num_variance_estimate")
    #: Gains from encoding the whole dataset once (``table="auto"``): it draws many images per factor value.
    tabulates: bool = False
    #: Compares latents with each other, so a code needs at least 2 (checked before any image is encoded).
    needs_two_latents: bool = True
    #: Takes ``n_jobs`` (fits in parallel; the same numbers).
    parallel: bool = False
    #: Run only when named (too slow for every evaluation).
    opt_in: bool = False


METRICS: dict[str, MetricSpec] = {
    "beta_vae_score": MetricSpec(beta_vae_score, uses_pool=False, tabulates=True, needs_two_latents=False),
    "factor_vae_score": MetricSpec(factor_vae_score, tabulates=True, needs_two_latents=False),
    "mig": MetricSpec(mig),
    "dci": MetricSpec(dci, parallel=True),
    "sap": MetricSpec(sap),
    "modularity_explicitness": MetricSpec(modularity_explicitness),
    "unsupervised": MetricSpec(unsupervised),
    "active_units": MetricSpec(active_units, needs_two_latents=False),
    "chen_mig": MetricSpec(
        chen_mig,
        needs_posterior=True,
        uses_pool=False,
        pool_when=lambda params: params.get("population") == "pool",
        pool_train_params=("num_samples",),
        tabulates=True,
    ),
    # synergy, unibound: every information term is exact against every posterior (reference="auto" -> "table").
    "synergy": MetricSpec(synergy, needs_posterior=True, tabulates=True),
    "unibound": MetricSpec(unibound, needs_posterior=True, tabulates=True),
    "irs": MetricSpec(irs, needs_two_latents=False),
    "infomec": MetricSpec(infomec, needs_two_latents=False),
    # DCI-ES fits 12 random forests of 100 trees per factor (minutes on 10,000 points).
    "dci_es": MetricSpec(dci_es, parallel=True, opt_in=True),
}
#: Metrics run only when named.
OPT_IN_METRICS = tuple(name for name, spec in METRICS.items() if spec.opt_in)
#: The metrics ``evaluate`` runs by default: all but :data:`OPT_IN_METRICS`.
DEFAULT_METRICS = tuple(name for name in METRICS if name not in OPT_IN_METRICS)
#: Metrics that need a code of at least 2 latent dimensions (the others, such as the β-VAE and FactorVAE scores or
#: active units, score a single latent too). ``nsvae evaluate`` checks this against the model's z_dim first.
NEEDS_TWO_LATENTS = frozenset(name for name, spec in METRICS.items() if spec.needs_two_latents)


def uses_pool(name: str, protocol: str, overrides: dict[str, dict]) -> bool:
    """Whether metric ``name`` reads the shared pool under this protocol and these overrides."""
    spec = METRICS[name]
    if spec.uses_pool:
        return True
    return spec.pool_when is not None and spec.pool_when(resolve(name, protocol, overrides.get(name)))


def pool_sizes(metrics: Sequence[str], protocol: str, overrides: dict[str, dict]) -> tuple[int, int]:
    """The train/test points the shared pool needs: the largest any chosen pool metric asks for."""
    train = test = 0
    for name in metrics:
        if not uses_pool(name, protocol, overrides):
            continue
        p = resolve(name, protocol, overrides.get(name))
        train = max(train, *(int(p.get(key, 0)) for key in METRICS[name].pool_train_params))
        test = max(test, int(p.get("num_test", 0)))
    return train, test


def versions() -> dict[str, str]:
    import scipy
    import sklearn

    from .. import __version__

    return {
        "nsvae": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def metric_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one metric: a function of the seed and the metric's name only."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def tabulable(data) -> bool:
    """Whether ``data`` has a fixed set of images to encode once (``table=True``): it can fetch images by index
    and draws no new noise per sample."""
    return hasattr(data, "observations_at") and not getattr(data, "draws_noise", False)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False)


def evaluate(
    data,
    represent: Represent | None = None,
    *,
    represent_posterior: RepresentPosterior | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    protocol: str = "default",
    overrides: dict[str, dict] | None = None,
    seed: int = 0,
    table: str | bool = "auto",
    batch_size: int = 1024,
    progress: bool = True,
    n_jobs: int = 1,
    on_error: str = "raise",
    on_metric: Callable[[dict], None] | None = None,
) -> dict:
    """Score one representation with several metrics; returns the dict for ``eval.json``.

    ``represent(obs) -> (n, d)`` is the code to score (an encoder's mean);
    ``represent_posterior(obs) -> (mean, logvar)`` is needed by ``chen_mig``
    and ``synergy`` and, when given alone, provides ``represent`` (the mean).
    ``overrides`` maps a metric name to protocol parameters. ``table``:
    ``"auto"`` (encode the whole dataset once when it is finite and
    noise-free and a table-hungry metric runs), ``True`` or ``False``.
    ``n_jobs`` fits DCI's per-factor classifiers and DCI-ES's forests in parallel (same numbers).
    ``on_error``: ``"raise"`` (a metric's error ends the evaluation) or ``"record"`` (the metric's one-line error
    goes to the result's ``failed`` table, ``{metric: message}``, and the other metrics still run): a metric that
    cannot be computed no longer costs the ones that can. ``on_metric(result)`` is called after every metric
    with the result so far (the same shape as the one returned), so a caller can keep what an interruption
    would otherwise lose.
    """
    if on_error not in ("raise", "record"):
        raise MetricInputError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise MetricInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    if represent is None and represent_posterior is None:
        raise MetricInputError("evaluate needs represent(obs) or represent_posterior(obs)")
    need_post = [m for m in metrics if METRICS[m].needs_posterior]
    if need_post and represent_posterior is None:
        raise MetricInputError(
            f"{', '.join(need_post)} need the encoder's Gaussian posterior: pass "
            "represent_posterior(obs) -> (mean, logvar), or leave these metrics out"
        )
    mean_is_code = represent is None
    if represent is None:

        def represent(obs):
            return np.asarray(represent_posterior(obs)[0])

    overrides = dict(overrides or {})
    timings: dict[str, float] = {}
    finite = tabulable(data)
    use_table = table is True or (table == "auto" and finite and any(METRICS[m].tabulates for m in metrics))
    if use_table and not finite:
        raise MetricInputError(f"{getattr(data, 'name', data)} cannot be tabulated (it draws per-sample noise)")
    code_source: Any = represent
    post_source: Any = represent_posterior
    if use_table:
        t0 = time.perf_counter()
        bar = _progress(len(data), progress, "encoding")
        try:
            if represent_posterior is not None:
                post_source = encode_table(
                    data, represent_posterior=represent_posterior, batch_size=batch_size, progress=bar
                )
                mean_is_code = mean_is_code or _same_as_mean(represent, post_source)
                if mean_is_code:
                    code_source = post_source
            if code_source is represent:
                code_source = encode_table(data, represent=represent, batch_size=batch_size, progress=bar)
        finally:
            if bar is not None:
                bar.close()
        timings["encode_table"] = time.perf_counter() - t0
    elif represent_posterior is not None and not mean_is_code:
        mean_is_code = _same_as_mean(represent, None, data, represent_posterior)
    t0 = time.perf_counter()
    pool_metrics = [m for m in metrics if uses_pool(m, protocol, overrides)]
    pool_train, pool_test = pool_sizes(metrics, protocol, overrides)
    pool = post_pool = None
    if any(METRICS[m].needs_posterior for m in pool_metrics):
        post_pool = make_pool(
            data,
            post_source,
            metric_rng(seed, "pool"),
            pool_train,
            pool_test,
            represent_posterior=None if isinstance(post_source, CodeTable) else post_source,
        )
        if mean_is_code:
            pool = post_pool
    if pool is None and any(not METRICS[m].needs_posterior for m in pool_metrics):
        pool = make_pool(data, code_source, metric_rng(seed, "pool"), pool_train, pool_test)
    timings["pool"] = time.perf_counter() - t0
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    header = {
        "seed": int(seed),
        "protocol": protocol,
        "dataset": data.describe() if hasattr(data, "describe") else str(data),
        "versions": versions(),
        "encoding": {"table": bool(use_table), "pool": [pool_train, pool_test] if pool_metrics else None},
    }

    def result_so_far() -> dict:
        record = {**header, "metrics": results, "seconds": timings}
        if failed:
            record["failed"] = failed
        return jsonable(record)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(metrics), desc="metrics", unit="metric", leave=False)
    for name in metrics:
        spec = METRICS[name]
        if bar is not None:
            bar.set_postfix_str(name)
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = dict(overrides.get(name, {}))
        if name in pool_metrics:
            kwargs["pool"] = post_pool if spec.needs_posterior else pool
        if spec.parallel:
            kwargs.setdefault("n_jobs", n_jobs)
        source = post_source if spec.needs_posterior else code_source
        try:
            results[name] = spec.fn(data, source, metric_rng(seed, name), protocol=protocol, **kwargs)
        except _RECORDABLE as exc:
            if on_error == "raise":
                raise
            failed[name] = " ".join(str(exc).split()) or type(exc).__name__
        timings[name] = time.perf_counter() - t0
        if bar is not None:
            bar.update(1)
        if on_metric is not None:
            on_metric(result_so_far())
    if bar is not None:
        bar.close()
    return result_so_far()


#: What ``on_error="record"`` keeps going after: a metric's refusal of its input (MetricInputError is a
#: ValueError), numerical failures, and a metric too large for the memory left. Anything else is a bug and raises.
_RECORDABLE = (ValueError, ArithmeticError, MemoryError)


def _same_as_mean(represent, tab: CodeTable | None, data=None, represent_posterior=None, probe: int = 64) -> bool:
    """Whether ``represent`` returns the posterior mean (checked on a few images), so one encoding serves both."""
    data = tab.data if tab is not None else data
    if not hasattr(data, "observations_at"):
        return False
    idx = np.arange(min(probe, len(data)))
    obs = data.observations_at(idx) if not getattr(data, "draws_noise", False) else None
    if obs is None:
        return False
    mean = tab.codes[idx] if tab is not None else np.asarray(represent_posterior(obs)[0], dtype=np.float64)
    codes = np.asarray(represent(obs), dtype=np.float64)
    return codes.shape == mean.shape and bool(np.allclose(codes, mean, rtol=1e-6, atol=1e-7))


def headline_scores(result: dict[str, Any]) -> dict[str, float]:
    """One number per metric (its ``score``) for tables and reports."""
    out = {}
    for name, value in result.get("metrics", {}).items():
        if isinstance(value, dict) and isinstance(value.get("score"), (int, float)):
            out[name] = float(value["score"])
    return out


#: Fields shown beside a metric's headline score wherever scores are put in a table (``nsvae results``, the
#: comparison report): the synergy metric's score is S_max, and whole minus sum (WMS) goes beside it.
BESIDE_SCORE: dict[str, tuple[str, ...]] = {"synergy": ("wms",)}


def table_scores(result: dict[str, Any]) -> dict[str, float]:
    """:func:`headline_scores`, each followed by the fields :data:`BESIDE_SCORE` names for its metric, as
    ``"<metric>.<field>"``: ``{"mig": ..., "synergy": S_max, "synergy.wms": WMS, ...}``."""
    metrics = result.get("metrics", {})
    out = {}
    for name, score in headline_scores(result).items():
        out[name] = score
        for field in BESIDE_SCORE.get(name, ()):
            value = metrics[name].get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}.{field}"] = float(value)
    return out
