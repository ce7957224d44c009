"""smallNORB (LeCun, Huang & Bottou 2004), from the directory holding the user's six official files.

Facts from the dataset's page ("THE small NORB DATASET, V1.0", Huang & LeCun,
https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/):

- 50 toys, 10 instances in each of 5 categories (0 animal, 1 human, 2 plane,
  3 truck, 4 car), each imaged by two cameras under 6 lightings, at 9
  elevations and 18 azimuths. The training split holds instances 4, 6, 7, 8,
  9 (``smallnorb-5x46789x9x18x6x2x96x96-training-*``), the testing split 0, 1,
  2, 3, 5 (``smallnorb-5x01235x9x18x6x2x96x96-testing-*``): 24,300 image pairs
  each.
- Each split is three files, gzipped for download (``.mat.gz``), in the
  "binary matrix" format: a header of little-endian int32s, ``magic``,
  ``ndim`` and ``max(3, ndim)`` dimensions (unused ones are 1), then the data
  in C order (last index fastest). Magic 0x1E3D4C55 is a byte matrix,
  0x1E3D4C54 an integer matrix (int32).
- ``-dat``: uint8 ``(24300, 2, 96, 96)``, the stereo pairs; ``-cat``: int32
  ``(24300,)``, the category (the page calls it a 24,300 x 1 vector; readers
  of the real files find ``ndim = 1``, and ``(24300, 1)`` is accepted too);
  ``-info``: int32 ``(24300, 4)``: instance 0..9, elevation 0..8 (30 to 70
  degrees every 5), azimuth 0, 2, ..., 34 (times 10 degrees), lighting 0..5.

As disentanglement_lib (``data/ground_truth/norb.py``), both splits are used
(48,600 images), the first image of each pair, resized from 96 x 96 to 64 x 64
grey with Pillow's Lanczos filter (its ``ANTIALIAS``, which disentanglement_lib
used: antialiased, so no aliasing from the 1.5x reduction), the azimuth label
halved into a class 0..17, and the instance kept in the grid as a nuisance
factor: the metrics see category 5, elevation 9, azimuth 18 and lighting 6,
and sampling given those draws the instance at random.

The files are not stored in grid order, so each image is put where its labels
say (category, instance, elevation, azimuth, lighting; lighting fastest) after
checking that the labels of both splits form the grid, each combination
exactly once. What a file is comes from its content (its magic, its
dimensions, gzip's own magic bytes), never from the ``.gz`` in its name; a
gzipped file's CRC-32 is checked over every byte as it is read.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UserError
from . import ground_truth_files as gtf

FACTOR_NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
FACTOR_SIZES = (5, 10, 9, 18, 6)
SOURCE_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
SPLITS = {
    "training": "smallnorb-5x46789x9x18x6x2x96x96-training",
    "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing",
}
PARTS = ("dat", "cat", "info")
BYTE_MATRIX = 0x1E3D4C55
INTEGER_MATRIX = 0x1E3D4C54
#: The page's list of magic numbers, for saying what a wrong file holds.
MATRIX_KINDS = {
    0x1E3D4C51: "single precision matrix",
    0x1E3D4C52: "packed matrix",
    0x1E3D4C53: "double precision matrix",
    INTEGER_MATRIX: "integer matrix",
    BYTE_MATRIX: "byte matrix",
    0x1E3D4C56: "short matrix",
}
PAIR_SHAPE = (2, 96, 96)
PAIR_BYTES = int(np.prod(PAIR_SHAPE))
#: Pairs read at a time (4.5 MiB): the file is streamed, whatever its size.
READ_PAIRS = 256
_GZIP_MAGIC = b"\x1f\x8b"

#: MD5 of the six ``.mat.gz`` files as published, as recorded by the disent library (nmichlo/disent,
#: SmallNorbData, its "full" hashes; a third-party PyTorch smallNORB loader lists the same six).
OFFICIAL_GZ_MD5 = {
    "66054832f9accfe74a0f4c36a75bc0a2": "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz",
    "23c8b86101fbf0904a000b43d3ed2fd9": "smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz",
    "51dee1210a742582ff607dfd94e332e3": "smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz",
    "e4ad715691ed5a3a5f138751a4ceb071": "smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz",
    "5aa791cd7e6016cf957ce9bdb93b8603": "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz",
    "a9454f3864d7fd4bb3ea7fc3eb84924e": "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz",
}

LAYOUT = gtf.Layout(
    name="official",
    factor_sizes=FACTOR_SIZES,
    factor_values=(
        ("animal", "human", "plane", "truck", "car"),  # the page's names of categories 0..4
        tuple(range(10)),  # instance numbers
        tuple(range(30, 75, 5)),  # elevation in degrees
        tuple(range(0, 360, 20)),  # azimuth in degrees (label x 10; class = label / 2)
        tuple(range(6)),  # lighting conditions, numbered only
    ),
    description="both splits: category 5 x instance 10 x elevation 9 x azimuth 18 x lighting 6, 48,600 images",
)


def file_names(split: str, part: str) -> tuple[str, str]:
    """The published name (gzipped) and the name once decompressed, of one of the six files."""
    plain = f"{SPLITS[split]}-{part}.mat"
    return f"{plain}.gz", plain


def find_files(directory: Path) -> dict[tuple[str, str], Path]:
    """The six files in ``directory`` by (split, part); the decompressed one where both copies are there."""
    found, missing = {}, []
    for split in SPLITS:
        for part in PARTS:
            gzipped, plain = file_names(split, part)
            path = next((directory / n for n in (plain, gzipped) if (directory / n).is_file()), None)
            if path is None:
                missing.append(gzipped)
            else:
                found[split, part] = path
    if missing:
        raise UserError(
            f"{directory} lacks {', '.join(missing)} (or the same decompressed, .mat); get the six files from "
            f"{SOURCE_URL}"
        )
    return found


def _directory_files(directory: Path) -> list[Path]:
    return list(find_files(directory).values())


# ---------------------------------------------------------------------------------------------
# The binary matrix format
# ---------------------------------------------------------------------------------------------


class _HashingReader:
    """A binary file whose bytes are hashed (MD5) as they are read: the file's checksum for free."""

    def __init__(self, path: Path):
        self.handle = open(path, "rb")
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.md5.update(data)
        return data

    def close(self) -> None:
        self.handle.close()


