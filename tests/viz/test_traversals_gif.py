"""Animated traversals: frame counts, durations, the ping-pong order, sizes, atomic writes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from nsvae.train import latents as L
from nsvae.viz import traversal_gifs as G
from nsvae.viz import traversals as T

from .test_traversals import KL, MU, ORDER, FixedCode, images


def frames_of(gif) -> tuple[list[np.ndarray], list[int], dict]:
    with Image.open(gif) as picture:
        frames, durations = [], []
        for k in range(picture.n_frames):
            picture.seek(k)
            durations.append(picture.info["duration"])
            frames.append(np.asarray(picture.convert("L")))
        return frames, durations, dict(picture.info)


def test_ping_pong_order():
    assert G.ping_pong(1) == [0]
    assert G.ping_pong(2) == [0, 1]
    assert G.ping_pong(4) == [0, 1, 2, 3, 2, 1]


@pytest.mark.parametrize("n_values, n_frames", [(1, 1), (2, 2), (5, 8)])
def test_value_gif_has_one_frame_per_value_ping_pong(tmp_path, n_values, n_frames):
    path = tmp_path / "values.gif"
    assert G.traversal_gif(FixedCode(MU), images(2), path, n_values=n_values, duration_ms=70) == n_frames
    frames, durations, info = frames_of(path)
    assert len(frames) == n_frames and durations == [70] * n_frames and info["loop"] == 0
    assert frames[0].shape == G.traversal_gif_size(2, 4) == (47 + 64 + 4 * 65, 93 + 2 * 65)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left
    if n_values == 5:
        assert np.array_equal(frames[1], frames[7]) and np.array_equal(frames[3], frames[5])
        assert not np.array_equal(frames[0], frames[4])


def test_value_frame_shows_one_value_of_the_default_sweep():
    """Frame k, row r, image n is tile (r, n, k) of the default figure's sweep (grey levels rounded)."""
    model = FixedCode(MU)
    x = images(2)
    frames = G.traversal_frames(model, x, n_values=3, kl=KL, threshold=0.0)
    static = T.default_figure(model, x, n_values=3, kl=KL, threshold=0.0)
    top, left = T.TITLE_H + T.VALUES_H + 64 + T.SEP, T.LABEL_W
    for k in range(3):
        for r in range(4):
            for n in range(2):
                y = top + r * 65
                got = frames[k][y : y + 64, left + n * 65 : left + n * 65 + 64]
                want = static[y : y + 64, left + n * (3 * 65 + T.BLOCK_GAP) + k * 65 :][:, :64]
                np.testing.assert_array_equal(got, want)
    assert len(G.traversal_frames(model, x, n_values=3, kl=KL, hide_inactive=True)[0]) == G.traversal_gif_size(2, 3)[0]
    assert ORDER[-1] == 2  # the hidden latent is the last row


def test_gif_to_a_file_handle_rounds_grey_levels_and_keeps_colour():
    buffer = io.BytesIO()
    G.traversal_gif(FixedCode(MU), images(1), buffer, n_values=2, colors=5)
    frames, _, _ = frames_of(io.BytesIO(buffer.getvalue()))
    assert set(np.unique(frames[0])) <= {0, 64, 128, 191, 255}
    colour = io.BytesIO()
    G.traversal_gif(FixedCode(MU, channels=3), images(1, 3), colour, n_values=2)
    with Image.open(io.BytesIO(colour.getvalue())) as picture:
        assert picture.n_frames == 2 and picture.size == (93 + 65, 47 + 64 + 4 * 65)


def test_gif_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="20 ms"):
        G.traversal_gif(FixedCode(MU), images(1), tmp_path / "x.gif", duration_ms=10)
    with pytest.raises(ValueError, match="at least 1"):
        G.traversal_gif(FixedCode(MU), images(1), tmp_path / "x.gif", n_values=0)
    with pytest.raises(ValueError, match="palette"):
        G.save_gif([np.zeros((2, 2), np.uint8)], tmp_path / "x.gif", 100, colors=1)
    assert not (tmp_path / "x.gif").exists()


def test_training_gif_refuses_a_run_without_checkpoints(tmp_path):
    from nsvae.config import Config
    from nsvae.errors import UserError
    from nsvae.train.run import Run

    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.write_config(Config())
    with pytest.raises(UserError, match="no checkpoint"):
        G.training_gif(run, tmp_path / "t.gif")
    assert not (tmp_path / "t.gif").exists()


def test_sweep_moves_one_latent_per_row():
    model = FixedCode(MU)
    base = torch.tensor([MU, [0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        model.decoder[0].weight[:, 1:] = 0.0  # only latent 0 reaches the decoder
    tiles = L.sweep(model, base, torch.tensor([-1.0, 1.0]), absolute=False)
    assert tiles.shape == (4, 2, 2, 1, 64, 64)
    assert not np.allclose(tiles[0, 0, 0], tiles[0, 0, 1]) and np.allclose(tiles[1, 0, 0], tiles[1, 0, 1])
