"""Float image arrays as pictures: numpy only, used by training (its traversal PNGs) and the figures.

A picture here is channels first, ``(C, H, W)`` float in [0, 1], as the
models decode them; :func:`to_uint8` turns one into what Pillow and
TensorBoard's image files take.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tile_grid", "to_uint8"]


def tile_grid(tiles: np.ndarray, pad: int) -> np.ndarray:
    """Tiles ``(rows, cols, C, H, W)`` on a white float canvas ``(C, rows·(H+pad)+pad, cols·(W+pad)+pad)``."""
    rows, cols, c, h, w = tiles.shape
    canvas = np.ones((c, rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            top, left = pad + i * (h + pad), pad + j * (w + pad)
            canvas[:, top : top + h, left : left + w] = tiles[i, j]
    return canvas


def to_uint8(picture: np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` float picture in [0, 1] as ``(H, W)`` or ``(H, W, 3)`` uint8 for Pillow."""
    arr = np.clip(np.rint(picture * 255.0), 0, 255).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
