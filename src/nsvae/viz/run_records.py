"""The runs a report reads: :class:`RunRecord` (one run directory, read once), :func:`find_runs` (run directories
named or found inside a directory of runs) and the *settings* they form: a run's config without its seeds and
incidental keys (:func:`nsvae.config.schema.defines_setting`, as in the sweep results table), labelled by the method
and the keys that differ between the compared runs (:func:`setting_labels`, e.g. ``nonsyn alpha=5``).

The reconstruction error of a run is the mean of the training log's ``recon`` (nats per image) over its last
:data:`RECON_WINDOW` logged steps: the last minibatches' reconstruction term, as in Kim & Mnih's Figure 4.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config.comparison import OBJECTIVE_SECTIONS
from ..errors import UserError
from ..names import value_text

#: Logged steps averaged for a run's final reconstruction error.
RECON_WINDOW = 5
#: The config sections that hold one method's hyper-parameters (named as the method; the plain VAE has none).
METHOD_SECTIONS = OBJECTIVE_SECTIONS  # the objectives' own config tables: one list, in nsvae.config.comparison


@dataclasses.dataclass
class RunRecord:
    """What a report needs from one run directory (read once)."""

    path: Path
    config: Any
    status: dict[str, Any]
    log: list[dict[str, Any]]
    evaluation: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def seed(self) -> int:
        return int(self.config.run.seed)

    def protocols(self) -> list[str]:
        return list((self.evaluation or {}).get("results", {}))

    def result(self, protocol: str | None) -> dict[str, Any] | None:
        """The evaluation under ``protocol`` (``None``: ``default`` if present, else the only one)."""
        results = (self.evaluation or {}).get("results", {})
        if protocol is None:
            protocol = "default" if "default" in results else next(iter(results), None)
        return results.get(protocol) if protocol else None

    def scores(self, protocol: str | None) -> dict[str, float]:
        from ..metrics.evaluate import headline_scores

        result = self.result(protocol)
        return headline_scores(result) if result else {}

    def table_scores(self, protocol: str | None) -> dict[str, float]:
        """:meth:`scores` with the fields shown beside them in tables (the synergy's WMS as ``synergy.wms``)."""
        from ..metrics.evaluate import table_scores

        result = self.result(protocol)
        return table_scores(result) if result else {}

    def final_reconstruction(self) -> float | None:
        values = [e["recon"] for e in self.log if isinstance(e.get("recon"), (int, float))]
        return float(np.mean(values[-RECON_WINDOW:])) if values else None

    def last_step(self) -> int:
        return int(self.log[-1]["step"]) if self.log else int(self.status.get("step", 0) or 0)


def _is_run_dir(path: Path) -> bool:
    return (path / "config.toml").is_file() and ((path / "status.json").is_file() or (path / "log.jsonl").is_file())


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories named in ``paths``, or found inside them (sweep directories), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UserError(f"{path} does not exist; give a run directory or a directory of runs")
        if _is_run_dir(path):
            found.append(path)
            continue
        patterns = ("*/config.toml", "*/*/config.toml", "*/*/*/config.toml")
        inside = sorted({c.parent for pattern in patterns for c in path.glob(pattern)})
        inside = [p for p in inside if _is_run_dir(p)]
        if not inside:
            raise UserError(f"{path} is not a run directory and holds none (a run directory has config.toml)")
        found.extend(inside)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def read_run(path: Path) -> RunRecord:
    from ..evaluation import read_eval
    from ..train import load_run

    run = load_run(path)
    return RunRecord(path=Path(path), config=run.config, status=run.status(), log=run.log(), evaluation=read_eval(path))


def _relevant(key: str, method: str) -> bool:
    """A key that labels a run of ``method``: part of the setting, and not another method's hyper-parameter."""
    from ..config.schema import defines_setting

    section = key.split(".")[0]
    return defines_setting(key) and (section == method or section not in METHOD_SECTIONS)


def _short(key: str) -> str:
    section, _, name = key.partition(".")
    return name if section in METHOD_SECTIONS or section == "run" else key


def setting_labels(records: Sequence[RunRecord]) -> list[str]:
    """One label per run: the method and the relevant keys whose values differ between ``records``."""
    from ..config.schema import flatten

    flats = [flatten(r.config) for r in records]
    keys = sorted({k for f in flats for k in f})
    varying = [k for k in keys if k != "method" and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    labels = []
    for record, flat in zip(records, flats):
        parts = [record.config.method]
        parts += [f"{_short(k)}={value_text(flat[k])}" for k in varying if _relevant(k, record.config.method)]
        labels.append(" ".join(parts))
    return labels


def group_by_setting(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = {}
    for record, label in zip(records, setting_labels(records)):
        groups.setdefault(label, []).append(record)
    return groups
