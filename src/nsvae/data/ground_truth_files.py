"""Ground-truth datasets converted from the user's copy of their official files (Shapes3D, MPI3D, smallNORB, ...).

nsvae never downloads these files (their links move, see ``docs/data.md``):
the user gets them from their publishers and runs ``nsvae data prepare NAME
--from FILE`` (or ``--from DIR`` for a set published as several files).
Preparing checks that the file is what it claims to be (its arrays, their
shapes and dtypes, its labels against the factor grid, its checksum where
one is known), then streams the images a chunk at a time into
one cache entry ``<cache>/<name>/official/``:

- ``images.npy``: uint8 ``(N, C, 64, 64)`` (C = 3, or 1 for a grey set),
  channels first, row-major over the factor grid (last factor fastest): the
  file's own order for Shapes3D and MPI3D, the order its labels give for a
  set stored in another order; memory-mapped when used;
- ``meta.json``: the source file (path, size, modification time, MD5), the
  grid found in it (``layout``), the factor names, sizes and values, and the
  SHA-256 of ``images.npy`` (:mod:`nsvae.data.cache`).

The factor classes follow from the index, so no labels are stored. Building
goes through :func:`nsvae.data.cache.ensure_entry`: under the entry's lock, in
a hidden temporary directory renamed into place only when complete, so a
refused or interrupted preparation leaves nothing a later run could mistake
for data, and running the same command again starts it afresh.

A dataset module supplies a :class:`FileDataset` (names, grids, where the
file comes from, its known checksums) and a :class:`SourceFile` reader for
its format, and calls :func:`register_file_dataset`. A grid factor that the
metrics should not see (smallNORB's object instance) is a nuisance factor: it
stays in the grid and each sample draws it at random
(:attr:`GroundTruthData.exposed_factors`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NsvaeWarning, UserError
from . import cache, registry
from .base import GroundTruthData, as_index_array
from .dsprites import PackedWriter

IMAGES_FILE = "images.npy"
ENTRY_KEY = "official"
#: Side of every stored image.
IMAGE_SIZE = 64
#: The single-array files (Shapes3D, MPI3D) hold 64 x 64 RGB images, channels last.
FILE_IMAGE_SHAPE = (64, 64, 3)
OBSERVATION_SHAPE = (3, 64, 64)
IMAGE_BYTES = int(np.prod(FILE_IMAGE_SHAPE))
#: Images converted per chunk (12 MiB of pixels): peak memory is a few chunks, whatever the file's size.
IMPORT_CHUNK = 1024


# ---------------------------------------------------------------------------------------------
# What a dataset is: its factor grids and where its file comes from
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One factor grid a file may hold: how many classes each factor has, and what they are."""

    #: Short name recorded in ``meta.json`` (``"6x6"``, ``"official"``).
    name: str
    factor_sizes: tuple[int, ...]
    #: What each class of each factor is (names or values); ``None``: read from the file's labels.
    factor_values: tuple[tuple[Any, ...], ...] | None = None
    #: One line for the user, e.g. "the 6 x 6 release (object colour 6 x shape 6, 1,036,800 images)".
    description: str = ""

    @property
    def images(self) -> int:
        return int(np.prod(self.factor_sizes))

    def shrunk(self, sizes: Sequence[int]) -> Layout:
        """This layout on a smaller grid (the first classes of each factor): files small enough for tests."""
        sizes = tuple(int(s) for s in sizes)
        values = None
        if self.factor_values is not None:
            values = tuple(tuple(v[:s]) for v, s in zip(self.factor_values, sizes, strict=True))
        return dataclasses.replace(self, factor_sizes=sizes, factor_values=values)


