"""Cars3D (Reed, Zhang, Zhang & Lee, "Deep Visual Analogy-Making", NIPS 2015), from the user's archive or folder.

The file is ``nips2015-analogy-data.tar.gz`` from the first author's page
(http://www.scottreed.info, ``files/nips2015-analogy-data.tar.gz``, the
address disentanglement_lib and disent download). Its ``data/cars/`` holds 183
files ``car_*_mesh.mat``, one per car model: MATLAB v5 files whose array
``im`` is uint8 ``(128, 128, 3, 24, 4)`` = (height, width, RGB, azimuth,
elevation), beside a ``mask`` this reader does not use (disent's description
of the archive; disentanglement_lib's ``cars3d.py`` reads ``im`` with the
same axes, the 24 azimuths before the 4 elevations). The archive also holds
sprites and shapes sets, which are skipped.

As disentanglement_lib (``data/ground_truth/cars3d.py``): 4 x 24 x 183 =
17,568 images, each resized from 128 x 128 to 64 x 64 with Pillow's Lanczos
filter (disentanglement_lib's ``thumbnail(..., ANTIALIAS)``, which for a
square image is that resize), in row-major order over elevation 4, azimuth 24
and car 183 (the car fastest). The cars are numbered in the sorted order of
their file names; disentanglement_lib numbered them in the order the
directory listing gave, which no system specifies, so car indices may differ
from a given run of it, and the archive's ``data/cars/list.txt`` is not read.

Preparing accepts the archive (gzip-compressed or plain tar, told from its
first bytes) or the folder it was extracted to (``data/cars``, or a folder
above it). The archive is read as a stream, member by member, twice: a first
pass lists the cars (so their order is known before any image is written),
the second converts them. Each member is checked before it is read (a regular
file, at most :data:`MAX_CAR_FILE_BYTES`), and so is each ``im`` before it is
loaded (its shape and class, read from the MATLAB header); the gzip stream's
CRC-32 is checked over every byte on both passes.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from PIL import Image

from ..errors import UserError
from . import ground_truth_files as gtf

FACTOR_NAMES = ("elevation", "azimuth", "car")
FACTOR_SIZES = (4, 24, 183)
FILE_NAME = "nips2015-analogy-data.tar.gz"
SOURCE_URL = "http://www.scottreed.info (http://www.scottreed.info/files/nips2015-analogy-data.tar.gz)"
#: MD5 of the whole archive, as recorded by the disent library (nmichlo/disent, Cars3dData, its "full" hash; the
#: latte library records the same).
OFFICIAL_MD5 = "4e866a7919c1beedf53964e6f7a23686"
CARS_DIR = PurePosixPath("data/cars")
CAR_FILE = re.compile(r"car_[^/]*_mesh\.mat")
ARRAY_KEY = "im"
IMAGE_SHAPE = (128, 128, 3)
#: The largest car file read. One ``im`` is 4.7 MB and the file also holds a mask; a member declared larger is
#: refused before it is read (so a damaged or hostile archive cannot make one read exhaust memory).
MAX_CAR_FILE_BYTES = 64 << 20
_GZIP_MAGIC = b"\x1f\x8b"

LAYOUT = gtf.Layout(
    name="official",
    factor_sizes=FACTOR_SIZES,
    factor_values=None,  # classes 0..3 and 0..23, and the cars' file names, read from the source
    description="elevation 4 x azimuth 24 x car 183, 17,568 images",
)


def car_name(member: str) -> str | None:
    """The car file's name if ``member`` (an archive path) is ``data/cars/car_*_mesh.mat``, else ``None``."""
    path = PurePosixPath(member.removeprefix("./"))
    if path.parent == CARS_DIR and CAR_FILE.fullmatch(path.name):
        return path.name
    return None


def find_car_files(directory: Path) -> list[Path]:
    """The car files of an extracted archive: in ``data/cars``, ``cars`` or ``directory`` itself, sorted by name."""
    for folder in (directory / CARS_DIR, directory / CARS_DIR.name, directory):
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if CAR_FILE.fullmatch(p.name) and p.is_file())
            if files:
                return files
    raise UserError(
        f"{directory} holds no data/cars/car_*_mesh.mat files; give {FILE_NAME} or the folder it was extracted to"
    )


