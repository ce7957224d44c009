"""Reading distributions, counts and samples from CSV and ``.npy`` files.

CSV forms (blank lines and lines starting with ``#`` are skipped; an
optional header row names the columns):

- a table: rows ``x1,...,xn,y,w``. Symbols may be any tokens; ``w`` is a
  probability (the column sums to 1) or a count (all integers). Each
  outcome may appear once (a repeat is an error that names both lines).
- samples (``samples=True``): rows ``x1,...,xn,y`` of integer symbols, one
  row per trial.

``.npy`` files hold a joint table (float: probabilities; integer: counts) or,
with ``samples=True``, a 2-D integer array of trials.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ._distribution import SUM_TOLERANCE, as_pmf, check_table_cells
from .estimate import counts_from_samples

#: The largest .npy array `nsvae info` reads (tables and samples are held in memory, with copies).
MAX_NPY_BYTES = 2**30


@dataclass
class Table:
    """A joint distribution read from a file, with what is known about it."""

    pmf: np.ndarray
    names: list[str]
    symbols: list[list[str]] = field(default_factory=list)
    counts: np.ndarray | None = None  # integer counts when the file held counts or samples
    kind: str = "probabilities"  # "probabilities", "counts" or "samples"


def default_names(n_axes: int) -> list[str]:
    return [f"X{i + 1}" for i in range(n_axes - 1)] + ["Y"]


def read_table(
    path: str | Path, *, samples: bool = False, normalize: bool = False, max_cells: int | None = None
) -> Table:
    """Read a joint distribution (or counts, or samples) from ``path``; a table of more than ``max_cells`` cells
    (default :data:`nsvae.info._distribution.MAX_TABLE_CELLS`) is refused before it is built."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a .csv or .npy file")
    if path.suffix.lower() == ".npy":
        return _read_npy(path, samples=samples, normalize=normalize, max_cells=max_cells)
    return _read_csv(path, samples=samples, normalize=normalize, max_cells=max_cells)


def _read_npy(path: Path, *, samples: bool, normalize: bool, max_cells: int | None) -> Table:
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable .npy array ({first})") from None
    if arr.nbytes > MAX_NPY_BYTES:
        raise UserError(
            f"{path}: the array has {arr.size:,} cells ({arr.nbytes / 2**30:.1f} GiB); nsvae info reads arrays of "
            f"at most {MAX_NPY_BYTES // 2**30} GiB: aggregate it into a smaller table of counts first"
        )
    if arr.dtype.kind not in "biuf":
        raise UserError(
            f"{path}: the array holds {arr.dtype} values; a table holds probabilities (floats) or counts (integers)"
        )
    arr = np.array(arr)
    if arr.dtype.kind in "iu" and arr.size and not samples:
        total = float(arr.astype(np.float64).sum())
        if total >= 2**62 or (arr.dtype.kind == "u" and int(arr.max()) > 2**62):
            raise UserError(f"{path}: the counts add up to {total:.3g}, more than 2**62; divide them down first")
    if samples:
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise UserError(
                f"{path}: samples must be a 2-D array (trials x variables, target last); got shape {arr.shape}"
            )
        counts, labels = _checked(path, lambda: counts_from_samples(arr, max_cells=max_cells))
        return Table(
            counts / counts.sum(),
            default_names(counts.ndim),
            [[str(v) for v in lab] for lab in labels],
            counts,
            "samples",
        )
    if arr.ndim < 2:
        raise UserError(f"{path}: a table needs predictor axes and a target axis (rank >= 2); got shape {arr.shape}")
    _checked(path, lambda: check_table_cells(arr.shape, max_cells))
    symbols = [[str(i) for i in range(n)] for n in arr.shape]
    if np.issubdtype(arr.dtype, np.integer):
        if np.any(arr < 0):
            raise UserError(f"{path}: counts must be non-negative")
        if arr.sum() == 0:
            raise UserError(f"{path}: all counts are zero")
        return Table(arr / arr.sum(), default_names(arr.ndim), symbols, arr.astype(np.int64), "counts")
    pmf = as_pmf(arr, name=str(path), min_ndim=2, normalize=normalize)
    return Table(pmf, default_names(arr.ndim), symbols)


def _checked(path: Path, make):
    """``make()``, with a table-size ValueError turned into a UserError that names the file."""
    try:
        return make()
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value


def _sort_symbols(tokens: set[str]) -> list[str]:
    numbers = {t: _number(t) for t in tokens}
    if all(v is not None and math.isfinite(v) for v in numbers.values()):
        return sorted(tokens, key=lambda t: numbers[t])
    return sorted(tokens)


