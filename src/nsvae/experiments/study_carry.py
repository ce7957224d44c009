"""A study run's training state carried in the repository, for runs longer than a machine is kept.

A study's run that trains for longer than one session of its machine survives on
that machine's disk only. Where the next session may start on a fresh machine (a
CI-like workplace, a cloud instance that is not kept), its checkpoint is lost and
the run starts again: a run longer than every session then never finishes.
``nsvae study NAME --in-flight --carry`` packs each run in flight into
``studies/<name>/in-flight/<run>.run.tar``: its directory's files with the newest
intact checkpoint only. ``nsvae study NAME`` unpacks a carried run whose working
directory is absent before it plans, and the run resumes from that checkpoint as
it would have on the kept machine: to the same numbers on a CPU of the same
instruction set and the same software (exact resume, docs/training.md); another
CPU's kernels may round differently from there on.

Packing may happen while the run trains: the checkpoint is read first and checked
against its SHA-256, the small files after it, so that they reach at least the
checkpoint's step; a resume forgets what they hold beyond it (as after kill -9).
The carried file is removed when the run's finished files go into the study.

A carried checkpoint costs its size in the repository's history at every commit
(about 6 MB for the paper's network with its Adam state); carrying is therefore
asked for, never done by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ..atomic import atomic_write
from ..errors import UserError

#: The suffix of a carried run's file in ``studies/<name>/in-flight/``.
CARRY_SUFFIX = ".run.tar"
#: Attempts at reading the newest checkpoint while the run may prune it (it writes a newer one meanwhile).
_READ_ATTEMPTS = 5


def carried_path(in_flight_dir: Path, run_name: str) -> Path:
    return in_flight_dir / f"{run_name}{CARRY_SUFFIX}"


def carried_runs(in_flight_dir: Path) -> dict[str, Path]:
    """``{run name: its carried file}`` in ``in_flight_dir``."""
    if not in_flight_dir.is_dir():
        return {}
    return {
        p.name[: -len(CARRY_SUFFIX)]: p
        for p in sorted(in_flight_dir.iterdir())
        if p.name.endswith(CARRY_SUFFIX) and p.is_file()
    }


def pack_run(run_dir: Path, out: Path) -> int | None:
    """Write ``run_dir``'s training state to ``out`` (atomically): the newest intact checkpoint with its checksum and
    every other regular file of the run but older checkpoints, the lock and temporaries. Returns the checkpoint's
    step, or None (nothing written) when the run has no intact checkpoint yet. An ``out`` that already holds that
    step is left as it is: packing it again would only add the same checkpoint to the repository's history."""
    from ..train.run import CHECKPOINT_DIR, Run, checksum_path

    run = Run(run_dir)
    newest = _read_newest_checkpoint(run)
    if newest is None:
        return None
    step, name, data, sidecar = newest
    if out.is_file() and _carried_step_or_none(out) == step:
        return step
    members: list[tuple[str, bytes]] = [
        (f"{CHECKPOINT_DIR}/{name}", data),
        (f"{CHECKPOINT_DIR}/{checksum_path(Path(name)).name}", sidecar),
    ]
    members += [(rel, content) for rel, content in _small_files(run_dir)]

    def write(handle) -> None:
        with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for rel, content in members:
                info = tarfile.TarInfo(rel)
                info.size = len(content)
                info.mode = 0o644
                info.mtime = int(time.time())
                archive.addfile(info, io.BytesIO(content))

    atomic_write(out, write)
    return step


def _read_newest_checkpoint(run) -> tuple[int, str, bytes, bytes] | None:
    """``(step, file name, bytes, checksum file's bytes)`` of the run's newest checkpoint whose bytes match its
    SHA-256 file (the bytes packed are the bytes checked); None when no checkpoint is intact. A checkpoint pruned
    while it was read is read again."""
    from ..train.run import checksum_path, recorded_sha256

    for _ in range(_READ_ATTEMPTS):
        try:
            for step, path in reversed(run.checkpoints()):
                expected = recorded_sha256(path)
                data = path.read_bytes()
                if expected and hashlib.sha256(data).hexdigest() == expected:
                    return step, path.name, data, checksum_path(path).read_bytes()
            return None
        except FileNotFoundError:
            continue  # the trainer pruned it while it was read: the newer one is there now
    return None


