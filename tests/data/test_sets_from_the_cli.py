"""Issue 27: every ground-truth set read from the user's files is prepared, trained on and evaluated from the CLI.

One representative per file format, each written small in its official format by the builders of its own test
module (tests/data/test_<set>.py), with the registry shrunk to that test grid as there; then, in-process so the
shrunk registry applies: ``nsvae data prepare NAME --from FILE``, ``nsvae train quick-vae --set
data.dataset=NAME`` for a few steps and ``nsvae evaluate RUN`` with every default metric on small protocols; then
eval.json is checked: the set's exposed factors (smallNORB's instance is a nuisance, not scored), a finite score
for each metric, per-factor results over those factors.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from nsvae.cli import main
from nsvae.data import cache
from nsvae.data import ground_truth_files as gtf
from nsvae.metrics import DEFAULT_METRICS
from nsvae.metrics.evaluate import headline_scores

from .test_smallnorb import FAST

# The builders are imported when a case runs, so that a missing optional reader (h5py for 3D Shapes) skips
# that case alone.


def _shapes3d(tmp_path, rng):
    from . import test_shapes3d as t

    labels = t.official_labels()
    return t.write_h5(tmp_path / "3dshapes.h5", t.tagged_images(rng, labels), labels), (t.SMALL,)


def _mpi3d_toy(tmp_path, rng):
    from . import test_mpi3d as t

    return t.write_npz(tmp_path / "mpi3d_toy.npz", t.tagged_images(rng, t.SMALL_6X6.factor_sizes)), t.LAYOUTS


def _smallnorb(tmp_path, rng):
    from . import test_smallnorb as t

    t.write_norb(tmp_path / "norb", rng)
    return tmp_path / "norb", (t.SMALL,)


def _cars3d(tmp_path, rng):
    from . import test_cars3d as t

    return t.write_archive(tmp_path / "nips2015-analogy-data.tar.gz", t.tagged_members()), (t.SMALL,)


def _nvidia(name):
    def build(tmp_path, rng):
        from . import test_falcor3d_isaac3d as t

        return t.write_release(tmp_path / "release", name, rng).folder, (t.small_layout(name),)

    return build


#: name: (builder of the small source -> (path, layouts), channels, factors exposed to the metrics)
SETS = {
    "shapes3d": (_shapes3d, 3, ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")),
    "mpi3d_toy": (_mpi3d_toy, 3, ("object_color", "object_shape", "object_size", "camera_height",
                                  "background_color", "horizontal_axis", "vertical_axis")),
    # the instance is a nuisance: drawn at random, not scored
    "smallnorb": (_smallnorb, 1, ("category", "elevation", "azimuth", "lighting")),
    "cars3d": (_cars3d, 3, ("elevation", "azimuth", "car")),
    "falcor3d": (_nvidia("falcor3d"), 3, ("lighting_intensity", "lighting_x_dir", "lighting_y_dir",
                                          "lighting_z_dir", "camera_x_pos", "camera_y_pos", "camera_z_pos")),
    "isaac3d": (_nvidia("isaac3d"), 3, ("object_shape", "robot_x_move", "robot_y_move", "camera_height",
                                        "object_scale", "lighting_intensity", "lighting_y_dir", "object_color",
                                        "wall_color")),
}  # fmt: skip

#: Every metric of a plain ``nsvae evaluate`` (mig, sap, synergy and unibound among them), with the protocol sizes
#: the smallNORB tests use on their test grid (a few hundred points; the test grids hold 18 to 144 images).
METRICS = list(DEFAULT_METRICS)
SMALL_PROTOCOL = [f"{metric}.{key}={value}" for metric, params in FAST.items() for key, value in params.items()]
TRAIN = {
    "run.steps": 4,
    "run.device": "cpu",
    "run.threads": 1,
    "model.z_dim": 3,
    "data.batch_size": 8,
    "log.every": 2,
    "log.checkpoint_every": 2,
    "log.traversal_every": 0,
    "log.tensorboard": "false",
    "log.console": "false",
    "log.progress": "false",
    "eval.every": 0,
}


def numbers_in(tree):
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            yield from numbers_in(item)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield float(tree)


@pytest.mark.parametrize("name", list(SETS))
def test_prepare_train_and_evaluate_from_the_cli(name, tmp_path, rng, monkeypatch, capsys):
    build, channels, factor_names = SETS[name]
    source, layouts = build(tmp_path, rng)
    monkeypatch.setitem(gtf.DATASETS, name, dataclasses.replace(gtf.DATASETS[name], layouts=layouts))
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(cache_dir))  # where training and evaluation look for the set

    prepare = ["data", "prepare", name, "--from", str(source), "--cache-dir", str(cache_dir), "--no-progress"]
    # 3D Shapes checks the official checksum, which a test file cannot have: --force accepts it
    assert main([*prepare, "--force"]) == 0, capsys.readouterr().err
    assert f"{name}: ready at" in capsys.readouterr().out

    run = tmp_path / "run"
    overrides = {**TRAIN, "data.dataset": name, "model.channels": channels}
    train = ["train", "quick-vae", "--out", str(run), "--no-progress"]
    for key, value in overrides.items():
        train += ["--set", f"{key}={value}"]
    assert main(train) == 0, capsys.readouterr().err
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == TRAIN["run.steps"]
    assert f'dataset = "{name}"' in (run / "config.toml").read_text()

    evaluate = ["evaluate", str(run), "--metrics", *METRICS, "--n-jobs", "1", "--no-progress"]
    for setting in SMALL_PROTOCOL:
        evaluate += ["--set", setting]
    assert main(evaluate) == 0, capsys.readouterr().err
    capsys.readouterr()

    stored = json.loads((run / "eval.json").read_text())
    assert stored["step"] == TRAIN["run.steps"]
    entry = stored["results"]["default"]
    described = entry["dataset"]  # the factors the metrics scored, as eval.json records them
    assert described["name"] == name and described["factor_names"] == list(factor_names)
    assert len(described["factor_sizes"]) == len(factor_names)
    assert described["observation_shape"] == [channels, 64, 64]
    assert described["size"] == int(np.prod(layouts[0].factor_sizes))  # smallNORB: every instance's image too
    assert described.get("nuisance_factors", []) == (["instance"] if name == "smallnorb" else [])
    # the bytes the run saw: the SHA-256 of each file of the cache entry, as recorded when it was built
    entry_dir = cache.cache_root() / name
    (built,) = [p for p in entry_dir.iterdir() if p.is_dir()]
    assert described["sha256"] == {f: cache.file_digest(built / f) for f in described["sha256"]}
    assert described["sha256"]  # not empty: every entry records its files
    assert entry["encoding"]["table"] is True  # the whole (small) set encoded once, as for the full-size sets
    assert set(entry["metrics"]) == set(METRICS) and "failed" not in entry
    scores = headline_scores(entry)
    assert set(scores) == set(METRICS) - {"unsupervised"}  # which reports several numbers and no headline
    assert all(math.isfinite(score) for score in scores.values()), scores
    assert all(math.isfinite(x) for x in numbers_in(entry["metrics"]))
    k = len(factor_names)
    # (eval.json is written with sorted keys: the per-factor tables are compared as sets)
    assert sorted(entry["metrics"]["mig"]["per_factor"]) == sorted(factor_names)
    assert np.array(entry["metrics"]["sap"]["score_matrix"]).shape == (TRAIN["model.z_dim"], k)
    for metric in ("synergy", "unibound"):
        assert sorted(entry["metrics"][metric]["per_factor"]) == sorted(factor_names), metric
