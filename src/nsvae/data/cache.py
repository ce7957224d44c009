"""Where prepared datasets live on disk, and how they are written safely.

Every prepared dataset is one directory ``<cache>/<dataset>/<key>/`` holding
its arrays as ``.npy`` files (memory-mapped when read) and a ``meta.json``
that says what it is. The cache root is, in order of precedence: an explicit
``cache_dir=`` argument (the CLI's ``--cache-dir``), the ``NSVAE_CACHE_DIR``
environment variable, ``$XDG_CACHE_HOME/nsvae``, ``~/.cache/nsvae``.

:func:`ensure_entry` is the one owner of "is this entry ready, else build
it under its lock"; a dataset supplies only its readiness test and the
function that writes the entry's files. Writes are atomic: an entry is built
in a hidden temporary sibling directory and renamed into place only when
complete, so a crash or Ctrl-C never leaves a half-written entry where a
reader would find it. Preparations of the same entry by two processes are
serialised with an exclusive lock on a lock file beside the entry; the
second process waits and then finds the entry ready instead of building it
again. The waiting process says which process it waits for; the lock dies
with its holder (see :mod:`nsvae.locks`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import publish_permissions, write_json_atomic
from ..errors import UserError
from ..locks import FileLock

#: Environment variable that overrides the cache root.
CACHE_ENV = "NSVAE_CACHE_DIR"

#: Name of the description file inside every cache entry.
META_FILE = "meta.json"


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """The directory under which prepared datasets are kept (not created here)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nsvae"


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(
            f"cache directory {path} is not writable ({exc.strerror or exc}); "
            f"choose another with --cache-dir or the {CACHE_ENV} environment variable"
        ) from None
    return path


