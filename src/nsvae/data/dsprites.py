"""dSprites: the official file when the user has it, the built-in generator otherwise.

Both sources produce the same cache format: ``images.npy``, the 737,280
binary 64 x 64 images bit-packed along rows (``np.packbits(..., axis=-1)``,
shape ``(737280, 64, 8)``, 360 MiB), memory-mapped when read, in the
official index order (``index = 245760*shape + 40960*scale + 1024*orientation
+ 32*posX + posY``). The factor classes follow from the index, so no latents
are stored.

Cache entries (under :func:`nsvae.data.cache.cache_root`):

- ``dsprites/generated-v<GENERATOR_VERSION>/``: made by
  :mod:`nsvae.data.dsprites_render` (about 15 s on 2 cores);
- ``dsprites/official/``: converted from the user's
  ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (or its ``.hdf5`` twin)
  by ``nsvae data prepare dsprites --from FILE``; used in preference to the
  generated images from then on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..cpus import usable_cpus
from ..errors import UserError
from ..processes import worker_pool
from . import cache
from . import dsprites_render as render
from .base import GroundTruthData, as_index_array
from .registry import DatasetEntry, cache_entry_status, register

#: Bump when the drawing model changes: old generated caches are then rebuilt.
GENERATOR_VERSION = 1
N_IMAGES = int(np.prod(render.FACTOR_SIZES))
PACKED_SHAPE = (N_IMAGES, render.IMAGE_SIZE, render.IMAGE_SIZE // 8)

#: Checksums of the official files (deepmind/dsprites-dataset at fa310c6; TFDS checksums.tsv).
OFFICIAL_NPZ_MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
OFFICIAL_HDF5_SHA256 = "729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb"
OFFICIAL_FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
OFFICIAL_URL = "https://github.com/deepmind/dsprites-dataset"

GENERATED_KEY = f"generated-v{GENERATOR_VERSION}"
OFFICIAL_KEY = "official"
ORIGINS = ("auto", "official", "generated")

#: Images converted per chunk when importing the official file (64 MiB of uint8).
IMPORT_CHUNK = 16384
BLOCKS = [(sh, sc, o) for sh in range(3) for sc in range(6) for o in range(40)]

# Unpacking table: byte -> its 8 bits as float32 (most significant first, as np.packbits writes).
_BITS_F32 = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)


def unpack_images(packed: np.ndarray) -> np.ndarray:
    """Bit-packed rows ``(n, 64, 8)`` -> uint8 0/1 images ``(n, 64, 64)``."""
    return np.unpackbits(packed, axis=-1)


def unpack_images_float(packed: np.ndarray) -> np.ndarray:
    """Bit-packed rows ``(n, 64, 8)`` -> float32 0/1 images ``(n, 64, 64)`` in one table look-up."""
    return _BITS_F32[packed].reshape(packed.shape[0], render.IMAGE_SIZE, render.IMAGE_SIZE)


def dsprites_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return cache.cache_root(cache_dir) / "dsprites"


def entry_ready(entry: Path, key: str) -> bool:
    meta = cache.read_meta(entry)
    if meta is None or meta.get("key") != key:
        return False
    images = entry / "images.npy"
    return images.is_file() and images.stat().st_size >= N_IMAGES * 512


class DSprites(GroundTruthData):
    """dSprites (Matthey et al. 2017): 737,280 binary 64 x 64 sprites, 5 factors.

    Factors (storage order, last fastest): shape (square, ellipse, heart),
    scale (6 values in [0.5, 1]), orientation (40 values in [0, 2π]; class 39
    draws the same image as class 0), posX and posY (32 values in [0, 1]).
    Observations are float32 ``(n, 1, 64, 64)`` with values 0 and 1.
    Pickling (e.g. into spawned DataLoader workers) carries the cache entry's
    path, not the 360 MiB of images: the copy maps the file again.
    """

    name = "dsprites"
    # The three shapes are categories, not points on a scale (scale, orientation and position are ordered).
    all_nominal_factors = ("shape",)

    def __init__(self, entry: Path):
        self.entry = Path(entry)
        self.meta = cache.read_meta(self.entry) or {}
        self._map_images()

    def _map_images(self) -> None:
        try:
            self.packed = np.load(self.entry / "images.npy", mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"dSprites cache {self.entry} is damaged (images.npy: {first}); rebuild it with "
                f"`{_fix_command(self.entry, self.meta)}`"
            ) from None
        if self.packed.shape != PACKED_SHAPE or self.packed.dtype != np.uint8:
            raise UserError(
                f"dSprites cache {self.entry} is damaged (images {self.packed.shape} {self.packed.dtype}); "
                "rebuild it with `nsvae data prepare dsprites --force`"
            )

    @property
    def source(self) -> str:
        """``"official"`` or ``"generated"``."""
        return str(self.meta.get("source", "generated"))

    @property
    def all_factor_names(self) -> tuple[str, ...]:
        return render.FACTOR_NAMES

    @property
    def all_factor_sizes(self) -> tuple[int, ...]:
        return render.FACTOR_SIZES

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (1, render.IMAGE_SIZE, render.IMAGE_SIZE)

    def factor_values(self) -> list[np.ndarray]:
        """The official latent values of each exposed factor (shape: 1, 2, 3 as in the file)."""
        values = [
            np.array([1.0, 2.0, 3.0]),
            render.SCALE_VALUES,
            render.ORIENTATION_VALUES,
            render.POSITION_VALUES,
            render.POSITION_VALUES,
        ]
        return [values[i] for i in self.exposed_factors]

    def binary_images_at(self, indices: Any) -> np.ndarray:
        """uint8 0/1 images ``(n, 64, 64)``."""
        idx = as_index_array(indices, N_IMAGES).reshape(-1)
        return unpack_images(self._gather(idx))

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        idx = as_index_array(indices, N_IMAGES).reshape(-1)
        return unpack_images_float(self._gather(idx))[:, None]

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        # Reading a memory map in ascending order is much faster than in random order.
        if idx.size > 1:
            order = np.argsort(idx, kind="stable")
            out = np.empty((idx.size, *PACKED_SHAPE[1:]), dtype=np.uint8)
            out[order] = self.packed[idx[order]]
            return out
        return np.asarray(self.packed[idx])

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(source=self.source, cache=str(self.entry), sha256=cache.content_digests(self.meta))
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["packed"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._map_images()


# -- generation -------------------------------------------------------------------------------


class PackedWriter:
    """Writes a uint8 ``.npy`` of a known shape front to back with plain writes.

    Unlike filling an ``open_memmap``, written pages are not kept mapped in
    this process, so resident memory stays at one chunk.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.shape = shape
        self.row_bytes = int(np.prod(shape[1:]))
        self.rows = 0
        self.handle = open(path, "wb")
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.handle, header)

    def write(self, rows: np.ndarray) -> None:
        if rows.dtype != np.uint8 or rows.shape[1:] != self.shape[1:]:
            raise ValueError(f"expected uint8 rows of shape {self.shape[1:]}, got {rows.dtype} {rows.shape[1:]}")
        self.handle.write(np.ascontiguousarray(rows).tobytes())
        self.rows += rows.shape[0]

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        if self.rows != self.shape[0]:
            raise RuntimeError(f"wrote {self.rows} of {self.shape[0]} rows")

    def __enter__(self) -> PackedWriter:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:
            self.handle.close()


