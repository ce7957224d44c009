"""Traversal figures: exact sizes, rows sorted by a KL the test controls, inactive rows marked, §5.2's canvas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nsvae.models import VAE, NetConfig
from nsvae.pictures import to_uint8
from nsvae.train import latents as L
from nsvae.viz import traversals as T


class FixedCode(VAE):
    """A conv VAE whose encoder gives every image the same ``(mu, logvar)``: its KL per latent is known.

    KL_j = (mu_j² + exp(logvar_j) − 1 − logvar_j) / 2; with logvar = 0, mu_j² / 2.
    """

    def __init__(self, mu, logvar=None, channels=1):
        torch.manual_seed(0)
        super().__init__(NetConfig(z_dim=len(mu), channels=channels))
        self.mu = torch.tensor([mu], dtype=torch.float32)
        self.logvar = torch.zeros_like(self.mu) if logvar is None else torch.tensor([logvar], dtype=torch.float32)

    def encode(self, x):
        return self.mu.expand(x.shape[0], -1), self.logvar.expand(x.shape[0], -1)


# mu = (0.5, 2, 0, 1): KL = (0.125, 2, 0, 0.5) nats, so the rows are z1, z3, z0, z2 and z2 is inactive.
MU = [0.5, 2.0, 0.0, 1.0]
KL = np.array([0.125, 2.0, 0.0, 0.5])
ORDER = [1, 3, 0, 2]


def images(n=2, channels=1):
    return torch.rand(n, channels, 64, 64, generator=torch.Generator().manual_seed(n))


def tile(fig, row, block, col, n_values):
    """The pixels of one traversal tile of the default figure (row ``row`` of latents, image ``block``)."""
    top = T.TITLE_H + T.VALUES_H + 64 + T.SEP + row * 65
    left = T.LABEL_W + block * (n_values * 65 + T.BLOCK_GAP) + col * 65
    return fig[top : top + 64, left : left + 64].astype(int)


def label(fig, row):
    top = T.TITLE_H + T.VALUES_H + 64 + T.SEP + row * 65
    return fig[top : top + 64, : T.LABEL_W - 2].astype(int)


def test_kl_per_latent_is_the_closed_form_mean_over_images():
    model = FixedCode([0.0, 1.0, -2.0], logvar=[0.0, np.log(0.25), 1.0])
    expected = 0.5 * (np.array([0.0, 1.0, 4.0]) + np.array([1.0, 0.25, np.e]) - 1 - np.array([0.0, np.log(0.25), 1.0]))
    np.testing.assert_allclose(L.kl_per_latent(model, images(3)), expected, rtol=1e-6)
    # A real encoder: the mean over images of kl_elementwise, in any batch size.
    from nsvae.objectives.losses import kl_elementwise

    torch.manual_seed(1)
    vae = VAE(NetConfig(z_dim=3))
    x = images(5)
    with torch.no_grad():
        by_hand = kl_elementwise(*vae.encode(x)).double().mean(0).numpy()
    np.testing.assert_allclose(L.kl_per_latent(vae, x), by_hand, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(L.kl_per_latent(vae, x, batch_size=2), by_hand, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n_images, n_values", [(1, 1), (2, 3), (3, 7)])
def test_default_figure_has_the_documented_size(n_images, n_values):
    fig = T.default_figure(FixedCode(MU), images(n_images), n_values=n_values)
    height, width = 47 + 64 + 4 * 65, 93 + n_images * n_values * 65 + 10 * (n_images - 1)
    assert fig.shape == (height, width) == T.default_figure_size(n_images, n_values, 4)
    assert fig.dtype == np.uint8
    rgb = T.default_figure(FixedCode(MU, channels=3), images(n_images, 3), n_values=n_values)
    assert rgb.shape == (height, width, 3)


def test_rows_are_sorted_by_kl_and_the_input_sits_above_the_middle_column():
    assert T.row_order(KL) == ORDER
    assert T.row_order(KL, hide_inactive=True) == [1, 3, 0]
    for silent in (1, 2):  # the largest and the smallest KL
        model = FixedCode(MU)
        with torch.no_grad():
            model.decoder[0].weight[:, silent] = 0.0  # the decoder no longer sees this latent
        x = images(2)
        fig = T.default_figure(model, x, n_values=5, threshold=0.0)
        constant = [
            r
            for r in range(4)
            if all(np.array_equal(tile(fig, r, b, 0, 5), tile(fig, r, b, c, 5)) for b, c in [(0, 4), (1, 2)])
        ]
        assert constant == [ORDER.index(silent)]
    top, left = T.TITLE_H + T.VALUES_H, T.LABEL_W + 5 * 65 + T.BLOCK_GAP + 2 * 65  # image 1, middle column
    np.testing.assert_array_equal(fig[top : top + 64, left : left + 64], to_uint8(x[1].numpy()))


def test_each_image_is_traversed_around_its_own_mean():
    model = FixedCode(MU)
    with torch.no_grad():
        # Give the two images different codes: the encoder's mean is the image's first pixel on latent 0.
        model.encode = lambda x: (
            torch.tensor(MU).repeat(x.shape[0], 1) + torch.eye(4)[0] * x[:, 0, 0, :1],
            torch.zeros(x.shape[0], 4),
        )
    x = torch.zeros(2, 1, 64, 64)
    x[1, 0, 0, 0] = 1.0
    fig = T.default_figure(model, x, n_values=3, kl=KL, threshold=0.0)
    tiles = L.sweep(model, model.encode(x)[0], torch.linspace(-3, 3, 3), absolute=False)
    for b in range(2):
        for c in range(3):
            np.testing.assert_array_equal(tile(fig, ORDER.index(0), b, c, 3), to_uint8(tiles[0, b, c]).astype(int))
    assert not np.array_equal(tile(fig, ORDER.index(0), 0, 0, 3), tile(fig, ORDER.index(0), 1, 0, 3))


def test_an_inactive_latent_is_dimmed_with_a_grey_label_or_hidden():
    model = FixedCode(MU)
    x = images(1)
    plain = T.default_figure(model, x, n_values=3, kl=KL, threshold=0.0)
    marked = T.default_figure(model, x, n_values=3, kl=KL)  # z2 (KL 0) is below 0.01
    row = ORDER.index(2)
    for c in range(3):
        dimmed = np.rint((1 - T.DIM) * tile(plain, row, 0, c, 3) + T.DIM * 255)
        assert np.abs(tile(marked, row, 0, c, 3) - dimmed).max() <= 1
        np.testing.assert_array_equal(tile(marked, 0, 0, c, 3), tile(plain, 0, 0, c, 3))
    # Labels: black text on active rows, only grey on the inactive one (which says "inactive": more ink).
    assert label(marked, 0).min() < 60 and label(marked, row).min() >= T.GREY - 1
    assert (label(marked, row) < 255).sum() > (label(plain, row) < 255).sum()
    hidden = T.default_figure(model, x, n_values=3, kl=KL, hide_inactive=True)
    assert hidden.shape == T.default_figure_size(1, 3, 3)
    np.testing.assert_array_equal(tile(hidden, 2, 0, 1, 3), tile(marked, 2, 0, 1, 3))  # z0 stays third


def test_original_figure_is_the_canvas_of_section_5_2():
    torch.manual_seed(2)
    model = VAE(NetConfig(z_dim=3))
    x = images(4)
    fig = T.original_figure(model, x, n_values=5, seed=7)
    assert fig.shape == ((2 + 3) * 66 + 2, 5 * 66 + 2)
    assert (fig[:2] == 255).all() and (fig[:, :2] == 255).all()  # 2 px white lines, as save_image(pad_value=1)

    def cell(r, c):
        return fig[2 + r * 66 : 2 + r * 66 + 64, 2 + c * 66 : 2 + c * 66 + 64]

    for c in range(4):
        np.testing.assert_array_equal(cell(0, c), to_uint8(x[c].numpy()))
    assert (cell(0, 4) == 255).all() and (cell(1, 4) == 255).all()  # 4 images, 5 columns: blank cells
    rows = L.traversal_images(model, x[0], n_values=5, absolute=True)  # -3..3 absolute, image 0's code
    for i in range(3):
        for c in range(5):
            np.testing.assert_array_equal(cell(2 + i, c), to_uint8(rows[i, c]))
    # Reconstructions from a sampled code: the seed decides them.
    again = T.original_figure(model, x, n_values=5, seed=7)
    other = T.original_figure(model, x, n_values=5, seed=8)
    np.testing.assert_array_equal(fig, again)
    assert not np.array_equal(fig[68:134], other[68:134]) and np.array_equal(fig[134:], other[134:])
    # The original's default: one column per image.
    assert T.traversal_figure(model, x, style="original").shape == (5 * 66 + 2, 4 * 66 + 2)


def test_traversal_figure_dispatches_and_refuses_bad_input():
    model = FixedCode(MU)
    x = images(2)
    assert T.traversal_figure(model, x).shape == T.default_figure_size(2, T.DEFAULT_VALUES, 4)
    with pytest.raises(ValueError, match="style"):
        T.traversal_figure(model, x, style="fancy")
    with pytest.raises(ValueError, match="hide_inactive"):
        T.traversal_figure(model, x, style="original", hide_inactive=True)
    with pytest.raises(ValueError, match="at least 1"):
        T.default_figure(model, x, n_values=0)
    with pytest.raises(ValueError, match="limit"):
        T.default_figure(model, x, limit=0)
    with pytest.raises(ValueError, match="one value per latent"):
        T.default_figure(model, x, kl=np.zeros(3))
    with pytest.raises(ValueError, match="column per value"):
        T.original_figure(model, images(3), n_values=2)
    with pytest.raises(ValueError, match="shape"):
        T.default_figure(model, torch.zeros(2, 2, 1, 64, 64))


class Numbered:
    """A dataset whose image ``i`` is filled with ``i / 1000``."""

    def __len__(self):
        return 1000

    def observations_at(self, indices, rng=None):
        indices = np.asarray(indices)
        assert (np.diff(indices) > 0).all(), "read in ascending order"
        return np.broadcast_to((indices / 1000.0)[:, None, None, None], (len(indices), 1, 2, 2)).astype(np.float32)


def test_fixed_images_start_with_image_0_and_extend_as_a_prefix():
    data = Numbered()
    ids = [np.rint(im[0, 0, 0] * 1000).astype(int) for im in T.fixed_images(data, 6, seed=3)]
    assert ids[0] == 0 and len(set(ids)) == 6
    fewer = [np.rint(im[0, 0, 0] * 1000).astype(int) for im in T.fixed_images(data, 3, seed=3)]
    assert fewer == ids[:3]
    assert T.kl_images(data, 50, seed=0).shape == (50, 1, 2, 2)
    with pytest.raises(ValueError, match="at least 1"):
        T.fixed_images(data, 0)