@dataclass
class Matrix:
    """One opened file of the binary matrix format, positioned at its data."""

    path: Path
    magic: int
    dims: tuple[int, ...]
    compressed: bool
    stream: Any  # a GzipFile over ``raw``, or ``raw`` itself
    raw: _HashingReader

    @property
    def itemsize(self) -> int:
        return 1 if self.magic == BYTE_MATRIX else 4

    def read_exactly(self, size: int, what: str) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise UserError(f"{self.path} ends early in {what} (truncated file); download it again from {SOURCE_URL}")
        return data

    def finish(self) -> str:
        """Check that nothing follows the data (which also checks a gzip file's CRC-32); returns the file's MD5."""
        if self.stream.read(1):
            raise UserError(f"{self.path} holds more bytes than its header's dimensions {self.dims} promise")
        if self.compressed:
            while self.raw.read(1 << 20):  # past the gzip stream: hash what remains (nothing, in a plain download)
                pass
        return self.raw.md5.hexdigest()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def open_matrix(path: Path) -> Matrix:
    """Open ``path`` (gzipped or not, told from its first bytes) and read its header."""
    raw = _HashingReader(path)
    try:
        with open(path, "rb") as peek:
            compressed = peek.read(2) == _GZIP_MAGIC
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        matrix = Matrix(path, 0, (), compressed, stream, raw)
        head = matrix.read_exactly(8, "its header")
        matrix.magic, ndim = struct.unpack("<ii", head)
        if matrix.magic not in MATRIX_KINDS:
            found = f"0x{matrix.magic & 0xFFFFFFFF:08X}"
            raise UserError(f"{path} starts with {found}, not a binary matrix magic number; it is not a smallNORB file")
        if not 1 <= ndim <= 16:
            raise UserError(f"{path}: its header gives {ndim} dimensions; it is not a smallNORB file")
        stored = struct.unpack(f"<{max(3, ndim)}i", matrix.read_exactly(4 * max(3, ndim), "its header"))
        matrix.dims = tuple(int(d) for d in stored[:ndim])
        return matrix
    except (OSError, EOFError, zlib.error) as exc:
        raw.close()
        raise _unreadable(path, exc) from None
    except BaseException:
        raw.close()
        raise


def _unreadable(path: Path, exc: BaseException) -> UserError:
    return UserError(f"{path} is unreadable or damaged ({gtf.first_line(exc)}); download it again from {SOURCE_URL}")


