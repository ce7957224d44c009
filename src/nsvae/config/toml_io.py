"""Reading and writing the small TOML subset configs use: tables of scalars.

Reading goes through the standard library's :mod:`tomllib`.
Writing is a few lines here: a config is a mapping of top-level scalars and
one level of tables whose values are strings, integers, floats or booleans,
or flat lists of them (``log.trackers``), written in a fixed, canonical form
(so that writing what was read gives the same text).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from typing import Any

__all__ = ["TOMLDecodeError", "dumps", "format_value", "loads", "parse_scalar"]

TOMLDecodeError = tomllib.TOMLDecodeError


def loads(text: str) -> dict[str, Any]:
    """Parse TOML text (raises :class:`TOMLDecodeError` with a line and column)."""
    return tomllib.loads(text)


def format_value(value: Any) -> str:
    """One scalar as TOML: ``"text"``, ``12``, ``0.0001``, ``inf``, ``true``; a flat list of them: ``["a", "b"]``."""
    if isinstance(value, (list, tuple)):
        if any(isinstance(item, (list, tuple, Mapping)) for item in value):
            raise TypeError(f"cannot write nested lists or tables to a config file: {value!r}")
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest round-tripping form; always has '.', 'e' or is inf/nan
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic-string escapes
    raise TypeError(f"cannot write {type(value).__name__} values to a config file: {value!r}")


def _key(name: str) -> str:
    if name and all(c.isalnum() or c in "_-" for c in name) and name.isascii():
        return name
    return json.dumps(name, ensure_ascii=False)


def dumps(document: Mapping[str, Any], header: str = "") -> str:
    """Write top-level scalars, then one ``[table]`` per mapping value. ``None`` values are left out."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    scalars = [(k, v) for k, v in document.items() if not isinstance(v, Mapping) and v is not None]
    tables = [(k, v) for k, v in document.items() if isinstance(v, Mapping)]
    if lines and scalars:
        lines.append("")
    lines += [f"{_key(k)} = {format_value(v)}" for k, v in scalars]
    for name, table in tables:
        if lines:
            lines.append("")
        lines.append(f"[{_key(name)}]")
        for k, v in table.items():
            if isinstance(v, Mapping):
                raise TypeError(f"nested tables are not supported in config files ({name}.{k})")
            if v is not None:
                lines.append(f"{_key(k)} = {format_value(v)}")
    return "\n".join(lines) + "\n"


def parse_scalar(text: str) -> Any:
    """A ``--set`` value: a TOML scalar (``5``, ``1e-4``, ``true``, ``"x"``) or list (``["mlflow"]``), else the text
    itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
