"""Latent traversals: decode a code with one latent swept over a range, one row per latent.

As the original's figures (``original-implementation.md`` §5.2): the base
code is the encoder's mean ``mu`` of one fixed image; in row ``i`` latent
``i`` takes each of ``n_values`` values from ``-limit`` to ``limit`` while the
others keep their base values. ``absolute=True`` uses the values themselves
(the original); ``absolute=False`` adds them to the base value instead.
Decoded logits go through a sigmoid (pixel means in [0, 1]).
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def traversal_images(
    model, image: torch.Tensor, n_values: int = 9, limit: float = 3.0, absolute: bool = True
) -> np.ndarray:
    """Decoded traversals of ``image`` ``(C, H, W)``: float32 ``(z_dim, n_values, C, H, W)`` in [0, 1].

    ``model`` is an :class:`nsvae.models.VAE` (anything with ``encode`` and
    ``decode``); it draws no random numbers.
    """
    if n_values < 1:
        raise ValueError(f"n_values must be at least 1, got {n_values}")
    device = next(model.parameters()).device
    x = torch.as_tensor(image, dtype=torch.float32, device=device)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    mu, _ = model.encode(x)
    d = mu.shape[1]
    values = torch.linspace(-limit, limit, n_values, device=device)
    codes = mu.repeat(d * n_values, 1).view(d, n_values, d)
    rows = torch.arange(d, device=device)
    codes[rows, :, rows] = values if absolute else codes[rows, :, rows] + values
    decoded = torch.sigmoid(model.decode(codes.view(d * n_values, d)))
    return decoded.view(d, n_values, *decoded.shape[1:]).float().cpu().numpy()


def traversal_grid(
    model,
    image: torch.Tensor,
    n_values: int = 9,
    limit: float = 3.0,
    absolute: bool = True,
    pad: int = 1,
) -> np.ndarray:
    """The traversals as one picture ``(C, rows·(H+pad)+pad, cols·(W+pad)+pad)``, white grid lines."""
    tiles = traversal_images(model, image, n_values, limit, absolute)
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
