"""``nsvae plot``: each figure of a tiny trained run is written, with content that depends on the run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsvae.cli import main
from nsvae.experiments import Config, apply_overrides


@pytest.fixture(scope="module")
def tiny_run(dsprites, tmp_path_factory):
    import nsvae.train

    config = apply_overrides(
        Config(),
        {
            "method": "nonsyn",
            "run.steps": 4,
            "run.device": "cpu",
            "run.threads": 1,
            "model.z_dim": 3,
            "data.batch_size": 8,
            "log.every": 2,
            "log.checkpoint_every": 2,
            "log.tensorboard": False,
            "log.console": False,
            "log.progress": False,
        },
    )
    return nsvae.train(config, out=tmp_path_factory.mktemp("runs") / "run")


def test_curves(tiny_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", "curves", str(tiny_run.path), "-o", str(out), "--dpi", "50"]) == 0
    with Image.open(out) as picture:
        assert picture.width > 300 and picture.height > 300


def test_traversal_has_one_row_per_latent(tiny_run, tmp_path):
    out = tmp_path / "traversal.png"
    assert main(["plot", "traversal", str(tiny_run.path), "-o", str(out)]) == 0
    with Image.open(out) as picture:
        assert picture.size == (9 * 65 + 1, 3 * 65 + 1)  # 9 values x 3 latents of 64 px, 1 px lines


def test_traversal_of_a_latent_the_decoder_ignores_is_constant(tiny_run, tmp_path):
    import torch

    from nsvae.viz.traversals import traversal_images

    model = tiny_run.load_model()
    with torch.no_grad():
        model.decoder[0].weight[:, 1] = 0.0  # latent 1 no longer reaches the decoder
    tiles = traversal_images(model, torch.zeros(1, 64, 64), n_values=5)
    assert np.allclose(tiles[1], tiles[1][0:1]) and not np.allclose(tiles[0], tiles[0][0:1])


def test_mean_activation_on_a_sample(tiny_run, tmp_path):
    out = tmp_path / "latents.png"
    assert main(["plot", "mean-activation", str(tiny_run.path), "-o", str(out), "--samples", "3000"]) == 0
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plot", "curves", "no/such/run", "-o", "x.png"], "not a run directory"),
        (["plot", "curves", "RUN", "-o", "x.jpg"], "must name a .png"),
        (["plot", "mean-activation", "RUN", "-o", "x.png", "--samples", "-1"], "--samples"),
    ],
)
def test_errors(tiny_run, capsys, argv, message):
    argv = [str(tiny_run.path) if a == "RUN" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
