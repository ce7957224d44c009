"""Many runs of the pipeline: sweeps (:mod:`.sweep`, :mod:`.executors`) and studies (:mod:`.study`).

The typed run config and its presets live one layer lower, in
:mod:`nsvae.config` (training reads them too); their public names are
re-exported here, so ``from nsvae.experiments import Config, load_config,
apply_overrides`` keeps working.
"""

from __future__ import annotations

from ..config import (
    Config,
    DataConfig,
    EvalConfig,
    LogConfig,
    RunConfig,
    apply_overrides,
    dumps,
    from_dict,
    load,
    load_config,
    loads,
    parse_override,
    preset_names,
    preset_text,
    to_dict,
)

__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "LogConfig",
    "RunConfig",
    "apply_overrides",
    "dumps",
    "from_dict",
    "load",
    "load_config",
    "loads",
    "parse_override",
    "preset_names",
    "preset_text",
    "to_dict",
]
