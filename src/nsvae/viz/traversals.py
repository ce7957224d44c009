"""Latent traversals: decode codes with one latent swept over a range, one row per latent.

Two figures, both returned as uint8 pictures (``(H, W)`` for one channel,
``(H, W, 3)`` for colour) with a size fixed by the layout alone, never by
the text drawn in them:

- ``style="original"`` (:func:`original_figure`): the original's canvas
  (``docs/reference/original-implementation.md`` §5.2), no text. Row 1 the test images,
  row 2 their reconstructions from a **sampled** code, then one row per
  latent ``i`` of image 0: its mean code with ``z_i`` set to each of the
  **absolute** values ``linspace(-limit, limit, n_values)``; 2 px white grid
  lines as ``save_image(..., nrow=9, pad_value=1)``. Size (``N`` images,
  ``V`` values, ``d`` latents, ``h x w`` images):
  ``height = (2 + d)·(h + 2) + 2``, ``width = V·(w + 2) + 2``.
- ``style="default"`` (:func:`default_figure`): every image traversed around
  its **own** mean code (``z_i = mu_i + v``, ``v`` in
  ``linspace(-limit, limit, n_values)``), one block of ``V`` columns per
  image side by side; the input image above the block's middle column
  (``V // 2``); rows sorted by the mean KL of each latent (:func:`~nsvae.train.latents.kl_per_latent`,
  largest first) and labelled ``z3 / KL 2.41``; a latent with KL below
  ``threshold`` (:data:`INACTIVE_KL`) has a grey label saying "inactive" and
  its row dimmed towards white, or is left out (``hide_inactive``). Size
  (``R`` rows shown): ``height = 47 + h + R·(h + 1)``,
  ``width = 93 + N·V·(w + 1) + 10·(N − 1)`` (:func:`default_figure_size`).

The computation (codes swept and decoded, the KL per latent) is
:mod:`nsvae.train.latents`, which also makes the trainer's periodic pictures
(:func:`~nsvae.train.latents.traversal_grid`: rows only, 1 px lines); this
module lays the arrays out and labels them. Decoded logits go through a
sigmoid (pixel means in [0, 1]). The animated versions are in
:mod:`nsvae.viz.traversal_gifs`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ..pictures import tile_grid, to_uint8
from ..train.latents import as_batch, decode_means, kl_per_latent, model_device, sweep

#: Mean KL (nats) under which a latent is marked inactive. The mean over
#: images of KL(q(z_j|x) || N(0, 1)) bounds the information the latent
#: carries about the image from above (it is I(x; z_j) plus KL(q(z_j) || N(0, 1))),
#: so below 0.01 nats (0.014 bits) a traversal cannot show anything the
#: encoder uses. The bound is conservative on purpose: a latent that is still
#: collapsing after a short run (0.02-0.05 nats) keeps a normal row, with its
#: KL in the label; pass a larger ``threshold`` to mark those too.
INACTIVE_KL = 0.01

#: The default style's sweep: 7 values give the offsets -3, -2, ..., 3 prior
#: standard deviations, round numbers that read at a glance.
DEFAULT_VALUES = 7

STYLES = ("default", "original")

# Layout of the labelled figures, in pixels (see default_figure_size).
LABEL_W = 88  # the label column on the left
MARGIN = 5  # right and bottom, beyond the 1 px line after the last tile
TITLE_H = 20
VALUES_H = 16  # the line of offsets above the tiles
SEP = 6  # between the input row and the latent rows
GAP = 1  # between tiles
BLOCK_GAP = 10  # between the blocks of two images
DIM = 0.65  # an inactive row is mixed with this much white
PAGE, INK, GREY = 255, 0, 140


# -- images of a dataset -------------------------------------------------------------------


def fixed_images(data, n: int, seed: int = 0) -> np.ndarray:
    """``n`` images of a dataset for the figures: float32 ``(n, C, H, W)``.

    Image 0 (the original's first test image), then distinct others drawn
    one at a time with ``np.random.default_rng(seed)``, so the first ``k``
    images are the same for every ``n >= k``: a 3-image figure and a 9-image
    one of a run start with the same images.
    """
    if n < 1:
        raise ValueError(f"the number of images must be at least 1, got {n}")
    size = len(data)
    if n > size:
        raise ValueError(f"the dataset has {size} images, fewer than the {n} asked for")
    rng = np.random.default_rng(seed)
    chosen = [0]
    seen = {0}
    while len(chosen) < n:
        index = int(rng.integers(1, size))
        if index not in seen:
            seen.add(index)
            chosen.append(index)
    indices = np.array(chosen, dtype=np.int64)
    # Datasets read sorted indices fastest; put them back in the chosen order afterwards.
    order = np.argsort(indices, kind="stable")
    images = data.observations_at(indices[order], np.random.default_rng(seed))
    out = np.empty_like(images)
    out[order] = images
    return out


def kl_images(data, n: int = 1024, seed: int = 0) -> np.ndarray:
    """``min(n, len(data))`` distinct random images (sorted indices, ``default_rng(seed)``) to measure KLs on."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    return data.observations_at(indices, rng)


# -- pictures -------------------------------------------------------------------------------


@functools.cache
def _font(size: int):
    from PIL import ImageFont

    # Pillow's own font (FreeType's Aileron where available, else its bitmap font): nothing to download.
    return ImageFont.load_default(size=size)


def _text(draw, xy, text: str, size: int, fill: int, channels: int, center: bool = False) -> None:
    """Draw ``text`` with its left edge (or its centre) at ``xy[0]`` and vertically centred on ``xy[1]``."""
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = xy[0] - (left + right) / 2 if center else xy[0] - left
    y = xy[1] - (top + bottom) / 2
    draw.text((round(x), round(y)), text, font=font, fill=fill if channels == 1 else (fill,) * 3)


def _offset_label(v: float) -> str:
    return "0" if abs(v) < 1e-9 else f"{v:+.3g}"


def default_figure_size(
    n_images: int, n_values: int, n_rows: int, image_size: tuple[int, int] = (64, 64)
) -> tuple[int, int]:
    """``(height, width)`` in pixels of :func:`default_figure` (and of each frame of the training GIF).

    ``height = 47 + h + n_rows·(h + 1)`` and ``width = 93 + n_images·n_values·(w + 1) + 10·(n_images − 1)``
    for images of ``h x w`` pixels: a 20 px title line, a 16 px line of offsets, the input row and a
    6 px gap, then the rows of ``h`` px, each followed by a 1 px line; an 88 px label column on the
    left and a 5 px margin on the right and at the bottom.
    """
    h, w = image_size
    return _layout_size(n_images, n_values, n_rows, h, w, BLOCK_GAP)


def _layout_size(blocks: int, cols: int, rows: int, h: int, w: int, block_gap: int):
    height = TITLE_H + VALUES_H + h + SEP + rows * (h + GAP) + MARGIN
    width = LABEL_W + blocks * cols * (w + GAP) + (blocks - 1) * block_gap + MARGIN
    return height, width


def _compose(
    tiles: np.ndarray,
    inputs: np.ndarray,
    labels: Sequence[tuple[str, str]],
    inactive: Sequence[bool],
    title: str,
    column_values: Sequence[float] | None,
    block_gap: int,
    subtitle: str = "",
) -> np.ndarray:
    """Lay out ``tiles`` ``(R, N, V, C, h, w)`` (row, block, column) under a title and the inputs ``(N, C, h, w)``.

    Each input is drawn above the middle column (``V // 2``) of its block;
    ``labels[r]`` is the (name, KL) text of row ``r``; an ``inactive`` row is
    dimmed and its label grey. ``column_values`` (if given) are written above
    the columns of every block; otherwise ``subtitle`` takes that line.
    """
    from PIL import Image, ImageDraw

    rows, blocks, cols = tiles.shape[:3]
    channels, h, w = inputs.shape[1:]
    if channels not in (1, 3):
        raise ValueError(f"figures need 1 or 3 channels, got {channels}")
    height, width = _layout_size(blocks, cols, rows, h, w, block_gap)
    canvas = np.full((channels, height, width), PAGE / 255.0, dtype=np.float32)

    def left_of(block: int, col: int) -> int:
        return LABEL_W + block * (cols * (w + GAP) + block_gap) + col * (w + GAP)

    input_top = TITLE_H + VALUES_H
    first_row = input_top + h + SEP
    for b in range(blocks):
        x = left_of(b, cols // 2)
        canvas[:, input_top : input_top + h, x : x + w] = inputs[b]
        for r in range(rows):
            tile = tiles[r, b]
            if inactive[r]:
                tile = (1.0 - DIM) * tile + DIM
            top = first_row + r * (h + GAP)
            for c in range(cols):
                x = left_of(b, c)
                canvas[:, top : top + h, x : x + w] = tile[c]

    picture = Image.fromarray(to_uint8(canvas))
    draw = ImageDraw.Draw(picture)
    _text(draw, (6, TITLE_H / 2 + 1), title, 12, INK, channels)
    line = TITLE_H + VALUES_H / 2
    if column_values is not None:
        _text(draw, (6, line), "offset", 11, GREY, channels)
        for b in range(blocks):
            for c, v in enumerate(column_values):
                _text(draw, (left_of(b, c) + w / 2, line), _offset_label(v), 11, INK, channels, True)
    elif subtitle:
        _text(draw, (6, line), subtitle, 11, GREY, channels)
    _text(draw, (6, input_top + h / 2), "input", 12, INK, channels)
    for r, ((name, kl), off) in enumerate(zip(labels, inactive)):
        middle = first_row + r * (h + GAP) + h / 2
        colour = GREY if off else INK
        lines = [(name, 14), (kl, 11)] + ([("inactive", 11)] if off else [])
        spacing = 15
        y = middle - spacing * (len(lines) - 1) / 2
        for text, size in lines:
            _text(draw, (6, y), text, size, colour, channels)
            y += spacing
    return np.asarray(picture)


def _kl_text(kl: float) -> str:
    return f"KL {kl:.2f}" if kl < 100 else f"KL {kl:.0f}"


def row_order(kl: np.ndarray, threshold: float = INACTIVE_KL, hide_inactive: bool = False) -> list[int]:
    """The latents in the order of the figure's rows: largest mean KL first (ties: lower index first);
    without those below ``threshold`` when ``hide_inactive``."""
    kl = np.asarray(kl, dtype=np.float64)
    order = [int(j) for j in np.argsort(-kl, kind="stable")]
    return [j for j in order if not (hide_inactive and kl[j] < threshold)]


def _rows_and_labels(kl: np.ndarray, order: Sequence[int], threshold: float):
    labels = [(f"z{j}", _kl_text(float(kl[j]))) for j in order]
    inactive = [bool(kl[j] < threshold) for j in order]
    return labels, inactive


def _check(n_values: int, limit: float, threshold: float = 0.0) -> None:
    if n_values < 1:
        raise ValueError(f"the number of values must be at least 1, got {n_values}")
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f"the traversal limit must be a positive number, got {limit}")
    if not threshold >= 0:
        raise ValueError(f"the inactive-KL threshold must be >= 0, got {threshold}")


@torch.no_grad()
def sorted_sweep(
    model,
    images,
    n_values: int,
    limit: float,
    kl: np.ndarray | None = None,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    order: Sequence[int] | None = None,
):
    """The default style's rows, shared by the figure and the GIF over values.

    Returns ``(x, values, tiles, labels, inactive, hidden)``: the image batch,
    the offsets, the decoded tiles ``(R, N, V, C, h, w)`` of the rows in
    order (by KL, or ``order``), each row's label and inactive mark, and how
    many latents were left out.
    """
    _check(n_values, limit, threshold)
    device = model_device(model)
    x = as_batch(images, device)
    mu, _ = model.encode(x)
    kl = kl_per_latent(model, x) if kl is None else np.asarray(kl, dtype=np.float64)
    d = mu.shape[1]
    if kl.shape != (d,):
        raise ValueError(f"kl must have one value per latent ({d}), got shape {kl.shape}")
    rows = row_order(kl, threshold, hide_inactive) if order is None else [int(j) for j in order]
    values = torch.linspace(-limit, limit, n_values, device=device)
    tiles = sweep(model, mu, values, absolute=False)[rows]
    labels, inactive = _rows_and_labels(kl, rows, threshold)
    return x, values, tiles, labels, inactive, d - len(rows)


@torch.no_grad()
def default_figure(
    model,
    images,
    n_values: int = DEFAULT_VALUES,
    limit: float = 3.0,
    kl: np.ndarray | None = None,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    order: Sequence[int] | None = None,
    title: str | None = None,
) -> np.ndarray:
    """The default traversal figure of ``images`` ``(N, C, H, W)``: uint8 ``(H, W)`` or ``(H, W, 3)``.

    Each image's own mean code is moved by ``v`` in
    ``linspace(-limit, limit, n_values)`` along one latent per row. ``kl``:
    the mean KL of each latent, to sort and label the rows (default:
    :func:`kl_per_latent` on ``images`` themselves; pass one measured on a
    larger batch for a stable order). ``order`` overrides the row order (a
    list of latents; the training GIF keeps one order for all its frames).
    ``title`` replaces the line at the top. Size: :func:`default_figure_size`.
    """
    x, values, tiles, labels, inactive, hidden = sorted_sweep(
        model, images, n_values, limit, kl, threshold, hide_inactive, order
    )
    if title is None:
        marks = f"{hidden} inactive (KL < {threshold:g}) hidden" if hidden else f"dimmed: inactive, KL < {threshold:g}"
        title = f"each image's mean code, one latent moved per row | rows by KL (nats) | {marks}"
    return _compose(tiles, x.cpu().numpy(), labels, inactive, title, values.cpu().tolist(), BLOCK_GAP)


@torch.no_grad()
def original_figure(model, images, n_values: int | None = None, limit: float = 3.0, seed: int = 0) -> np.ndarray:
    """The original's traversal canvas (§5.2) of ``images`` ``(N, C, H, W)``: uint8 ``(H, W)`` or ``(H, W, 3)``.

    ``n_values`` columns (default: one per image, the original's
    ``nb_test = 9`` for both): the images, their reconstructions from one
    sampled code each (``torch.Generator`` seeded with ``seed``; cells past
    the last image stay white), then latent ``i`` of image 0 set to each
    absolute value of ``linspace(-limit, limit, n_values)``. 2 px white lines:
    ``(2 + d)·(h + 2) + 2`` by ``n_values·(w + 2) + 2`` pixels.
    """
    x = as_batch(images, model_device(model))
    n_values = x.shape[0] if n_values is None else n_values
    _check(n_values, limit)
    if x.shape[0] > n_values:
        raise ValueError(f"the original layout has a column per value: {x.shape[0]} images need >= {x.shape[0]} values")
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype).to(mu.device)
    recon = decode_means(model, mu + torch.exp(0.5 * logvar) * eps).numpy()
    values = torch.linspace(-limit, limit, n_values, device=mu.device)
    rows = sweep(model, mu[:1], values, absolute=True)[:, 0]
    blank = np.ones((2, n_values, *rows.shape[2:]), dtype=np.float32)
    blank[0, : x.shape[0]] = x.cpu().numpy()
    blank[1, : x.shape[0]] = recon
    return to_uint8(tile_grid(np.concatenate([blank, rows]), pad=2))


