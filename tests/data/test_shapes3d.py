"""3D Shapes from the user's 3dshapes.h5: conversion, labels against the grid, refusals, the registry and CLI.

Every file is written here with h5py in the official format (datasets
``images`` uint8 ``(N, 64, 64, 3)`` and ``labels`` float64 ``(N, 6)``, little
endian as h5py writes them) on a reduced grid: the official one is 5.9 GB.
"""

from __future__ import annotations

import json
import os
import pickle
import sys

import numpy as np
import pytest

from nsvae import data
from nsvae.cli import main
from nsvae.data import cache, shapes3d
from nsvae.data import ground_truth_files as gtf
from nsvae.errors import UserError

h5py = pytest.importorskip("h5py")

#: floor hue, wall hue, object hue, scale, shape, orientation: 2 * 3 * 2 * 2 * 2 * 3 = 144 images.
SMALL_SIZES = (2, 3, 2, 2, 2, 3)
SMALL = shapes3d.LAYOUT.shrunk(SMALL_SIZES)
N_SMALL = SMALL.images


def label_values(sizes=SMALL_SIZES) -> list[np.ndarray]:
    """Values like the official file's: hues in [0, 1), scale in [0.75, 1.25], shape 0..3, orientation in [-30, 30]."""
    hue = lambda s: np.linspace(0.0, 1.0, s, endpoint=False)  # noqa: E731
    return [hue(sizes[0]), hue(sizes[1]), hue(sizes[2]), np.linspace(0.75, 1.25, sizes[3]),
            np.arange(sizes[4], dtype=np.float64), np.linspace(-30.0, 30.0, sizes[5])]  # fmt: skip


