"""Image datasets from the user's own files: CelebA, 3D Chairs and any folder of images.

Each is prepared once into a cache entry ``<cache>/<dataset>/<key>/`` holding

- ``images.npy``: uint8 ``(N, C, 64, 64)``, opened memory-mapped;
- ``names.txt``: the source file of image ``i`` on line ``i + 1`` (archive
  member names, or paths relative to the folder);
- ``meta.json``: source, preprocessing, counts and any skipped files.

The key encodes the preprocessing (``original-rgb-64``, ``center148-rgb-64``,
``center400-gray-64``, ...) and, for folders, a hash of the resolved source
path, so several preparations live side by side. Building streams the
source: members are read one at a time in the archive's order, decoded by a
small process pool, and written straight into the memory-mapped array of a
temporary directory that :func:`nsvae.data.cache.ensure_entry` renames into
place only when everything succeeded.

Registered datasets (see :mod:`nsvae.data.registry`): ``celeba``, ``chairs``
and ``folder``. The preprocessing choices and their sources are documented in
``docs/data.md``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import errno
import hashlib
import io
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..cpus import usable_cpus
from ..errors import UserError
from ..processes import worker_pool
from . import cache, registry
from .base import ImageData, as_index_array
from .image_sources import ImageSource, MemberError, open_source, source_kind
from .image_transforms import Preprocessing, decode_chunk

IMAGES_FILE = "images.npy"
NAMES_FILE = "names.txt"
#: Version of the entry layout; bump when the stored bytes would change.
FORMAT_VERSION = 1

_CHUNK = 32
_SHOWN_FAILURES = 5


# ---------------------------------------------------------------------------------------------
# The dataset kinds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageKind:
    """The defaults and help texts of one registered image dataset."""

    name: str
    title: str
    summary: str
    crops: tuple[str, ...]
    default_crop: str
    #: Side of the centred square for ``crop="center"`` (None: the largest square).
    default_crop_size: int | None
    default_channels: int
    exif_transpose: bool
    needs_source: bool
    source_hint: str
    example_source: str
    expected_images: int | None = None

    def preprocessing(
        self, crop: str | None = None, crop_size: int | None = None, channels: int | None = None
    ) -> Preprocessing:
        crop = self.default_crop if crop is None else crop
        if crop not in self.crops:
            raise ValueError(f"{self.name}: crop must be one of {', '.join(self.crops)}; got {crop!r}")
        if crop == "center" and crop_size is None:
            crop_size = self.default_crop_size
        channels = self.default_channels if channels is None else channels
        return Preprocessing(crop=crop, crop_size=crop_size, channels=channels, exif_transpose=self.exif_transpose)


CELEBA = ImageKind(
    name="celeba",
    title="CelebA",
    summary="CelebA aligned faces, 202,599 RGB images at 64x64 (from your img_align_celeba.zip)",
    crops=("original", "center"),
    default_crop="original",
    default_crop_size=148,
    default_channels=3,
    exif_transpose=False,
    needs_source=True,
    source_hint=(
        "img_align_celeba.zip (Img/ folder of the CelebA page, https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html; "
        "202,599 JPEGs, 178x218) or the folder it extracts to"
    ),
    example_source="PATH/img_align_celeba.zip",
    expected_images=202_599,
)

CHAIRS = ImageKind(
    name="chairs",
    title="3D Chairs",
    summary="3D Chairs renders (Aubry et al. 2014), 86,366 grey images at 64x64 (from your rendered_chairs.tar)",
    crops=("center", "full"),
    default_crop="center",
    default_crop_size=400,
    default_channels=1,
    exif_transpose=False,
    needs_source=True,
    source_hint=(
        "rendered_chairs.tar from https://www.di.ens.fr/willow/research/seeing3Dchairs/ "
        "(1393 chairs x 62 views = 86,366 PNGs, 600x600) or the folder it extracts to"
    ),
    example_source="PATH/rendered_chairs.tar",
    expected_images=86_366,
)

FOLDER = ImageKind(
    name="folder",
    title="folder of images",
    summary="any folder (or .zip/.tar) of images, centre-cropped to 64x64 RGB",
    crops=("center", "full"),
    default_crop="center",
    default_crop_size=None,
    default_channels=3,
    exif_transpose=True,
    needs_source=True,
    source_hint="any folder, .zip or .tar of .jpg/.png/... images (searched recursively)",
    example_source="DIR",
)

KINDS = {kind.name: kind for kind in (CELEBA, CHAIRS, FOLDER)}

_PREP_OPTIONS = ("crop", "crop_size", "channels")
_BUILD_OPTIONS = ("skip_unreadable", "workers")


def _kind(name: str) -> ImageKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"not an image dataset: {name!r}; known: {', '.join(KINDS)}") from None


def _check_options(kind: ImageKind, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{kind.name}: unknown option(s) {', '.join(unknown)}; known: {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# The dataset object
# ---------------------------------------------------------------------------------------------


class CachedImages(ImageData):
    """A prepared image cache entry: ``len(self)`` images of shape ``(C, 64, 64)``.

    ``images`` is the memory-mapped uint8 array; :meth:`observations_at`
    returns float32 in [0, 1]. ``names[i]`` is the source file of image ``i``.
    Pickling (e.g. into DataLoader workers) carries the path, not the pixels.
    """

    def __init__(self, entry: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(entry)
        meta = meta if meta is not None else cache.read_meta(self.path)
        if meta is None or "images" not in meta or "observation_shape" not in meta:
            raise UserError(f"{self.path} is not a complete image cache entry; prepare it again with --force")
        problem = cache.verify_entry(self.path)  # the cheap check before every use (nsvae.data.cache.verify_entry)
        if problem:
            name, source = meta.get("dataset", "NAME"), meta.get("source") or "SOURCE"
            raise UserError(
                f"image cache {self.path} is damaged ({problem}); prepare it again: "
                f"nsvae data prepare {name} --from {source} --force"
            )
        self.meta = meta
        self.name = str(meta.get("dataset", ""))
        self._images: np.ndarray | None = None
        self._names: list[str] | None = None

    # -- ImageData --------------------------------------------------------------------------

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        c, h, w = self.meta["observation_shape"]
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return int(self.meta["images"])

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images at ``indices`` as float32 ``(n, C, 64, 64)`` in [0, 1] (``rng`` is not used)."""
        idx = as_index_array(indices, len(self)).reshape(-1)
        return np.true_divide(self.images[idx], np.float32(255), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            path=str(self.path),
            source=self.meta.get("source"),
            preprocessing=self.meta.get("preprocessing"),
            skipped=len(self.meta.get("skipped", [])),
        )
        return out

    # -- the stored files -------------------------------------------------------------------

    @property
    def images(self) -> np.ndarray:
        """The stored uint8 array ``(N, C, 64, 64)``, memory-mapped read-only."""
        if self._images is None:
            expected = (len(self), *self.observation_shape)
            fix = f"prepare {self.name} again with --force"
            self._images = cache.open_image_array(self.path / IMAGES_FILE, expected, fix)
        return self._images

    @property
    def names(self) -> list[str]:
        """Source file of every image (archive member name or path relative to the folder)."""
        if self._names is None:
            with open(self.path / NAMES_FILE, encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
                self._names = handle.read().split("\n")[: len(self)]
        return self._names

    def name_of(self, index: int) -> str:
        return self.names[int(as_index_array(index, len(self)))]

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "?"))

    @property
    def skipped(self) -> list[dict[str, str]]:
        """Files left out because they could not be read (``skip_unreadable=True``)."""
        return list(self.meta.get("skipped", []))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_images"] = None
        state["_names"] = None
        return state

    def __repr__(self) -> str:
        return f"CachedImages({self.name!r}, {len(self)} images {self.observation_shape}, {str(self.path)!r})"


