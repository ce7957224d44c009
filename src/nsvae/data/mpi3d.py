"""MPI3D (Gondal et al. 2019): toy, realistic and real images of one robotic setup, and its complex-shapes set.

Facts from the dataset's own README (github.com/rr-learning/disentanglement_dataset,
its history from 2019-07 to 2025-04):

- Each file is an ``.npz`` holding one array ``images``: uint8 ``(N, 64, 64, 3)``,
  RGB, channels last, in row-major order over the factors ``object_color,
  object_shape, object_size, camera_height, background_color,
  horizontal_axis, vertical_axis`` (the last fastest: "array.reshape([6, 6,
  2, 3, 3, 40, 40, 64, 64, 3])").
- ``mpi3d_toy``, ``mpi3d_realistic``, ``mpi3d_real``: since 2019-10-16 the
  published files hold 1,036,800 images: object colour 6 (white, green, red,
  blue, brown, olive) x shape 6 (cone, cube, cylinder, hexagonal, pyramid,
  sphere) x size 2 x camera height 3 x background 3 x 40 x 40. Copies from
  before then hold 460,800 images: colour 4 (green, red, blue, brown) x shape
  4 (cone, cube, hexagonal prism, sphere), the layout disentanglement_lib
  still hard-codes. Which one a file holds is decided from the array's shape,
  never from its name.
- ``mpi3d_complex`` (``real3d_complicated_shapes_ordered.npz``, added
  2022-01): 460,800 real images of colour 4 (yellow, green, olive, red) x
  shape 4 (coffee-cup, tennis-ball, croissant, beer-cup) x the same other
  factors.

The publishers give no checksums and have re-published the files several
times (mpi3d_real.npz was replaced in April 2025 as "corrupted"). So the MD5
is recorded and compared with known copies (``checksum_known_as`` in
``meta.json``) but an unknown one is not refused; what catches a damaged
download is the zip's own CRC-32 of ``images.npy``, checked over every byte
as the images are streamed out of the archive, and the array's header.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import UserError
from . import ground_truth_files as gtf

FACTOR_NAMES = (
    "object_color",
    "object_shape",
    "object_size",
    "camera_height",
    "background_color",
    "horizontal_axis",
    "vertical_axis",
)
#: Colours, shapes and backgrounds are categories; size, camera height and the two arm axes are ordered.
NOMINAL_FACTORS = ("object_color", "object_shape", "background_color")
ARRAY_KEY = "images"
README_URL = "https://github.com/rr-learning/disentanglement_dataset"
#: Where the README (2025-04) links the files.
DOWNLOADS = "https://huggingface.co/datasets/waleedgondal/mpi3d"
COMPLEX_DOWNLOAD = "https://drive.google.com/file/d/1Tp8eTdHxgUMtsZv5uAoYAbJR1BOa_OQm"

_SIZE = ("small", "large")
_CAMERA = ("top", "center", "bottom")
_BACKGROUND = ("purple", "sea green", "salmon")
_AXIS = tuple(range(40))

LAYOUT_6X6 = gtf.Layout(
    name="6x6",
    factor_sizes=(6, 6, 2, 3, 3, 40, 40),
    factor_values=(
        ("white", "green", "red", "blue", "brown", "olive"),
        ("cone", "cube", "cylinder", "hexagonal", "pyramid", "sphere"),
        _SIZE,
        _CAMERA,
        _BACKGROUND,
        _AXIS,
        _AXIS,
    ),
    description="the 6x6 release (object colour 6 x shape 6), published since October 2019",
)
LAYOUT_4X4 = gtf.Layout(
    name="4x4",
    factor_sizes=(4, 4, 2, 3, 3, 40, 40),
    factor_values=(
        ("green", "red", "blue", "brown"),
        ("cone", "cube", "hexagonal prism", "sphere"),
        _SIZE,
        _CAMERA,
        _BACKGROUND,
        _AXIS,
        _AXIS,
    ),
    description="an older 4x4 copy (object colour 4 x shape 4, as before October 2019 and in disentanglement_lib)",
)
LAYOUT_COMPLEX = gtf.Layout(
    name="official",
    factor_sizes=(4, 4, 2, 3, 3, 40, 40),
    factor_values=(
        ("yellow", "green", "olive", "red"),
        ("coffee-cup", "tennis-ball", "croissant", "beer-cup"),
        _SIZE,
        _CAMERA,
        _BACKGROUND,
        _AXIS,
        _AXIS,
    ),
    description="the complex real-world shapes: object colour 4 x shape 4",
)

#: MD5 of the 2019 release's files (storage.googleapis.com/disentanglement_dataset/Final_Dataset/), as
#: recorded by the disent library (nmichlo/disent, Mpi3dData). Later copies may differ (see the module doc).
RELEASE_2019_MD5 = {
    "mpi3d_toy": "55889cb7c7dfc655d6e0277beee88868",
    "mpi3d_realistic": "59a6225b88b635365f70c91b3e52f70f",
    "mpi3d_real": "0f33f609918fb5c97996692f91129802",
}


class NpzImages(gtf.SourceFile):
    """The ``images`` array of an ``.npz``, streamed out of the zip member with its CRC-32 checked."""

    member: IO[bytes] | None = None

    def __enter__(self) -> NpzImages:
        try:
            self.zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise UserError(
                f"{self.path} is not a valid .npz file (truncated or corrupt zip: {gtf.first_line(exc)}); "
                f"download {self.dataset.file_name} again"
            ) from None
        try:
            self._open_member()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.member is not None:
            self.member.close()
        self.zip.close()

    def _open_member(self) -> None:
        names = self.zip.namelist()
        if f"{ARRAY_KEY}.npy" not in names:
            have = ", ".join(sorted(n.removesuffix(".npy") for n in names)) or "nothing"
            raise UserError(
                f"{self.path}: missing array {ARRAY_KEY!r} (the file has {have}); is this {self.dataset.file_name}?"
            )
        try:
            self.member = self.zip.open(f"{ARRAY_KEY}.npy")
        except (NotImplementedError, RuntimeError, zipfile.BadZipFile, OSError) as exc:  # encrypted, odd compression
            raise UserError(f"{self.path}: cannot read {ARRAY_KEY}.npy ({gtf.first_line(exc)})") from None
        try:
            version = np.lib.format.read_magic(self.member)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(self.member)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise UserError(f"{self.path}: {ARRAY_KEY}.npy is not a valid .npy array ({gtf.first_line(exc)})") from None
        self.shape = tuple(int(s) for s in shape)
        if np.dtype(dtype) != np.uint8 or fortran:
            order = "Fortran-ordered " if fortran else ""
            raise UserError(f"{self.path}: {ARRAY_KEY} is {order}{np.dtype(dtype)}, expected uint8")
        images = self.shape[0] if len(self.shape) == 4 and self.shape[1:] == gtf.FILE_IMAGE_SHAPE else -1
        self.layout = self.layout_for(images, f"{ARRAY_KEY} has shape {self.shape}")  # -1 matches no grid

    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        n = self.layout.images
        where = f"{self.path}: {ARRAY_KEY}.npy"
        try:
            for start in range(0, n, chunk):
                count = min(chunk, n - start)
                buf = self.member.read(count * gtf.IMAGE_BYTES)
                if len(buf) != count * gtf.IMAGE_BYTES:
                    raise UserError(
                        f"{where} ends early at image {start + len(buf) // gtf.IMAGE_BYTES} of {n} (truncated file); "
                        f"download {self.dataset.file_name} again"
                    )
                yield np.frombuffer(buf, dtype=np.uint8).reshape(count, *gtf.FILE_IMAGE_SHAPE)
            # Reading past the end makes zipfile compare the CRC-32 of every byte read with the archive's.
            if self.member.read(1):
                raise UserError(
                    f"{where} holds more bytes than its shape {self.shape} promises; it is not the official file"
                )
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise UserError(
                f"{where} is damaged ({gtf.first_line(exc)}); download {self.dataset.file_name} again"
            ) from None


def _open(dataset: gtf.FileDataset, path: Path, layouts: tuple[gtf.Layout, ...]) -> NpzImages:
    return NpzImages(dataset, Path(path), layouts)


def _mpi3d(name: str, title: str, summary: str, file_name: str, download: str, layouts, known_md5) -> gtf.FileDataset:
    return gtf.FileDataset(
        name=name,
        title=title,
        summary=summary,
        file_name=file_name,
        source_url=f"{README_URL} (download: {download})",
        factor_names=FACTOR_NAMES,
        nominal_factors=NOMINAL_FACTORS,
        layouts=layouts,
        open_file=_open,
        known_md5=known_md5,
        md5_required=False,
    )


def _release(name: str, kind: str) -> gtf.FileDataset:
    return _mpi3d(
        name,
        f"MPI3D {kind}",
        f"MPI3D-{kind} (Gondal et al. 2019): 1,036,800 RGB 64x64 images (460,800 in older copies), "
        f"7 factors (from your {name}.npz)",
        f"{name}.npz",
        f"{DOWNLOADS}/resolve/main/{name}.npz",
        (LAYOUT_6X6, LAYOUT_4X4),
        {RELEASE_2019_MD5[name]: f"{name}.npz of the 2019 release (MD5 recorded by disent)"},
    )


TOY = _release("mpi3d_toy", "toy")
REALISTIC = _release("mpi3d_realistic", "realistic")
REAL = _release("mpi3d_real", "real")
COMPLEX = _mpi3d(
    "mpi3d_complex",
    "MPI3D complex",
    "MPI3D real-world complex shapes: 460,800 RGB 64x64 images, 7 factors "
    "(from your real3d_complicated_shapes_ordered.npz)",
    "real3d_complicated_shapes_ordered.npz",
    COMPLEX_DOWNLOAD,
    (LAYOUT_COMPLEX,),
    {},
)

ENTRIES = {dataset.name: gtf.register_file_dataset(dataset) for dataset in (TOY, REALISTIC, REAL, COMPLEX)}
