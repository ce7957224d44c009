"""3D Shapes (Burgess & Kim 2018, introduced by Kim & Mnih's FactorVAE paper), from the user's ``3dshapes.h5``.

The official file (https://github.com/google-deepmind/3d-shapes, stored in the
Google Cloud Storage bucket ``3d-shapes``) is HDF5 with two datasets:

- ``images``: uint8 ``(480000, 64, 64, 3)``, RGB, channels last;
- ``labels``: float64 ``(480000, 6)``, the factor *values* of each image.

Factors, in storage order (orientation fastest): floor hue 10, wall hue 10,
object hue 10, scale 8, shape 4, orientation 15 (``_FACTORS_IN_ORDER`` and
``_NUM_VALUES_PER_FACTOR`` of the repository's loading notebook). Preparing
checks the file's MD5 against the one the disent library records for it, checks that
the labels match that grid (:func:`~nsvae.data.ground_truth_files.factor_values_from_labels`),
and streams ``images`` through h5py a chunk at a time. h5py is the optional
extra ``hdf5`` (``pip install 'nsvae[hdf5]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from . import ground_truth_files as gtf

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
FILE_NAME = "3dshapes.h5"
SOURCE_URL = "https://github.com/google-deepmind/3d-shapes (https://storage.googleapis.com/3d-shapes/3dshapes.h5)"
#: MD5 of the whole official file, as recorded by the disent library (nmichlo/disent, Shapes3dData).
OFFICIAL_MD5 = "099a2078d58cec4daad0702c55d06868"

LAYOUT = gtf.Layout(
    name="official",
    factor_sizes=FACTOR_SIZES,
    factor_values=None,  # the label values, read from the file
    description="the official 10 x 10 x 10 x 8 x 4 x 15 grid, 480,000 images",
)


def import_h5py():
    """h5py, or a one-line UserError naming the extra that installs it."""
    try:
        import h5py
    except ImportError:
        raise UserError(f"reading {FILE_NAME} needs h5py: pip install 'nsvae[hdf5]' (or pip install h5py)") from None
    return h5py


class Shapes3dFile(gtf.SourceFile):
    """``3dshapes.h5`` opened with h5py: shapes and dtypes checked, labels checked, images read in slices."""

    def __enter__(self) -> Shapes3dFile:
        h5py = import_h5py()
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise UserError(
                f"{self.path} is not a readable HDF5 file ({gtf.first_line(exc)}); "
                f"expected {FILE_NAME} from {SOURCE_URL}"
            ) from None
        try:
            self._check_structure(h5py)
        except BaseException:
            self.h5.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.h5.close()

    def _check_structure(self, h5py) -> None:
        for key in ("images", "labels"):
            if not isinstance(self.h5.get(key), h5py.Dataset):
                have = ", ".join(sorted(self.h5.keys())) or "nothing"
                raise UserError(f"{self.path}: missing dataset {key!r} (the file has {have}); is this {FILE_NAME}?")
        images, labels = self.h5["images"], self.h5["labels"]
        shape = tuple(images.shape)
        n = shape[0] if len(shape) == 4 and shape[1:] == gtf.FILE_IMAGE_SHAPE else -1  # -1 matches no grid
        self.layout = self.layout_for(n, f"images has shape {shape}")
        if images.dtype != np.uint8:
            raise UserError(f"{self.path}: images are {images.dtype}, expected uint8")
        k = len(self.dataset.factor_names)
        if tuple(labels.shape) != (self.layout.images, k) or labels.dtype.kind != "f":
            raise UserError(
                f"{self.path}: labels are {labels.dtype} of shape {tuple(labels.shape)}, "
                f"expected float64 of shape ({self.layout.images}, {k})"
            )

    def _read(self, name: str, rows: slice) -> np.ndarray:
        try:
            return np.asarray(self.h5[name][rows])
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{self.path}: cannot read {name} ({gtf.first_line(exc)}); the file may be truncated or damaged"
            ) from None

    def factor_values(self) -> list[list[Any]]:
        labels = self._read("labels", slice(None))
        return gtf.factor_values_from_labels(
            labels, self.layout.factor_sizes, self.dataset.factor_names, str(self.path)
        )

    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        images = self.h5["images"]
        # Read whole HDF5 chunks: a slice that cuts one would decompress it twice.
        rows_per_chunk = images.chunks[0] if images.chunks else 1
        step = max(rows_per_chunk, chunk // rows_per_chunk * rows_per_chunk)
        n = self.layout.images
        for start in range(0, n, step):
            yield self._read("images", slice(start, min(start + step, n)))


DATASET = gtf.FileDataset(
    name="shapes3d",
    title="3D Shapes",
    summary="3D Shapes (Kim & Mnih 2018): 480,000 RGB 64x64 images, 6 factors (from your 3dshapes.h5)",
    file_name=FILE_NAME,
    source_url=SOURCE_URL,
    factor_names=FACTOR_NAMES,
    # The four object shapes are categories; hues, scale and orientation are ordered.
    nominal_factors=("shape",),
    layouts=(LAYOUT,),
    open_file=lambda dataset, path, layouts: Shapes3dFile(dataset, Path(path), layouts),
    known_md5={OFFICIAL_MD5: "the official 3dshapes.h5"},
    md5_required=True,
)

ENTRY = gtf.register_file_dataset(DATASET)