def _expect(matrix: Matrix, part: str, magic: int, shapes: list[tuple[int, ...]]) -> int:
    """Check the header of a ``part`` file; returns its number of images."""
    if matrix.magic != magic:
        raise UserError(
            f"{matrix.path} has magic 0x{matrix.magic:08X} ({MATRIX_KINDS[matrix.magic]}), expected "
            f"0x{magic:08X} ({MATRIX_KINDS[magic]}) for a -{part} file"
        )
    n = matrix.dims[0]
    if n < 1 or matrix.dims not in [(n, *rest) for rest in shapes]:
        expected = " or ".join(str(("N", *rest)).replace("'", "") for rest in shapes)
        raise UserError(f"{matrix.path} has dimensions {matrix.dims}, expected {expected} for a -{part} file")
    if not matrix.compressed:
        size = matrix.path.stat().st_size
        header = 8 + 4 * max(3, len(matrix.dims))
        promised = header + int(np.prod(matrix.dims)) * matrix.itemsize
        if size < promised:
            raise UserError(
                f"{matrix.path} has {size:,} bytes, its header promises {promised:,} (truncated file); "
                f"download it again from {SOURCE_URL}"
            )
    return n


# ---------------------------------------------------------------------------------------------
# The six files as one source
# ---------------------------------------------------------------------------------------------


def _resize(image: np.ndarray) -> np.ndarray:
    """One 96 x 96 grey image to 64 x 64 with Pillow's Lanczos filter, as disentanglement_lib resized it."""
    return np.asarray(Image.fromarray(image).resize((gtf.IMAGE_SIZE, gtf.IMAGE_SIZE), Image.Resampling.LANCZOS))