def _resize(image: np.ndarray) -> np.ndarray:
    """One 128 x 128 RGB image to 64 x 64 with Pillow's Lanczos filter, as disentanglement_lib resized it."""
    size = (gtf.IMAGE_SIZE, gtf.IMAGE_SIZE)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.LANCZOS))


def read_car(data: bytes, where: str, azimuths: int, elevations: int) -> np.ndarray:
    """The ``im`` array of one car file's bytes, checked from the MATLAB header before it is loaded."""
    from scipy.io import loadmat, whosmat
    from scipy.io.matlab import MatReadError

    expected = (*IMAGE_SHAPE, azimuths, elevations)
    unreadable = (MatReadError, ValueError, TypeError, KeyError, IndexError, OSError, EOFError, zlib.error)
    try:
        arrays = {name: (tuple(shape), kind) for name, shape, kind in whosmat(io.BytesIO(data))}
    except (*unreadable, NotImplementedError, struct.error) as exc:
        raise UserError(f"{where} is not a MATLAB v5 file that can be read ({gtf.first_line(exc)})") from None
    if ARRAY_KEY not in arrays:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise UserError(f"{where} has no array {ARRAY_KEY!r} (it has {have}); is this a Cars3D car file?")
    if arrays[ARRAY_KEY] != (expected, "uint8"):
        shape, kind = arrays[ARRAY_KEY]
        raise UserError(f"{where}: {ARRAY_KEY} is {kind} {shape}, expected uint8 {expected}")
    try:
        im = loadmat(io.BytesIO(data), variable_names=[ARRAY_KEY])[ARRAY_KEY]
    except (*unreadable, NotImplementedError, struct.error) as exc:
        raise UserError(f"{where} is damaged ({gtf.first_line(exc)})") from None
    if im.dtype != np.uint8 or im.shape != expected:
        raise UserError(f"{where}: {ARRAY_KEY} is {im.dtype} {im.shape}, expected uint8 {expected}")
    return im


class _ProgressReader:
    """A binary file that reports how many bytes have been read (a progress bar over a compressed archive)."""

    def __init__(self, handle: IO[bytes], bar: Any):
        self.handle = handle
        self.bar = bar

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.bar.update(len(data))
        return data


