"""A sweep file's ``[[stages]]``: the order its runs train in, in named groups.

A study that decides in looks (docs/results.md) needs its runs in a fixed
order: (VAE, Non-Syn) pairs seed by seed, a positive control, and a second
look that runs only when the first one decided nothing. A stage names the
settings and seeds of its runs::

    [[stages]]
    name = "look-1"
    settings = ["vae", "nonsyn"]     # settings: run names without their seed part
    seeds = [0, 1, 2, 3, 4]          # in a stage, runs go seed by seed: vae-seed0, nonsyn-seed0, vae-seed1, ...

    [[stages]]
    name = "look-2"
    settings = ["vae", "nonsyn"]
    seeds = [5, 6, 7]
    on_request = true                # trained only when named: nsvae study NAME --stage look-2

Every run of the file belongs to exactly one stage, and the file's runs are
ordered as the stages list them (so sweep.json, the results table and the
executors all see that order). Without ``[[stages]]`` a file keeps its own order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..errors import UserError

_STAGE_KEYS = ("name", "settings", "seeds", "on_request")


class _Run(Protocol):
    name: str
    setting: str
    seed: int


@dataclasses.dataclass(frozen=True)
class Stage:
    """A named group of a sweep's runs, in training order."""

    name: str
    runs: tuple[str, ...]
    #: Trained only when asked for by name (a later look whose running depends on an earlier one).
    on_request: bool = False


def parse_stages(raw: Any, runs: Sequence[_Run], where: str) -> tuple[tuple[Stage, ...], list[_Run]]:
    """``(stages, runs in stage order)`` from the file's ``stages`` value (None: no stages, the file's order)."""
    if raw is None:
        return (), list(runs)
    if not isinstance(raw, list) or not raw or not all(isinstance(s, Mapping) for s in raw):
        raise UserError(f"{where}: stages must be a list of tables ([[stages]] ...)")
    by_key = {(r.setting, r.seed): r for r in runs}
    settings_known = list(dict.fromkeys(r.setting for r in runs))
    owner: dict[str, str] = {}
    stages: list[Stage] = []
    ordered: list[_Run] = []
    for i, table in enumerate(raw):
        here = f"{where}: stages[{i}]"
        unknown = [k for k in table if k not in _STAGE_KEYS]
        if unknown:
            raise UserError(f"{here}: unknown key {unknown[0]!r} (known: {', '.join(_STAGE_KEYS)})")
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{here}: name must be a non-empty string, got {name!r}")
        if any(s.name == name for s in stages):
            raise UserError(f"{here}: two stages are named {name!r}")
        settings = table.get("settings")
        if not isinstance(settings, list) or not settings or not all(isinstance(s, str) for s in settings):
            raise UserError(f"{here}: settings must be a non-empty list of setting names, got {settings!r}")
        for setting in settings:
            if setting not in settings_known:
                raise UserError(f"{here}: no setting {setting!r} (the file's: {', '.join(settings_known)})")
        seeds = table.get("seeds")
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        ):
            raise UserError(f"{here}: seeds must be a non-empty list of integers, got {seeds!r}")
        on_request = table.get("on_request", False)
        if not isinstance(on_request, bool):
            raise UserError(f"{here}: on_request must be true or false, got {on_request!r}")
        names = []
        for seed in seeds:
            for setting in settings:
                run = by_key.get((setting, seed))
                if run is None:
                    raise UserError(f"{here}: the file has no run of setting {setting!r} with seed {seed}")
                if run.name in owner:
                    raise UserError(f"{here}: run {run.name!r} is already in stage {owner[run.name]!r}")
                owner[run.name] = name
                names.append(run.name)
                ordered.append(run)
        stages.append(Stage(name, tuple(names), on_request))
    left = [r.name for r in runs if r.name not in owner]
    if left:
        raise UserError(f"{where}: run {left[0]!r} is in no stage; with [[stages]] every run must be in one")
    return tuple(stages), ordered