def _render_packed(block: tuple[int, int, int]) -> np.ndarray:
    return np.packbits(render.render_block(*block), axis=-1)


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "img"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled, leave=False)


def _worker_count(workers: int | None) -> int:
    if workers is not None:
        if int(workers) < 0:
            raise UserError(f"--workers must be 0 or more (0 or 1: no worker processes), got {workers}")
        return max(1, int(workers))
    return min(4, usable_cpus())


def generate_into(images_path: Path, progress: bool = True, workers: int | None = None) -> None:
    """Render all 737,280 images into a new packed ``.npy`` at ``images_path``.

    Blocks are rendered by ``workers`` processes (default: the CPUs available,
    at most 4) and written in order by this one, so peak memory stays at a
    few blocks per worker.
    """
    n_workers = _worker_count(workers)
    with PackedWriter(images_path, PACKED_SHAPE) as out, progress_bar(N_IMAGES, "generating dSprites", progress) as bar:
        if n_workers == 1:
            results: Iterator[np.ndarray] = map(_render_packed, BLOCKS)
            executor = contextlib.nullcontext()
        else:
            executor = worker_pool(n_workers)
        with executor as pool:
            if pool is not None:
                results = pool.map(_render_packed, BLOCKS, chunksize=4)
            for packed in results:
                out.write(packed)
                bar.update(packed.shape[0])


def _fix_command(entry: Path, meta: dict[str, Any]) -> str:
    if meta.get("source") == "official" or entry.name == OFFICIAL_KEY:
        return f"nsvae data prepare dsprites --from {meta.get('file') or OFFICIAL_FILE_NAME} --force"
    return "nsvae data prepare dsprites --origin generated --force"


def damaged_entry(entry: Path, full: bool) -> str:
    """What is wrong with a ready entry ('' if nothing): see :func:`nsvae.data.cache.verify_entry`."""
    return cache.verify_entry(entry, full=full)


def warn_rebuild(entry: Path, problem: str) -> None:
    import warnings

    from ..errors import NsvaeWarning

    warnings.warn(f"dSprites cache {entry} is damaged ({problem}); drawing it again", NsvaeWarning, stacklevel=4)