def _small_files(run_dir: Path) -> Iterable[tuple[str, bytes]]:
    """Every regular file of ``run_dir`` but its checkpoints, lock and temporaries, as ``(relative path, bytes)``;
    a link is refused (a run nsvae writes holds none)."""
    from ..train.run import CHECKPOINT_DIR, LOCK_FILE

    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_symlink():
            raise UserError(f"{path} is a link; a run directory nsvae wrote holds none: remove it to carry the run")
        if not path.is_file() or rel == LOCK_FILE or path.name.endswith(".tmp"):
            continue
        if rel.split("/")[0] == CHECKPOINT_DIR:
            continue
        with contextlib.suppress(FileNotFoundError):  # a temporary renamed away while listed
            yield rel, path.read_bytes()


def carried_step(path: Path) -> int | None:
    """The step of the checkpoint a carried file holds (None: none)."""
    from ..train.run import checkpoint_step

    with tarfile.open(path, mode="r") as archive:
        steps = [s for s in (checkpoint_step(Path(n).name) for n in archive.getnames()) if s is not None]
    return max(steps) if steps else None


def _carried_step_or_none(path: Path) -> int | None:
    try:
        return carried_step(path)
    except (tarfile.TarError, OSError):
        return None  # a damaged file is replaced


def unpack_run(carried: Path, run_dir: Path) -> int:
    """Restore the run of ``carried`` as ``run_dir`` (which must not exist), checking its checkpoint against its
    SHA-256 before the directory appears; returns the checkpoint's step."""
    from ..train.run import Run

    if run_dir.exists():
        raise UserError(f"{run_dir} exists; a carried run is restored only where its directory is absent")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".carry.tmp", dir=run_dir.parent))
    try:
        try:
            _extract_files(carried, staging)
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise UserError(f"{carried} is not a readable carried run ({exc}); restore it from git") from None
        run = Run(staging)
        found = run.checkpoints()
        if not found:
            raise UserError(f"{carried} holds no checkpoint; delete it (the run then starts from scratch)")
        problem = run.verify_checkpoint(found[-1][1])
        if problem:
            raise UserError(f"{carried}: its checkpoint is damaged ({problem}); restore the file from git")
        os.rename(staging, run_dir)
        return found[-1][0]
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _extract_files(carried: Path, into: Path) -> None:
    """Write the regular files of ``carried`` below ``into``; anything else (a link, a device, an absolute path or
    one that climbs out with ``..``) is refused: a carried run holds only the files :func:`pack_run` wrote. (Done by
    hand rather than with ``extractall(filter="data")``, which Python 3.11 has only from 3.11.4 on.)"""
    with tarfile.open(carried, mode="r") as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if not member.isfile() or not parts or Path(member.name).is_absolute() or ".." in parts:
                raise ValueError(f"unexpected member {member.name!r}")
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(member)
            with open(target, "wb") as handle:
                shutil.copyfileobj(source, handle)


def restore_carried(
    in_flight_dir: Path, runs_dir: Path, names: Iterable[str], echo: Callable[[str], None] = print
) -> dict[str, int]:
    """Unpack each carried run of ``names`` whose directory in ``runs_dir`` is absent; returns ``{run: step}`` of those
    restored. A run whose directory exists keeps it (its own checkpoint goes on); where the carried one is newer,
    the message says how to use it."""
    from ..train.run import Run

    carried = carried_runs(in_flight_dir)
    restored = {}
    for name in names:
        if name not in carried:
            continue
        run_dir = runs_dir / name
        if run_dir.exists():
            local = Run(run_dir).checkpoints()
            theirs = carried_step(carried[name])
            if theirs is not None and (not local or local[-1][0] < theirs):
                mine = f"step {local[-1][0]:,}" if local else "no checkpoint"
                echo(
                    f"nsvae study: {name}: {carried[name]} holds step {theirs:,} but {run_dir} ({mine}) is kept; "
                    "delete that directory to resume from the carried step"
                )
            continue
        restored[name] = unpack_run(carried[name], run_dir)
        echo(f"nsvae study: {name}: restored from {carried[name]} (step {restored[name]:,})")
    return restored
