"""Locatello et al.'s dSprites variants: exact per-sample rendering against literal references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsvae import data
from nsvae.data.variants import ColorDSprites, NoisyDSprites, ScreamDSprites
from nsvae.errors import UserError


@pytest.fixture(scope="module")
def indices():
    return np.array([0, 1000, 250000, 500000, 737279, 42])


def test_color_is_one_colour_per_sprite_on_black(dsprites, indices):
    color = ColorDSprites(dsprites)
    x = color.observations_at(indices, np.random.default_rng(3))
    mask = dsprites.observations_at(indices)[:, 0]
    expected_colours = np.random.default_rng(3).uniform(0.5, 1.0, size=(len(indices), 3)).astype(np.float32)
    assert x.shape == (len(indices), 3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(x, mask[:, None] * expected_colours[:, :, None, None])
    assert (expected_colours >= 0.5).all()


def test_noisy_saturates_the_sprite_over_uniform_noise(dsprites, indices):
    x = NoisyDSprites(dsprites).observations_at(indices, np.random.default_rng(5))
    mask = dsprites.observations_at(indices)[:, 0].astype(bool)
    noise = np.random.default_rng(5).random(size=(len(indices), 3, 64, 64), dtype=np.float32)
    assert np.array_equal(x, np.minimum(mask[:, None] + noise, 1.0))
    assert (x.transpose(1, 0, 2, 3)[:, mask] == 1.0).all()


def literal_scream(masks, painting, rng):
    """disentanglement_lib's ScreamDSprites rule, written out one sample at a time."""
    out = []
    for mask in masks:
        top = rng.integers(0, painting.shape[0] - 64)
        left = rng.integers(0, painting.shape[1] - 64)
        background = (painting[top : top + 64, left : left + 64] + rng.uniform(0, 1, size=3)) / 2
        sample = background.copy()
        sample[mask > 0] = 1 - background[mask > 0]
        out.append(sample.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def test_scream_inverts_the_sprite_over_a_shaded_crop(dsprites, indices):
    painting = np.random.default_rng(0).random((120, 150, 3)).astype(np.float32)
    x = ScreamDSprites(dsprites, painting).observations_at(indices, np.random.default_rng(9))
    masks = dsprites.observations_at(indices)[:, 0]
    expected = literal_scream(masks, painting, np.random.default_rng(9))
    np.testing.assert_allclose(x, expected, atol=1e-6)


def test_scream_from_the_users_image_file(tmp_path, dsprites):
    picture = (np.random.default_rng(1).random((400, 500, 3)) * 255).astype(np.uint8)
    path = tmp_path / "scream.png"
    Image.fromarray(picture).save(path)
    scream = data.load("scream_dsprites", source=path)
    # Fitted inside 350 x 274 with the aspect ratio kept, as PIL's thumbnail does.
    assert scream.painting.shape == (274, 342, 3)
    again = data.load("scream_dsprites")  # the prepared painting is found without --from
    assert np.array_equal(again.painting, scream.painting)
    x = scream.sample_observations_from_factors([[2, 5, 10, 3, 4]], np.random.default_rng(0))
    assert x.shape == (1, 3, 64, 64) and 0.0 <= x.min() and x.max() <= 1.0


def test_scream_without_the_painting_says_how_to_supply_it(tmp_path):
    with pytest.raises(UserError, match="nsvae data prepare scream_dsprites --from"):
        data.load("scream_dsprites", cache_dir=tmp_path)
    bad = tmp_path / "not-an-image.jpg"
    bad.write_text("no")
    with pytest.raises(UserError, match="cannot read"):
        data.prepare("scream_dsprites", cache_dir=tmp_path, source=bad, progress=False)


@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites", "scream_dsprites"])
def test_noisy_variants_need_an_explicit_generator(name, dsprites):
    painting = np.zeros((100, 100, 3), dtype=np.float32)
    cls = {"color_dsprites": ColorDSprites, "noisy_dsprites": NoisyDSprites}.get(name)
    variant = cls(dsprites) if cls else ScreamDSprites(dsprites, painting)
    assert variant.draws_noise
    with pytest.raises(ValueError, match="pass rng"):
        variant.observations_at([0])
    a = variant.observations_at([0, 1, 2], np.random.default_rng(1))
    b = variant.observations_at([0, 1, 2], np.random.default_rng(1))
    c = variant.observations_at([0, 1, 2], np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_noshape_hides_the_shape_and_draws_it(dsprites):
    noshape = data.load("dsprites_noshape")
    assert noshape.factor_names == ("scale", "orientation", "posX", "posY")
    assert noshape.factor_sizes == (6, 40, 32, 32)
    factors = np.array([[5, 0, 0, 0]] * 60)
    idx = noshape.index_of(factors, np.random.default_rng(0))
    shapes = dsprites.factors_of(idx)[:, 0]
    assert set(shapes) == {0, 1, 2}  # 60 draws cover the 3 shapes
    assert np.array_equal(dsprites.factors_of(idx)[:, 1:], factors)
    with pytest.raises(ValueError, match="pass rng"):
        noshape.index_of(factors)


def test_variants_keep_the_dsprites_factors(dsprites):
    for name in ("color_dsprites", "noisy_dsprites"):
        variant = data.load(name)
        assert variant.factor_sizes == dsprites.factor_sizes
        assert variant.observation_shape == (3, 64, 64)
        assert variant.describe()["source"] == "generated"
