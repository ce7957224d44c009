"""Keep freed host memory in the process during CPU training (glibc ``mallopt``).

PyTorch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap
threshold (128 KiB at start, growing on its own only in some patterns) with
fresh ``mmap`` calls and gives them back with ``munmap`` when freed. A
training step of the dSprites conv net allocates and frees dozens of 1-8 MiB
activations and gradients, so every step pays the kernel's page faults to map
and zero that memory again: about 13% of a VAE step on the 2-core machine of
``benchmarks/RESULTS.md`` ("Host allocator").

:func:`keep_freed_memory` raises the mmap threshold to glibc's maximum
(32 MiB) and the trim threshold to 1 GiB, so those blocks come from the heap
and are reused. The numbers computed are the same; only where the bytes live
changes. The cost: the process keeps its peak heap until the context exits,
when the defaults are set back and the free memory is returned
(``malloc_trim``).

It does nothing where the C library is not glibc (macOS, Windows, musl) and
when ``NSVAE_KEEP_FREED_MEMORY=0`` is set.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Iterator

__all__ = ["ENV_SWITCH", "keep_freed_memory"]

ENV_SWITCH = "NSVAE_KEEP_FREED_MEMORY"

# mallopt parameter numbers and defaults, from glibc's <malloc.h> and malloc/malloc.c.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_THRESHOLD = 128 * 1024
# glibc refuses mmap thresholds above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
_KEPT_MMAP_THRESHOLD = 32 * 1024 * 1024
_KEPT_TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache  # find_library runs ldconfig in a subprocess; the C library does not change
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # Only glibc has gnu_get_libc_version; the mallopt parameter numbers used here are glibc's.
    if not all(hasattr(libc, f) for f in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def _enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


_lock = threading.Lock()
_depth = 0  # blocks inside keep_freed_memory that applied it, across threads; the last one out restores


@contextlib.contextmanager
def keep_freed_memory(active: bool = True) -> Iterator[bool]:
    """Within the block, freed blocks up to 32 MiB stay in the heap for reuse; yields whether it applied.

    ``active=False`` (e.g. a CUDA run, whose tensors do not come from ``malloc``) makes it a no-op.
    Blocks may nest and overlap across threads: the defaults come back when the last one exits.
    """
    global _depth
    libc = _glibc() if active and _enabled() else None
    applied = False
    if libc is not None:
        with _lock:
            if _depth:
                applied = True
            else:
                applied = bool(
                    libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_TRIM_THRESHOLD)
                )
            if applied:
                _depth += 1
    try:
        yield applied
    finally:
        if applied:
            with _lock:
                _depth -= 1
                if not _depth:
                    libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP_THRESHOLD)
                    libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                    libc.malloc_trim(0)