def _prepare_generated(
    root: Path, force: bool, progress: bool, workers: int | None = None, verify: bool = True
) -> Path:
    """The generated entry, drawn unless it is ready and intact (``verify``: hash every byte to know)."""

    def build(tmp: Path) -> dict[str, Any]:
        generate_into(tmp / "images.npy", progress=progress, workers=workers)
        return {
            "key": GENERATED_KEY,
            "dataset": "dsprites",
            "source": "generated",
            "generator_version": GENERATOR_VERSION,
            "images": N_IMAGES,
            "observation_shape": [1, 64, 64],
            "factor_sizes": list(render.FACTOR_SIZES),
            "layout": "packbits rows, official index order",
        }

    return cache.ensure_entry(
        root / GENERATED_KEY,
        build,
        ready=lambda entry: entry_ready(entry, GENERATED_KEY),
        check=lambda entry: damaged_entry(entry, full=verify),
        on_damaged=warn_rebuild,
        force=force,
    )


# -- load / prepare / status (the registry entry) ------------------------------------------------


def _resolve_origin(origin: str) -> str:
    if origin not in ORIGINS:
        raise UserError(f"unknown dSprites origin {origin!r}; choose one of {', '.join(ORIGINS)}")
    return origin


def prepare(
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    origin: str = "auto",
    workers: int | None = None,
) -> Path:
    """Prepare dSprites: import the official file ``source`` if given, else generate (once)."""
    origin = _resolve_origin(origin)
    if workers is not None:
        _worker_count(workers)  # a bad count is refused before the cache is touched
    root = dsprites_dir(cache_dir)
    cache.ensure_writable_dir(root)
    if source is not None:
        if origin == "generated":
            raise UserError("--from gives the official file; it cannot be combined with origin 'generated'")
        from .dsprites_official import import_official  # here: that module builds on this one

        return import_official(source, root / OFFICIAL_KEY, force=force, progress=progress, reuse=True)
    if origin == "official":
        entry = root / OFFICIAL_KEY
        if entry_ready(entry, OFFICIAL_KEY):
            _check_official(entry, full=True)
            return entry
        raise UserError(
            f"the official dSprites file is not prepared; run: nsvae data prepare dsprites --from {OFFICIAL_FILE_NAME}"
        )
    if origin == "auto" and not force and entry_ready(root / OFFICIAL_KEY, OFFICIAL_KEY):
        _check_official(root / OFFICIAL_KEY, full=True)
    return _prepare_generated(root, force, progress, workers)


def _check_official(entry: Path, full: bool) -> None:
    problem = damaged_entry(entry, full=full)
    if problem:
        meta = cache.read_meta(entry) or {}
        raise UserError(f"dSprites cache {entry} is damaged ({problem}); rebuild it with `{_fix_command(entry, meta)}`")


def load(
    cache_dir: str | os.PathLike | None = None,
    source: str | os.PathLike | None = None,
    origin: str = "auto",
    progress: bool = True,
    workers: int | None = None,
    **options: Any,
) -> DSprites:
    """Open dSprites: the official images if prepared (``origin='auto'``), else the generated ones.

    The generated cache is built on first use (about 15 s); ``source`` imports
    the official file first.
    """
    if options:
        raise UserError(f"unknown dSprites options: {', '.join(sorted(options))}")
    origin = _resolve_origin(origin)
    root = dsprites_dir(cache_dir)
    # Before every use, the cheap check of the cache (verify_entry): a damaged generated cache is drawn again,
    # a damaged official one is reported with the command that rebuilds it.
    if source is None and origin in ("auto", "official") and entry_ready(root / OFFICIAL_KEY, OFFICIAL_KEY):
        _check_official(root / OFFICIAL_KEY, full=False)
        return DSprites(root / OFFICIAL_KEY)
    if source is None and origin in ("auto", "generated") and entry_ready(root / GENERATED_KEY, GENERATED_KEY):
        return DSprites(_prepare_generated(root, False, progress, workers, verify=False))
    return DSprites(prepare(cache_dir, source=source, progress=progress, origin=origin, workers=workers))


def status(cache_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    root = dsprites_dir(cache_dir)
    rows = []
    for key in (OFFICIAL_KEY, GENERATED_KEY):
        entry = root / key
        if entry_ready(entry, key):
            rows.append(cache_entry_status(entry, cache.read_meta(entry) or {}))
    return rows


ENTRY = register(
    DatasetEntry(
        name="dsprites",
        summary="dSprites: 737,280 binary 64x64 sprites, 5 factors (official file or built-in generator)",
        load=load,
        prepare=prepare,
        status=status,
        needs_source=False,
        source_hint=f"optional: {OFFICIAL_FILE_NAME} from {OFFICIAL_URL}",
    )
)
