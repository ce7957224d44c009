"""Many runs of the pipeline: sweeps (:mod:`.sweep`, :mod:`.executors`) and studies (:mod:`.study`).

The typed run config and its presets live one layer lower, in
:mod:`nsvae.config` (training reads them too); their public names are
re-exported here, so ``from nsvae.experiments import Config, load_config,
apply_overrides`` keeps working.
"""

from __future__ import annotations

from .. import config as _config
from ..config import *  # noqa: F403

__all__ = list(_config.__all__)
