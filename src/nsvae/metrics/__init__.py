"""Disentanglement metrics: numpy and scikit-learn only, one interface.

Every metric is ``metric(data, represent, rng, *, protocol="default", **overrides) -> dict``
where ``data`` is a :class:`nsvae.data.GroundTruthData`, ``represent(obs) -> (n, d)``
any function (an encoder's mean, the identity, a constant) and ``rng`` a
``numpy.random.Generator``. Chen's MIG, the synergy score and UniBound take
``represent_posterior(obs) -> (mean, logvar)`` instead. ``dci_es`` runs only when named
(:data:`OPT_IN_METRICS`: minutes of random forests). Every result carries
``protocol`` (the exact parameters used; :mod:`.protocols`). See docs/metrics.md.

>>> from nsvae import metrics
>>> sorted(metrics.METRICS)[:3]
['active_units', 'beta_vae_score', 'chen_mig']
"""

from __future__ import annotations

from .active_units import active_units
from .beta_vae import beta_vae_score
from .chen_mig import chen_mig, chen_mig_from_posteriors
from .dci import completeness, dci, disentanglement
from .dci_es import dci_es, explicitness_from_curve
from .evaluate import (
    BESIDE_SCORE,
    DEFAULT_METRICS,
    METRICS,
    OPT_IN_METRICS,
    MetricSpec,
    evaluate,
    headline_scores,
    table_scores,
)
from .factor_vae import factor_vae_score, majority_vote_accuracy
from .infomec import infom_infoc, infomec
from .irs import irs, irs_from_codes
from .mig import mig, mig_from_mi
from .modularity import modularity, modularity_explicitness
from .pid_bounds import pid_bounds, unibound, unibound_from_posteriors
from .protocols import PROTOCOLS, resolve
from .sap import sap, top_two_gap
from .synergy import synergy, synergy_from_posteriors, synergy_proxy
from .unsupervised import gaussian_total_correlation, gaussian_wasserstein_correlation, unsupervised
from .utils import (
    CodePool,
    CodeTable,
    MetricInputError,
    discrete_mutual_info,
    encode_table,
    histogram_discretize,
    make_pool,
)

__all__ = [
    "BESIDE_SCORE",
    "DEFAULT_METRICS",
    "METRICS",
    "OPT_IN_METRICS",
    "PROTOCOLS",
    "CodePool",
    "CodeTable",
    "MetricInputError",
    "MetricSpec",
    "active_units",
    "beta_vae_score",
    "chen_mig",
    "chen_mig_from_posteriors",
    "completeness",
    "dci",
    "dci_es",
    "discrete_mutual_info",
    "disentanglement",
    "encode_table",
    "evaluate",
    "explicitness_from_curve",
    "factor_vae_score",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "headline_scores",
    "histogram_discretize",
    "infom_infoc",
    "infomec",
    "irs",
    "irs_from_codes",
    "majority_vote_accuracy",
    "make_pool",
    "mig",
    "mig_from_mi",
    "modularity",
    "modularity_explicitness",
    "pid_bounds",
    "resolve",
    "sap",
    "synergy",
    "synergy_from_posteriors",
    "synergy_proxy",
    "table_scores",
    "top_two_gap",
    "unibound",
    "unibound_from_posteriors",
    "unsupervised",
]
