"""The official dSprites file (``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` or its ``.hdf5`` twin) converted
into the cache format of :mod:`nsvae.data.dsprites` (``nsvae data prepare dsprites --from FILE``).

The file's checksum is checked (a mismatch is refused unless forced), then its arrays' presence, shapes, dtypes and
values, and that ``latents_classes`` are in the official order; ``imgs`` is streamed in chunks of
:data:`~nsvae.data.dsprites.IMPORT_CHUNK` images and bit-packed. Optionally every chunk is also drawn by the built-in
generator and the differing pixels are counted into ``meta.json``.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from . import cache
from . import dsprites_render as render
from .dsprites import (
    BLOCKS,
    GENERATOR_VERSION,
    IMPORT_CHUNK,
    OFFICIAL_FILE_NAME,
    OFFICIAL_HDF5_SHA256,
    OFFICIAL_KEY,
    OFFICIAL_NPZ_MD5,
    OFFICIAL_URL,
    PackedWriter,
    damaged_entry,
    entry_ready,
    progress_bar,
    warn_rebuild,
)


def _odometer_indices(classes: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    bases = np.concatenate([np.cumprod(np.asarray(sizes[::-1], dtype=np.int64))[::-1][1:], [1]])
    return classes.astype(np.int64) @ bases


def _check_classes(classes: np.ndarray, sizes: tuple[int, ...], where: str) -> None:
    n = int(np.prod(sizes))
    if classes.ndim != 2 or classes.shape != (n, len(sizes) + 1):
        raise UserError(
            f"{where}: latents_classes has shape {classes.shape}, expected ({n}, {len(sizes) + 1}); "
            "this is not the official dSprites file"
        )
    if classes.dtype.kind not in "iu":
        raise UserError(f"{where}: latents_classes has dtype {classes.dtype}, expected integers")
    if (classes[:, 0] != 0).any() or not np.array_equal(_odometer_indices(classes[:, 1:], sizes), np.arange(n)):
        raise UserError(
            f"{where}: the images are not in the official order (latents_classes do not count "
            "shape, scale, orientation, posX, posY with posY fastest)"
        )


def _binarise(chunk: np.ndarray, where: str) -> np.ndarray:
    top = int(chunk.max()) if chunk.size else 0
    if top <= 1:
        return chunk
    if np.isin(chunk, (0, 255)).all():  # a copy saved as 0/255
        return (chunk > 0).astype(np.uint8)
    raise UserError(f"{where}: imgs holds values up to {top}; dSprites images are binary (0/1)")


class _Source:
    """The arrays of an official file, read lazily: ``classes`` and a chunked ``imgs`` reader."""

    def __init__(self, path: Path):
        self.path = path
        self._close: list[Callable[[], None]] = []

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        for close in reversed(self._close):
            with contextlib.suppress(Exception):
                close()


class _NpzSource(_Source):
    def __enter__(self) -> _NpzSource:
        try:
            self.zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile:
            raise UserError(f"{self.path} is not a valid .npz file (truncated or corrupt zip)") from None
        self._close.append(self.zip.close)
        names = set(self.zip.namelist())
        for key in ("imgs", "latents_classes"):
            if f"{key}.npy" not in names:
                have = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "nothing"
                raise UserError(f"{self.path}: missing array {key!r} (the file has {have})")
        return self

    def classes(self) -> np.ndarray:
        with self.zip.open("latents_classes.npy") as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def image_chunks(self, expected: tuple[int, ...]) -> Iterator[np.ndarray]:
        where = f"{self.path}: imgs"
        member = self.zip.open("imgs.npy")
        self._close.append(member.close)
        version = np.lib.format.read_magic(member)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = header(member)
        if tuple(shape) != expected or fortran or np.dtype(dtype) not in (np.dtype(np.uint8), np.dtype(bool)):
            raise UserError(
                f"{where} is {'Fortran-ordered ' if fortran else ''}{np.dtype(dtype)} of shape {tuple(shape)}, "
                f"expected uint8 of shape {expected}"
            )
        per_image = int(np.prod(expected[1:]))
        for start in range(0, expected[0], IMPORT_CHUNK):
            count = min(IMPORT_CHUNK, expected[0] - start)
            buf = member.read(count * per_image)
            if len(buf) != count * per_image:
                raise UserError(f"{where} ends early at image {start + len(buf) // per_image} (truncated file)")
            yield np.frombuffer(buf, dtype=np.uint8).reshape(count, *expected[1:])


class _Hdf5Source(_Source):
    def __enter__(self) -> _Hdf5Source:
        try:
            import h5py
        except ImportError:
            raise UserError(
                "reading the .hdf5 dSprites file needs h5py: pip install h5py (or use the .npz file)"
            ) from None
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise UserError(f"{self.path} is not a readable HDF5 file ({exc})") from None
        self._close.append(self.h5.close)
        for key in ("imgs", "latents/classes"):
            if key not in self.h5:
                raise UserError(f"{self.path}: missing dataset {key!r}")
        return self

    def classes(self) -> np.ndarray:
        return self._read(self.h5["latents/classes"], slice(None))

    def _read(self, dataset, rows) -> np.ndarray:
        try:
            return np.asarray(dataset[rows])
        except OSError as exc:
            raise UserError(f"{self.path}: cannot read {dataset.name} ({exc}); the file may be truncated") from None

    def image_chunks(self, expected: tuple[int, ...]) -> Iterator[np.ndarray]:
        imgs = self.h5["imgs"]
        if tuple(imgs.shape) != expected or imgs.dtype not in (np.dtype(np.uint8), np.dtype(bool)):
            raise UserError(f"{self.path}: imgs is {imgs.dtype} of shape {imgs.shape}, expected uint8 {expected}")
        for start in range(0, expected[0], IMPORT_CHUNK):
            yield self._read(imgs, slice(start, min(start + IMPORT_CHUNK, expected[0]))).astype(np.uint8, copy=False)


def _open_source(path: Path) -> _Source:
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"PK"):
        return _NpzSource(path)
    if magic.startswith(b"\x89HDF"):
        return _Hdf5Source(path)
    raise UserError(f"{path} is neither an .npz (zip) nor an .hdf5 file; expected {OFFICIAL_FILE_NAME}")


def verify_checksum(path: Path, force: bool) -> dict[str, Any]:
    algorithm, expected = ("sha256", OFFICIAL_HDF5_SHA256) if _is_hdf5(path) else ("md5", OFFICIAL_NPZ_MD5)
    actual = cache.file_digest(path, algorithm)
    ok = actual == expected
    if not ok and not force:
        raise UserError(
            f"{path} has {algorithm} {actual}, not the official {expected}; if this is a copy you trust "
            "(e.g. re-saved), rerun with --force"
        )
    return {"checksum": f"{algorithm}:{actual}", "checksum_verified": ok}


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x89HDF"


def import_official(
    path: str | os.PathLike,
    entry: Path,
    *,
    force: bool = False,
    progress: bool = True,
    compare: bool = True,
    factor_sizes: tuple[int, ...] = render.FACTOR_SIZES,
    reuse: bool = False,
) -> Path:
    """Convert the official dSprites file at ``path`` into the cache entry ``entry``.

    Checks the checksum (a mismatch is refused unless ``force``), the arrays'
    presence, shapes, dtypes and values, and that ``latents_classes`` are in
    the official order; then streams ``imgs`` in chunks of
    :data:`IMPORT_CHUNK` images (peak memory ~0.2 GB, not the 2.8 GB of the
    whole array). With ``compare``, every chunk is also drawn by the built-in
    generator and the differing pixels are counted into ``meta.json``.

    ``reuse``: return a ready entry that passes the full check as it is,
    without reading ``path`` (``force`` imports again anyway).
    ``factor_sizes`` exists for tests that build small files with the
    official layout; the command line always uses the official sizes.
    """
    path = Path(path).expanduser()

    def build(tmp: Path) -> dict[str, Any]:
        return _import_into(tmp, path, force, progress, compare, tuple(factor_sizes))

    return cache.ensure_entry(
        entry,
        build,
        ready=lambda entry: entry_ready(entry, OFFICIAL_KEY),
        check=lambda entry: damaged_entry(entry, full=True),
        on_damaged=warn_rebuild,
        force=force or not reuse,
    )


def _import_into(
    tmp: Path, path: Path, force: bool, progress: bool, compare: bool, factor_sizes: tuple[int, ...]
) -> dict[str, Any]:
    """Check the official file at ``path`` and write its packed images into ``tmp``; returns the entry's meta."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; get {OFFICIAL_FILE_NAME} from {OFFICIAL_URL}")
    n = int(np.prod(factor_sizes))
    official_layout = factor_sizes == render.FACTOR_SIZES
    checks = verify_checksum(path, force) if official_layout else {"checksum_verified": False}
    where = str(path)
    with _open_source(path) as source:
        _check_classes(source.classes(), factor_sizes, where)
        meta = {
            "key": OFFICIAL_KEY,
            "dataset": "dsprites",
            "source": "official",
            "file": str(path.resolve()),
            "images": n,
            "observation_shape": [1, 64, 64],
            "factor_sizes": list(factor_sizes),
            "layout": "packbits rows, official index order",
            **checks,
        }
        wrong_pixels = 0
        start = 0
        bar = progress_bar(n, "importing dSprites", progress)
        with PackedWriter(tmp / "images.npy", (n, 64, 8)) as out, bar:
            for chunk in source.image_chunks((n, 64, 64)):
                chunk = _binarise(chunk, f"{where}: imgs")
                out.write(np.packbits(chunk, axis=-1))
                if compare and official_layout:
                    wrong_pixels += _count_generator_differences(chunk, start)
                start += chunk.shape[0]
                bar.update(chunk.shape[0])
    if compare and official_layout:
        meta["generator_wrong_pixels"] = wrong_pixels
        meta["generator_wrong_pixel_rate"] = wrong_pixels / (n * 4096)
        meta["generator_version"] = GENERATOR_VERSION
    return meta


def _count_generator_differences(chunk: np.ndarray, start: int) -> int:
    block = render.FACTOR_SIZES[3] * render.FACTOR_SIZES[4]
    wrong = 0
    for offset in range(0, chunk.shape[0], block):
        k = (start + offset) // block
        wrong += int(np.count_nonzero(render.render_block(*BLOCKS[k]) != chunk[offset : offset + block]))
    return wrong
