"""The one format of the times nsvae records in its files (status.json, sweep.json, lock holders, final.json)."""

from __future__ import annotations

import time


def timestamp() -> str:
    """The local time with its UTC offset, to the second: ``2026-12-07T14:43:52+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
