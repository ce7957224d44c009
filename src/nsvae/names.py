"""Names that become path components: a study's, a sweep's, a run's or a setting's name.

Each such name is joined to a directory (``studies/NAME``, ``runs/NAME``,
``SWEEP/runs/RUN``), so it must be one plain file name: a name of ``..``
would put the files of a study in the directory above ``studies/``, and one
of ``.`` a run directory on top of its sweep's. :func:`path_component_problem`
refuses what is not a single, portable file name: empty, ``.`` and ``..``,
path separators, NUL and other control characters, the characters Windows
forbids in file names (``<>:"|?*``), a trailing dot or space (Windows drops
them), and more than 255 bytes in UTF-8 (the limit of common file systems).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from .errors import UserError

#: The longest name, in bytes of UTF-8, that ext4, XFS, APFS and NTFS (in UTF-16 units, more) all hold.
MAX_NAME_BYTES = 255
_WINDOWS_FORBIDDEN = set('<>:"|?*')


def path_component_problem(name: Any) -> str:
    """What makes ``name`` unfit to be one path component (``''`` when it is fit)."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if name in (".", ".."):
        return f"must not be {name!r} (it names a directory that already exists, not a new one)"
    if "/" in name or "\\" in name:
        return "must not contain '/' or '\\' (it is one file name, not a path)"
    bad = [c for c in name if unicodedata.category(c) == "Cc" or c in _WINDOWS_FORBIDDEN]
    if bad:
        return f'must not contain {bad[0]!r} (control characters and <>:"|?* cannot be in a portable file name)'
    if name[-1] in ". ":
        return "must not end with a dot or a space (Windows drops them)"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes in UTF-8 (file systems hold no longer names)"
    return ""


def check_path_component(name: Any, what: str) -> str:
    """``name`` if it is fit to be one path component, else a :class:`UserError` that says ``what`` it names."""
    problem = path_component_problem(name)
    if problem:
        raise UserError(f"{what} {name!r} {problem}")
    return name


def value_text(value: Any) -> str:
    """A config value as it reads in a run's name and in a setting's label: ``2.5``, ``5`` for 5.0, ``0.0001``,
    ``true``, ``vae``. Floats by ``repr`` (the shortest text that reads back as the same float, so two values never
    share a name) without a trailing ``.0``. Run names are built from it: a change renames existing runs. (A config
    file's value is TOML, written by :func:`nsvae.config.toml_io.format_value`: strings quoted, lists bracketed.)"""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(value)