def official_labels(sizes=SMALL_SIZES) -> np.ndarray:
    """Row i: the factor values of image i, orientation varying fastest (the official order)."""
    grids = np.meshgrid(*label_values(sizes), indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype("<f8")


def classes_from_labels(labels: np.ndarray) -> np.ndarray:
    """Each label's rank among its factor's distinct values (how TFDS numbers 3dshapes' classes)."""
    return np.stack([np.unique(col, return_inverse=True)[1] for col in labels.T], axis=1)


def tagged_images(rng, labels: np.ndarray) -> np.ndarray:
    """Random RGB images whose pixels (row 0, column f, red) hold the class of factor f the labels give."""
    images = rng.integers(0, 256, size=(labels.shape[0], 64, 64, 3), dtype=np.uint8)
    images[:, 0, : labels.shape[1], 0] = classes_from_labels(labels)
    return images


def write_h5(path, images=None, labels=None, drop=(), chunks=None, compression=None):
    with h5py.File(path, "w") as f:
        if "images" not in drop:
            f.create_dataset("images", data=images, chunks=chunks, compression=compression)
        if "labels" not in drop:
            f.create_dataset("labels", data=labels)
    return path


@pytest.fixture
def small_file(tmp_path, rng):
    labels = official_labels()
    images = tagged_images(rng, labels)
    return write_h5(tmp_path / "3dshapes.h5", images, labels), images, labels


def entry_of(tmp_path):
    return tmp_path / "cache" / "shapes3d" / gtf.ENTRY_KEY


def leftovers(tmp_path):
    root = tmp_path / "cache" / "shapes3d"
    return sorted(p.name for p in root.glob(".*building*")) if root.is_dir() else []


def convert(path, tmp_path, **kwargs):
    kwargs.setdefault("progress", False)
    return gtf.import_file(shapes3d.DATASET, path, entry_of(tmp_path), layouts=(SMALL,), **kwargs)


@pytest.fixture
def small_registry(monkeypatch):
    """The registered shapes3d on the small grid (checksum still checked), for the CLI and load()."""
    import dataclasses

    monkeypatch.setitem(gtf.DATASETS, "shapes3d", dataclasses.replace(shapes3d.DATASET, layouts=(SMALL,)))


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def test_small_file_is_converted_exactly(tmp_path, small_file):
    path, images, labels = small_file
    entry = convert(path, tmp_path)
    stored = np.load(entry / "images.npy", mmap_mode="r")
    assert isinstance(stored, np.memmap) and stored.shape == (N_SMALL, 3, 64, 64)
    assert np.array_equal(stored, images.transpose(0, 3, 1, 2))
    meta = cache.read_meta(entry)
    assert meta["dataset"] == "shapes3d" and meta["images"] == N_SMALL and meta["factor_sizes"] == list(SMALL_SIZES)
    assert meta["checksum_verified"] is False and meta["checksum"].startswith("md5:")
    assert meta["source"] == str(path.resolve()) and meta["layout"] == "official"
    assert cache.verify_entry(entry, full=True) == ""
    for got, want in zip(meta["factor_values"], label_values(), strict=True):
        assert got == want.tolist()  # the label values survive the JSON round trip bit for bit


def test_each_image_lands_at_the_factor_index_its_labels_say(tmp_path, small_file):
    path, images, labels = small_file
    loaded = gtf.FileGroundTruth(convert(path, tmp_path))
    classes = classes_from_labels(labels)  # independent of nsvae: ranks of the file's label values
    assert np.array_equal(loaded.index_of(classes), np.arange(N_SMALL))
    obs = loaded.sample_observations_from_factors(classes, np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (N_SMALL, 3, 64, 64)
    assert np.array_equal(np.rint(obs[:, 0, 0, :6] * 255).astype(np.int64), classes)
    assert np.array_equal(obs, images.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    # factor_values() names each class by its label value: look every image's labels up in it.
    values = loaded.factor_values()
    looked_up = np.stack([np.searchsorted(values[f], labels[:, f]) for f in range(6)], axis=1)
    assert np.array_equal(looked_up, classes)


def test_conversion_streams_chunked_and_compressed_files(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(gtf, "IMPORT_CHUNK", 7)  # not a divisor of 144, nor a multiple of the HDF5 chunk
    labels = official_labels()
    images = tagged_images(rng, labels)
    path = write_h5(tmp_path / "chunked.h5", images, labels, chunks=(5, 64, 64, 3), compression="gzip")
    entry = convert(path, tmp_path)
    assert np.array_equal(np.load(entry / "images.npy"), images.transpose(0, 3, 1, 2))


def test_the_dataset_interface_for_training_and_metrics(tmp_path, small_file):
    from nsvae import metrics

    path, _, _ = small_file
    loaded = gtf.FileGroundTruth(convert(path, tmp_path))
    assert loaded.name == "shapes3d"
    assert loaded.factor_names == shapes3d.FACTOR_NAMES and loaded.factor_sizes == SMALL_SIZES
    assert loaded.nominal_factors == ("shape",) and loaded.observation_shape == (3, 64, 64) and len(loaded) == N_SMALL
    rng = np.random.default_rng(1)
    factors = loaded.sample_factors(50, rng)
    assert factors.shape == (50, 6) and (factors < np.array(SMALL_SIZES)).all()
    assert np.array_equal(loaded.factors_of(loaded.index_of(factors)), factors)
    copy = pickle.loads(pickle.dumps(loaded))
    assert np.array_equal(copy.observations_at([3, 1]), loaded.observations_at([3, 1]))

    def represent(obs):  # a perfect code: the classes written into the pixels, with a little noise
        return np.rint(obs[:, 0, 0, :6] * 255) + 0.01 * np.random.default_rng(2).standard_normal((obs.shape[0], 6))

    mig = metrics.mig(loaded, represent, np.random.default_rng(3), num_train=400)
    assert mig["score"] > 0.9 and set(mig["per_factor"]) == set(shapes3d.FACTOR_NAMES)
    fvae = metrics.factor_vae_score(
        loaded, represent, np.random.default_rng(4), num_train=100, num_eval=50, num_variance_estimate=400
    )
    assert fvae["score"] == 1.0


# ---------------------------------------------------------------------------------------------
# Files that are not what they claim
# ---------------------------------------------------------------------------------------------


def _shuffled(images, labels):
    order = np.random.default_rng(0).permutation(labels.shape[0])
    return dict(labels=labels[order])


def _duplicated_value(images, labels):
    labels = labels.copy()
    labels[labels[:, 3] == labels[:, 3].max(), 3] = labels[:, 3].min()  # scale's two classes now share one value
    return dict(labels=labels)


def _nan(images, labels):
    labels = labels.copy()
    labels[5, 2] = np.nan
    return dict(labels=labels)


def _one_wrong_label(images, labels):
    labels = labels.copy()
    labels[100, 5] = labels[0, 5]
    return dict(labels=labels)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda i, l: dict(drop=("images",)), r"missing dataset 'images' \(the file has labels\)"),
        (lambda i, l: dict(drop=("labels",)), "missing dataset 'labels'"),
        (lambda i, l: dict(images=i[:, :32]), r"images has shape \(144, 32, 64, 3\), expected \(144, 64, 64, 3\)"),
        (lambda i, l: dict(images=i[:-1], labels=l[:-1]), r"images has shape \(143, 64, 64, 3\)"),
        (lambda i, l: dict(images=i.transpose(0, 3, 1, 2)), r"images has shape \(144, 3, 64, 64\)"),
        (lambda i, l: dict(images=i.astype(np.float32)), "images are float32, expected uint8"),
        (lambda i, l: dict(labels=l[:, :5]), r"labels are float64 of shape \(144, 5\)"),
        (lambda i, l: dict(labels=l.astype(np.int64)), "labels are int64"),
        (_shuffled, "labels do not match the 2x3x2x2x2x3 grid"),
        (_one_wrong_label, "image 100 has orientation = -30.0, but orientation class 1 is 0.0 elsewhere"),
        (_duplicated_value, "scale takes 1 distinct values over its 2 classes"),
        (_nan, "NaN or infinite"),
    ],
)
def test_malformed_files_are_refused_and_leave_nothing(tmp_path, rng, mutate, message):
    labels = official_labels()
    kwargs = dict(images=tagged_images(rng, labels), labels=labels)
    kwargs.update(mutate(kwargs["images"], labels))
    path = write_h5(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(UserError, match=message) as caught:
        convert(path, tmp_path)
    assert len(str(caught.value).splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_truncated_file_is_refused(tmp_path, small_file):
    path, _, _ = small_file
    cut = tmp_path / "cut.h5"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="not a readable HDF5 file .*truncated"):
        convert(cut, tmp_path)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "3dshapes.npz"
    np.savez(path, images=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(UserError, match="not a readable HDF5 file.*expected 3dshapes.h5 from https://github.com/"):
        convert(path, tmp_path)


def test_missing_file_names_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match="does not exist; get 3dshapes.h5 from https://github.com/google-deepmind"):
        convert(tmp_path / "nope.h5", tmp_path)


def test_missing_h5py_names_the_extra(tmp_path, small_file, monkeypatch):
    path, _, _ = small_file
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(UserError, match=r"needs h5py: pip install 'nsvae\[hdf5\]'"):
        convert(path, tmp_path)


def test_a_checksum_that_differs_is_refused_unless_forced(tmp_path, small_file):
    path, _, _ = small_file
    with pytest.raises(UserError, match="has MD5 [0-9a-f]{32}, not the official 099a2078d58c.*--force"):
        convert(path, tmp_path, verify_checksum=True)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []
    meta = cache.read_meta(convert(path, tmp_path, verify_checksum=True, force=True))
    assert meta["checksum_verified"] is False and meta["checksum_known_as"] is None


def test_the_official_checksum_is_accepted(tmp_path, small_file, monkeypatch):
    import dataclasses

    path, _, _ = small_file
    md5 = gtf.md5_of(path, progress=False, label="")
    pretend = dataclasses.replace(shapes3d.DATASET, known_md5={md5: "the official 3dshapes.h5"})
    entry = gtf.import_file(pretend, path, entry_of(tmp_path), layouts=(SMALL,), progress=False, verify_checksum=True)
    meta = cache.read_meta(entry)
    assert meta["checksum_verified"] is True and meta["checksum_known_as"] == "the official 3dshapes.h5"


# ---------------------------------------------------------------------------------------------
# The registry, the cache and the command line
# ---------------------------------------------------------------------------------------------


def test_cli_refuses_a_wrong_checksum_with_one_line_and_exit_2(tmp_path, small_file, small_registry, capsys):
    path, _, _ = small_file
    argv = ["data", "prepare", "shapes3d", "--from", str(path), "--cache-dir", str(tmp_path / "cache")]
    code = main([*argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "not the official 099a2078" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_cli_prepare_list_load_and_reuse(tmp_path, small_file, small_registry, capsys, monkeypatch):
    path, images, _ = small_file
    cache_dir = str(tmp_path / "cache")
    argv = ["data", "prepare", "shapes3d", "--from", str(path), "--cache-dir", cache_dir, "--no-progress"]
    assert main([*argv, "--force"]) == 0
    assert "shapes3d: ready at" in capsys.readouterr().out
    assert main(["data", "list", "--json", "--cache-dir", cache_dir]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}
    assert "github.com/google-deepmind/3d-shapes" in rows["shapes3d"]["source_hint"]
    (row,) = rows["shapes3d"]["prepared"]
    assert row["images"] == N_SMALL and row["source"] == str(path.resolve()) and row["layout"] == "official"
    loaded = data.load("shapes3d", cache_dir=cache_dir)
    assert np.array_equal(loaded.observations_at([7])[0], images[7].transpose(2, 0, 1) / np.float32(255))

    # The same file again: the entry is reused without reading the file (and the checksum is not asked again).
    def no_reading(*args):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(gtf, "_convert", no_reading)
    assert main(argv) == 0
    assert data.load("shapes3d", cache_dir=cache_dir, source=path).entry == entry_of(tmp_path)


def test_another_file_replaces_the_entry(tmp_path, rng, small_registry):
    cache_dir = tmp_path / "cache"
    labels = official_labels()
    first = write_h5(tmp_path / "a.h5", tagged_images(rng, labels), labels)
    second_images = tagged_images(rng, labels)
    second = write_h5(tmp_path / "b.h5", second_images, labels)
    data.prepare("shapes3d", cache_dir=cache_dir, source=first, force=True, progress=False)
    data.prepare("shapes3d", cache_dir=cache_dir, source=second, force=True, progress=False)
    loaded = data.load("shapes3d", cache_dir=cache_dir)
    assert loaded.source == str(second.resolve())
    assert np.array_equal(loaded.images, second_images.transpose(0, 3, 1, 2))


def test_not_prepared_and_missing_source_say_how(tmp_path, capsys):
    cache_dir = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"nsvae data prepare shapes3d --from 3dshapes.h5.*github.com/google-deepmind"):
        data.load("shapes3d", cache_dir=cache_dir)
    assert main(["data", "prepare", "shapes3d", "--cache-dir", cache_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert "shapes3d needs --from FILE" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "options, message",
    [({"origin": "generated"}, "origin must be 'auto' or 'official'"), ({"crop": "center"}, "takes no option crop")],
)
def test_options_that_do_not_apply_are_refused(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        data.load("shapes3d", cache_dir=tmp_path / "cache", **options)


def test_a_damaged_cache_is_reported_with_the_command_that_rebuilds_it(tmp_path, small_file, small_registry):
    path, _, _ = small_file
    cache_dir = tmp_path / "cache"
    entry = data.prepare("shapes3d", cache_dir=cache_dir, source=path, force=True, progress=False)
    with open(entry / "images.npy", "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(UserError, match=r"damaged .*SHA-256.*nsvae data prepare shapes3d --from .*3dshapes.h5 --force"):
        data.load("shapes3d", cache_dir=cache_dir)


def test_training_config_opens_it(tmp_path, small_file, small_registry, monkeypatch):
    from nsvae.config import apply_overrides, load_config, open_dataset

    path, _, _ = small_file
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    data.prepare("shapes3d", source=path, force=True, progress=False)
    config = apply_overrides(load_config("quick-vae"), {"data.dataset": "shapes3d", "model.channels": 3})
    dataset = open_dataset(config)
    assert dataset.name == "shapes3d" and dataset.observation_shape == (3, 64, 64)
    with pytest.raises(UserError, match="shapes3d images have 3 channel"):
        open_dataset(apply_overrides(config, {"model.channels": 1}))
