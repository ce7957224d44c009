"""``nsvae data``: list, prepare, show; errors are one line with exit status 2."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from nsvae.cli import main


def test_list_json_shows_the_prepared_dsprites(dsprites, capsys):
    assert main(["data", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in listing["datasets"]}
    assert {"dsprites", "color_dsprites", "noisy_dsprites", "scream_dsprites", "dsprites_noshape"} <= set(rows)
    prepared = rows["dsprites"]["prepared"]
    assert prepared[0]["source"] == "generated" and prepared[0]["images"] == 737280
    assert prepared[0]["bytes"] > 377_000_000


def test_list_text(dsprites, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "dsprites: dSprites" in out and "737,280 images, 360.0 MiB" in out


def test_prepare_dsprites_reuses_the_cache(dsprites, capsys):
    assert main(["data", "prepare", "dsprites", "--no-progress"]) == 0
    assert "ready at" in capsys.readouterr().out


@pytest.mark.parametrize("name, rows", [("dsprites", 5), ("dsprites_noshape", 4), ("color_dsprites", 5)])
def test_show_writes_one_row_per_factor(dsprites, tmp_path, capsys, name, rows):
    out = tmp_path / "grid.png"
    assert main(["data", "show", name, "-o", str(out), "--columns", "6"]) == 0
    with Image.open(out) as picture:
        # 64-pixel cells with 2-pixel gaps, after an 84-pixel label column.
        assert picture.size == (84 + 6 * 66 + 2, rows * 66 + 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "prepare", "mnist"], "unknown dataset 'mnist'"),
        (["data", "show", "dsprites", "-o", "grid.jpg"], "must name a .png"),
        (["data", "prepare", "scream_dsprites"], "needs --from IMAGE"),
        (["data", "prepare", "dsprites", "--origin", "official"], "not prepared"),
    ],
)
def test_errors_are_one_line_with_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_unwritable_cache_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "prepare", "dsprites", "--cache-dir", str(blocker / "cache")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_long_factor_names_widen_the_label_column_instead_of_running_under_the_images():
    import numpy as np
    from PIL import ImageDraw

    from nsvae.data.base import GroundTruthData
    from nsvae.data.preview import label_width, preview_grid

    class LongNames(GroundTruthData):
        name = "long"
        observation_shape = (1, 8, 8)
        all_factor_names = ("horizontal_axis_of_the_robot_arm", "c")
        all_factor_sizes = (40, 2)

        def observations_at(self, indices, rng=None):
            return np.zeros((len(indices), 1, 8, 8), np.float32)

    picture = preview_grid(LongNames(), np.random.default_rng(0), columns=3)
    width = label_width(["horizontal_axis_of_the_robot_arm (40)", "c (2)"])
    text = ImageDraw.Draw(picture).textlength("horizontal_axis_of_the_robot_arm (40)")
    assert width >= 4 + text > 84  # wider than the old fixed column, and the text fits in it
    assert picture.size == (width + 3 * 10 + 2, 2 * 10 + 2)
    pixels = np.asarray(picture)
    assert (pixels[:, 4 + int(np.ceil(text)) : width] == 255).all()  # white between the text and the images
    assert label_width(["shape (3)"]) == 84  # short labels keep the least width: dSprites' pictures are unchanged