@dataclass(frozen=True)
class FileDataset:
    """A ground-truth dataset prepared from one official file."""

    name: str
    title: str
    summary: str
    #: The official file's name, e.g. ``"3dshapes.h5"``.
    file_name: str
    #: Where users get it (shown by ``nsvae data list`` and in every error about it).
    source_url: str
    factor_names: tuple[str, ...]
    #: The unordered (categorical) factors (see :attr:`GroundTruthData.all_nominal_factors`).
    nominal_factors: tuple[str, ...]
    #: The grids a file may hold; which one a file holds is decided from its array's shape.
    layouts: tuple[Layout, ...]
    #: ``open_file(dataset, path, layouts)``: a :class:`SourceFile` for the file at ``path``.
    open_file: Callable[[FileDataset, Path, tuple[Layout, ...]], SourceFile]
    #: MD5 of known copies of the file -> which copy it is.
    known_md5: Mapping[str, str] = field(default_factory=dict)
    #: Refuse a file whose MD5 is not known (unless forced): where the publisher's file has one checksum.
    md5_required: bool = False
    #: Channels of the stored images: 3 (RGB), or 1 for a grey set (smallNORB).
    channels: int = 3
    #: Grid factors hidden from the metrics: each sample draws them uniformly (disentanglement_lib's state space).
    nuisance_factors: tuple[str, ...] = ()
    #: For a set that may come as a directory (several published files, or an extracted archive): the files a
    #: directory given as the source must hold, found in it (a UserError when some are missing). ``None``: one file.
    directory_files: Callable[[Path], list[Path]] | None = None
    #: What ``--from`` names in messages when it is not the file's name (``"DIR"``).
    from_hint: str = ""

    @property
    def source_hint(self) -> str:
        return f"your copy of {self.file_name} from {self.source_url}"

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (self.channels, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def image_bytes(self) -> int:
        return int(np.prod(self.observation_shape))

    def layout_named(self, name: str) -> Layout | None:
        return next((layout for layout in self.layouts if layout.name == name), None)


class SourceFile(ABC):
    """An official file opened for conversion: checked on entering, its images read in chunks.

    ``__enter__`` checks the structure cheaply (arrays present, shapes, dtypes)
    and sets :attr:`layout`; :meth:`factor_values` checks the labels, if the
    format has any, against that grid; :meth:`image_chunks` yields the images
    in the grid's order. Every problem is a one-line :class:`UserError`.
    """

    layout: Layout
    #: Whether the reader may show progress bars of its own (set before entering): one that must read everything
    #: before it yields its first image (to put the images in grid order) shows that reading.
    progress: bool = False

    def __init__(self, dataset: FileDataset, path: Path, layouts: tuple[Layout, ...]):
        self.dataset = dataset
        self.path = path
        self.layouts = layouts

    @abstractmethod
    def __enter__(self) -> SourceFile: ...

    @abstractmethod
    def __exit__(self, *exc: object) -> None: ...

    def factor_values(self) -> list[list[Any]]:
        """The value of every class of every factor (default: the layout's, for formats without labels)."""
        if self.layout.factor_values is None:
            return [list(range(size)) for size in self.layout.factor_sizes]
        return [list(values) for values in self.layout.factor_values]

    @abstractmethod
    def image_chunks(self, chunk: int) -> Iterator[np.ndarray]:
        """The images in grid order, uint8 ``(count, 64, 64, channels)`` at most ``chunk`` at a time."""

    def provenance(self) -> dict[str, Any]:
        """What ``meta.json`` records about the source beyond its identity, once it has been read (default: nothing).

        A directory source has no single checksum: its reader may give each file's here.
        """
        return {}

    def layout_for(self, n_images: int, found: str) -> Layout:
        """The layout with ``n_images`` images; else a UserError that lists the shapes expected."""
        for layout in self.layouts:
            if layout.images == n_images:
                return layout
        expected = " or ".join(
            f"({layout.images}, {', '.join(map(str, FILE_IMAGE_SHAPE))})"
            + (f" ({layout.description})" if len(self.layouts) > 1 else "")
            for layout in self.layouts
        )
        raise UserError(f"{self.path}: {found}, expected {expected}; is this {self.dataset.file_name}?")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Labels against the grid
# ---------------------------------------------------------------------------------------------


def factor_values_from_labels(
    labels: np.ndarray, sizes: tuple[int, ...], names: tuple[str, ...], where: str
) -> list[list[float]]:
    """The value of each class of each factor, after checking that ``labels`` match the grid.

    Row ``i`` of ``labels`` holds the factor values of image ``i``, whose classes
    are the digits of ``i`` in the mixed radix ``sizes`` (last factor
    fastest). The labels match the grid when each factor's label depends only
    on that factor's class (every image of a class has the class's value,
    exactly) and different classes have different values. Class ``k`` is then
    the ``k``-th value in the file's order, the numbering disentanglement_lib
    uses; this check does not assume the values increase with the class.
    """
    k = len(sizes)
    n = int(np.prod(sizes))
    if labels.shape != (n, k):
        raise UserError(f"{where}: labels have shape {labels.shape}, expected ({n}, {k})")
    if labels.dtype.kind not in "fiu":
        raise UserError(f"{where}: labels have dtype {labels.dtype}, expected numbers")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise UserError(f"{where}: labels hold NaN or infinite values")
    grid = labels.reshape(*sizes, k)
    values = []
    for f, (size, name) in enumerate(zip(sizes, names, strict=True)):
        column = grid[..., f]
        # The value of class c: the label of the image with this factor at c and every other at class 0.
        per_class = column[(0,) * f + (slice(None),) + (0,) * (k - f - 1)]
        expected = per_class.reshape([size if axis == f else 1 for axis in range(k)])
        wrong = np.flatnonzero(column != expected)
        if wrong.size:
            image = int(wrong[0])
            cls = image // int(np.prod(sizes[f + 1 :], dtype=np.int64)) % size
            raise UserError(
                f"{where}: labels do not match the {'x'.join(map(str, sizes))} grid: image {image} has "
                f"{name} = {column.reshape(-1)[image].item()!r}, but {name} class {cls} is {per_class[cls].item()!r} "
                f"elsewhere ({wrong.size} of {n} images disagree); the images are not in the official order"
            )
        if np.unique(per_class).size != size:
            raise UserError(
                f"{where}: labels do not match the grid: {name} takes {np.unique(per_class).size} distinct values "
                f"over its {size} classes"
            )
        values.append([v.item() for v in per_class])
    return values


# ---------------------------------------------------------------------------------------------
# The dataset object
# ---------------------------------------------------------------------------------------------


class FileGroundTruth(GroundTruthData):
    """A ground-truth dataset prepared from official files: ``(n, C, 64, 64)`` float32 in [0, 1].

    The images are the files', row-major over the factor grid, read from the
    memory-mapped cache; :meth:`factor_values` says what each class is
    (Shapes3D: the label values in the file; MPI3D: the names its README
    gives). Nuisance factors recorded in ``meta.json`` are hidden: sampling
    given the exposed factors draws them with the ``rng`` passed. Pickling
    (e.g. into spawned DataLoader workers) carries the entry's path, not the
    pixels.
    """

    def __init__(self, entry: str | os.PathLike, meta: dict[str, Any] | None = None):
        self.entry = Path(entry)
        meta = meta if meta is not None else cache.read_meta(self.entry)
        if not _complete_meta(meta):
            raise UserError(f"{self.entry} is not a complete dataset cache entry; prepare it again with --force")
        self.meta = meta
        self.name = str(meta["dataset"])
        self.all_nominal_factors = tuple(meta.get("nominal_factors", ()))
        self._names = tuple(meta["factor_names"])
        self._sizes = tuple(int(s) for s in meta["factor_sizes"])
        nuisance = set(meta.get("nuisance_factors", ()))
        self._exposed = tuple(i for i, name in enumerate(self._names) if name not in nuisance)
        self._shape = tuple(int(s) for s in meta.get("observation_shape", OBSERVATION_SHAPE))
        self._images: np.ndarray | None = None

    @property
    def all_factor_names(self) -> tuple[str, ...]:
        return self._names

    @property
    def all_factor_sizes(self) -> tuple[int, ...]:
        return self._sizes

    @property
    def exposed_factors(self) -> tuple[int, ...]:
        return self._exposed

    @property
    def nuisance_factors(self) -> tuple[str, ...]:
        """The grid factors hidden from the metrics (smallNORB's instance), drawn at random per sample."""
        return tuple(name for i, name in enumerate(self._names) if i not in self._exposed)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def layout(self) -> str:
        """Which grid the file held (``"6x6"`` or ``"4x4"`` for MPI3D, ``"official"`` otherwise)."""
        return str(self.meta.get("layout", ""))

    @property
    def source(self) -> str:
        """The file the entry was prepared from."""
        return str(self.meta.get("source", "?"))

    def factor_values(self) -> list[np.ndarray]:
        """What each class of each exposed factor is: the file's label values, or the README's names."""
        values = [np.asarray(v) for v in self.meta["factor_values"]]
        return [values[i] for i in self.exposed_factors]

    @property
    def images(self) -> np.ndarray:
        """The stored uint8 array ``(N, C, 64, 64)``, memory-mapped read-only."""
        if self._images is None:
            if self.meta.get("declared_only"):
                raise _not_prepared(DATASETS[self.name])
            expected = (len(self), *self._shape)
            self._images = cache.open_image_array(self.entry / IMAGES_FILE, expected, self._fix())
        return self._images

    def _fix(self) -> str:
        return f"rebuild it with `nsvae data prepare {self.name} --from {self.source} --force`"

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Images at ``indices`` as float32 ``(n, C, 64, 64)`` in [0, 1] (``rng`` is not used)."""
        idx = as_index_array(indices, len(self)).reshape(-1)
        if idx.size > 1:  # a memory map is read much faster in ascending order
            order = np.argsort(idx, kind="stable")
            raw = np.empty((idx.size, *self._shape), dtype=np.uint8)
            raw[order] = self.images[idx[order]]
        else:
            raw = np.asarray(self.images[idx])
        return np.true_divide(raw, np.float32(255), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(layout=self.layout, source=self.source, cache=str(self.entry))
        out["sha256"] = cache.content_digests(self.meta)
        if self.nuisance_factors:
            out["nuisance_factors"] = list(self.nuisance_factors)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    def __repr__(self) -> str:
        return f"FileGroundTruth({self.name!r}, {self.layout}, {len(self)} images, {str(self.entry)!r})"


def declared(name: str, layout: Layout | None = None) -> FileGroundTruth:
    """File dataset ``name`` as declared (factors, sizes, nominal factors, values) without its images.

    For checks that need no prepared file (which factors are nominal, say);
    reading observations from it raises. ``layout``: one of the dataset's
    grids (default: its first, e.g. MPI3D's 6x6).
    """
    dataset = DATASETS[name]
    layout = dataset.layouts[0] if layout is None else layout
    values = layout.factor_values or tuple(tuple(range(size)) for size in layout.factor_sizes)
    meta = {
        "key": ENTRY_KEY,
        "dataset": dataset.name,
        "source": f"(not prepared: {dataset.file_name})",
        "layout": layout.name,
        "images": layout.images,
        "factor_names": list(dataset.factor_names),
        "factor_sizes": list(layout.factor_sizes),
        "factor_values": [list(v) for v in values],
        "nominal_factors": list(dataset.nominal_factors),
        "nuisance_factors": list(dataset.nuisance_factors),
        "observation_shape": list(dataset.observation_shape),
        "declared_only": True,
    }
    return FileGroundTruth(Path(os.devnull), meta)


def _complete_meta(meta: dict[str, Any] | None) -> bool:
    keys = ("dataset", "factor_names", "factor_sizes", "factor_values", "images")
    return isinstance(meta, dict) and meta.get("key") == ENTRY_KEY and all(key in meta for key in keys)


# ---------------------------------------------------------------------------------------------
# Preparing an entry
# ---------------------------------------------------------------------------------------------


def dataset_dir(dataset: FileDataset, cache_dir: str | os.PathLike | None = None) -> Path:
    return cache.cache_root(cache_dir) / dataset.name


def file_identity(path: Path) -> dict[str, Any]:
    """What says "the same file" without reading it: resolved path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def directory_identity(path: Path, files: Sequence[Path]) -> dict[str, Any]:
    """What says "the same files" of a directory source: its path, and the names, sizes and times of ``files``."""
    listing = hashlib.sha256()
    total = latest = 0
    for file in sorted(files):
        st = file.stat()
        total += st.st_size
        latest = max(latest, st.st_mtime_ns)
        listing.update(f"{file.relative_to(path).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {"path": str(path.resolve()), "bytes": total, "mtime_ns": latest, "files": listing.hexdigest()}


def source_identity(dataset: FileDataset, path: Path) -> dict[str, Any]:
    """:func:`file_identity` of a file, :func:`directory_identity` of a directory the dataset reads, else UserError."""
    if path.is_dir() and dataset.directory_files is not None:
        return directory_identity(path, dataset.directory_files(path))
    if path.is_file():
        return file_identity(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; give the path of {dataset.file_name} itself")
    raise UserError(f"{path} does not exist; get {dataset.file_name} from {dataset.source_url}")


def is_prepared(entry: Path, dataset: FileDataset, identity: dict[str, Any] | None = None) -> bool:
    """Whether ``entry`` is a complete entry of ``dataset`` (made from the file ``identity``, if given)."""
    meta = cache.read_meta(entry)
    if not _complete_meta(meta) or meta["dataset"] != dataset.name or not (entry / IMAGES_FILE).is_file():
        return False
    if identity is None:
        return True
    made_from = meta.get("file") or {}
    return all(made_from.get(key) == value for key, value in identity.items())


def md5_of(path: Path, progress: bool, label: str) -> str:
    """The MD5 of the file at ``path``, read in 4 MiB blocks (with a progress bar in bytes)."""
    with _progress(path.stat().st_size, label, progress, unit="B") as bar:
        return cache.file_digest(path, "md5", on_block=bar.update)


def verify_md5(dataset: FileDataset, path: Path, force: bool, progress: bool, required: bool) -> dict[str, Any]:
    """Hash the file and compare with the known copies; refuse an unknown one if ``required`` and not ``force``."""
    actual = md5_of(path, progress, f"checksum of {path.name}")
    known_as = dataset.known_md5.get(actual)
    if required and known_as is None and not force:
        known = ", ".join(dataset.known_md5) or "none"
        raise UserError(
            f"{path} has MD5 {actual}, not the official {known}; if this is a copy you trust "
            "(e.g. re-saved), rerun with --force"
        )
    return {"checksum": f"md5:{actual}", "checksum_verified": known_as is not None, "checksum_known_as": known_as}


def import_file(
    dataset: FileDataset,
    path: str | os.PathLike,
    entry: Path,
    *,
    layouts: Sequence[Layout] | None = None,
    force: bool = False,
    progress: bool = True,
    verify_checksum: bool | None = None,
    full_check: bool = True,
) -> Path:
    """Convert the official file at ``path`` into the cache entry ``entry`` (or reuse it).

    An entry already made from this very file (same resolved path, size and
    modification time) is returned after :func:`nsvae.data.cache.verify_entry`
    (``full_check``: hash every byte; else the cheap check); another file
    replaces it, atomically. ``force``: convert again, and accept a checksum
    that is not the official one.

    ``layouts`` and ``verify_checksum`` exist for tests that write small files
    in the official format: ``layouts`` replaces the dataset's grids, and the
    checksum is checked by default only with the dataset's own grids.
    """
    path = Path(path).expanduser()
    identity = source_identity(dataset, path)
    layouts = dataset.layouts if layouts is None else tuple(layouts)
    check_md5 = (layouts == dataset.layouts) if verify_checksum is None else verify_checksum

    def build(tmp: Path) -> dict[str, Any]:
        return _convert(dataset, path, tmp, layouts, identity, force=force, progress=progress, check_md5=check_md5)

    def rebuilding(damaged: Path, problem: str) -> None:
        warnings.warn(
            f"{dataset.name} cache {damaged} is damaged ({problem}); converting {path.name} again",
            NsvaeWarning,
            stacklevel=4,
        )

    return cache.ensure_entry(
        entry,
        build,
        ready=lambda candidate: is_prepared(candidate, dataset, identity),
        check=lambda candidate: cache.verify_entry(candidate, full=full_check),
        on_damaged=rebuilding,
        force=force,
    )


def _convert(
    dataset: FileDataset,
    path: Path,
    tmp: Path,
    layouts: tuple[Layout, ...],
    identity: dict[str, Any],
    *,
    force: bool,
    progress: bool,
    check_md5: bool,
) -> dict[str, Any]:
    """Check the file and stream its images into ``tmp``; returns the entry's ``meta.json``."""
    source = dataset.open_file(dataset, path, layouts)
    source.progress = progress
    with source:
        layout = source.layout
        if len(layouts) > 1:  # the user should know which of the published grids the file turned out to hold
            print(
                f"nsvae: {path.name} holds {layout.images:,} images: {layout.description}",
                file=sys.stderr,
                flush=True,
            )
        if path.is_dir():  # no one file to hash: the reader may record each file's checksum (provenance)
            checks = {"checksum": None, "checksum_verified": False, "checksum_known_as": None}
        else:
            checks = verify_md5(dataset, path, force, progress, required=check_md5 and dataset.md5_required)
        values = source.factor_values()
        n = layout.images
        _require_space(tmp, n * dataset.image_bytes)
        written = 0
        bar = _progress(n, f"converting {path.name}", progress)
        with PackedWriter(tmp / IMAGES_FILE, (n, *dataset.observation_shape)) as out, bar:
            for chunk in source.image_chunks(IMPORT_CHUNK):
                try:
                    out.write(chunk.transpose(0, 3, 1, 2))
                except OSError as exc:
                    raise UserError(
                        f"cannot write the {dataset.name} cache in {tmp.parent} ({exc.strerror or exc}); free some "
                        f"space or choose another cache with --cache-dir or {cache.CACHE_ENV}"
                    ) from None
                written += chunk.shape[0]
                bar.update(chunk.shape[0])
        if written != n:
            raise UserError(f"{path}: {written} images were read, the file's shape promises {n} (truncated file)")
        provenance = source.provenance()
    md5 = checks["checksum"].removeprefix("md5:") if checks["checksum"] else None
    return {
        "key": ENTRY_KEY,
        "dataset": dataset.name,
        "source": identity["path"],
        "file": {**identity, "md5": md5},
        **checks,
        **provenance,
        "layout": layout.name,
        "layout_description": layout.description,
        "images": n,
        "observation_shape": list(dataset.observation_shape),
        "factor_names": list(dataset.factor_names),
        "factor_sizes": list(layout.factor_sizes),
        "factor_values": values,
        "nominal_factors": list(dataset.nominal_factors),
        "nuisance_factors": list(dataset.nuisance_factors),
        "storage": f"uint8 (N, {dataset.channels}, 64, 64), channels first, row-major over the factors",
        "nsvae_version": __version__,
    }


def _require_space(where: Path, size: int) -> None:
    if shutil.disk_usage(where).free < size:
        raise UserError(
            f"not enough free disk space in {where.parent} for {size / 2**30:.2f} GiB of images; "
            f"free some space or choose another cache with --cache-dir or {cache.CACHE_ENV}"
        )


def _progress(total: int, desc: str, enabled: bool, unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled, leave=False)


# ---------------------------------------------------------------------------------------------
# The registry entry: load, prepare, status
# ---------------------------------------------------------------------------------------------

#: The registered file datasets by name. Their registry functions look the dataset up here on every
#: call, so tests can swap in a small grid with ``monkeypatch.setitem(DATASETS, name, ...)``.
DATASETS: dict[str, FileDataset] = {}

_ORIGINS = ("auto", "official")


def _check_options(dataset: FileDataset, origin: str, options: dict[str, Any]) -> None:
    if options:
        raise UserError(f"{dataset.name} takes no option {', '.join(sorted(options))} (it is read as published)")
    if origin not in _ORIGINS:
        raise UserError(
            f"{dataset.name} has only the official images: origin must be 'auto' or 'official', got {origin!r}"
        )


def _not_prepared(dataset: FileDataset) -> UserError:
    source = dataset.from_hint or dataset.file_name
    return UserError(
        f"{dataset.name} is not prepared and cannot be downloaded here: run "
        f"`nsvae data prepare {dataset.name} --from {source}` with {dataset.source_hint}"
    )


def prepare_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    origin: str = "auto",
    **options: Any,
) -> Path:
    """Prepare file dataset ``name`` from ``source`` (reused if made from the same file); returns the entry."""
    dataset = DATASETS[name]
    _check_options(dataset, origin, options)
    entry = dataset_dir(dataset, cache_dir) / ENTRY_KEY
    if source is None:
        if is_prepared(entry, dataset):  # nothing to convert: check every byte of what is there
            problem = cache.verify_entry(entry, full=True)
            if problem:
                raise _damaged(dataset, entry, problem)
            return entry
        raise UserError(f"{dataset.name} needs --from {dataset.from_hint or 'FILE'}: {dataset.source_hint}")
    return import_file(dataset, source, entry, force=force, progress=progress)


def load_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    origin: str = "auto",
    progress: bool = True,
    **options: Any,
) -> FileGroundTruth:
    """Open file dataset ``name``; ``source`` prepares it first unless it was made from that file."""
    dataset = DATASETS[name]
    _check_options(dataset, origin, options)
    entry = dataset_dir(dataset, cache_dir) / ENTRY_KEY
    if source is not None:
        return FileGroundTruth(import_file(dataset, source, entry, progress=progress, full_check=False))
    if not is_prepared(entry, dataset):
        raise _not_prepared(dataset)
    problem = cache.verify_entry(entry)  # the cheap check before every use
    if problem:
        raise _damaged(dataset, entry, problem)
    return FileGroundTruth(entry)


def _damaged(dataset: FileDataset, entry: Path, problem: str) -> UserError:
    source = (cache.read_meta(entry) or {}).get("source") or dataset.file_name
    return UserError(
        f"{dataset.name} cache {entry} is damaged ({problem}); rebuild it with "
        f"`nsvae data prepare {dataset.name} --from {source} --force`"
    )


def dataset_status(name: str, cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    dataset = DATASETS[name]
    entry = dataset_dir(dataset, cache_dir) / ENTRY_KEY
    if not is_prepared(entry, dataset):
        return []
    meta = cache.read_meta(entry) or {}
    row = registry.cache_entry_status(entry, meta)
    row["layout"] = meta.get("layout")
    return [row]


def register_file_dataset(dataset: FileDataset) -> registry.DatasetEntry:
    """Register ``dataset`` for :func:`nsvae.data.load`, :func:`nsvae.data.prepare` and ``nsvae data``."""
    DATASETS[dataset.name] = dataset
    name = dataset.name

    def load(cache_dir=None, source=None, origin="auto", progress=True, **options) -> FileGroundTruth:
        return load_dataset(name, cache_dir=cache_dir, source=source, origin=origin, progress=progress, **options)

    def prepare(cache_dir=None, source=None, force=False, progress=True, **options) -> Path:
        return prepare_dataset(name, cache_dir=cache_dir, source=source, force=force, progress=progress, **options)

    def status(cache_dir=None) -> list[dict[str, Any]]:
        return dataset_status(name, cache_dir=cache_dir)

    load.__doc__ = f"Open the prepared {dataset.title} (see :func:`load_dataset`)."
    prepare.__doc__ = f"Prepare {dataset.title} from your {dataset.file_name} (see :func:`prepare_dataset`)."
    status.__doc__ = f"The prepared {dataset.title} entry, if any."
    return registry.register(
        registry.DatasetEntry(
            name=name,
            summary=dataset.summary,
            load=load,
            prepare=prepare,
            status=status,
            needs_source=True,
            source_hint=dataset.source_hint,
        )
    )
