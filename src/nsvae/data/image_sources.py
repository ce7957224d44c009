"""Reading image files out of a zip archive, a tar archive or a folder.

A source is opened with :func:`open_source`, which checks that it exists and
what kind it is (by its name and its first bytes), lists the image members in
one pass (:attr:`ImageSource.names`, sorted) and refuses a truncated or
corrupt archive with a :class:`~nsvae.errors.UserError`. The members' bytes
are then streamed in the archive's natural order by
:meth:`ImageSource.iter_bytes`, so a tar is read once front to back and no
more than one member is held in memory at a time.

What counts as an image: a regular file whose name ends in one of
:data:`IMAGE_EXTENSIONS` (any case), that is not hidden (no path component
starting with ``.``) and is not under a ``__MACOSX/`` folder (the resource
forks macOS puts into zips have image names but no image in them). Everything
else (``all_chair_names.mat``, ``README.txt``, ...) is ignored and counted.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UserError

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

#: The largest image file read from a source. Far above any image of the supported datasets (CelebA's JPEGs are
#: about 10 KB, 3D Chairs' PNGs a few KB), far below what would exhaust memory: a member declared larger is
#: reported as a bad image and never read, and no read takes more than this many bytes of a member.
MAX_MEMBER_BYTES = 64 * 2**20
#: A zip member that expands more than this many times its stored size, and to more than 1 MiB, is refused before
#: it is read (a decompression bomb: a 4.2 MB zip held a 4 GiB "face.png"). Encoded images barely compress.
MAX_ZIP_RATIO = 200
_RATIO_FLOOR = 2**20

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_COMPRESSED_TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_BLOCK = 512


def is_image_name(name: str) -> bool:
    """True if an archive member or relative file path names an image we read."""
    parts = PurePosixPath(name).parts
    if not parts or any(part.startswith(".") for part in parts) or "__MACOSX" in parts:
        return False
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


@dataclass
class MemberError:
    """A member that could not be read out of its source (not a decoding failure)."""

    name: str
    reason: str


@dataclass
class ImageSource:
    """An opened, listed source of images. Use :func:`open_source` to make one."""

    path: Path
    kind: str  # "zip", "tar" or "folder"
    #: Image member names, sorted (the order of the prepared images).
    names: list[str]
    #: How many non-image entries were ignored.
    ignored: int = 0

    def describe(self) -> str:
        return f"{self.kind} {self.path}"

    def iter_bytes(self) -> Iterator[tuple[str, bytes | MemberError]]:
        """``(name, data)`` for every image member, in the source's natural order.

        ``data`` is a :class:`MemberError` when one member cannot be read but
        the rest can (a zip member with a bad checksum, a file without read
        permission). A tar that breaks off while streaming raises
        :class:`UserError`: nothing after that point could be read.
        """
        if self.kind == "zip":
            yield from self._iter_zip()
        elif self.kind == "tar":
            yield from self._iter_tar()
        else:
            yield from self._iter_folder()

    # -- the three kinds --------------------------------------------------------------------

    def _iter_zip(self) -> Iterator[tuple[str, bytes | MemberError]]:
        wanted = set(self.names)
        try:
            with zipfile.ZipFile(self.path) as archive:
                for info in archive.infolist():
                    if info.filename not in wanted:
                        continue
                    too_big = _too_big(info.file_size, info.compress_size)
                    if too_big:
                        yield info.filename, MemberError(info.filename, too_big)
                        continue
                    try:
                        with archive.open(info) as handle:
                            data: bytes | MemberError = handle.read(MAX_MEMBER_BYTES + 1)
                        if len(data) > MAX_MEMBER_BYTES:  # its header understated it
                            data = MemberError(info.filename, _too_big(len(data), None))
                    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
                        data = MemberError(info.filename, f"corrupt archive member: {exc}")
                    yield info.filename, data
        except (zipfile.BadZipFile, OSError) as exc:
            raise _broken_archive(self.path, "zip", exc) from None

    def _iter_tar(self) -> Iterator[tuple[str, bytes | MemberError]]:
        wanted = set(self.names)
        try:
            with tarfile.open(self.path, mode="r|*") as archive:
                for member in archive:
                    if member.name not in wanted or not member.isfile():
                        continue
                    too_big = _too_big(member.size, None)
                    if too_big:  # not read: the stream skips over it
                        yield member.name, MemberError(member.name, too_big)
                        continue
                    handle = archive.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if len(data) != member.size:
                        raise tarfile.ReadError("unexpected end of data")
                    yield member.name, data
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise _broken_archive(self.path, "tar", exc) from None

    def _iter_folder(self) -> Iterator[tuple[str, bytes | MemberError]]:
        for name in self.names:
            try:
                too_big = _too_big((self.path / name).stat().st_size, None)
                if too_big:
                    yield name, MemberError(name, too_big)
                    continue
                data: bytes | MemberError = (self.path / name).read_bytes()
            except OSError as exc:
                data = MemberError(name, exc.strerror or str(exc))
            yield name, data


def _too_big(size: int, stored: int | None) -> str:
    """Why a member of ``size`` bytes (``stored`` compressed, for a zip) is not read; ``''`` when it may be."""
    if size > MAX_MEMBER_BYTES:
        return (
            f"{size / 2**20:,.0f} MiB uncompressed, more than the {MAX_MEMBER_BYTES // 2**20} MiB an image file may "
            "have: not read (a decompression bomb, or not an image of this dataset)"
        )
    if stored is not None and size > _RATIO_FLOOR and size > MAX_ZIP_RATIO * max(stored, 1):
        return (
            f"expands {size / max(stored, 1):,.0f} times ({stored:,} bytes stored, {size:,} uncompressed), more than "
            f"the {MAX_ZIP_RATIO} times an encoded image can: not read (a decompression bomb)"
        )
    return ""


def _broken_archive(path: Path, kind: str, exc: BaseException) -> UserError:
    detail = str(exc) or type(exc).__name__
    return UserError(
        f"{path} is not a complete {kind} archive (truncated or corrupt: {detail}); "
        f"download it again or check it with `{'unzip -t' if kind == 'zip' else 'tar -tf'}`"
    )


def source_kind(path: Path) -> str:
    """``"zip"``, ``"tar"`` or ``"folder"`` for an existing path; :class:`UserError` otherwise."""
    if not path.exists():
        raise UserError(f"source {path} does not exist; give the path of the downloaded archive or of a folder")
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise UserError(f"source {path} is not a regular file or a folder")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise UserError(f"cannot read source {path} ({exc.strerror or exc})") from None
    lower = path.name.lower()
    if head.startswith(_ZIP_MAGIC) or lower.endswith(".zip"):
        return "zip"
    if lower.endswith(_TAR_SUFFIXES) or head.startswith(_COMPRESSED_TAR_MAGIC) or _looks_like_tar(path):
        return "tar"
    raise UserError(
        f"source {path} is neither a zip archive, a tar archive nor a folder; "
        "give the downloaded .zip/.tar file or the folder it was extracted to"
    )


def _is_compressed(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8).startswith(_COMPRESSED_TAR_MAGIC)


def _looks_like_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def open_source(path: str | os.PathLike) -> ImageSource:
    """Check and list a source: a ``.zip``, a (compressed) ``.tar`` or a folder."""
    resolved = Path(path).expanduser().resolve()
    kind = source_kind(resolved)
    if kind == "zip":
        names, ignored = _list_zip(resolved)
    elif kind == "tar":
        names, ignored = _list_tar(resolved)
    else:
        names, ignored = _list_folder(resolved)
    if not names:
        raise UserError(
            f"no images found in {kind} {resolved} (looked for {', '.join(IMAGE_EXTENSIONS)}); "
            "check that this is the right file or folder"
        )
    return ImageSource(path=resolved, kind=kind, names=sorted(names), ignored=ignored)


def _list_zip(path: Path) -> tuple[list[str], int]:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _broken_archive(path, "zip", exc) from None
    size = path.stat().st_size
    names, ignored = [], 0
    for info in infos:
        if info.is_dir():
            continue
        if info.header_offset + info.compress_size > size:
            raise _broken_archive(path, "zip", EOFError(f"member {info.filename} runs past the end of the file"))
        if is_image_name(info.filename):
            names.append(info.filename)
        else:
            ignored += 1
    _check_unique(path, names)
    return names, ignored


def _list_tar(path: Path) -> tuple[list[str], int]:
    names, ignored = [], 0
    size = path.stat().st_size
    try:
        with tarfile.open(path, mode="r:*") as archive:
            members = archive.getmembers()
            end = archive.offset
            if not _is_compressed(path):
                # tarfile stops listing silently at a cut-off or damaged header: check the data of
                # every member lies inside the file and that the end-of-archive block follows.
                for member in members:
                    if member.isfile() and member.offset_data + member.size > size:
                        raise tarfile.ReadError(f"member {member.name} runs past the end of the file")
                with open(path, "rb") as handle:
                    handle.seek(end)
                    trailer = handle.read(_BLOCK)
                if len(trailer) < _BLOCK or trailer.strip(b"\0"):
                    raise tarfile.ReadError(f"no end-of-archive marker after {len(members)} members")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _broken_archive(path, "tar", exc) from None
    for member in members:
        if not member.isfile():
            continue
        if is_image_name(member.name):
            names.append(member.name)
        else:
            ignored += 1
    _check_unique(path, names)
    return names, ignored


def _list_folder(path: Path) -> tuple[list[str], int]:
    names, ignored = [], 0
    for directory, subdirs, files in os.walk(path, onerror=None):
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and d != "__MACOSX"]
        rel_dir = Path(directory).relative_to(path)
        for filename in files:
            rel = (rel_dir / filename).as_posix()
            if is_image_name(rel) and (Path(directory) / filename).is_file():
                names.append(rel)
            else:
                ignored += 1
    return names, ignored


def _check_unique(path: Path, names: list[str]) -> None:
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise UserError(f"{path} holds the member {dup!r} more than once; extract it and give the folder instead")