def traversal_figure(
    model,
    images,
    style: str = "default",
    n_values: int | None = None,
    limit: float = 3.0,
    kl: np.ndarray | None = None,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """A traversal figure of ``images`` ``(N, C, H, W)`` in [0, 1]: uint8 ``(H, W)`` (1 channel) or ``(H, W, 3)``.

    ``style="default"``: :func:`default_figure` (``n_values`` default 7;
    ``kl``, ``threshold`` and ``hide_inactive`` as there). ``style="original"``:
    :func:`original_figure` (``n_values`` default ``N``; ``seed`` draws the
    reconstructions' codes; no KL, so ``hide_inactive`` is refused).
    """
    if style == "default":
        return default_figure(
            model, images, DEFAULT_VALUES if n_values is None else n_values, limit, kl, threshold, hide_inactive
        )
    if style == "original":
        if hide_inactive:
            raise ValueError("hide_inactive needs the default style: the original figure shows every latent")
        return original_figure(model, images, n_values, limit, seed)
    raise ValueError(f"style must be one of {STYLES}, got {style!r}")


#: Random images the KL per latent of a run's figures is measured on (the rows' order and marks).
KL_BATCH = 1024


def run_traversal(
    run,
    step: int | None = None,
    style: str = "default",
    n_images: int | None = None,
    n_values: int | None = None,
    limit: float = 3.0,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    seed: int = 0,
    kl_batch: int = KL_BATCH,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The traversal figure of a run's checkpoint ``step`` (default: the latest), as ``nsvae plot traversal``.

    ``run``: a :class:`nsvae.train.run.Run`. The images are
    :func:`fixed_images` of the run's dataset (``n_images``: default 3, or
    for ``style="original"`` one per value, 9 by default); the KLs that sort
    and mark the rows are measured on ``kl_batch`` random images
    (:func:`kl_images`, ``seed``). Other arguments as :func:`traversal_figure`.
    Raises :class:`nsvae.errors.UserError` for a run without that checkpoint.
    """
    from ..config import open_dataset

    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    model = run.load_model(step, device=device)  # first: a missing checkpoint fails before the data load
    data = open_dataset(run.config, progress=False)
    original = style == "original"
    if n_images is None:  # the original shows one image per value (nb_test = 9 for both)
        n_images = (9 if n_values is None else n_values) if original else 3
    images = fixed_images(data, n_images, seed)
    kl = None if original else kl_per_latent(model, kl_images(data, kl_batch, seed))
    return traversal_figure(model, images, style, n_values, limit, kl, threshold, hide_inactive, seed)