def read_meta(entry: Path) -> dict[str, Any] | None:
    """The ``meta.json`` of a complete cache entry, or ``None`` if there is none."""
    try:
        with open(entry / META_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def open_image_array(path: Path, expected: tuple[int, ...], fix: str) -> np.ndarray:
    """A cache entry's ``images.npy``, memory-mapped read-only, checked to be uint8 of shape ``expected``; otherwise a
    UserError naming the file and ending with ``fix`` (the command that rebuilds the entry)."""
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is damaged or unreadable ({detail}); {fix}") from None
    if images.shape != tuple(expected) or images.dtype != np.uint8:
        raise UserError(f"{path} is damaged: it holds {images.dtype} {images.shape}, expected uint8 {expected}; {fix}")
    return images


def ensure_entry(
    entry: Path,
    build: Callable[[Path], dict[str, Any]],
    *,
    ready: Callable[[Path], bool] | None = None,
    check: Callable[[Path], str] | None = None,
    on_damaged: Callable[[Path, str], None] | None = None,
    force: bool = False,
) -> Path:
    """Return the cache entry ``entry``, building it first unless it is ready and intact.

    - ``ready(entry)``: whether a complete entry is there (default: it has a
      ``meta.json``); ``check(entry)``: what is wrong with a ready one ('' if
      nothing; default: not checked). A ready entry with a problem is handed
      to ``on_damaged(entry, problem)`` (a warning) and built again.
    - Otherwise, under the entry's lock (:func:`entry_lock`: waits for another
      builder and says who, removes this entry's leftovers): an entry that
      became ready meanwhile (another process built it) is returned unless
      ``force``; else the leftovers of other killed builds beside it are
      removed and ``build(tmp)`` writes the entry's files into a fresh
      temporary directory and returns its description, which
      :func:`building` completes with the files' checksums, writes as
      ``meta.json`` and renames into place. On any error nothing is left.
    - ``force``: build even if a ready entry is there.
    """
    is_ready = ready or (lambda path: read_meta(path) is not None)
    if not force and is_ready(entry):
        problem = check(entry) if check is not None else ""
        if not problem:
            return entry
        if on_damaged is not None:
            on_damaged(entry, problem)
        force = True
    with entry_lock(entry):
        if not force and is_ready(entry):  # another process built it while this one waited
            return entry
        remove_stale_temporaries(entry.parent)
        meta: dict[str, Any] = {}
        with building(entry, meta) as tmp:
            meta.update(build(tmp))
    return entry


@contextlib.contextmanager
def entry_lock(entry: Path) -> Iterator[None]:
    """Hold the exclusive lock for building ``entry`` (waits while another process holds it, and says who).

    The lock is a :class:`nsvae.locks.FileLock`: freed by the kernel when its
    holder dies and never inherited by the holder's worker processes, so a
    killed preparation never leaves it taken. Taking it also removes the
    leftovers of killed builds of this entry (hidden ``.building-*`` and
    ``.old-*`` directories): nobody else can be building it then.
    """
    ensure_writable_dir(entry.parent)
    lock = FileLock(entry.parent / f".{entry.name}.lock")
    first = not lock.held_here()

    def waiting(holder: str) -> None:
        print(f"nsvae: waiting for {entry}: it is being prepared by {holder}", file=sys.stderr, flush=True)

    with lock.hold(on_wait=waiting):
        if first:
            _remove_leftovers(entry)
        yield


def _remove_leftovers(entry: Path) -> int:
    """Delete this entry's hidden build and replacement leftovers (call with its lock held)."""
    removed = 0
    for pattern in (f".{entry.name}.building-*", f".{entry.name}.old-*"):
        for leftover in entry.parent.glob(pattern):
            if leftover.is_symlink() or not leftover.is_dir():
                continue
            shutil.rmtree(leftover, ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def building(entry: Path, meta: dict[str, Any]) -> Iterator[Path]:
    """Build a cache entry atomically.

    Yields a fresh temporary directory beside ``entry``; the caller writes the
    entry's files into it. On normal exit ``meta`` (as it is then: the caller
    may fill it in while building) is written as ``meta.json`` with the
    SHA-256 of every file, and the directory is renamed to ``entry``
    (replacing an old entry, which is moved aside first and then deleted). On
    any exception, Ctrl-C included, the temporary directory is deleted and
    ``entry`` is left as it was. Call it while holding :func:`entry_lock`;
    datasets use :func:`ensure_entry`, which does both.
    """
    ensure_writable_dir(entry.parent)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}.building-"))
    try:
        yield tmp
        meta = {**meta, "checksums": {p.name: _file_checksum(p) for p in sorted(tmp.iterdir()) if p.is_file()}}
        write_json_atomic(tmp / META_FILE, meta)
        _write_stamp(tmp, meta)
        publish_permissions(tmp, 0o777)
        old = None
        if entry.exists():
            old = entry.parent / f".{entry.name}.old-{os.getpid()}"
            os.replace(entry, old)
        os.replace(tmp, entry)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- checksums --------------------------------------------------------------------------------------

#: The stamp of the last full verification of an entry (file sizes, modification times, inodes).
STAMP_FILE = ".verified.json"


def file_digest(path: Path, algorithm: str = "sha256", on_block: Callable[[int], Any] | None = None) -> str:
    """The hex digest (``hashlib`` algorithm name) of the file at ``path``, read in 4 MiB blocks; ``on_block(n)``
    is called with each block's size (a progress bar)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)  # a checksum, not a security measure
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
            if on_block is not None:
                on_block(len(block))
    return digest.hexdigest()


def content_digests(meta: dict[str, Any]) -> dict[str, str]:
    """``{file: SHA-256}`` of an entry's files as its meta recorded them when it was built: what a result names so
    that two runs can tell whether they saw the same bytes (the built-in generator's output, a user's file)."""
    checksums = meta.get("checksums")
    if not isinstance(checksums, dict):
        return {}
    return {name: str(c["sha256"]) for name, c in sorted(checksums.items()) if isinstance(c, dict) and "sha256" in c}


def _file_checksum(path: Path) -> dict[str, Any]:
    return {"sha256": file_digest(path), "bytes": path.stat().st_size}


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _write_stamp(entry: Path, meta: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a read-only cache is verified in full every time instead
        stamp = {name: _stat_key(entry / name) for name in meta.get("checksums", {})}
        write_json_atomic(entry / STAMP_FILE, stamp)


def verify_entry(entry: Path, full: bool = False) -> str:
    """``''`` if the cache entry is intact, else what is wrong with it.

    ``meta.json`` records the SHA-256 and size of every file of the entry.
    The full check hashes every file (a second per 360 MiB). The cheap check
    (before every training run) compares sizes, reads each ``.npy`` header,
    and hashes in full only when a file's size, modification time or inode
    differ from the last full check (so a file changed by any write is
    caught; bit rot that changes neither is caught by ``data prepare``).
    Entries written by an older nsvae have no checksums: only the cheap
    part applies to them.
    """
    meta = read_meta(entry)
    if meta is None:
        return f"{entry / META_FILE} is missing or unreadable"
    checksums = meta.get("checksums")
    if not isinstance(checksums, dict):
        checksums = {}
    for name, recorded in checksums.items():
        path = entry / name
        if not path.is_file() or path.is_symlink():
            return f"{name} is missing"
        if path.stat().st_size != recorded.get("bytes"):
            return f"{name} has {path.stat().st_size} bytes, {recorded.get('bytes')} were written"
    for path in entry.glob("*.npy"):
        problem = _npy_header_problem(path)
        if problem:
            return f"{path.name}: {problem}"
    if not checksums:
        return ""
    if not full:
        try:
            stamp = json.loads((entry / STAMP_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stamp = {}
        if all(stamp.get(name) == _stat_key(entry / name) for name in checksums):
            return ""
    for name, recorded in checksums.items():
        if _file_checksum(entry / name)["sha256"] != recorded.get("sha256"):
            return f"{name} differs from what was written (its SHA-256 does not match meta.json)"
    _write_stamp(entry, meta)
    return ""


def _npy_header_problem(path: Path) -> str:
    import numpy as np

    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(handle)
            offset = handle.tell()
    except (ValueError, OSError, EOFError) as exc:
        return f"not a valid .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if dtype.hasobject:
        return "holds Python objects, not numbers"
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size != expected:
        return f"has {path.stat().st_size} bytes, its header promises {expected}"
    return ""


def remove_stale_temporaries(directory: Path) -> int:
    """Delete leftovers of builds that were killed (e.g. by SIGKILL); returns how many.

    Only the leftovers of entries whose lock is free (or held by this process)
    are removed, so a build in progress in another process is never touched.
    """
    if not directory.is_dir():
        return 0
    names = set()
    for leftover in [*directory.glob(".*.building-*"), *directory.glob(".*.old-*")]:
        base = leftover.name[1:]
        for marker in (".building-", ".old-"):
            if marker in base:
                names.add(base.split(marker)[0])
    removed = 0
    for name in sorted(names):
        lock = FileLock(directory / f".{name}.lock")
        with lock.hold(blocking=False) as got:
            if got:
                removed += _remove_leftovers(directory / name)
    return removed
