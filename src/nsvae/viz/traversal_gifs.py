"""Animated traversals (Pillow GIFs): over the values of the sweep, and over a run's checkpoints.

- :func:`traversal_gif`: one frame per value ``v`` of the sweep, every
  shown latent's row in each frame (one column per image, the image's own
  mean code moved by ``v`` along that row's latent), played as a ping-pong
  loop: ``v_0 .. v_{V-1}`` then back down to ``v_1``, so ``2V − 2`` frames
  (1 for ``V = 1``). Rows sorted by KL, labelled and marked as in the default
  figure (:func:`nsvae.viz.traversals.default_figure`). Frame size
  ``(47 + h + R·(h + 1), 93 + N·(w + 1))`` for ``N`` images and ``R`` rows
  (:func:`traversal_gif_size`).
- :func:`training_gif`: one frame per kept checkpoint of a run, oldest
  first, each the default figure of the same images at that step (size
  :func:`nsvae.viz.traversals.default_figure_size`), its step in the title;
  the rows keep the order of the last checkpoint's KL in every frame, so a
  latent stays in its place while it becomes active or collapses.

Both loop forever and are written atomically to a path, or to an open
binary file (e.g. ``io.BytesIO`` for a report). GIF delays are whole
hundredths of a second and browsers replace delays under 20 ms by 100 ms, so
``duration_ms`` must be at least 20 and is rounded down to 10 ms.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO

import numpy as np
import torch

from ..errors import UserError
from ..train.latents import kl_per_latent
from .traversals import (
    DEFAULT_VALUES,
    INACTIVE_KL,
    KL_BATCH,
    _check,
    _compose,
    _layout_size,
    default_figure,
    fixed_images,
    kl_images,
    row_order,
    sorted_sweep,
)

#: Palette size of the GIFs: 64 levels of grey look the same as 256 on these
#: blurry decoder outputs and make a GIF ~40% smaller (LZW codes long runs of
#: equal bytes best).
GIF_COLORS = 64

#: The value GIF's sweep: 13 values are steps of 0.5 over -3..3 (24 frames a loop).
GIF_VALUES = 13


def traversal_gif_size(n_images: int, n_rows: int, image_size: tuple[int, int] = (64, 64)) -> tuple[int, int]:
    """``(height, width)`` of a frame of :func:`traversal_gif`: ``(47 + h + n_rows·(h + 1), 93 + n_images·(w + 1))``.

    The default figure's layout (:func:`nsvae.viz.traversals.default_figure_size`)
    with one column per image and 1 px lines between the images.
    """
    h, w = image_size
    return _layout_size(n_images, 1, n_rows, h, w, 0)


def ping_pong(n: int) -> list[int]:
    """Frame order over ``n`` values: ``0 .. n-1`` then ``n-2 .. 1`` (a loop without repeated ends)."""
    return list(range(n)) + list(range(n - 2, 0, -1))


def _check_duration(duration_ms: int) -> None:
    if duration_ms < 20:
        raise ValueError(f"the frame duration must be at least 20 ms (browsers slow shorter ones), got {duration_ms}")


def save_gif(
    frames: Sequence[np.ndarray], out: str | os.PathLike | IO[bytes], duration_ms: int, colors: int = GIF_COLORS
) -> None:
    """Write uint8 frames (all ``(H, W)`` or all ``(H, W, 3)``, one size) as a looping GIF, ``duration_ms`` each.

    Grey frames are rounded to ``colors`` evenly spaced levels of grey;
    colour frames share one palette of ``colors`` colours made from all
    frames (no flicker between frames). ``out``: a path (written atomically)
    or a binary file.
    """
    from PIL import Image

    from ..atomic import atomic_write

    _check_duration(duration_ms)
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    if not 2 <= colors <= 256:
        raise ValueError(f"a GIF palette has 2 to 256 colours, got {colors}")
    if np.ndim(frames[0]) == 2:
        step = 255.0 / (colors - 1)
        pictures = [Image.fromarray((np.rint(np.rint(f / step) * step)).astype(np.uint8)) for f in frames]
    else:
        pictures = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
        # A palette from a sample of every frame's pixels, one for all frames.
        sample = np.concatenate([np.asarray(p)[::4, ::4].reshape(-1, 3) for p in pictures])
        palette = Image.fromarray(sample[None]).quantize(colors=colors)
        pictures = [p.quantize(palette=palette, dither=Image.Dither.NONE) for p in pictures]

    def write(handle) -> None:
        pictures[0].save(handle, format="GIF", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0)

    if isinstance(out, (str, os.PathLike)):
        atomic_write(out, write)
    else:
        write(out)


@torch.no_grad()
def traversal_frames(
    model,
    images,
    n_values: int = GIF_VALUES,
    limit: float = 3.0,
    kl: np.ndarray | None = None,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
) -> list[np.ndarray]:
    """The frames of :func:`traversal_gif`, in playing order (ping-pong), as uint8 arrays."""
    x, values, tiles, labels, inactive, hidden = sorted_sweep(
        model, images, n_values, limit, kl, threshold, hide_inactive
    )
    inputs = x.cpu().numpy()
    subtitle = f"rows by KL, dimmed < {threshold:g}" + (f", {hidden} hidden" if hidden else "")
    frames = []
    for k in range(n_values):
        title = f"offset {float(values[k]):+.2f}"
        # Each image is a block of one column, so the input sits right above its traversal.
        frames.append(_compose(tiles[:, :, k : k + 1], inputs, labels, inactive, title, None, 0, subtitle))
    return [frames[k] for k in ping_pong(n_values)]


def traversal_gif(
    model,
    images,
    out: str | os.PathLike | IO[bytes],
    n_values: int = GIF_VALUES,
    limit: float = 3.0,
    kl: np.ndarray | None = None,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    duration_ms: int = 100,
    colors: int = GIF_COLORS,
) -> int:
    """Write the animated traversal of ``images`` ``(N, C, H, W)`` over the sweep's values; returns the frame count.

    One frame per value of ``linspace(-limit, limit, n_values)``, ping-pong
    (``2·n_values − 2`` frames), ``duration_ms`` each; ``kl``, ``threshold``
    and ``hide_inactive`` as in :func:`nsvae.viz.traversals.default_figure`;
    ``colors``: the palette size (:func:`save_gif`).
    """
    _check_duration(duration_ms)
    frames = traversal_frames(model, images, n_values, limit, kl, threshold, hide_inactive)
    save_gif(frames, out, duration_ms, colors)
    return len(frames)


def training_frames(
    run,
    images: np.ndarray | None = None,
    n_images: int = 3,
    n_values: int = DEFAULT_VALUES,
    limit: float = 3.0,
    threshold: float = INACTIVE_KL,
    kl_batch: int = KL_BATCH,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[list[int], list[np.ndarray]]:
    """``(steps, frames)`` of :func:`training_gif`: the default figure at every kept checkpoint, oldest first."""
    from ..config import open_dataset

    _check(n_values, limit, threshold)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise UserError(f"run {run.path} has no checkpoint: the training GIF needs at least one")
    if kl_batch < 1:
        raise ValueError(f"kl_batch must be at least 1, got {kl_batch}")
    data = open_dataset(run.config, progress=False)
    if images is None:
        images = fixed_images(data, n_images, seed)
    batch = kl_images(data, kl_batch, seed)
    # One consistent set of checkpoints, even while the run trains and prunes them.
    models = run.load_models(device=device)
    steps = [step for step, _ in models]
    # One row order for every frame (the last checkpoint's), so each latent keeps its place.
    order = row_order(kl_per_latent(models[-1][1], batch))
    frames = []
    for step, model in models:
        kl = kl_per_latent(model, batch)
        title = f"step {step:,} | rows in the order of the last checkpoint's KL | dimmed: KL < {threshold:g}"
        frames.append(default_figure(model, images, n_values, limit, kl, threshold, order=order, title=title))
    return steps, frames


def training_gif(
    run,
    out: str | os.PathLike | IO[bytes],
    images: np.ndarray | None = None,
    n_images: int = 3,
    n_values: int = DEFAULT_VALUES,
    limit: float = 3.0,
    threshold: float = INACTIVE_KL,
    duration_ms: int = 800,
    kl_batch: int = KL_BATCH,
    seed: int = 0,
    device: str | torch.device = "cpu",
    colors: int = GIF_COLORS,
) -> list[int]:
    """Write the traversal of a run at each kept checkpoint as a GIF; returns the steps, one per frame.

    ``run``: a :class:`nsvae.train.run.Run` (:func:`nsvae.train.load_run`).
    ``images`` ``(N, C, H, W)`` (default: :func:`nsvae.viz.traversals.fixed_images`
    of the run's dataset, ``n_images`` of them, ``seed``); the KLs are
    measured on ``kl_batch`` random images of the dataset. Raises
    :class:`nsvae.errors.UserError` for a run without checkpoints. ``colors``:
    the palette size (:func:`save_gif`).
    """
    _check_duration(duration_ms)
    steps, frames = training_frames(run, images, n_images, n_values, limit, threshold, kl_batch, seed, device)
    save_gif(frames, out, duration_ms, colors)
    return steps


def run_traversal_gif(
    run,
    out: str | os.PathLike | IO[bytes],
    step: int | None = None,
    n_images: int = 3,
    n_values: int = GIF_VALUES,
    limit: float = 3.0,
    threshold: float = INACTIVE_KL,
    hide_inactive: bool = False,
    duration_ms: int = 100,
    seed: int = 0,
    kl_batch: int = KL_BATCH,
    device: str | torch.device = "cpu",
    colors: int = GIF_COLORS,
) -> int:
    """:func:`traversal_gif` of a run's checkpoint ``step`` (default: the latest), as ``nsvae plot traversal-gif``.

    Images and KLs as :func:`nsvae.viz.traversals.run_traversal`; returns the frame count.
    """
    from ..config import open_dataset

    _check_duration(duration_ms)
    model = run.load_model(step, device=device)
    data = open_dataset(run.config, progress=False)
    images = fixed_images(data, n_images, seed)
    kl = kl_per_latent(model, kl_images(data, kl_batch, seed))
    return traversal_gif(model, images, out, n_values, limit, kl, threshold, hide_inactive, duration_ms, colors)
