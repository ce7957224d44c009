"""Preview grids of a dataset: factor traversals for ground-truth data, random samples otherwise.

Pure numpy + Pillow (no matplotlib), used by ``nsvae data show``.
"""

from __future__ import annotations

import numpy as np

from .base import GroundTruthData, ImageData

_GAP = 2
#: Space left of the widest factor label, and the least label width (dSprites' labels fit in it).
_LABEL_MARGIN = 8
_MIN_LABEL_WIDTH = 84


def _to_rgb_uint8(images: np.ndarray) -> np.ndarray:
    """float ``(n, C, H, W)`` in [0, 1] -> uint8 ``(n, H, W, 3)``."""
    x = np.clip(images, 0.0, 1.0)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return (x.transpose(0, 2, 3, 1) * 255.0 + 0.5).astype(np.uint8)


def tile(images: np.ndarray, rows: int, columns: int, gap: int = _GAP, cells: np.ndarray | None = None) -> np.ndarray:
    """Arrange images ``(n, C, H, W)`` into one uint8 RGB picture with white gaps.

    Image ``k`` goes to cell ``cells[k]`` (row-major; default ``k``); other cells stay white.
    """
    pics = _to_rgb_uint8(images)
    n, h, w, _ = pics.shape
    cells = np.arange(n) if cells is None else np.asarray(cells)
    if n and cells.max() >= rows * columns:
        raise ValueError(f"{n} images do not fit in {rows} x {columns}")
    out = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(int(cells[k]), columns)
        out[gap + r * (h + gap) : gap + r * (h + gap) + h, gap + c * (w + gap) : gap + c * (w + gap) + w] = pics[k]
    return out


def traversal_factors(data: GroundTruthData, rng: np.random.Generator, columns: int) -> np.ndarray:
    """Factor classes of a traversal grid: row ``k`` varies factor ``k`` of one random base sample.

    Each row takes ``min(columns, size)`` evenly spaced classes; the cells of
    shorter rows are ``-1``. Returns int64 ``(num_factors, columns, num_factors)``.
    """
    base = data.sample_factors(1, rng)[0]
    grid = np.repeat(np.repeat(base[None, None, :], columns, axis=1), data.num_factors, axis=0)
    for k, size in enumerate(data.factor_sizes):
        steps = np.unique(np.round(np.linspace(0, size - 1, min(columns, size))).astype(np.int64))
        grid[k, :, k] = np.concatenate([steps, np.full(columns - steps.size, -1)])
    return grid


def label_width(labels: list[str]) -> int:
    """Pixels the factor labels need in Pillow's default font (long names such as MPI3D's or Isaac3D's were cut
    off by the images at a fixed width)."""
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widest = max((draw.textlength(label) for label in labels), default=0.0)
    return max(_MIN_LABEL_WIDTH, 4 + int(np.ceil(widest)) + _LABEL_MARGIN)


def preview_grid(data: ImageData, rng: np.random.Generator, columns: int = 10, rows: int = 6):
    """A Pillow image: factor traversals with labels (ground truth) or ``rows x columns`` samples."""
    from PIL import Image, ImageDraw

    if isinstance(data, GroundTruthData):
        factors = traversal_factors(data, rng, columns).reshape(-1, data.num_factors)
        cells = np.flatnonzero((factors >= 0).all(axis=1))
        images = data.sample_observations_from_factors(factors[cells], rng)
        body = tile(images, data.num_factors, columns, cells=cells)
        labels = [f"{name} ({size})" for name, size in zip(data.factor_names, data.factor_sizes)]
        width = label_width(labels)
        canvas = np.full((body.shape[0], body.shape[1] + width, 3), 255, dtype=np.uint8)
        canvas[:, width:] = body
        picture = Image.fromarray(canvas)
        draw = ImageDraw.Draw(picture)
        cell = data.observation_shape[1] + _GAP
        for k, label in enumerate(labels):
            draw.text((4, _GAP + k * cell + cell // 2 - 6), label, fill=(0, 0, 0))
        return picture
    n = min(rows * columns, len(data))
    idx = np.sort(rng.choice(len(data), size=n, replace=False))
    return Image.fromarray(tile(data.observations_at(idx, rng), -(-n // columns), columns))
