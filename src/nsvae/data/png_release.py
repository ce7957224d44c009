"""Ground-truth sets released as numbered PNG files and a labels array (Falcor3D, Isaac3D).

NVIDIA's high-resolution disentanglement sets (Nie et al., *Semi-Supervised
StyleGAN for Disentanglement Learning*, ICML 2020;
https://github.com/NVlabs/High-res-disentanglement-datasets) come, in their
128x128 version, as one zip per set holding a folder ``<Set>3D_down128/``
with

- ``images/NNNNNN.png``: one 128x128 RGB PNG per image, named by its index
  padded with zeros to six digits (the README), index ``i`` being the
  row-major position over the factor grid (last factor fastest);
- a labels array (``train-rec.labels`` for Falcor3D, ``labels.npy`` for
  Isaac3D; both ``.npy`` format), shape ``(N, k)``, row ``i`` the factor
  values of image ``i`` ("uniformly sampled in the normalized range [0, 1]").

``nsvae data prepare NAME --from PATH`` takes the zip, the extracted folder
(or the folder it was extracted into), or the labels file in it. The zip is
read member by member, never extracted. A folder is known by its labels file
and its images folder: the cache entry is reused while those are the same
(sizes and modification times; adding or removing a PNG changes the
folder's), without listing 737,280 files on every use.

Where an image goes is decided from its labels, never from its file name
alone: class ``k`` of a factor is its ``k``-th smallest label value (how
latent quantisation's loaders number them, ``np.unique``), and the labels
must hold every cell of the grid exactly once. Image ``i`` is then stored at
the cell its labels name; in the official release that is ``i`` itself.

Each image is decoded and reduced to 64x64 with the filter the papers that
use these sets at 64x64 use: latent quantisation's and Tripod's loaders call
``tf.image.resize(x, [64, 64], method="bicubic", antialias=True)``, Keys'
cubic kernel (a = -0.5) stretched by the 2x reduction, weights renormalised
at the borders, computed in floating point. Pillow's bicubic resampling of a
float image is that same filter (its coefficients are computed the same way);
the result is rounded to uint8 once, where the papers keep the floats: a
difference of at most 0.5/255 per pixel.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import sys
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..cpus import usable_cpus
from ..errors import UserError
from ..processes import worker_pool
from . import ground_truth_files as gtf
from . import image_sources

#: Side of every image of the 128x128 releases.
RELEASE_SIZE = 128
#: Images decoded per task of the worker pool (about 4 MB of PNG bytes).
DECODE_BATCH = 128
#: Below this many images the pool costs more than it saves: decode in this process.
POOL_FROM_IMAGES = 8 * DECODE_BATCH

_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
#: Room for a labels file's ``.npy`` header beyond its float64 values.
_LABELS_HEADER_BYTES = 1 << 16


@dataclass(frozen=True)
class Release:
    """Where a PNG release keeps its files, as published."""

    #: The folder the zip holds, e.g. ``"Falcor3D_down128"``.
    folder: str
    #: The labels array's file name inside that folder.
    labels_file: str
    images_folder: str = "images"
    digits: int = 6

    def image_name(self, index: int) -> str:
        return f"{index:0{self.digits}d}.png"

    def open_file(self, dataset: gtf.FileDataset, path: Path, layouts: tuple[gtf.Layout, ...]) -> PngRelease:
        return PngRelease(dataset, Path(path), layouts, self)

    def labels_in(self, directory: Path) -> Path:
        """The labels file of the release extracted in ``directory`` (the folder itself or the one it was put in)."""
        for candidate in (directory / self.labels_file, directory / self.folder / self.labels_file):
            if candidate.is_file():
                return candidate
        raise UserError(
            f"{directory} holds neither {self.labels_file} nor {self.folder}/{self.labels_file}; give the folder "
            f"{self.folder} extracted from the release's zip, or the zip itself"
        )

    def images_beside(self, labels: Path) -> Path:
        """The images folder next to the labels file ``labels``; a UserError if there is none."""
        images = labels.parent / self.images_folder
        if not images.is_dir():
            raise UserError(
                f"{images} is missing: {self.folder} holds the PNGs in {self.images_folder}/ beside {labels.name}; "
                "extract the release's zip again, or give the zip"
            )
        return images

    def directory_files(self, directory: Path) -> list[Path]:
        """What says "the same release" of a folder without listing every PNG: the labels file and the images
        folder (whose modification time changes when an image is added or removed)."""
        labels = self.labels_in(directory)
        return [labels, self.images_beside(labels)]


# ---------------------------------------------------------------------------------------------
# Decoding (runs in worker processes: module-level, picklable arguments)
# ---------------------------------------------------------------------------------------------


def reduce_to_64(rgb: np.ndarray) -> np.ndarray:
    """A uint8 ``(128, 128, 3)`` image as uint8 ``(64, 64, 3)``: antialiased bicubic (see the module doc)."""
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32)).resize(
                (gtf.FILE_IMAGE_SHAPE[1], gtf.FILE_IMAGE_SHAPE[0]), Image.Resampling.BICUBIC
            )
        )
        for c in range(rgb.shape[-1])
    ]
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def decode_png(data: bytes, size: int = RELEASE_SIZE) -> np.ndarray | str:
    """The 64x64 image of one release PNG, or one line saying why it is not a ``size`` x ``size`` RGB PNG."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "PNG":
                    return f"is {image.format or 'an unknown format'}, not PNG"
                if image.size != (size, size):
                    return f"is {image.width}x{image.height}, expected {size}x{size}"
                if image.mode not in ("RGB", "RGBA"):
                    return f"has mode {image.mode}, expected RGB"
                image.load()
                # RGBA loses its alpha, as TensorFlow's decode_png(channels=3) in the papers' loaders does.
                rgb = np.asarray(image.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoder failure makes the file unreadable, reported by name
        return f"is not a readable PNG ({' '.join(str(exc).split()) or type(exc).__name__})"
    return reduce_to_64(rgb)


def decode_pngs(blobs: list[bytes], size: int = RELEASE_SIZE) -> list[np.ndarray | str]:
    return [decode_png(blob, size) for blob in blobs]


# ---------------------------------------------------------------------------------------------
# The two ways a release arrives: its zip, or the folder extracted from it
# ---------------------------------------------------------------------------------------------


def _numbered(name: str, release: Release) -> int | None:
    stem, dot, ext = name.rpartition(".")
    if dot and ext == "png" and len(stem) == release.digits and stem.isascii() and stem.isdigit():
        return int(stem)
    return None


def _read_capped(handle, where: str, declared: int, stored: int | None) -> bytes:
    too_big = image_sources._too_big(declared, stored)
    if too_big:
        raise UserError(f"{where}: {too_big}")
    data = handle.read(image_sources.MAX_MEMBER_BYTES + 1)
    if len(data) > image_sources.MAX_MEMBER_BYTES:  # its header understated it
        raise UserError(f"{where}: {image_sources._too_big(len(data), None)}")
    return data


class _FolderFiles:
    """The folder extracted from the release's zip, known by its labels file."""

    def __init__(self, labels: Path, release: Release):
        self.labels_path = labels
        self.labels_where = str(labels)
        self.images = release.images_beside(labels)
        self.release = release

    def labels_bytes(self, limit: int) -> bytes:
        with open(self.labels_path, "rb") as handle:
            data = handle.read(limit + 1)
        self.labels_md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return data

    def image_indices(self) -> set[int]:
        """The index of every numbered PNG in the images folder."""
        with os.scandir(self.images) as entries:
            found = (_numbered(entry.name, self.release) for entry in entries)
            return {index for index in found if index is not None}

    def image_bytes(self, index: int) -> bytes:
        path = self.images / self.release.image_name(index)
        try:
            with open(path, "rb") as handle:
                return _read_capped(handle, str(path), os.fstat(handle.fileno()).st_size, None)
        except OSError as exc:
            raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None

    def where(self, index: int) -> str:
        return str(self.images / self.release.image_name(index))

    def close(self) -> None:
        """Nothing to release: every file is opened and closed as it is read."""


class _ZipFiles:
    """The release's zip, read member by member (declared sizes checked first, CRC-32 checked on reading)."""

    def __init__(self, path: Path, release: Release):
        self.path = path
        self.release = release
        try:
            self.zip = zipfile.ZipFile(path)
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _broken_zip(path, exc) from None
        try:
            self._index(infos, path.stat().st_size)
        except BaseException:
            self.zip.close()
            raise

    def _index(self, infos: list[zipfile.ZipInfo], size: int) -> None:
        release = self.release
        labels, images = [], []
        for info in infos:
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or not parts or "__MACOSX" in parts or any(part.startswith(".") for part in parts):
                continue
            is_labels = parts[-1] == release.labels_file
            index = _numbered(parts[-1], release) if len(parts) >= 2 and parts[-2] == release.images_folder else None
            if not is_labels and index is None:
                continue
            if info.header_offset + info.compress_size > size:
                raise _broken_zip(self.path, EOFError(f"member {info.filename} runs past the end of the file"))
            if is_labels:
                labels.append(info)
            else:
                images.append((index, info))
        if len(labels) != 1:
            found = "none" if not labels else ", ".join(info.filename for info in labels)
            raise UserError(
                f"{self.path}: expected one {release.folder}/{release.labels_file} (found {found}); is this "
                f"the {release.folder} release?"
            )
        self.labels_info = labels[0]
        self.labels_where = f"{self.path}: {self.labels_info.filename}"
        # The images beside the labels: another folder's PNGs in the same zip are not this release's.
        self.prefix = f"{self.labels_info.filename[: -len(release.labels_file)]}{release.images_folder}/"
        self.members = {index: info for index, info in images if info.filename.startswith(self.prefix)}

    def labels_bytes(self, limit: int) -> bytes:
        info = self.labels_info
        if info.file_size > limit:
            raise UserError(
                f"{self.labels_where} declares {info.file_size:,} bytes, more than labels of this release can "
                "have; it is not the release's labels file"
            )
        return self._read(info, self.labels_where, lambda handle: handle.read(limit + 1))

    def image_indices(self) -> set[int]:
        """The index of every numbered PNG in the images folder beside the labels."""
        return set(self.members)

    def image_bytes(self, index: int) -> bytes:
        info = self.members[index]
        where = f"{self.path}: {info.filename}"
        return self._read(info, where, lambda handle: _read_capped(handle, where, info.file_size, info.compress_size))

    def _read(self, info: zipfile.ZipInfo, where: str, read) -> bytes:
        try:
            with self.zip.open(info) as handle:
                return read(handle)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise UserError(f"{where} is damaged ({gtf.first_line(exc)}); download the release's zip again") from None

    def where(self, index: int) -> str:
        return f"{self.path}: {self.prefix}{self.release.image_name(index)}"

    def close(self) -> None:
        self.zip.close()


def _broken_zip(path: Path, exc: BaseException) -> UserError:
    return UserError(
        f"{path} is not a complete zip archive (truncated or corrupt: {gtf.first_line(exc)}); download it again "
        "or check it with `unzip -t`"
    )


def _open_files(path: Path, release: Release) -> _FolderFiles | _ZipFiles:
    """The release behind ``path``: a folder, or a file that is, by its content, the zip or the folder's labels."""
    if path.is_dir():
        return _FolderFiles(release.labels_in(path), release)
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
    if head.startswith(_ZIP_MAGIC):
        return _ZipFiles(path, release)
    if head.startswith(_NPY_MAGIC):
        return _FolderFiles(path, release)
    raise UserError(
        f"{path} is neither the release's zip nor its labels file ({release.labels_file}, a .npy array); give the "
        f"zip, the folder {release.folder} extracted from it, or its {release.labels_file}"
    )


# ---------------------------------------------------------------------------------------------
# The source file: labels checked against the grid, images decoded in the grid's order
# ---------------------------------------------------------------------------------------------


class PngRelease(gtf.SourceFile):
    """A PNG release opened for conversion (see the module doc)."""

    pool = None
    files: _FolderFiles | _ZipFiles | None = None

    def __init__(self, dataset: gtf.FileDataset, path: Path, layouts: tuple[gtf.Layout, ...], release: Release):
        super().__init__(dataset, path, layouts)
        self.release = release
        self.workers = 0
        self.file_of_cell: np.ndarray | None = None
        self.values: list[list[Any]] | None = None

    def __enter__(self) -> PngRelease:
        try:
            # Fork the decoding workers first: while this process is small, before a progress bar starts its thread.
            if max(layout.images for layout in self.layouts) >= POOL_FROM_IMAGES and usable_cpus() > 1:
                self.workers = min(4, usable_cpus())
                self.pool = worker_pool(self.workers)
                self.pool.submit(int).result()
            self.files = _open_files(self.path, self.release)
            self.labels = self._read_labels()
            self._check_images_present()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.files is not None:
            self.files.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    # -- structure ----------------------------------------------------------------------------

    def _read_labels(self) -> np.ndarray:
        k = len(self.dataset.factor_names)
        where = self.files.labels_where
        limit = max(layout.images for layout in self.layouts) * k * 8 + _LABELS_HEADER_BYTES
        data = self.files.labels_bytes(limit)
        if len(data) > limit:
            raise UserError(f"{where} holds more than {limit:,} bytes: too large for this release's labels")
        try:
            labels = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"{where} is not a readable .npy array ({gtf.first_line(exc)})") from None
        if not isinstance(labels, np.ndarray):
            raise UserError(f"{where} holds several arrays, expected one labels array")
        shape = labels.shape
        n = shape[0] if labels.ndim == 2 and shape[1] == k else -1  # -1 matches no grid
        self.layout = next((layout for layout in self.layouts if layout.images == n), None)
        if self.layout is None:
            expected = " or ".join(f"({layout.images}, {k})" for layout in self.layouts)
            raise UserError(f"{where}: labels have shape {shape}, expected {expected}")
        if labels.dtype.kind not in "fiu":
            raise UserError(f"{where}: labels have dtype {labels.dtype}, expected numbers")
        if labels.dtype.kind == "f" and not np.isfinite(labels).all():
            raise UserError(f"{where}: labels hold NaN or infinite values")
        return labels

    def _check_images_present(self) -> None:
        n = self.layout.images
        present = self.files.image_indices()
        missing = [i for i in range(n) if i not in present]
        if missing:
            raise UserError(
                f"{self.files.where(missing[0])} is missing ({len(missing)} of the {n:,} images the labels "
                "describe are); extract the release again"
            )
        extra = sorted(i for i in present if i >= n)
        if extra:
            raise UserError(
                f"{self.files.where(extra[0])} has no row in {self.release.labels_file} ({n:,} rows; "
                f"{len(extra):,} numbered PNGs beyond them); the labels are not this folder's"
            )

    def provenance(self) -> dict[str, Any]:
        """A folder has no one checksum: the MD5 of its labels file (the zip's own MD5 is recorded as the file's)."""
        if isinstance(self.files, _FolderFiles):
            return {"labels_file": {"path": str(self.files.labels_path.resolve()), "md5": self.files.labels_md5}}
        return {}

    # -- the grid -----------------------------------------------------------------------------

    def factor_values(self) -> list[list[Any]]:
        """The label value of each class of each factor, after checking the labels hold the whole grid once."""
        if self.values is None:
            self.values, self.file_of_cell = self._place()
        return self.values

    def _place(self) -> tuple[list[list[Any]], np.ndarray]:
        where = self.files.labels_where
        sizes, names = self.layout.factor_sizes, self.dataset.factor_names
        grid = "x".join(map(str, sizes))
        classes = np.empty(self.labels.shape, dtype=np.int64)
        values = []
        for f, (size, name) in enumerate(zip(sizes, names, strict=True)):
            distinct, classes[:, f] = np.unique(self.labels[:, f], return_inverse=True)
            if distinct.size != size:
                raise UserError(
                    f"{where}: labels do not match the {grid} grid: {name} takes {distinct.size} distinct values, "
                    f"expected {size}"
                )
            values.append([v.item() for v in distinct])
        cell = np.ravel_multi_index(tuple(classes.T), sizes)
        counts = np.bincount(cell, minlength=self.layout.images)
        if (counts != 1).any():
            twice = int(np.flatnonzero(counts > 1)[0])
            first, second = (int(i) for i in np.flatnonzero(cell == twice)[:2])
            first, second = (self.release.image_name(i) for i in (first, second))
            raise UserError(
                f"{where}: labels do not hold the {grid} grid once: {first} and {second} have the same labels, "
                f"and {int((counts == 0).sum()):,} of the {counts.size:,} combinations have no image"
            )
        file_of_cell = np.empty_like(cell)
        file_of_cell[cell] = np.arange(cell.size)
        moved = int((cell != np.arange(cell.size)).sum())
        if moved:
            print(
                f"nsvae: {self.dataset.name}: the labels place {moved:,} images elsewhere than their file number "
                "says; each is stored where its labels say",
                file=sys.stderr,
                flush=True,
            )
        return values, file_of_cell

    # -- images -------------------------------------------------------------------------------

    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        self.factor_values()
        order = self.file_of_cell
        pending: list[np.ndarray] = []
        held = 0
        batches = (order[start : start + DECODE_BATCH] for start in range(0, order.size, DECODE_BATCH))
        for images in self._decoded(batches):
            pending.append(images)
            held += images.shape[0]
            if held >= chunk:
                joined = np.concatenate(pending)
                used = held - held % chunk
                for start in range(0, used, chunk):
                    yield joined[start : start + chunk]
                pending, held = [joined[used:]], held - used
        if held:
            yield np.concatenate(pending)

    def _decoded(self, batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """Each batch of file indices as uint8 ``(b, 64, 64, 3)``, in order; at most ``2 * workers`` batches out."""
        if self.pool is None:
            for files in batches:
                yield self._checked(files, decode_pngs(self._read(files)))
            return
        in_flight: collections.deque = collections.deque()
        for files in batches:
            in_flight.append((files, self.pool.submit(decode_pngs, self._read(files))))
            while len(in_flight) >= 2 * self.workers:
                done, future = in_flight.popleft()
                yield self._checked(done, future.result())
        while in_flight:
            done, future = in_flight.popleft()
            yield self._checked(done, future.result())

    def _read(self, files: np.ndarray) -> list[bytes]:
        return [self.files.image_bytes(int(i)) for i in files]

    def _checked(self, files: np.ndarray, decoded: list[np.ndarray | str]) -> np.ndarray:
        for index, result in zip(files, decoded, strict=True):
            if isinstance(result, str):
                raise UserError(f"{self.files.where(int(index))} {result}; extract or download the release again")
        return np.stack(decoded)
