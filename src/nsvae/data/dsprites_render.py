"""The dSprites drawing model: square, ellipse and heart, point-sampled at pixel centres.

This reproduces the official dSprites images (Matthey et al. 2017) from their
factor classes. The model was fitted to real frames; see
``docs/data.md`` for the measured agreement. For classes
``(shape, scale, orientation, posX, posY)``::

    s  = 0.5 + 0.1 * scale                 θ = 2π * orientation / 39
    cx = 16 + 32 * posX / 31               cy = 16 + 32 * posY / 31
    dx = col + 0.5 - cx                    dy = row + 0.5 - cy
    u  = (cos θ * dx - sin θ * dy) / s     v  = (sin θ * dx + cos θ * dy) / s

and the pixel is on iff ``(u, v)`` lies inside the shape's template (square
``|u|, |v| <= 9.6``; ellipse with semi-axes 12.765 x 7.213; the parametric
heart below). There is no anti-aliasing: rasterisation is a point test at
each pixel centre, as OpenGL does without multisampling.

Images are rendered one (shape, scale, orientation) block at a time: the
1024 positions of a block share the template, so every image is evaluated on
a 32 x 32 window around its centre with broadcasting (``u`` and ``v`` are sums
of a column term and a row term) and scattered into place. All arithmetic is
float64.
"""

from __future__ import annotations

import numpy as np

#: Official factor names (colour, which is constant, dropped) and sizes, in storage order.
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
IMAGE_SIZE = 64

#: Official latent values (``latents_possible_values`` of the npz metadata).
SCALE_VALUES = np.linspace(0.5, 1.0, 6)
ORIENTATION_VALUES = np.linspace(0.0, 2.0 * np.pi, 40)
POSITION_VALUES = np.linspace(0.0, 1.0, 32)

#: Half side of the square template at scale 1 (side 19.2 px = 0.3 * 64).
SQUARE_HALF_SIDE = 9.6
#: Semi-axes of the ellipse template at scale 1 (major axis horizontal at θ = 0).
ELLIPSE_SEMI_AXES = (12.765, 7.213)
#: Number of vertices of the heart polygon (the curve is drawn as a mesh). Fitted: of the counts
#: 100-400 and 500-2000 tried, 176 gives the most real frames exact with the official per-scale
#: on-pixel counts (see docs/data.md; the effect is a few boundary pixels either way).
HEART_VERTICES = 176

#: Width of the square window evaluated around each sprite centre (covers every shape at any angle).
_WINDOW = 32
_BLOCK = FACTOR_SIZES[3] * FACTOR_SIZES[4]


def heart_curve(vertices: int = HEART_VERTICES) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(u, v)`` of the heart at scale 1 (v points down; tip at v ≈ +9.81)."""
    t = np.arange(vertices) * (2.0 * np.pi / vertices)
    u = 9.6 * np.sin(t) ** 3
    v = -19.2 * ((13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) / 29 + 0.075)
    return u, v


def _heart_tables(vertices: int = HEART_VERTICES) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outer and inner half-width of the heart as piecewise-linear functions of v.

    The right half of the curve (t in [0, π]) runs from the notch (t = 0) up to
    the top of the lobe, where v is smallest, then down the outer side to the
    tip. The first part bounds the notch from inside, the second the shape from
    outside, and both are monotonic in v, so each is an ``np.interp`` table.
    Interpolating between the vertices is exactly the polygon's edges.
    """
    u, v = heart_curve(vertices)
    half = vertices // 2
    ur, vr = u[: half + 1], v[: half + 1]  # t in [0, π]
    ur = np.where(np.arange(half + 1) == half, 0.0, ur)  # sin(π)^3 is 0 up to rounding
    top = int(np.argmin(vr))
    inner_v, inner_u = vr[: top + 1][::-1], ur[: top + 1][::-1]  # v increasing: lobe top -> notch
    outer_v, outer_u = vr[top:], ur[top:]  # v increasing: lobe top -> tip
    return inner_v, inner_u, outer_v, outer_u


