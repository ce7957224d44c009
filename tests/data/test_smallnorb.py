"""smallNORB from the user's six files: the binary matrix format, the grid from the labels, refusals, metrics, CLI.

Every file is written here in the official format (a little-endian int32
header: magic 0x1E3D4C55 for the uint8 ``-dat`` pairs, 0x1E3D4C54 for the
int32 ``-cat`` and ``-info``; ``ndim``; ``max(3, ndim)`` dimensions padded
with 1; then the data in C order), gzipped as published unless a test says
otherwise, on a reduced grid with the same factors: the official files hold
2 x 24,300 pairs of 96 x 96 images.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import struct
import sys

import numpy as np
import pytest
from PIL import Image

from nsvae import data, metrics
from nsvae.cli import main
from nsvae.data import cache, smallnorb
from nsvae.data import ground_truth_files as gtf
from nsvae.errors import UserError
from nsvae.metrics.evaluate import tabulable

#: category, instance, elevation, azimuth, lighting: 2 * 4 * 2 * 3 * 2 = 96 images, 48 per split.
SMALL_SIZES = (2, 4, 2, 3, 2)
SMALL = smallnorb.LAYOUT.shrunk(SMALL_SIZES)
N_SMALL = SMALL.images
#: Each split holds its own instances (the official training split 4, 6, 7, 8, 9 and testing 0, 1, 2, 3, 5).
SPLIT_INSTANCES = {"training": (1, 3), "testing": (0, 2)}
BYTE, INTEGER = 0x1E3D4C55, 0x1E3D4C54


def matrix_bytes(magic: int, array: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    """One file of the binary matrix format: magic, ndim, max(3, ndim) dimensions (unused ones 1), the data."""
    dims = tuple(array.shape) if dims is None else dims
    header = struct.pack("<ii", magic, len(dims)) + struct.pack(f"<{max(3, len(dims))}i", *dims, *[1] * (3 - len(dims)))
    return header + np.ascontiguousarray(array, dtype="<i4" if magic == INTEGER else np.uint8).tobytes()


def grid_index(category, instance, elevation, azimuth_label, lighting) -> np.ndarray:
    """The image's place in the row-major grid, written out (the azimuth class is the label halved)."""
    c, i, e, a, l = SMALL_SIZES  # noqa: E741
    return (((category * i + instance) * e + elevation) * a + azimuth_label // 2) * l + lighting


def split_labels(split: str, rng) -> tuple[np.ndarray, np.ndarray]:
    """``cat`` (n,) and ``info`` (n, 4) of every combination with this split's instances, rows shuffled."""
    c, _, e, a, l = SMALL_SIZES  # noqa: E741
    grids = np.meshgrid(
        np.arange(c), SPLIT_INSTANCES[split], np.arange(e), 2 * np.arange(a), np.arange(l), indexing="ij"
    )
    rows = np.stack([g.reshape(-1) for g in grids], axis=1)[rng.permutation(c * 2 * e * a * l)]
    return rows[:, 0], rows[:, 1:]


def tag(cat: np.ndarray, info: np.ndarray) -> np.ndarray:
    """A grey level per grid cell, 10..200: what the first camera's image of that cell is filled with."""
    return (10 + 2 * grid_index(cat, info[:, 0], info[:, 1], info[:, 2], info[:, 3])).astype(np.uint8)


def tagged_pairs(cat: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Pairs whose first image is its cell's tag everywhere and whose second is 255 minus it."""
    level = tag(cat, info)[:, None, None]
    return np.stack([np.broadcast_to(level, (len(cat), 96, 96)), np.broadcast_to(255 - level, (len(cat), 96, 96))], 1)


def write_file(directory, split: str, part: str, content: bytes, gz: bool = True, name: str | None = None):
    gzipped, plain = smallnorb.file_names(split, part)
    path = directory / (name or (gzipped if gz else plain))
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


def write_norb(directory, rng, pairs=None, gz=True, labels=None):
    """The six files of the reduced grid in ``directory``; returns ``{split: (cat, info, pairs)}``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for split in smallnorb.SPLITS:
        cat, info = labels[split] if labels else split_labels(split, rng)
        images = tagged_pairs(cat, info) if pairs is None else pairs(cat, info)
        write_file(directory, split, "dat", matrix_bytes(BYTE, images), gz)
        write_file(directory, split, "cat", matrix_bytes(INTEGER, cat), gz)
        write_file(directory, split, "info", matrix_bytes(INTEGER, info), gz)
        written[split] = (cat, info, images)
    return written


def entry_of(tmp_path):
    return tmp_path / "cache" / "smallnorb" / gtf.ENTRY_KEY


def leftovers(tmp_path):
    root = tmp_path / "cache" / "smallnorb"
    return sorted(p.name for p in root.glob(".*building*")) if root.is_dir() else []


def convert(path, tmp_path, **kwargs):
    kwargs.setdefault("progress", False)
    return gtf.import_file(smallnorb.DATASET, path, entry_of(tmp_path), layouts=(SMALL,), **kwargs)


@pytest.fixture
def norb_dir(tmp_path, rng):
    directory = tmp_path / "norb"
    return directory, write_norb(directory, rng)


@pytest.fixture
def small_registry(monkeypatch):
    """The registered smallnorb on the small grid, for the CLI, load() and training configs."""
    monkeypatch.setitem(gtf.DATASETS, "smallnorb", dataclasses.replace(smallnorb.DATASET, layouts=(SMALL,)))


# ---------------------------------------------------------------------------------------------
# Conversion and the grid
# ---------------------------------------------------------------------------------------------


def test_each_image_lands_at_the_index_its_labels_say(tmp_path, norb_dir):
    directory, written = norb_dir
    entry = convert(directory, tmp_path)
    stored = np.load(entry / "images.npy")
    assert stored.shape == (N_SMALL, 1, 64, 64)
    for cat, info, _ in written.values():
        where = grid_index(cat, info[:, 0], info[:, 1], info[:, 2], info[:, 3])
        # a constant image stays that constant through the resize; the second camera's 255 - tag never shows
        assert (stored[where] == tag(cat, info)[:, None, None, None]).all()
    assert sorted(np.unique(stored[:, 0, 0, 0]).tolist()) == list(range(10, 10 + 2 * N_SMALL, 2))


def test_the_first_camera_is_resized_to_64_with_lanczos(tmp_path, rng):
    directory = tmp_path / "norb"
    written = write_norb(directory, rng, pairs=lambda cat, info: rng.integers(0, 256, (len(cat), 2, 96, 96), np.uint8))
    stored = np.load(convert(directory, tmp_path) / "images.npy")
    for cat, info, pairs in written.values():
        where = grid_index(cat, info[:, 0], info[:, 1], info[:, 2], info[:, 3])
        for row in (0, 17, len(cat) - 1):  # a literal reference: Pillow's Lanczos resize of the pair's first image
            expected = np.asarray(Image.fromarray(pairs[row, 0]).resize((64, 64), Image.Resampling.LANCZOS))
            assert np.array_equal(stored[where[row], 0], expected)


def test_meta_records_the_grid_the_nuisance_and_each_file(tmp_path, norb_dir):
    directory, _ = norb_dir
    meta = cache.read_meta(convert(directory, tmp_path))
    assert meta["dataset"] == "smallnorb" and meta["images"] == N_SMALL and meta["observation_shape"] == [1, 64, 64]
    assert meta["factor_names"] == list(smallnorb.FACTOR_NAMES) and meta["factor_sizes"] == list(SMALL_SIZES)
    assert meta["nuisance_factors"] == ["instance"] and meta["nominal_factors"] == ["category", "lighting"]
    assert meta["factor_values"][0] == ["animal", "human"] and meta["factor_values"][3] == [0, 20, 40]  # degrees
    assert meta["source"] == str(directory.resolve()) and meta["checksum"] is None
    assert len(meta["files"]) == 6 and all(
        len(f["md5"]) == 32 and f["known_as"] is None for f in meta["files"].values()
    )
    assert meta["checksum_verified"] is False and cache.verify_entry(entry_of(tmp_path), full=True) == ""


def test_the_published_checksums_are_recognised(tmp_path, norb_dir, monkeypatch):
    directory, _ = norb_dir
    pretend = {gtf.md5_of(p, progress=False, label=""): p.name for p in directory.iterdir()}
    monkeypatch.setattr(smallnorb, "OFFICIAL_GZ_MD5", pretend)
    meta = cache.read_meta(convert(directory, tmp_path))
    assert meta["checksum_verified"] is True and meta["checksum_known_as"].startswith("the six published")
    assert {f["known_as"] for f in meta["files"].values()} == set(pretend.values())


def test_gzip_is_told_from_the_content_and_decompressed_copies_are_read(tmp_path, rng):
    directory = tmp_path / "norb"
    written = write_norb(directory, rng)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for split, (cat, info, pairs) in written.items():
        # a browser that decompressed the download but kept its .gz name; a gunzipped copy; the file as published
        write_file(mixed, split, "dat", matrix_bytes(BYTE, pairs), gz=False, name=smallnorb.file_names(split, "dat")[0])
        write_file(mixed, split, "cat", matrix_bytes(INTEGER, cat), gz=False)
        write_file(mixed, split, "info", matrix_bytes(INTEGER, info), gz=True)
    first = np.load(convert(directory, tmp_path) / "images.npy")
    second = np.load(convert(mixed, tmp_path) / "images.npy")
    assert np.array_equal(first, second)


def test_a_category_file_of_shape_n_by_1_is_accepted(tmp_path, rng):
    directory = tmp_path / "norb"
    written = write_norb(directory, rng)
    for split, (cat, _, _) in written.items():  # the page describes -cat as a 24,300 x 1 matrix
        write_file(directory, split, "cat", matrix_bytes(INTEGER, cat[:, None]))
    stored = np.load(convert(directory, tmp_path) / "images.npy")
    assert sorted(np.unique(stored[:, 0, 0, 0]).tolist()) == list(range(10, 10 + 2 * N_SMALL, 2))


def test_the_dataset_draws_the_instance_and_exposes_four_factors(tmp_path, norb_dir):
    directory, _ = norb_dir
    loaded = gtf.FileGroundTruth(convert(directory, tmp_path))
    assert loaded.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert loaded.factor_sizes == (2, 2, 3, 2) and loaded.all_factor_sizes == SMALL_SIZES
    assert loaded.nuisance_factors == ("instance",) and loaded.nominal_factors == ("category", "lighting")
    assert loaded.observation_shape == (1, 64, 64) and len(loaded) == N_SMALL
    assert [v.tolist() for v in loaded.factor_values()] == [["animal", "human"], [30, 35], [0, 20, 40], [0, 1]]
    assert loaded.describe()["nuisance_factors"] == ["instance"]
    factors = np.tile([1, 0, 2, 1], (400, 1))
    obs = loaded.sample_observations_from_factors(factors, np.random.default_rng(5))
    again = loaded.sample_observations_from_factors(factors, np.random.default_rng(5))
    assert obs.shape == (400, 1, 64, 64) and np.array_equal(obs, again)  # the rng decides the instance
    # every one of the 4 instances (both splits) shows, and nothing but the asked-for cell's 4 images
    tags = np.rint(obs[:, 0, 0, 0] * 255).astype(int)
    cells = grid_index(1, np.arange(4), 0, 4, 1)
    assert set(tags.tolist()) == set((10 + 2 * cells).tolist())
    assert np.array_equal(loaded.factors_of(loaded.index_of(factors, np.random.default_rng(0))), factors)
    with pytest.raises(ValueError, match="draws its hidden factors at random: pass rng"):
        loaded.index_of(factors)


def cell_code(obs: np.ndarray) -> np.ndarray:
    """The five classes of each image, read from its tag: (category, instance, elevation, azimuth, lighting)."""
    index = (np.rint(obs[:, 0, 0, 0] * 255).astype(np.int64) - 10) // 2
    return np.stack(np.unravel_index(index, SMALL_SIZES), axis=1).astype(np.float64)


def test_mig_scores_a_code_of_the_exposed_factors(tmp_path, norb_dir):
    directory, _ = norb_dir
    loaded = gtf.FileGroundTruth(convert(directory, tmp_path))

    def represent(obs):  # the exposed classes, and the instance on a fifth latent
        code = cell_code(obs)[:, [0, 2, 3, 4, 1]]
        return code + 0.01 * np.random.default_rng(2).standard_normal(code.shape)

    mig = metrics.mig(loaded, represent, np.random.default_rng(3), num_train=600)
    assert set(mig["per_factor"]) == set(loaded.factor_names) and mig["score"] > 0.9


FAST = {
    "beta_vae_score": {"num_train": 200, "num_eval": 100},
    "factor_vae_score": {"num_train": 200, "num_eval": 100, "num_variance_estimate": 500},
    "mig": {"num_train": 500},
    "dci": {"num_train": 400, "num_test": 200, "model": "hist_gbt"},
    "sap": {"num_train": 400, "num_test": 200},
    "modularity_explicitness": {"num_train": 400, "num_test": 200},
    "unsupervised": {"num_train": 400},
    "active_units": {"num_train": 400},
    "chen_mig": {"num_samples": 300},
    "synergy": {"num_train": 400, "num_samples": 300},
    "unibound": {"num_train": 400, "num_samples": 200},
    "irs": {"num_train": 400},
    "infomec": {"num_train": 400},
}


def test_every_metric_tabulates_the_dataset_with_its_nuisance(tmp_path, norb_dir):
    """Encoded once (every image, instances included); the look-ups draw the instance, so the table gives
    exactly the numbers of encoding fresh samples; synergy and UniBound use the whole table as reference."""
    directory, _ = norb_dir
    loaded = gtf.FileGroundTruth(convert(directory, tmp_path))

    def posterior(obs):
        mean = cell_code(obs)[:, [0, 2, 3, 4, 1]]
        return mean, np.full(mean.shape, -4.0)

    assert tabulable(loaded)
    out = metrics.evaluate(loaded, represent_posterior=posterior, overrides=FAST, seed=3, progress=False)
    assert out["encoding"]["table"] is True and set(out["metrics"]) == set(metrics.DEFAULT_METRICS)
    for name in ("synergy", "unibound"):
        assert out["metrics"][name]["protocol"]["reference"] == "table", name
    assert out["metrics"]["factor_vae_score"]["score"] == 1.0
    json.dumps(out, allow_nan=False)

    def code(obs):
        return posterior(obs)[0]

    kw = {"metrics": ["beta_vae_score", "factor_vae_score", "mig"], "overrides": FAST, "seed": 1, "progress": False}
    tabulated = metrics.evaluate(loaded, code, table=True, **kw)["metrics"]
    sampled = metrics.evaluate(loaded, code, table=False, **kw)["metrics"]
    for name in kw["metrics"]:
        assert tabulated[name]["score"] == sampled[name]["score"], name


# ---------------------------------------------------------------------------------------------
# Files that are not what they claim
# ---------------------------------------------------------------------------------------------


def _relabel(column: int, row: int, value: int):
    def mutate(directory, written):
        cat, info, _ = written["testing"]
        info = info.copy()
        info[row, column] = value
        write_file(directory, "testing", "info", matrix_bytes(INTEGER, info))

    return mutate


def _duplicate_a_row(directory, written):
    cat, info, _ = written["testing"]
    info = info.copy()
    info[7] = info[3]
    cat = cat.copy()
    cat[7] = cat[3]
    write_file(directory, "testing", "info", matrix_bytes(INTEGER, info))
    write_file(directory, "testing", "cat", matrix_bytes(INTEGER, cat))


def _rewrite(part: str, magic: int, change):
    def mutate(directory, written):
        cat, info, pairs = written["training"]
        array = {"dat": pairs, "cat": cat, "info": info}[part]
        write_file(directory, "training", part, matrix_bytes(magic, *change(array)))

    return mutate


def _raw(part: str, change, gz: bool = False):
    def mutate(directory, written):
        cat, info, pairs = written["training"]
        magic = BYTE if part == "dat" else INTEGER
        content = change(matrix_bytes(magic, {"dat": pairs, "cat": cat, "info": info}[part]))
        write_file(directory, "training", part, content, gz=gz, name=smallnorb.file_names("training", part)[0])

    return mutate


def _damaged_gzip(directory, written):
    path = directory / smallnorb.file_names("training", "dat")[0]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _truncated_gzip(directory, written):
    path = directory / smallnorb.file_names("testing", "dat")[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _missing(directory, written):
    (directory / smallnorb.file_names("testing", "info")[0]).unlink()


def _fewer_pairs(directory, written):
    cat, info, pairs = written["testing"]
    for part, magic, array in (("dat", BYTE, pairs), ("cat", INTEGER, cat), ("info", INTEGER, info)):
        write_file(directory, "testing", part, matrix_bytes(magic, array[:-1]))


TRAINING_DAT = r"smallnorb-5x46789x9x18x6x2x96x96-training-dat\.mat\.gz"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_rewrite("dat", INTEGER, lambda a: (a.astype(np.int32),)), TRAINING_DAT + r" has magic 0x1E3D4C54 "
         r"\(integer matrix\), expected 0x1E3D4C55 \(byte matrix\) for a -dat file"),
        (_raw("cat", lambda b: b"not a NORB file at all, just text"), r"training-cat\.mat\.gz starts with 0x20746F6E, "
         "not a binary matrix magic number"),
        (_rewrite("dat", BYTE, lambda a: (a[:, :, :64, :64],)), TRAINING_DAT + r" has dimensions \(48, 2, 64, 64\), "
         r"expected \(N, 2, 96, 96\)"),
        (_rewrite("info", INTEGER, lambda a: (a[:, :3],)), r"training-info\.mat\.gz has dimensions \(48, 3\)"),
        (_rewrite("cat", INTEGER, lambda a: (a[:-1],)), r"the training files disagree on the number of images "
         r"\(dat 48, cat 47, info 48\)"),
        (_raw("dat", lambda b: b[: len(b) - 500]), TRAINING_DAT + r" has 884,260 bytes, its header promises 884,760 "
         r"\(truncated file\)"),
        (_raw("dat", lambda b: b + b"\0" * 10), TRAINING_DAT + " holds more bytes than its header's dimensions"),
        (_raw("cat", lambda b: b[:30], gz=True), r"training-cat\.mat\.gz ends early in its labels \(truncated file\)"),
        (_truncated_gzip, r"testing-dat\.mat\.gz is unreadable or damaged \(Compressed file ended before the "
         "end-of-stream marker"),
        (_damaged_gzip, TRAINING_DAT + " is unreadable or damaged"),
        (_relabel(2, 5, 3), r"testing-info\.mat\.gz: image 5 has azimuth 3, but the format's azimuths are even"),
        (_relabel(2, 5, 6), r"testing-info\.mat\.gz: image 5 has azimuth 6, outside 0\.\.4 in steps of 2"),
        (_relabel(1, 9, 2), r"testing-info\.mat\.gz: image 9 has elevation 2, outside 0\.\.1"),
        (_relabel(0, 0, -1), r"testing-info\.mat\.gz: image 0 has instance -1, outside 0\.\.3"),
        (_relabel(0, 4, 1), r"testing-info\.mat\.gz: image \d+ repeats the combination \(category \d, instance 1, "
         r".*\) of an earlier image; the labels do not form the 2x4x2x3x2 grid once"),
        (_duplicate_a_row, r"testing-info\.mat\.gz: image 7 repeats the combination"),
        (_fewer_pairs, r"the dat files hold 48 \+ 47 image pairs, expected 96 in all"),
        (_missing, r"lacks smallnorb-5x01235x9x18x6x2x96x96-testing-info\.mat\.gz \(or the same decompressed, "
         r"\.mat\); get the six files from https://cs\.nyu\.edu/~ylclab/data/norb-v1\.0-small/"),
    ],
)  # fmt: skip
def test_files_that_are_not_what_they_claim_are_refused_and_leave_nothing(tmp_path, rng, mutate, message):
    directory = tmp_path / "norb"
    written = write_norb(directory, rng)
    mutate(directory, written)
    with pytest.raises(UserError, match=message) as caught:
        convert(directory, tmp_path)
    assert len(str(caught.value).splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_a_file_instead_of_the_directory_and_a_missing_directory(tmp_path, norb_dir):
    directory, _ = norb_dir
    one = directory / smallnorb.file_names("training", "dat")[0]
    with pytest.raises(
        UserError, match=rf"is a file; smallnorb reads the directory .* \(give --from {re.escape(str(directory))}\)"
    ):
        convert(one, tmp_path)
    with pytest.raises(
        UserError, match=r"nope does not exist; get the six smallnorb-\*\.mat\.gz files from https://cs"
    ):
        convert(tmp_path / "nope", tmp_path)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# The registry, the cache, the command line and training
# ---------------------------------------------------------------------------------------------


def test_cli_prepare_list_load_and_reuse(tmp_path, norb_dir, small_registry, capsys, monkeypatch):
    directory, written = norb_dir
    cache_dir = str(tmp_path / "cache")
    argv = ["data", "prepare", "smallnorb", "--from", str(directory), "--cache-dir", cache_dir, "--no-progress"]
    assert main(argv) == 0
    assert "smallnorb: ready at" in capsys.readouterr().out
    assert main(["data", "list", "--json", "--cache-dir", cache_dir]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}
    assert "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/" in rows["smallnorb"]["source_hint"]
    (row,) = rows["smallnorb"]["prepared"]
    assert row["images"] == N_SMALL and row["shape"] == [1, 64, 64] and row["source"] == str(directory.resolve())
    loaded = data.load("smallnorb", cache_dir=cache_dir)
    assert loaded.observation_shape == (1, 64, 64) and loaded.factor_names[0] == "category"

    def no_reading(*args):
        raise AssertionError("the files were read again")

    monkeypatch.setattr(gtf, "_convert", no_reading)  # the same files again: the entry is reused
    assert main(argv) == 0
    assert data.load("smallnorb", cache_dir=cache_dir, source=directory).entry == entry_of(tmp_path)


def test_a_changed_file_in_the_directory_converts_again(tmp_path, rng, small_registry):
    directory = tmp_path / "norb"
    write_norb(directory, rng)
    cache_dir = tmp_path / "cache"
    data.prepare("smallnorb", cache_dir=cache_dir, source=directory, progress=False)
    labels = {split: split_labels(split, np.random.default_rng(9)) for split in smallnorb.SPLITS}
    inverted = write_norb(directory, rng, labels=labels, pairs=lambda cat, info: 255 - tagged_pairs(cat, info))
    for path in directory.iterdir():  # a later modification time even where the file system's clock is coarse
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    loaded = data.load("smallnorb", cache_dir=cache_dir, source=directory)
    cat, info, _ = inverted["training"]
    where = grid_index(cat, info[:, 0], info[:, 1], info[:, 2], info[:, 3])
    assert (loaded.images[where, 0, 5, 5] == 255 - tag(cat, info)).all()


def test_not_prepared_and_missing_source_say_how(tmp_path, capsys):
    cache_dir = str(tmp_path / "cache")
    with pytest.raises(UserError, match=r"nsvae data prepare smallnorb --from DIR` with your copy of the six"):
        data.load("smallnorb", cache_dir=cache_dir)
    assert main(["data", "prepare", "smallnorb", "--cache-dir", cache_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert "smallnorb needs --from DIR" in err and len(err.splitlines()) == 1


def test_cli_refuses_bad_files_with_one_line_and_exit_2(tmp_path, rng, small_registry, capsys):
    directory = tmp_path / "norb"
    written = write_norb(directory, rng)
    _relabel(2, 0, 1)(directory, written)
    argv = ["data", "prepare", "smallnorb", "--from", str(directory), "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "azimuth 1" in err and "testing-info.mat.gz" in err and len(err.splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_declared_factors_need_no_file():
    declared = gtf.declared("smallnorb")
    assert declared.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert declared.factor_sizes == (5, 9, 18, 6) and len(declared) == 48_600
    assert declared.observation_shape == (1, 64, 64) and declared.nuisance_factors == ("instance",)


def test_the_preset_and_a_training_config_open_it(tmp_path, norb_dir, small_registry, monkeypatch):
    from nsvae.config import apply_overrides, load_config, open_dataset

    preset = load_config("smallnorb-factor-vae")
    assert (preset.method, preset.data.dataset, preset.model.channels) == ("factor_vae", "smallnorb", 1)
    assert (preset.factor_vae.gamma, preset.run.steps, preset.model.architecture) == (40.0, 300_000, "dlib_conv")
    directory, _ = norb_dir
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    data.prepare("smallnorb", source=directory, progress=False)
    assert open_dataset(preset).observation_shape == (1, 64, 64)
    with pytest.raises(UserError, match="smallnorb images have 1 channel"):
        open_dataset(apply_overrides(preset, {"model.channels": 3}))


# ---------------------------------------------------------------------------------------------
# Full size (slow): the memory preparing needs
# ---------------------------------------------------------------------------------------------

#: Runs one preparation in a fresh process; VmHWM (peak resident memory) after the imports, then after preparing.
PREPARE_AND_MEASURE = """
import json, sys
from nsvae import data
import scipy.io, PIL.Image, tqdm.auto
def peak():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM:")).split()[1]) * 1024
name, source, cache_dir = sys.argv[1:4]
before = peak()
data.prepare(name, cache_dir=cache_dir, source=source, force=True, progress=False)
loaded = data.load(name, cache_dir=cache_dir)
probe = [0, len(loaded) // 3, len(loaded) - 1]
print(json.dumps({"before": before, "peak": peak(), "n": len(loaded), "probe": loaded.images[probe, 0, 0, 0].tolist()}))
"""


def prepare_and_measure(name: str, source, cache_dir) -> dict:
    import subprocess
    import sys

    argv = [sys.executable, "-c", PREPARE_AND_MEASURE, name, str(source), str(cache_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc/self/status")
def test_full_size_files_are_streamed_and_held_once_at_64x64(tmp_path):
    """48,600 pairs in gzipped files (constant images, so they are quick to write): preparing holds the 190 MiB
    of resized images once, and reads the 896 MB of pairs a few MiB at a time. Measured: 190 MiB above the
    imports' 66 MiB (2-core machine, 12 s)."""
    directory = tmp_path / "norb"
    directory.mkdir()
    sizes = smallnorb.FACTOR_SIZES
    bases = np.array([int(np.prod(sizes[f + 1 :])) for f in range(len(sizes))])
    rng = np.random.default_rng(0)
    for split, instances in (("training", (4, 6, 7, 8, 9)), ("testing", (0, 1, 2, 3, 5))):
        grids = np.meshgrid(np.arange(5), instances, np.arange(9), 2 * np.arange(18), np.arange(6), indexing="ij")
        rows = np.stack([g.reshape(-1) for g in grids], axis=1)[rng.permutation(24_300)]
        level = ((rows // [1, 1, 1, 2, 1]) @ bases) % 251  # the grey level of each pair's first image
        name = smallnorb.SPLITS[split]
        (directory / f"{name}-cat.mat.gz").write_bytes(gzip.compress(matrix_bytes(INTEGER, rows[:, 0]), 1))
        (directory / f"{name}-info.mat.gz").write_bytes(gzip.compress(matrix_bytes(INTEGER, rows[:, 1:]), 1))
        with gzip.open(directory / f"{name}-dat.mat.gz", "wb", compresslevel=1) as out:
            out.write(matrix_bytes(BYTE, np.zeros((0,), np.uint8), dims=(24_300, 2, 96, 96)))
            for start in range(0, 24_300, 2_000):
                block = level[start : start + 2_000, None, None]
                pairs = np.empty((len(block), 2, 96, 96), np.uint8)
                pairs[:, 0], pairs[:, 1] = block, 255 - block
                out.write(pairs.tobytes())
    result = prepare_and_measure("smallnorb", directory, tmp_path / "cache")
    n = 48_600
    assert result["n"] == n and result["probe"] == [0, n // 3 % 251, (n - 1) % 251]
    assert result["peak"] - result["before"] < 1.5 * n * 64 * 64, f"{(result['peak'] - result['before']) >> 20} MiB"
