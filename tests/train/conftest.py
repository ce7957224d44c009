from __future__ import annotations

import pytest

from nsvae.config import Config, apply_overrides


def tiny_config(method: str = "nonsyn", **changes) -> Config:
    """A config that trains in about a second: z_dim 4, batch 8, 12 steps of the dSprites conv net."""
    base = {
        "method": method,
        "run.name": f"tiny-{method}",
        "run.steps": 12,
        "run.seed": 3,
        "run.device": "cpu",
        "run.threads": 1,  # tiny batches: one thread is as fast and far less sensitive to a busy CPU
        "model.z_dim": 4,
        "data.batch_size": 8,
        "log.every": 4,
        "log.traversal_every": 6,
        "log.traversal_values": 3,
        "log.checkpoint_every": 5,
        "log.keep_checkpoints": 2,
        "log.tensorboard": False,
        "log.console": False,
        "log.progress": False,
    }
    base.update(changes)
    return apply_overrides(Config(), base)


@pytest.fixture
def tiny(dsprites):
    """``tiny(method, **changes)`` -> a tiny Config (dSprites is prepared first)."""
    return tiny_config
