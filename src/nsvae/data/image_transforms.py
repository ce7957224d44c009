"""Turning one encoded image into a 64×64 uint8 array, channels first.

A :class:`Preprocessing` names every choice, so it can be stored in a cache
entry's ``meta.json`` and encoded in its key. The geometry steps, in order:

1. decode with Pillow; for folders only, apply the EXIF orientation;
2. convert to RGB (``channels=3``) or grey (``channels=1``, Pillow's ``"L"``:
   ITU-R 601-2 luma, ``L = 0.299 R + 0.587 G + 0.114 B``); transparent pixels
   are composited over white first;
3. one of

   - ``"original"`` (CelebA, the original implementation's ``dataset.py``):
     resize the whole image to 64 wide × 78 tall with Lanczos (Pillow's old
     ``ANTIALIAS``), then keep rows 7..70 (``[7:71]``);
   - ``"center"``: crop the centred ``crop_size`` × ``crop_size`` square
     (``crop_size=None``: the largest centred square; offsets rounded down),
     then resize it to 64×64 with Lanczos;
   - ``"full"``: resize the whole frame to 64×64 with Lanczos, ignoring the
     aspect ratio.

The functions here run in worker processes, so they only take and return
picklable things.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps

#: Side length of every prepared image.
SIZE = 64
#: The original implementation's CelebA geometry: resize to (width, height), keep rows [top, bottom).
ORIGINAL_RESIZE = (64, 78)
ORIGINAL_ROWS = (7, 71)

CROPS = ("original", "center", "full")


@dataclass(frozen=True)
class Preprocessing:
    """How a source image becomes one ``(channels, 64, 64)`` uint8 array."""

    crop: str = "center"
    crop_size: int | None = None
    channels: int = 3
    exif_transpose: bool = False

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}; got {self.crop!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {self.channels!r}")
        if self.crop_size is not None:
            if isinstance(self.crop_size, bool) or not isinstance(self.crop_size, (int, np.integer)):
                raise ValueError(f"crop_size must be a whole number of pixels; got {self.crop_size!r}")
            if self.crop_size < 1:
                raise ValueError(f"crop_size must be positive; got {self.crop_size}")
            if self.crop != "center":
                raise ValueError(f"crop_size only applies to crop='center', not crop={self.crop!r}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, SIZE, SIZE)

    @property
    def key(self) -> str:
        """A short, file-name-safe description used in cache entry names, e.g. ``center148-rgb-64``."""
        crop = self.crop
        if crop == "center":
            crop += str(self.crop_size) if self.crop_size is not None else "max"
        colour = "rgb" if self.channels == 3 else "gray"
        exif = "-exif" if self.exif_transpose else ""
        return f"{crop}-{colour}{exif}-{SIZE}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["size"] = SIZE
        return out


def _flatten_alpha(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba)


def center_box(width: int, height: int, crop_size: int | None) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the centred square crop (clipped to the image)."""
    side = min(width, height) if crop_size is None else min(crop_size, width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    return left, top, left + side, top + side


def preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """A decoded Pillow image as uint8 ``(channels, 64, 64)``."""
    if spec.exif_transpose:
        image = ImageOps.exif_transpose(image)
    image = _flatten_alpha(image)
    image = image.convert("RGB" if spec.channels == 3 else "L")
    lanczos = Image.Resampling.LANCZOS
    if spec.crop == "original":
        array = np.asarray(image.resize(ORIGINAL_RESIZE, lanczos))[ORIGINAL_ROWS[0] : ORIGINAL_ROWS[1]]
    elif spec.crop == "center":
        box = center_box(image.width, image.height, spec.crop_size)
        array = np.asarray(image.crop(box).resize((SIZE, SIZE), lanczos))
    else:
        array = np.asarray(image.resize((SIZE, SIZE), lanczos))
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.uint8)


_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def decode(data: bytes, spec: Preprocessing) -> np.ndarray:
    """Decode encoded image bytes and preprocess them; raises on any unreadable image."""
    with warnings.catch_warnings():
        # Pillow warns (instead of failing) for some damaged files; treat those as failures too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return preprocess(image, spec)


def decode_chunk(
    items: list[tuple[int, str, bytes | None, str | None]], spec: Preprocessing
) -> list[tuple[int, np.ndarray | None, str | None]]:
    """Decode a chunk of ``(index, name, data, read_error)``: ``(index, array or None, error or None)``.

    Never raises for a bad image: the error is returned as one short line so
    the caller can list every failure at the end.
    """
    out: list[tuple[int, np.ndarray | None, str | None]] = []
    for index, name, data, read_error in items:
        if read_error is not None or data is None:
            out.append((index, None, read_error or "could not be read"))
            continue
        try:
            out.append((index, decode(data, spec), None))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image, reported later
            message = " ".join(str(exc).split()) or type(exc).__name__
            # Pillow names the in-memory buffer it was given ("<_io.BytesIO object at 0x...>"): name the member
            message = _BUFFER_REPR.sub(repr(name), message)
            out.append((index, None, message[:200]))
    return out
