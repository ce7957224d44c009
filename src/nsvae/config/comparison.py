"""What runs compared side by side must share: everything but the objective.

A comparison of methods says something about the objectives only if every
other part of the runs is the same: the network and its initialisation, the
optimiser, the batch size, the number of steps, the data and the likelihood.
:func:`differences` lists the config keys outside the objectives' own tables
on which a set of runs disagrees; ``nsvae results`` and the comparison report
warn with :func:`warning_lines`, and a test holds every sweep preset that
compares methods to an empty list (docs/sweeps.md, "Comparing methods").

Keys that **may** differ between compared runs (:func:`may_differ`):

- ``method`` and the objectives' own tables ``[nonsyn]``, ``[beta_vae]``,
  ``[factor_vae]``, ``[beta_tcvae]``, ``[dip_vae]`` (:data:`OBJECTIVE_SECTIONS`): the
  objective itself, its hyper-parameters, FactorVAE's discriminator and the
  discriminator's own Adam;
- the seeds ``run.seed`` and ``data.seed``: compared runs are several seeds;
- bookkeeping, which changes no number the run computes: ``run.name`` and the
  ``[log]`` table (logging, traversal and checkpoint cadence);
- where and how the same computation runs, equal up to floating-point rounding:
  ``run.device``, ``run.threads``, ``run.deterministic``, ``run.fast_layout``;
- ``common.dataset_size``, which follows from the dataset.

Every other key must agree: ``run.steps``; the whole ``[data]`` table
(``dataset``, ``source`` (for a folder dataset the path *is* the data),
``batch_size``, ``origin``, the crop and channels); the whole ``[model]``
table (``architecture``, ``z_dim``, ``channels``, ``fc_relus``,
``convtranspose_init``); the whole ``[optim]`` table (the VAE's Adam: ``lr``,
``beta1``, ``beta2``, ``eps``, ``eps_placement``); ``common.likelihood``; and
``common.proxy_omega`` (it trains nothing, but the synergy proxy drawn over
training for every run is computed with it).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..objectives import METHODS
from .schema import SECTIONS, Config, flatten, valid_keys

__all__ = [
    "FREE_KEYS",
    "FREE_SECTIONS",
    "OBJECTIVE_SECTIONS",
    "KeyDifference",
    "differences",
    "may_differ",
    "warning_lines",
    "warning_text",
]

#: The config tables that hold one method's objective (named as the method; the plain VAE has none).
OBJECTIVE_SECTIONS: tuple[str, ...] = tuple(s for s in SECTIONS if s in METHODS)
#: Tables compared runs may differ in: the objectives' own and the bookkeeping ``[log]``.
FREE_SECTIONS: tuple[str, ...] = (*OBJECTIVE_SECTIONS, "log", "eval")
#: Single keys outside those tables that compared runs may differ in (see the module's docstring).
FREE_KEYS: tuple[str, ...] = (
    "method",
    "run.seed",
    "data.seed",
    "run.name",
    "run.device",
    "run.threads",
    "run.deterministic",
    "run.fast_layout",
    "common.dataset_size",
)

#: A run's config: a :class:`Config`, or its flattened keys (``{"model.fc_relus": "paper", ...}``).
AnyConfig = Config | Mapping[str, Any]
_ABSENT = object()


def may_differ(key: str) -> bool:
    """Whether compared runs may differ in the dotted config ``key`` (the objective, seeds, bookkeeping)."""
    return key in FREE_KEYS or key.split(".", 1)[0] in FREE_SECTIONS


def _format(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if value is None:
        return "unset"
    return json.dumps(value)


@dataclasses.dataclass(frozen=True)
class KeyDifference:
    """A config key on which compared runs disagree: each value it takes and the runs that have it."""

    key: str
    #: (value, the names of the runs with it), values in order of first appearance.
    values: tuple[tuple[Any, tuple[str, ...]], ...]

    def describe(self, max_names: int = 3) -> str:
        """``model.fc_relus: "paper" (nonsyn, ...); "final" (vae, beta_vae beta=4 and 3 more)``."""
        parts = []
        for value, names in self.values:
            shown = ", ".join(names[:max_names])
            more = f" and {len(names) - max_names} more" if len(names) > max_names else ""
            parts.append(f"{_format(value)} ({shown}{more})")
        return f"{self.key}: " + "; ".join(parts)


def differences(configs: Mapping[str, AnyConfig] | Iterable[tuple[str, AnyConfig]]) -> list[KeyDifference]:
    """The config keys outside the objectives' own tables on which ``configs`` disagree (empty: comparable).

    ``configs``: run (or setting) name -> its resolved config, as a mapping or
    as ``(name, config)`` pairs (a name may repeat: the seeds of one setting);
    a config is a :class:`Config` or its :func:`~nsvae.config.schema.flatten`
    dict. Keys that :func:`may_differ` are not compared. The result is in the
    config file's key order; a key absent from some flattened configs (an
    older run) counts as a difference.
    """
    pairs = list(configs.items()) if isinstance(configs, Mapping) else list(configs)
    flats = [(name, flatten(c) if isinstance(c, Config) else dict(c)) for name, c in pairs]
    order = {key: i for i, key in enumerate(valid_keys())}
    keys = sorted({k for _, flat in flats for k in flat}, key=lambda k: (order.get(k, len(order)), k))
    out = []
    for key in keys:
        if may_differ(key):
            continue
        groups: dict[str, tuple[Any, list[str]]] = {}
        for name, flat in flats:
            value = flat.get(key, _ABSENT)
            marker = "\0absent" if value is _ABSENT else json.dumps(value, sort_keys=True)
            names = groups.setdefault(marker, (value, []))[1]
            if name not in names:
                names.append(name)
        if len(groups) > 1:
            out.append(KeyDifference(key, tuple((value, tuple(names)) for value, names in groups.values())))
    return out


def warning_lines(found: Iterable[KeyDifference], what: str = "runs", max_names: int = 3) -> list[str]:
    """A warning about ``found`` (from :func:`differences`): a headline, then one line per key. Empty if none."""
    found = list(found)
    if not found:
        return []
    tables = ", ".join(f"[{s}]" for s in OBJECTIVE_SECTIONS)
    head = (
        f"warning: the {what} compared here differ outside their objectives' own tables ({tables}), "
        "so a difference in their scores may come from these keys and not from the objectives "
        "(docs/sweeps.md, 'Comparing methods'):"
    )
    return [head, *(d.describe(max_names) for d in found)]


def warning_text(lines: list[str]) -> str:
    """:func:`warning_lines` for a terminal: the headline, then ``  - <key>: ...`` per key ("" when none)."""
    return "\n".join([lines[0], *(f"  - {line}" for line in lines[1:])]) if lines else ""