_HEART = _heart_tables()


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Point-in-template test at scale 1 for local coordinates ``u``, ``v``."""
    if shape == 0:
        return (np.abs(u) <= SQUARE_HALF_SIDE) & (np.abs(v) <= SQUARE_HALF_SIDE)
    if shape == 1:
        a, b = ELLIPSE_SEMI_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == 2:
        inner_v, inner_u, outer_v, outer_u = _HEART
        au = np.abs(u)
        outer = np.interp(v, outer_v, outer_u, left=-1.0, right=-1.0)
        inner = np.interp(v, inner_v, inner_u, left=-1.0, right=-1.0)
        return (au <= outer) & (au >= inner)
    raise ValueError(f"shape class must be 0, 1 or 2, got {shape}")


def _centres() -> np.ndarray:
    return 16.0 + 32.0 * np.arange(FACTOR_SIZES[3]) / 31.0


def _window_geometry() -> tuple[np.ndarray, np.ndarray]:
    """Offsets of window pixel centres from the sprite centre, and the window's first pixel.

    Returns ``(offsets, start)`` with ``offsets[p, j] = start[p] + j + 0.5 - centre[p]``
    for position class ``p`` (the same for x and y).
    """
    centres = _centres()
    start = np.floor(centres).astype(np.int64) - _WINDOW // 2
    offsets = start[:, None] + np.arange(_WINDOW)[None, :] + 0.5 - centres[:, None]
    return offsets, start


_OFFSETS, _START = _window_geometry()


def _scatter_index() -> np.ndarray:
    """Flat index into a block of 1024 images for every (posX, posY, row, col) window pixel."""
    n = FACTOR_SIZES[3]
    px = np.arange(n)[:, None, None, None]
    py = np.arange(n)[None, :, None, None]
    rows = _START[None, :, None, None] + np.arange(_WINDOW)[None, None, :, None]
    cols = _START[:, None, None, None] + np.arange(_WINDOW)[None, None, None, :]
    image = px * n + py
    return (image * IMAGE_SIZE * IMAGE_SIZE + rows * IMAGE_SIZE + cols).reshape(-1)


_SCATTER = _scatter_index()


def render_block(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The 1024 images of one (shape, scale, orientation) block, uint8 0/1, ``(1024, 64, 64)``.

    Image ``32 * posX + posY`` of the block has those position classes, as in
    the official file.
    """
    for name, value, size in zip(FACTOR_NAMES[:3], (shape, scale, orientation), FACTOR_SIZES[:3]):
        if not 0 <= int(value) < size:
            raise ValueError(f"{name} class must lie in [0, {size}), got {value}")
    s = SCALE_VALUES[scale]
    theta = 2.0 * np.pi * orientation / 39.0
    cos, sin = np.cos(theta), np.sin(theta)
    dx = _OFFSETS[:, None, None, :]  # (posX, 1, 1, col)
    dy = _OFFSETS[None, :, :, None]  # (1, posY, row, 1)
    u = (cos * dx - sin * dy) / s
    v = (sin * dx + cos * dy) / s
    inside = _inside(shape, u, v).reshape(-1)
    block = np.zeros(_BLOCK * IMAGE_SIZE * IMAGE_SIZE, dtype=np.uint8)
    block[_SCATTER[inside]] = 1
    return block.reshape(_BLOCK, IMAGE_SIZE, IMAGE_SIZE)


def render(factors: np.ndarray) -> np.ndarray:
    """Images for arbitrary factor classes ``(n, 5)``, uint8 0/1 ``(n, 64, 64)`` (slow path, no cache).

    Evaluated on the full 64 x 64 grid per image; equal to :func:`render_block`
    (the tests check this), for drawing a few images without the cache.
    """
    f = np.asarray(factors, dtype=np.int64).reshape(-1, 5)
    out = np.zeros((f.shape[0], IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    grid = np.arange(IMAGE_SIZE) + 0.5
    for k, (sh, sc, o, px, py) in enumerate(f):
        s = SCALE_VALUES[sc]
        theta = 2.0 * np.pi * o / 39.0
        cos, sin = np.cos(theta), np.sin(theta)
        dx = (grid - (16.0 + 32.0 * px / 31.0))[None, :]
        dy = (grid - (16.0 + 32.0 * py / 31.0))[:, None]
        u = (cos * dx - sin * dy) / s
        v = (sin * dx + cos * dy) / s
        out[k] = _inside(int(sh), u, v)
    return out
