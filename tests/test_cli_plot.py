"""``nsvae plot``: each figure of a tiny trained run is written, with content that depends on the run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsvae.cli import main
from nsvae.config import Config, apply_overrides


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


def test_traversal_default_style_has_one_row_per_latent(tiny_run, tmp_path):
    from nsvae.viz.traversals import default_figure_size

    out = tmp_path / "traversal.png"
    assert main(["plot", "traversal", str(tiny_run.path), "-o", str(out)]) == 0
    with Image.open(out) as picture:
        # 3 images x 7 values, 3 latents: (47 + 64 + 3·65, 93 + 21·65 + 2·10)
        assert picture.size[::-1] == default_figure_size(3, 7, 3) == (306, 1478)
    out = tmp_path / "small.png"
    assert main(["plot", "traversal", str(tiny_run.path), "-o", str(out), "--images", "1", "--values", "3"]) == 0
    with Image.open(out) as picture:
        assert picture.size == (93 + 3 * 65, 47 + 64 + 3 * 65)


def test_traversal_hides_inactive_latents(tiny_run, tmp_path):
    out = tmp_path / "hidden.png"
    argv = ["plot", "traversal", str(tiny_run.path), "-o", str(out), "--images", "1", "--values", "2"]
    assert main([*argv, "--hide-inactive", "--inactive-kl", "1e9"]) == 0  # every latent is below 1e9 nats
    with Image.open(out) as picture:
        assert picture.size == (93 + 2 * 65, 47 + 64)


def test_traversal_original_style(tiny_run, tmp_path):
    out = tmp_path / "original.png"
    assert main(["plot", "traversal", str(tiny_run.path), "-o", str(out), "--style", "original"]) == 0
    with Image.open(out) as picture:
        assert picture.size == (9 * 66 + 2, (2 + 3) * 66 + 2)  # originals, reconstructions, 3 latents; 2 px lines
    assert main(["plot", "traversal", str(tiny_run.path), "-o", str(out), "--style", "original", "--values", "5"]) == 0
    with Image.open(out) as picture:
        assert picture.size == (5 * 66 + 2, (2 + 3) * 66 + 2)


def gif_frames(path):
    with Image.open(path) as picture:
        durations = []
        for k in range(picture.n_frames):
            picture.seek(k)
            durations.append(picture.info["duration"])
        return picture.n_frames, durations, picture.size


def test_traversal_gif(tiny_run, tmp_path):
    out = tmp_path / "values.gif"
    assert main(["plot", "traversal-gif", str(tiny_run.path), "-o", str(out)]) == 0
    n, durations, size = gif_frames(out)
    assert n == 2 * 13 - 2 and set(durations) == {100} and size == (93 + 3 * 65, 47 + 64 + 3 * 65)
    argv = ["plot", "traversal-gif", str(tiny_run.path), "-o", str(out), "--values", "4", "--duration", "250"]
    assert main([*argv, "--images", "2"]) == 0
    n, durations, size = gif_frames(out)
    assert n == 6 and set(durations) == {250} and size == (93 + 2 * 65, 47 + 64 + 3 * 65)


def test_training_gif_has_one_frame_per_checkpoint(tiny_run, tmp_path):
    from nsvae.viz.traversal_gifs import training_gif
    from nsvae.viz.traversals import default_figure_size

    out = tmp_path / "training.gif"
    assert main(["plot", "training-gif", str(tiny_run.path), "-o", str(out), "--values", "3"]) == 0
    steps = [step for step, _ in tiny_run.checkpoints()]
    assert steps == [2, 4]
    n, durations, size = gif_frames(out)
    assert n == len(steps) and set(durations) == {800} and size[::-1] == default_figure_size(3, 3, 3)
    assert training_gif(tiny_run, out, n_images=1, n_values=2, duration_ms=40, kl_batch=16) == steps
    n, durations, size = gif_frames(out)
    assert n == 2 and durations == [40, 40] and size[::-1] == default_figure_size(1, 2, 3)


def test_traversal_of_a_latent_the_decoder_ignores_is_constant(tiny_run, tmp_path):
    import torch

    from nsvae.train.latents import traversal_images

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
        (["plot", "traversal", "RUN", "-o", "x.gif"], "must name a .png"),
        (["plot", "traversal-gif", "RUN", "-o", "x.png"], "must name a .gif"),
        (["plot", "training-gif", "RUN", "-o", "x.webp"], "must name a .gif"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--images", "0"], "--images must be at least 1"),
        (["plot", "traversal-gif", "RUN", "-o", "x.gif", "--values", "0"], "--values must be at least 1"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--limit", "0"], "--limit"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--inactive-kl", "-1"], "--inactive-kl"),
        (["plot", "traversal-gif", "RUN", "-o", "x.gif", "--duration", "10"], "at least 20 ms"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--duration", "100"], "--duration applies"),
        (["plot", "traversal-gif", "RUN", "-o", "x.gif", "--style", "original"], "--style applies"),
        (["plot", "curves", "RUN", "-o", "x.png", "--images", "2"], "traversal figures only"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--style", "original", "--hide-inactive"], "--style original"),
        (
            ["plot", "traversal", "RUN", "-o", "x.png", "--style", "original", "--images", "4", "--values", "3"],
            ">= --images",
        ),
        (["plot", "training-gif", "RUN", "-o", "x.gif", "--step", "2"], "leave out --step"),
        (["plot", "training-gif", "RUN", "-o", "x.gif", "--hide-inactive"], "leave out --hide-inactive"),
        (["plot", "traversal", "RUN", "-o", "x.png", "--step", "3"], "no checkpoint of step 3"),
    ],
)
def test_errors(tiny_run, tmp_path, capsys, argv, message):
    argv = [str(tiny_run.path) if a == "RUN" else str(tmp_path / a) if a.startswith("x.") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("figure, suffix", [("traversal", "png"), ("traversal-gif", "gif"), ("training-gif", "gif")])
def test_a_run_without_checkpoints(tiny_run, tmp_path, capsys, figure, suffix):
    from nsvae.train.run import Run

    empty = Run(tmp_path / "empty")
    empty.path.mkdir()
    empty.write_config(tiny_run.config)
    assert main(["plot", figure, str(empty.path), "-o", str(tmp_path / f"x.{suffix}")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / f"x.{suffix}").exists()
