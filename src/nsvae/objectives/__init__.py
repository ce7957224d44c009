"""Training objectives: one module per method, all with the same :class:`Objective` interface.

``build(method, model, method_config, common, optim)`` makes the objective;
``METHODS`` maps each method name to its config class and objective class.
"""

from __future__ import annotations

from .base import CommonConfig, Objective, OptimConfig
from .beta_tcvae import BetaTCVAEConfig, BetaTCVAEObjective
from .beta_vae import BetaVAEConfig, BetaVAEObjective
from .factor_vae import FactorVAEConfig, FactorVAEObjective
from .nonsyn import NonSynConfig, NonSynObjective
from .selection import greedy_select, sorted_select
from .vae import VAEConfig, VAEObjective

#: method name -> (its config dataclass, its objective class)
METHODS = {
    "vae": (VAEConfig, VAEObjective),
    "beta_vae": (BetaVAEConfig, BetaVAEObjective),
    "factor_vae": (FactorVAEConfig, FactorVAEObjective),
    "beta_tcvae": (BetaTCVAEConfig, BetaTCVAEObjective),
    "nonsyn": (NonSynConfig, NonSynObjective),
}


def build(method: str, model, config=None, common: CommonConfig | None = None, optim: OptimConfig | None = None):
    """The objective for ``method`` on ``model`` (default hyper-parameters where ``config`` is None)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    config_cls, objective_cls = METHODS[method]
    return objective_cls(model, config or config_cls(), common or CommonConfig(), optim or OptimConfig())


__all__ = [
    "METHODS",
    "BetaTCVAEConfig",
    "BetaVAEConfig",
    "CommonConfig",
    "FactorVAEConfig",
    "NonSynConfig",
    "Objective",
    "OptimConfig",
    "VAEConfig",
    "build",
    "greedy_select",
    "sorted_select",
]