def _read_csv(path: Path, *, samples: bool, normalize: bool, max_cells: int | None) -> Table:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the file ({exc})") from None
    rows: list[tuple[int, list[str]]] = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not fields or all(f == "" for f in fields) or fields[0].startswith("#"):
            continue
        rows.append((lineno, fields))
    if not rows:
        raise UserError(f"{path}: the file has no data rows")
    header = None
    first_line, first = rows[0]
    if samples:
        if any(_number(f) is None for f in first):
            header = first
    elif _number(first[-1]) is None:
        header = first
    if header is not None:
        rows = rows[1:]
        if not rows:
            raise UserError(f"{path}: the file has a header but no data rows")
    width = len(header) if header is not None else len(rows[0][1])
    min_width = 2 if samples else 3
    if width < min_width:
        what = "x1,...,xn,y" if samples else "x1,...,xn,y,p"
        line = rows[0][0] if header is None else first_line
        raise UserError(f"{path}: line {line}: rows need at least {min_width} fields ({what}); got {width}")
    for lineno, fields in rows:
        if len(fields) != width:
            raise UserError(f"{path}: line {lineno}: expected {width} fields, got {len(fields)}")
        if any(f == "" for f in fields):
            raise UserError(f"{path}: line {lineno}: empty field")

    if samples:
        data = []
        for lineno, fields in rows:
            values = []
            for f in fields:
                v = _number(f)
                if v is None or not math.isfinite(v) or v != round(v):
                    raise UserError(f"{path}: line {lineno}: sample symbol {f!r} is not an integer")
                values.append(int(v))
            data.append(values)
        counts, labels = _checked(
            path, lambda: counts_from_samples(np.array(data, dtype=np.int64), max_cells=max_cells)
        )
        names = header if header is not None else default_names(width)
        return Table(counts / counts.sum(), names, [[str(v) for v in lab] for lab in labels], counts, "samples")

    n_axes = width - 1
    weights: list[float] = []
    outcomes: list[tuple[str, ...]] = []
    for lineno, fields in rows:
        w = _number(fields[-1])
        if w is None:
            raise UserError(f"{path}: line {lineno}: weight {fields[-1]!r} is not a number")
        if not math.isfinite(w):
            raise UserError(f"{path}: line {lineno}: weight {fields[-1]!r} is not finite")
        if w < 0:
            raise UserError(f"{path}: line {lineno}: weight {w:g} is negative")
        weights.append(w)
        outcomes.append(tuple(fields[:-1]))
    symbols = [_sort_symbols({o[k] for o in outcomes}) for k in range(n_axes)]
    index = [{s: i for i, s in enumerate(col)} for col in symbols]
    shape = tuple(len(col) for col in symbols)
    _checked(path, lambda: check_table_cells(shape, max_cells))
    try:
        total = math.fsum(weights)
    except OverflowError:  # finite weights whose sum is not (1e308, 1e308): no table can be normalised from them
        raise UserError(f"{path}: the weights add up to more than a float can hold; scale them down") from None
    if not math.isfinite(total):
        raise UserError(f"{path}: the weights add up to more than a float can hold; scale them down")
    is_counts = all(w == round(w) for w in weights) and abs(total - 1.0) > SUM_TOLERANCE
    table = np.zeros(shape)
    seen: dict[tuple[str, ...], int] = {}
    for (lineno, _), outcome, w in zip(rows, outcomes, weights):
        if outcome in seen:
            hint = "; if each row is one trial, pass --samples" if is_counts else ""
            raise UserError(f"{path}: line {lineno}: outcome {','.join(outcome)} repeats line {seen[outcome]}{hint}")
        seen.setdefault(outcome, lineno)
        table[tuple(index[k][s] for k, s in enumerate(outcome))] += w
    names = header[:-1] if header is not None else default_names(n_axes)
    if is_counts:
        if total == 0:
            raise UserError(f"{path}: all counts are zero")
        if total >= 2**62:
            raise UserError(f"{path}: the counts add up to {total:.3g}, more than 2**62; divide them down first")
        counts = table.astype(np.int64)
        return Table(table / total, names, symbols, counts, "counts")
    if abs(total - 1.0) > SUM_TOLERANCE and not normalize:
        raise UserError(f"{path}: the probabilities sum to {total:.12g}, not 1; pass --normalize to rescale them")
    if total <= 0:
        raise UserError(f"{path}: all probabilities are zero")
    return Table(table / total, names, symbols)
