"""dSprites variants of Locatello et al. (2019), made on the fly from the binary images.

As in disentanglement_lib (``data/ground_truth/dsprites.py``), the extra
randomness is per-sample nuisance noise, not a factor, and each variant
uses the same five factors as dSprites (``dsprites_noshape``: four, with the
shape drawn at random). Observations are float32 RGB ``(n, 3, 64, 64)`` in
[0, 1]; ``rng`` is required, so a seeded generator gives the same batch:

- ``color_dsprites``: the sprite in one colour per sample, each of R, G, B
  uniform in [0.5, 1]; black background.
- ``noisy_dsprites``: ``min(mask + U(0, 1), 1)`` per pixel and channel:
  fresh uniform noise in the background, the sprite saturated white.
- ``scream_dsprites``: background a random 64 x 64 crop of Munch's *The
  Scream* (the user supplies the image; it is fitted inside 350 x 274 like
  disentanglement_lib's ``thumbnail``), shaded ``(patch + U(0, 1)^3) / 2``;
  the sprite's pixels are ``1 - background``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from . import cache
from . import dsprites as dsprites_module
from .base import GroundTruthData, as_index_array
from .dsprites import DSprites
from .registry import DatasetEntry, cache_entry_status, register

#: Largest size of the painting, as disentanglement_lib's ``thumbnail((350, 274))``.
SCREAM_THUMBNAIL = (350, 274)
SCREAM_HINT = "The Scream (Munch, 1893), e.g. https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"


def _require_rng(rng: np.random.Generator | None, name: str) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{name} draws nuisance noise per sample: pass rng=np.random.default_rng(seed)")
    return rng


class DSpritesVariant(GroundTruthData):
    """A dSprites variant: same images and factors, different rendering of each sample."""

    channels = 1

    def __init__(self, base: DSprites):
        self.base = base

    @property
    def all_factor_names(self) -> tuple[str, ...]:
        return self.base.all_factor_names

    @property
    def all_factor_sizes(self) -> tuple[int, ...]:
        return self.base.all_factor_sizes

    @property
    def all_nominal_factors(self) -> tuple[str, ...]:
        return self.base.all_nominal_factors  # the factors are dSprites' own: shape stays nominal

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return (self.channels, 64, 64)

    def factor_values(self) -> list[np.ndarray]:
        values = self.base.factor_values()
        return [values[i] for i in self.exposed_factors]

    def masks(self, indices: Any) -> np.ndarray:
        """The binary sprites as float32 ``(n, 64, 64)``."""
        idx = as_index_array(indices, len(self.base)).reshape(-1)
        return self.base.observations_at(idx)[:, 0]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(source=self.base.source, cache=str(self.base.entry), sha256=cache.content_digests(self.base.meta))
        return out


class DSpritesNoShape(DSpritesVariant):
    """dSprites with shape hidden: 4 ground-truth factors, the shape drawn uniformly per sample."""

    name = "dsprites_noshape"

    @property
    def exposed_factors(self) -> tuple[int, ...]:
        return (1, 2, 3, 4)

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.base.observations_at(indices)


class ColorDSprites(DSpritesVariant):
    """Colour-dSprites: each sprite in a random colour, R, G, B each uniform in [0.5, 1]."""

    name = "color_dsprites"
    channels = 3
    draws_noise = True

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _require_rng(rng, self.name)
        mask = self.masks(indices)
        colour = rng.uniform(0.5, 1.0, size=(mask.shape[0], 3)).astype(np.float32)
        return mask[:, None] * colour[:, :, None, None]


class NoisyDSprites(DSpritesVariant):
    """Noisy-dSprites: uniform noise per pixel and channel behind a white sprite."""

    name = "noisy_dsprites"
    channels = 3
    draws_noise = True

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _require_rng(rng, self.name)
        mask = self.masks(indices)
        noise = rng.random(size=(mask.shape[0], 3, 64, 64), dtype=np.float32)
        return np.minimum(mask[:, None] + noise, 1.0)


class ScreamDSprites(DSpritesVariant):
    """Scream-dSprites: a shaded crop of *The Scream* behind a colour-inverted sprite."""

    name = "scream_dsprites"
    channels = 3
    draws_noise = True

    def __init__(self, base: DSprites, painting: np.ndarray):
        super().__init__(base)
        if painting.ndim != 3 or painting.shape[2] != 3 or min(painting.shape[:2]) < 64:
            raise ValueError(f"the painting must be an RGB image of at least 64x64, got shape {painting.shape}")
        self.painting = np.ascontiguousarray(painting, dtype=np.float32)  # (H, W, 3) in [0, 1]

    def observations_at(self, indices: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = _require_rng(rng, self.name)
        mask = self.masks(indices)
        n = mask.shape[0]
        height, width = self.painting.shape[:2]
        out = np.empty((n, 3, 64, 64), dtype=np.float32)
        for k in range(n):
            top = rng.integers(0, height - 64)
            left = rng.integers(0, width - 64)
            patch = self.painting[top : top + 64, left : left + 64]
            shade = rng.uniform(0.0, 1.0, size=3).astype(np.float32)
            background = ((patch + shade) / 2.0).transpose(2, 0, 1)
            out[k] = np.where(mask[k][None] > 0, 1.0 - background, background)
        return out


# -- The Scream: the user's image, fitted and cached --------------------------------------------


def scream_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return cache.cache_root(cache_dir) / "scream_dsprites"


def read_painting(path: str | os.PathLike) -> np.ndarray:
    """The user's painting fitted inside 350 x 274 (aspect kept), float32 RGB in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path} does not exist; supply an image of {SCREAM_HINT}")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(SCREAM_THUMBNAIL)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"cannot read {path} as an image ({exc}); supply a JPEG or PNG of {SCREAM_HINT}") from None
    if min(pixels.shape[:2]) <= 64:
        raise UserError(f"{path} is too small ({pixels.shape[1]}x{pixels.shape[0]}); the crops are 64x64")
    return pixels


