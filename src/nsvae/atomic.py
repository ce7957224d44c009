"""Atomic writes: a reader sees the old file or the complete new one, never a part.

Every file nsvae persists (run status, configs, checkpoints, evaluations,
caches' metadata, study tables, figures, reports) goes through
:func:`atomic_write`: a temporary file beside the target, ``fsync``, then a
rename over it. It lives in the foundation layer because every layer above
writes files (docs/development.md, "Layers"); docs/reliability.md says what
it guarantees.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_permissions(path: Path, mode: int) -> None:
    """Give a finished temporary file or directory the permissions a plain create would have (mkstemp makes 0600)."""
    with contextlib.suppress(OSError):
        os.chmod(path, mode & ~_current_umask())


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(handle)`` on a temporary binary file beside ``path``, fsync it, rename it to ``path``.

    Readers see the old file or the complete new one, never a part; on any
    error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        publish_permissions(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file and a rename."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and a rename."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
