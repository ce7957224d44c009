"""Training objectives: one module per method, all with the same :class:`Objective` interface.

``build(method, model, method_config, common, optim)`` makes the objective;
``METHODS`` maps each method name to its config class and objective class.

The names are loaded on first use, so ``nsvae.objectives.selection`` (the
Non-Syn VAE's greedy selection, numpy only) can be imported without torch,
as the torch-free metrics do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CommonConfig": "base",
    "Objective": "base",
    "OptimConfig": "base",
    "BetaTCVAEConfig": "beta_tcvae",
    "BetaTCVAEObjective": "beta_tcvae",
    "BetaVAEConfig": "beta_vae",
    "BetaVAEObjective": "beta_vae",
    "DIPVAEConfig": "dip_vae",
    "DIPVAEObjective": "dip_vae",
    "FactorVAEConfig": "factor_vae",
    "FactorVAEObjective": "factor_vae",
    "NonSynConfig": "nonsyn",
    "NonSynObjective": "nonsyn",
    "VAEConfig": "vae",
    "VAEObjective": "vae",
    "greedy_select": "selection",
    "sorted_select": "selection",
}

__all__ = ["METHODS", "build", *_EXPORTS]


def _methods() -> dict[str, tuple[type, type]]:
    from .beta_tcvae import BetaTCVAEConfig, BetaTCVAEObjective
    from .beta_vae import BetaVAEConfig, BetaVAEObjective
    from .dip_vae import DIPVAEConfig, DIPVAEObjective
    from .factor_vae import FactorVAEConfig, FactorVAEObjective
    from .nonsyn import NonSynConfig, NonSynObjective
    from .vae import VAEConfig, VAEObjective

    return {
        "vae": (VAEConfig, VAEObjective),
        "beta_vae": (BetaVAEConfig, BetaVAEObjective),
        "factor_vae": (FactorVAEConfig, FactorVAEObjective),
        "beta_tcvae": (BetaTCVAEConfig, BetaTCVAEObjective),
        "dip_vae": (DIPVAEConfig, DIPVAEObjective),
        "nonsyn": (NonSynConfig, NonSynObjective),
    }


def build(method: str, model, config=None, common=None, optim=None):
    """The objective for ``method`` on ``model`` (default hyper-parameters where ``config`` is None)."""
    from .base import CommonConfig, OptimConfig

    methods = _methods()
    if method not in methods:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    config_cls, objective_cls = methods[method]
    return objective_cls(model, config or config_cls(), common or CommonConfig(), optim or OptimConfig())


def __getattr__(name: str) -> Any:
    if name == "METHODS":
        return _methods()
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
