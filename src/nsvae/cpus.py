"""How many CPUs this process may use: the one count behind every default number of workers and threads."""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


def usable_cpus() -> int:
    """The CPUs this process may run on (at least 1).

    Linux: the affinity mask (``taskset``, cgroups' cpusets, a batch
    scheduler's allocation), which can be far below the machine's count.
    Elsewhere (macOS and Windows have no ``sched_getaffinity``):
    ``os.process_cpu_count()`` where Python has it (3.13+, honours
    ``PYTHON_CPU_COUNT``), else ``os.cpu_count()``, which may be unknown
    (``None``): then 1.
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:  # pragma: no cover - a kernel that refuses to tell
            pass
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return max(1, count or 1)