def prepare_scream(cache_dir: str | os.PathLike | None, source: str | os.PathLike, force: bool) -> Path:
    digest = cache.file_digest(Path(source).expanduser()) if Path(source).is_file() else None
    painting = read_painting(source)  # also the error for a missing or unreadable file
    entry = scream_dir(cache_dir) / f"painting-{digest[:16]}"

    def build(tmp: Path) -> dict[str, Any]:
        np.save(tmp / "painting.npy", painting)
        return {
            "key": entry.name,
            "dataset": "scream_dsprites",
            "source": str(Path(source).expanduser().resolve()),
            "sha256": digest,
            "painting_shape": list(painting.shape),
            "images": dsprites_module.N_IMAGES,
            "observation_shape": [3, 64, 64],
        }

    return cache.ensure_entry(entry, build, ready=_is_painting_entry, force=force)


def _is_painting_entry(entry: Path) -> bool:
    return (cache.read_meta(entry) or {}).get("key") == entry.name


def _prepared_paintings(cache_dir: str | os.PathLike | None) -> list[Path]:
    root = scream_dir(cache_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and _is_painting_entry(p))


def _painting_entry(cache_dir: str | os.PathLike | None, source: str | os.PathLike | None) -> Path:
    if source is not None:
        return prepare_scream(cache_dir, source, force=False)
    entries = _prepared_paintings(cache_dir)
    if len(entries) == 1:
        return entries[0]
    if not entries:
        raise UserError(
            "scream_dsprites needs the painting, which cannot be downloaded here: "
            "run `nsvae data prepare scream_dsprites --from The_Scream.jpg` with your copy of " + SCREAM_HINT
        )
    raise UserError(f"several paintings are prepared ({', '.join(e.name for e in entries)}); pass source=IMAGE")


# -- registry entries ------------------------------------------------------------------------------


def _variant_entry(cls: type[DSpritesVariant], summary: str) -> DatasetEntry:
    def load(cache_dir=None, source=None, origin="auto", progress=True, **options: Any) -> DSpritesVariant:
        if source is not None:
            raise UserError(f"{cls.name} takes no source file; prepare the official dSprites with `--from` instead")
        base = dsprites_module.load(cache_dir=cache_dir, origin=origin, progress=progress, **options)
        return cls(base)

    def prepare(cache_dir=None, source=None, force=False, progress=True, **options: Any) -> Path:
        return dsprites_module.prepare(cache_dir=cache_dir, source=source, force=force, progress=progress, **options)

    return DatasetEntry(
        name=cls.name,
        summary=summary,
        load=load,
        prepare=prepare,
        status=dsprites_module.status,
        source_hint="made from dsprites on the fly",
    )


def _scream_load(cache_dir=None, source=None, origin="auto", progress=True, **options: Any) -> ScreamDSprites:
    painting = np.load(_painting_entry(cache_dir, source) / "painting.npy")
    base = dsprites_module.load(cache_dir=cache_dir, origin=origin, progress=progress, **options)
    return ScreamDSprites(base, painting)


def _scream_prepare(cache_dir=None, source=None, force=False, progress=True, **options: Any) -> Path:
    if source is None:
        raise UserError(f"scream_dsprites needs --from IMAGE: your copy of {SCREAM_HINT}")
    dsprites_module.prepare(cache_dir=cache_dir, progress=progress, **options)
    return prepare_scream(cache_dir, source, force)


def _scream_status(cache_dir=None) -> list[dict[str, Any]]:
    return [cache_entry_status(e, cache.read_meta(e) or {}) for e in _prepared_paintings(cache_dir)]


register(_variant_entry(DSpritesNoShape, "dSprites without the shape factor (4 factors; shape is nuisance)"))
register(_variant_entry(ColorDSprites, "Color-dSprites (Locatello et al.): random RGB colour per sprite"))
register(_variant_entry(NoisyDSprites, "Noisy-dSprites (Locatello et al.): uniform noise background"))
register(
    DatasetEntry(
        name="scream_dsprites",
        summary="Scream-dSprites (Locatello et al.): sprite inverted over a crop of The Scream",
        load=_scream_load,
        prepare=_scream_prepare,
        status=_scream_status,
        needs_source=True,
        source_hint="your copy of " + SCREAM_HINT,
    )
)