class Cars3dSource(gtf.SourceFile):
    """The archive or the extracted folder: the cars listed on entering, their images put in grid order."""

    def __enter__(self) -> Cars3dSource:
        self.layout = self.layouts[0]
        self.elevations, self.azimuths, self.n_cars = self.layout.factor_sizes
        if self.path.is_dir():
            self.folder_files = find_car_files(self.path)
            names = [p.name for p in self.folder_files]
        else:
            self.folder_files = []
            names = self._list_archive()
        if len(names) != self.n_cars:
            raise UserError(
                f"{self.path} holds {len(names)} data/cars/car_*_mesh.mat files, expected {self.n_cars}; "
                f"is this {FILE_NAME}?"
            )
        self.cars = sorted(names)
        self.car_index = {name: i for i, name in enumerate(self.cars)}
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def factor_values(self) -> list[list[Any]]:
        """Elevation and azimuth classes, and each car's file name without ``.mat``."""
        return [list(range(self.elevations)), list(range(self.azimuths)), [n.removesuffix(".mat") for n in self.cars]]

    # -- the archive, streamed ------------------------------------------------------------------

    def _members(self, desc: str) -> Iterator[tuple[str, str, bytes]]:
        """``(car file name, member path, bytes)`` for each car member in archive order (no bytes when listing).

        The gzip layer is Python's ``GzipFile`` (not tarfile's own stream), read to its end so that its CRC-32
        and length are checked; every problem is a one-line UserError naming the archive.
        """
        from tqdm.auto import tqdm

        reading = desc != "listing"
        bar = tqdm(
            total=self.path.stat().st_size, desc=f"{desc} {self.path.name}", unit="B", unit_scale=True,
            disable=not self.progress, leave=False,
        )  # fmt: skip
        try:
            with open(self.path, "rb") as handle, bar:
                compressed = handle.read(2) == _GZIP_MAGIC
                handle.seek(0)
                counted = _ProgressReader(handle, bar)
                stream: Any = gzip.GzipFile(fileobj=counted, mode="rb") if compressed else counted
                with tarfile.open(fileobj=stream, mode="r|") as archive:
                    for member in archive:
                        name = car_name(member.name)
                        if name is None:
                            continue
                        where = f"{self.path}: {member.name}"
                        if not member.isfile():
                            raise UserError(f"{where} is not a regular file; is this {FILE_NAME}?")
                        if member.size > MAX_CAR_FILE_BYTES:
                            raise UserError(
                                f"{where} declares {member.size:,} bytes, more than the {MAX_CAR_FILE_BYTES:,} a car "
                                "file may have: not read (a damaged archive, or not the Cars3D one)"
                            )
                        data = b""
                        if reading:
                            extracted = archive.extractfile(member)
                            data = extracted.read() if extracted is not None else b""
                            if len(data) != member.size:
                                raise tarfile.ReadError("unexpected end of data")
                        yield name, where, data
                while stream.read(1 << 20):  # to the end of the gzip stream: its CRC-32 and length are checked there
                    pass
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise UserError(
                f"{self.path} is not a complete tar.gz archive (truncated or corrupt: {gtf.first_line(exc)}); "
                f"download {FILE_NAME} again"
            ) from None

    def _list_archive(self) -> list[str]:
        names: set[str] = set()
        for name, where, _ in self._members("listing"):
            if name in names:
                raise UserError(f"{where} occurs twice; this is not the Cars3D archive as published")
            names.add(name)
        return list(names)

    # -- the images -----------------------------------------------------------------------------

    def _car_bytes(self) -> Iterator[tuple[str, str, bytes]]:
        """``(car file name, where it is, bytes)`` for every car, in the source's own order."""
        if not self.folder_files:
            yield from self._members("converting")
            return
        for path in self.folder_files:
            try:
                if path.stat().st_size > MAX_CAR_FILE_BYTES:
                    raise UserError(f"{path} has more than the {MAX_CAR_FILE_BYTES:,} bytes a car file may have")
                data = path.read_bytes()
            except OSError as exc:
                raise UserError(f"cannot read {path} ({exc.strerror or exc})") from None
            yield path.name, str(path), data

    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        from tqdm.auto import tqdm

        grid = np.empty((self.elevations, self.azimuths, self.n_cars, gtf.IMAGE_SIZE, gtf.IMAGE_SIZE, 3), np.uint8)
        seen: set[str] = set()
        with tqdm(total=self.n_cars, desc="reading cars", unit="car", disable=not self.progress, leave=False) as bar:
            for name, where, data in self._car_bytes():
                car = self.car_index.get(name)
                if car is None or name in seen:
                    raise UserError(f"{self.path} changed while it was being read ({name}); prepare again")
                im = read_car(data, where, self.azimuths, self.elevations)
                for azimuth in range(self.azimuths):
                    for elevation in range(self.elevations):
                        grid[elevation, azimuth, car] = _resize(im[:, :, :, azimuth, elevation])
                seen.add(name)
                bar.update(1)
        if len(seen) != self.n_cars:
            raise UserError(f"{self.path} changed while it was being read (cars went missing); prepare again")
        flat = grid.reshape(-1, gtf.IMAGE_SIZE, gtf.IMAGE_SIZE, 3)
        for start in range(0, len(flat), chunk):
            yield flat[start : start + chunk]


DATASET = gtf.FileDataset(
    name="cars3d",
    title="Cars3D",
    summary="Cars3D (Reed et al. 2015): 17,568 RGB 64x64 images, 3 factors (from your nips2015-analogy-data.tar.gz)",
    file_name=FILE_NAME,
    source_url=SOURCE_URL,
    factor_names=FACTOR_NAMES,
    # The car models are categories; elevation and azimuth are ordered angles.
    nominal_factors=("car",),
    layouts=(LAYOUT,),
    open_file=lambda dataset, path, layouts: Cars3dSource(dataset, Path(path), layouts),
    known_md5={OFFICIAL_MD5: "nips2015-analogy-data.tar.gz as published (MD5 recorded by disent)"},
    md5_required=False,
    directory_files=find_car_files,
)

ENTRY = gtf.register_file_dataset(DATASET)