# ---------------------------------------------------------------------------------------------
# Cache entries: where, which, status
# ---------------------------------------------------------------------------------------------


def source_hash(source: str | os.PathLike) -> str:
    """12 hex digits of the SHA-256 of the resolved source path (folder entries' key prefix)."""
    resolved = str(Path(source).expanduser().resolve())
    return hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]


def entry_key(kind: ImageKind, prep: Preprocessing, source: str | os.PathLike | None = None) -> str:
    if kind.name == FOLDER.name:
        if source is None:
            raise ValueError("a folder entry's key needs its source")
        return f"{source_hash(source)}-{prep.key}"
    return prep.key


def _dataset_dir(kind: ImageKind, cache_dir: str | os.PathLike | None) -> Path:
    return cache.cache_root(cache_dir) / kind.name


def prepared_entries(name: str, cache_dir: str | os.PathLike | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """``(entry path, meta)`` of every complete entry of image dataset ``name``, sorted by key."""
    kind = _kind(name)
    directory = _dataset_dir(kind, cache_dir)
    if not directory.is_dir():
        return []
    out = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        meta = cache.read_meta(entry)
        if meta is not None and (entry / IMAGES_FILE).is_file():
            out.append((entry, meta))
    return out


def image_status(name: str, cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The registry ``status`` rows of image dataset ``name`` (one per prepared entry)."""
    rows = []
    for entry, meta in prepared_entries(name, cache_dir):
        row = registry.cache_entry_status(entry, meta)
        row["key"] = entry.name
        row["skipped"] = len(meta.get("skipped", []))
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Prepare and load
# ---------------------------------------------------------------------------------------------


def prepare_images(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Build (or find) the cache entry of image dataset ``name`` and return its path.

    Options: ``crop`` (CelebA ``"original"``/``"center"``; chairs and folders
    ``"center"``/``"full"``), ``crop_size`` (pixels of the centred square),
    ``channels`` (1 or 3), ``skip_unreadable`` (leave unreadable images out
    and list them in ``meta.json`` instead of refusing), ``workers``
    (decoding processes; default up to 4, 0 or 1 decodes in this process).

    An existing entry is reused unless ``force=True``. Without ``source`` an
    existing entry is returned, else a :class:`UserError` says how to get the
    files.
    """
    kind = _kind(name)
    _check_options(kind, options, _PREP_OPTIONS + _BUILD_OPTIONS)
    prep = kind.preprocessing(*(options.get(k) for k in _PREP_OPTIONS))
    skip_unreadable = bool(options.get("skip_unreadable", False))
    workers = options.get("workers")
    if workers is not None and int(workers) < 0:
        raise UserError(f"--workers must be 0 or more (0 or 1: decode in this process), got {workers}")

    if source is None:
        if kind.name == FOLDER.name:
            entry_path, _meta = _pick_folder_entry(cache_dir, prep, explicit=_explicit(options))
            if not force:
                return entry_path
            source = _meta.get("source")
        else:
            entry_path = _dataset_dir(kind, cache_dir) / entry_key(kind, prep)
            if not force and cache.read_meta(entry_path) is not None:
                return entry_path
            raise UserError(_not_prepared_message(kind, cache_dir, prep))

    source_path = Path(source).expanduser().resolve()
    source_kind(source_path)  # fails fast (missing, not an archive) before touching the cache
    entry_path = _dataset_dir(kind, cache_dir) / entry_key(kind, prep, source_path)
    cache.ensure_writable_dir(entry_path.parent)

    def build(tmp: Path) -> dict[str, Any]:
        src = open_source(source_path)
        return _build_into(tmp, kind, src, prep, progress=progress, skip_unreadable=skip_unreadable, workers=workers)

    return cache.ensure_entry(entry_path, build, force=force)


def load_images(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    **options: Any,
) -> CachedImages:
    """Open the prepared entry of image dataset ``name``, preparing it from ``source`` if needed.

    Options not given take the dataset's defaults; when in addition no
    ``source`` is given and the default entry is missing, the only prepared
    entry is used. Folders without ``source``: the only prepared folder
    entry (matching any options given); several give a :class:`UserError`
    that lists them.
    """
    kind = _kind(name)
    _check_options(kind, options, _PREP_OPTIONS + _BUILD_OPTIONS + ("progress",))
    progress = bool(options.pop("progress", True))
    prep = kind.preprocessing(*(options.get(k) for k in _PREP_OPTIONS))
    explicit = _explicit(options)

    if kind.name == FOLDER.name and source is None:
        entry_path, meta = _pick_folder_entry(cache_dir, prep, explicit)
        return CachedImages(entry_path, meta)

    entry_path = _dataset_dir(kind, cache_dir) / entry_key(kind, prep, source)
    meta = cache.read_meta(entry_path)
    if meta is not None:
        return CachedImages(entry_path, meta)
    if not explicit and source is None:  # nothing to prepare from: the default entry, or the only one prepared
        existing = prepared_entries(kind.name, cache_dir)
        if len(existing) == 1:
            return CachedImages(*existing[0])
    if source is None:
        raise UserError(_not_prepared_message(kind, cache_dir, prep))
    path = prepare_images(kind.name, cache_dir=cache_dir, source=source, progress=progress, **options)
    return CachedImages(path)


def _explicit(options: dict[str, Any]) -> bool:
    return any(options.get(k) is not None for k in _PREP_OPTIONS)


def _pick_folder_entry(
    cache_dir: str | os.PathLike | None, prep: Preprocessing, explicit: bool
) -> tuple[Path, dict[str, Any]]:
    entries = prepared_entries(FOLDER.name, cache_dir)
    if explicit:
        entries = [(p, m) for p, m in entries if p.name.endswith("-" + prep.key)]
    if len(entries) == 1:
        return entries[0]
    if not entries:
        raise UserError(
            f"no folder of images is prepared in {cache.cache_root(cache_dir)}; "
            "run `nsvae data prepare folder --from DIR` or pass source=DIR"
        )
    listing = "; ".join(f"{p.name} from {m.get('source', '?')}" for p, m in entries)
    raise UserError(f"{len(entries)} folders of images are prepared ({listing}); pass source=DIR (--from DIR)")


def _not_prepared_message(kind: ImageKind, cache_dir: str | os.PathLike | None, prep: Preprocessing) -> str:
    command = f"nsvae data prepare {kind.name} --from {kind.example_source}"
    if prep.crop != kind.default_crop:
        command += f" --crop {prep.crop}"
    others = [p.name for p, _ in prepared_entries(kind.name, cache_dir)]
    also = f" (prepared with other settings: {', '.join(others)})" if others else ""
    return (
        f"{kind.title} ({prep.key}) is not prepared in {cache.cache_root(cache_dir)}{also}; "
        f"run `{command}` with {kind.source_hint}"
    )


# ---------------------------------------------------------------------------------------------
# Building an entry
# ---------------------------------------------------------------------------------------------


def _build_into(
    tmp: Path,
    kind: ImageKind,
    src: ImageSource,
    prep: Preprocessing,
    *,
    progress: bool,
    skip_unreadable: bool,
    workers: int | None,
) -> dict[str, Any]:
    """Decode every image of ``src`` into ``tmp`` (images and names); returns the entry's meta."""
    total = len(src.names)
    meta: dict[str, Any] = {
        "dataset": kind.name,
        "format": FORMAT_VERSION,
        "source": str(src.path),
        "source_kind": src.kind,
        "preprocessing": prep.as_dict(),
        "observation_shape": list(prep.shape),
        "dtype": "uint8",
        "files": {"images": IMAGES_FILE, "names": NAMES_FILE},
        "candidates": total,
        "ignored_files": src.ignored,
        "nsvae_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    images_path = tmp / IMAGES_FILE
    images = np.lib.format.open_memmap(images_path, mode="w+", dtype=np.uint8, shape=(total, *prep.shape))
    _reserve_disk(images_path, tmp.parent)
    failures: dict[int, str] = {}
    written = np.zeros(total, dtype=bool)
    for index, array, error in _decode_all(src, prep, workers, progress, f"preparing {kind.name}"):
        if error is not None:
            failures[index] = error
        else:
            images[index] = array
            written[index] = True
    images.flush()
    del images
    unseen = np.flatnonzero(~written & ~np.isin(np.arange(total), list(failures)))
    if unseen.size:  # the stream ended early without an error: treat as a broken archive
        raise UserError(
            f"{src.path} ended before {src.names[unseen[0]]} (and {unseen.size - 1} more) could be read; "
            "the archive is truncated or corrupt, download it again"
        )
    skipped = [{"name": src.names[i], "reason": failures[i]} for i in sorted(failures)]
    if skipped and not skip_unreadable:
        raise UserError(_failure_message(skipped, total))
    kept = np.flatnonzero(written)
    if kept.size == 0:
        raise UserError(f"none of the {total} images in {src.path} could be read ({_shown(skipped)})")
    if skipped:
        _compact_rows(images_path, kept)
    with open(tmp / NAMES_FILE, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as handle:
        for i in kept:
            handle.write(src.names[i].replace("\n", "\\n") + "\n")
    meta["images"] = int(kept.size)
    meta["skipped"] = skipped
    if kind.expected_images is not None and kept.size != kind.expected_images:
        meta["note"] = f"the official {kind.title} has {kind.expected_images:,} images; this has {kept.size:,}"
    return meta


def _shown(skipped: list[dict[str, str]]) -> str:
    shown = ", ".join(f"{s['name']} ({s['reason']})" for s in skipped[:_SHOWN_FAILURES])
    more = f" and {len(skipped) - _SHOWN_FAILURES} more" if len(skipped) > _SHOWN_FAILURES else ""
    return shown + more


def _failure_message(skipped: list[dict[str, str]], total: int) -> str:
    return (
        f"{len(skipped)} of {total} images could not be read: {_shown(skipped)}; "
        "nothing was cached. Fix or remove them, or leave them out with --skip-bad (skip_unreadable=True)"
    )


def _reserve_disk(path: Path, where: Path) -> None:
    """Allocate the array's blocks now, so a full disk is an error here, not a SIGBUS later."""
    size = path.stat().st_size
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        fd = os.open(path, os.O_RDWR)
        try:
            fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                raise _no_space(where, size) from None
            # not supported by this file system: fall back to comparing with the free space
        finally:
            os.close(fd)
    if shutil.disk_usage(where).free < size:
        raise _no_space(where, size)


def _no_space(where: Path, size: int) -> UserError:
    return UserError(
        f"not enough free disk space in {where} for {size / 2**30:.2f} GiB of images; "
        f"free some space or choose another cache with --cache-dir or {cache.CACHE_ENV}"
    )


def _compact_rows(path: Path, kept: np.ndarray) -> None:
    """Move the rows ``kept`` (ascending) to the front of the ``.npy`` at ``path`` and shorten it."""
    images = np.load(path, mmap_mode="r+")
    row_shape = images.shape[1:]
    block = 1024
    for start in range(0, kept.size, block):
        rows = kept[start : start + block]
        images[start : start + rows.size] = images[rows]  # sources are read before the (lower) targets are written
    images.flush()
    offset = images.offset
    del images
    new_shape = (int(kept.size), *row_shape)
    header = _npy_header(new_shape)
    if len(header) == offset:
        with open(path, "r+b") as handle:
            handle.write(header)
            handle.truncate(offset + int(np.prod(new_shape)))
        return
    # The header would change length: copy into a new file (never happens with numpy's padded headers).
    old = np.load(path, mmap_mode="r")
    fresh_path = path.with_name(path.name + ".compact")
    fresh = np.lib.format.open_memmap(fresh_path, mode="w+", dtype=np.uint8, shape=new_shape)
    for start in range(0, kept.size, 4096):
        fresh[start : start + 4096] = old[start : start + 4096]
    fresh.flush()
    del fresh, old
    os.replace(fresh_path, path)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _chunks(src: ImageSource) -> Iterator[list[tuple[int, str, bytes | None, str | None]]]:
    position = {name: i for i, name in enumerate(src.names)}
    chunk: list[tuple[int, str, bytes | None, str | None]] = []
    for name, data in src.iter_bytes():
        if isinstance(data, MemberError):
            chunk.append((position[name], name, None, data.reason))
        else:
            chunk.append((position[name], name, data, None))
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _default_workers(total: int) -> int:
    if total < 4 * _CHUNK:
        return 0
    return min(4, usable_cpus())


def _decode_all(
    src: ImageSource, prep: Preprocessing, workers: int | None, progress: bool, desc: str
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """``(index, array or None, error or None)`` for every member; decodes in a bounded process pool.

    At most ``2 * workers`` chunks of :data:`_CHUNK` encoded images are in
    flight, so memory stays small whatever the size of the source.
    """
    total = len(src.names)
    workers = _default_workers(total) if workers is None else int(workers)
    executor = None
    if workers > 1:
        executor = worker_pool(workers)
        # Start the workers now, before the progress bar starts its monitor thread.
        executor.submit(int).result()
    pending: collections.deque[Future] = collections.deque()
    try:
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
            for chunk in _chunks(src):
                if executor is None:
                    results = decode_chunk(chunk, prep)
                    bar.update(len(results))
                    yield from results
                    continue
                pending.append(executor.submit(decode_chunk, chunk, prep))
                while len(pending) >= 2 * workers:
                    results = pending.popleft().result()
                    bar.update(len(results))
                    yield from results
            while pending:
                results = pending.popleft().result()
                bar.update(len(results))
                yield from results
    finally:
        if executor is not None:
            for future in pending:
                future.cancel()
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Registry entries
# ---------------------------------------------------------------------------------------------


def _register(kind: ImageKind) -> registry.DatasetEntry:
    def load(cache_dir=None, source=None, **options):
        return load_images(kind.name, cache_dir=cache_dir, source=source, **options)

    def prepare(cache_dir=None, source=None, force=False, progress=True, **options):
        return prepare_images(kind.name, cache_dir=cache_dir, source=source, force=force, progress=progress, **options)

    def status(cache_dir=None):
        return image_status(kind.name, cache_dir=cache_dir)

    load.__doc__ = f"Open the prepared {kind.title} cache (see :func:`load_images`)."
    prepare.__doc__ = f"Prepare {kind.title} from the user's files (see :func:`prepare_images`)."
    status.__doc__ = f"One row per prepared {kind.title} cache entry."
    return registry.register(
        registry.DatasetEntry(
            name=kind.name,
            summary=kind.summary,
            load=load,
            prepare=prepare,
            status=status,
            needs_source=kind.needs_source,
            source_hint=kind.source_hint,
        )
    )


ENTRIES = {name: _register(kind) for name, kind in KINDS.items()}
