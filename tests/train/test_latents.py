"""nsvae.train.latents and nsvae.pictures: row i of a traversal sweeps latent i only, absolute or around the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nsvae.models import VAE, NetConfig
from nsvae.pictures import to_uint8
from nsvae.train.latents import traversal_grid, traversal_images


class CodeEcho(nn.Module):
    """encode -> a fixed mu; decode -> the code itself as a 1 x 1 x d 'image' of logits."""

    def __init__(self, mu):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([mu], dtype=torch.float32))

    def encode(self, x):
        return self.mu.expand(x.shape[0], -1), torch.zeros_like(self.mu)

    def decode(self, z):
        return z[:, None, None, :]


def _logit(p):
    return np.log(p) - np.log1p(-p)


@pytest.mark.parametrize("absolute", [True, False])
def test_row_i_moves_latent_i_only(absolute):
    mu = [0.5, -1.0, 2.0]
    tiles = traversal_images(CodeEcho(mu), torch.zeros(1, 4, 4), n_values=5, absolute=absolute)
    assert tiles.shape == (3, 5, 1, 1, 3)
    values = np.linspace(-3, 3, 5)
    codes = _logit(tiles[:, :, 0, 0, :].astype(np.float64))
    for i in range(3):
        for j in range(5):
            expected = np.array(mu)
            expected[i] = values[j] if absolute else mu[i] + values[j]
            np.testing.assert_allclose(codes[i, j], expected, atol=1e-4)


def test_grid_layout_of_the_conv_net():
    torch.manual_seed(0)
    model = VAE(NetConfig(z_dim=3))
    grid = traversal_grid(model, torch.rand(1, 64, 64), n_values=4, pad=2)
    assert grid.shape == (1, 3 * 66 + 2, 4 * 66 + 2) and grid.dtype == np.float32
    assert (grid[:, :2, :] == 1).all() and (grid[:, :, :2] == 1).all()  # white grid lines
    tiles = traversal_images(model, torch.rand(1, 64, 64), n_values=4)
    assert 0 <= tiles.min() and tiles.max() <= 1
    assert to_uint8(grid).shape == grid.shape[1:] and to_uint8(np.ones((3, 2, 2))).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="shape"):
        traversal_images(model, torch.rand(2, 1, 64, 64))


def test_to_uint8_rounds_clips_and_puts_channels_last():
    picture = np.array([[[0.0, 0.5, 1.0, 1.5]], [[-0.2, 0.002, 0.998, 0.4]], [[1.0, 1.0, 0.0, 0.0]]])
    out = to_uint8(picture)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    assert out[0].tolist() == [[0, 0, 255], [128, 1, 255], [255, 254, 0], [255, 102, 0]]
    assert to_uint8(picture[:1]).tolist() == [[0, 128, 255, 255]]