class SmallNorbFiles(gtf.SourceFile):
    """The six files of a directory: headers and labels checked on entering, the images streamed in grid order."""

    def __enter__(self) -> SmallNorbFiles:
        if not self.path.is_dir():
            raise UserError(
                f"{self.path} is a file; smallnorb reads the directory holding the six smallnorb-*.mat.gz files "
                f"(give --from {self.path.parent})"
            )
        self.files = find_files(self.path)
        self.md5: dict[Path, str] = {}
        self.counts = {split: self._check_headers(split) for split in SPLITS}
        total = sum(self.counts.values())
        matching = [layout for layout in self.layouts if layout.images == total]
        if not matching:
            expected = " or ".join(f"{layout.images:,}" for layout in self.layouts)
            held = " + ".join(f"{count:,}" for count in self.counts.values())
            raise UserError(
                f"{self.path}: the dat files hold {held} image pairs, expected {expected} in all; "
                "these are not the smallNORB files"
            )
        self.layout = matching[0]
        self.positions = self._grid_positions()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _check_headers(self, split: str) -> int:
        shapes = {"dat": [PAIR_SHAPE], "cat": [(), (1,)], "info": [(4,)]}
        magic = {"dat": BYTE_MATRIX, "cat": INTEGER_MATRIX, "info": INTEGER_MATRIX}
        counts = {}
        for part in PARTS:
            matrix = open_matrix(self.files[split, part])
            try:
                counts[part] = _expect(matrix, part, magic[part], shapes[part])
            finally:
                matrix.close()
        if len(set(counts.values())) != 1:
            raise UserError(
                f"{self.path}: the {split} files disagree on the number of images "
                f"(dat {counts['dat']:,}, cat {counts['cat']:,}, info {counts['info']:,})"
            )
        return counts["dat"]

    def _read_labels(self, split: str, part: str) -> np.ndarray:
        path = self.files[split, part]
        matrix = open_matrix(path)
        try:
            data = matrix.read_exactly(4 * int(np.prod(matrix.dims)), "its labels")
            labels = np.frombuffer(data, dtype="<i4").reshape(self.counts[split], -1)
            self.md5[path] = matrix.finish()
        except (OSError, EOFError, zlib.error) as exc:
            raise _unreadable(path, exc) from None
        finally:
            matrix.close()
        return labels.astype(np.int64)

    def _grid_positions(self) -> dict[str, np.ndarray]:
        """Each image's index in the grid, from its labels; a UserError unless both splits fill the grid exactly."""
        sizes = np.asarray(self.layout.factor_sizes, dtype=np.int64)
        bases = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
        positions = {}
        for split in SPLITS:
            cat, info = self._read_labels(split, "cat"), self._read_labels(split, "info")
            azimuth = info[:, 2]
            odd = np.flatnonzero(azimuth % 2)
            if odd.size:
                raise UserError(
                    f"{self.files[split, 'info']}: image {odd[0]} has azimuth {azimuth[odd[0]]}, but the format's "
                    "azimuths are even (0, 2, ..., 34); these labels are not smallNORB's"
                )
            classes = np.column_stack([cat[:, 0], info[:, 0], info[:, 1], azimuth // 2, info[:, 3]])
            for f, name in enumerate(FACTOR_NAMES):
                bad = np.flatnonzero((classes[:, f] < 0) | (classes[:, f] >= sizes[f]))
                if bad.size:
                    shown = f"{2 * (sizes[f] - 1)} in steps of 2" if name == "azimuth" else str(sizes[f] - 1)
                    value = azimuth[bad[0]] if name == "azimuth" else classes[bad[0], f]
                    where = self.files[split, "cat" if name == "category" else "info"]
                    raise UserError(
                        f"{where}: image {bad[0]} has {name} {value}, outside 0..{shown}; "
                        "the labels do not fit the smallNORB grid"
                    )
            positions[split] = classes @ bases
        every = np.concatenate(list(positions.values()))
        counts = np.bincount(every, minlength=self.layout.images)
        if (counts != 1).any():  # the totals agree, so a combination seen twice means another one is missing
            position = int(np.flatnonzero(counts > 1)[0])
            combination = ", ".join(
                f"{name} {position // int(b) % int(s)}" for name, b, s in zip(FACTOR_NAMES, bases, sizes, strict=True)
            )
            second = int(np.flatnonzero(every == position)[1])
            split = "training" if second < self.counts["training"] else "testing"
            row = second - (0 if split == "training" else self.counts["training"])
            raise UserError(
                f"{self.files[split, 'info']}: image {row} repeats the combination ({combination}) of an earlier "
                f"image; the labels do not form the {'x'.join(map(str, sizes))} grid once"
            )
        return positions

    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        from tqdm.auto import tqdm

        n = self.layout.images
        grid = np.empty((n, gtf.IMAGE_SIZE, gtf.IMAGE_SIZE, 1), dtype=np.uint8)
        with tqdm(total=n, desc="reading smallNORB", unit="img", disable=not self.progress, leave=False) as bar:
            for split in SPLITS:
                self._read_images(split, grid, bar)
        for start in range(0, n, chunk):
            yield grid[start : start + chunk]

    def _read_images(self, split: str, grid: np.ndarray, bar: Any) -> None:
        path = self.files[split, "dat"]
        matrix = open_matrix(path)
        try:
            count = _expect(matrix, "dat", BYTE_MATRIX, [PAIR_SHAPE])
            if count != self.counts[split]:
                raise UserError(f"{path} changed while it was being read; prepare again")
            where = self.positions[split]
            for start in range(0, count, READ_PAIRS):
                pairs = min(READ_PAIRS, count - start)
                what = f"image pair {start} of {count}"
                block = np.frombuffer(matrix.read_exactly(pairs * PAIR_BYTES, what), dtype=np.uint8)
                block = block.reshape(pairs, *PAIR_SHAPE)
                for j in range(pairs):  # the first camera's image, as disentanglement_lib takes
                    grid[where[start + j], :, :, 0] = _resize(block[j, 0])
                bar.update(pairs)
            self.md5[path] = matrix.finish()
        except (OSError, EOFError, zlib.error) as exc:
            raise _unreadable(path, exc) from None
        finally:
            matrix.close()

    def provenance(self) -> dict[str, Any]:
        """Each file's MD5, and which published ``.mat.gz`` it is, if any (a decompressed copy has no known MD5)."""
        files = {
            path.name: {"md5": md5, "known_as": OFFICIAL_GZ_MD5.get(md5)} for path, md5 in sorted(self.md5.items())
        }
        verified = len(files) == 2 * len(PARTS) and all(entry["known_as"] for entry in files.values())
        return {
            "files": files,
            "checksum_verified": verified,
            "checksum_known_as": "the six published smallNORB .mat.gz files" if verified else None,
        }


DATASET = gtf.FileDataset(
    name="smallnorb",
    title="smallNORB",
    summary="smallNORB (LeCun et al. 2004): 48,600 grey 64x64 images, 4 factors and the instance as a nuisance "
    "(from your six smallnorb-*.mat.gz files)",
    file_name="the six smallnorb-*.mat.gz files",
    source_url=SOURCE_URL,
    factor_names=FACTOR_NAMES,
    # The five categories are unordered; the page numbers the six lightings without saying how they relate.
    nominal_factors=("category", "lighting"),
    layouts=(LAYOUT,),
    open_file=lambda dataset, path, layouts: SmallNorbFiles(dataset, Path(path), layouts),
    known_md5={},
    md5_required=False,
    channels=1,
    nuisance_factors=("instance",),
    directory_files=_directory_files,
    from_hint="DIR",
)

ENTRY = gtf.register_file_dataset(DATASET)
