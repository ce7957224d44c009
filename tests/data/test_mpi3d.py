"""MPI3D from the user's .npz files: the 6x6 / 4x4 grid told from the array's shape, image order, refusals, CLI.

Every file is written here as the publishers wrote theirs (``np.savez(path,
images=array)``: one uint8 ``(N, 64, 64, 3)`` member ``images.npy`` with a
version 1.0 header, stored uncompressed) on reduced grids with the same
factors: the official files are 5.7 and 12.7 GB.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

from nsvae import data
from nsvae.cli import main
from nsvae.data import cache, mpi3d
from nsvae.data import ground_truth_files as gtf
from nsvae.errors import UserError

#: Test grids: colour x shape x size x camera x background x horizontal x vertical.
SMALL_6X6 = mpi3d.LAYOUT_6X6.shrunk((3, 3, 2, 1, 1, 2, 2))  # 72 images
SMALL_4X4 = mpi3d.LAYOUT_4X4.shrunk((2, 2, 2, 1, 1, 2, 2))  # 32 images
SMALL_COMPLEX = mpi3d.LAYOUT_COMPLEX.shrunk(SMALL_4X4.factor_sizes)
LAYOUTS = (SMALL_6X6, SMALL_4X4)


def readme_classes(sizes) -> np.ndarray:
    """The factor classes of every image, from the README's formula (index = colour * 115200 + ... + vertical)."""
    strides = [int(np.prod(sizes[f + 1 :])) for f in range(len(sizes))]  # 115200, 28800, ... on the 4x4 grid
    index = np.arange(int(np.prod(sizes)))
    return np.stack([index // stride % size for stride, size in zip(strides, sizes, strict=True)], axis=1)


def tagged_images(rng, sizes) -> np.ndarray:
    """Random RGB images whose pixels (row 0, column f, green) hold the class of factor f."""
    classes = readme_classes(sizes)
    images = rng.integers(0, 256, size=(classes.shape[0], 64, 64, 3), dtype=np.uint8)
    images[:, 0, : len(sizes), 1] = classes
    return images


def write_npz(path, images, key="images", compressed=False):
    (np.savez_compressed if compressed else np.savez)(path, **{key: images})
    return path


def entry_of(tmp_path, name="mpi3d_toy"):
    return tmp_path / "cache" / name / gtf.ENTRY_KEY


def leftovers(tmp_path, name="mpi3d_toy"):
    root = tmp_path / "cache" / name
    return sorted(p.name for p in root.glob(".*building*")) if root.is_dir() else []


def convert(path, tmp_path, dataset=mpi3d.TOY, layouts=LAYOUTS, **kwargs):
    kwargs.setdefault("progress", False)
    return gtf.import_file(dataset, path, entry_of(tmp_path, dataset.name), layouts=layouts, **kwargs)


@pytest.fixture
def small_registry(monkeypatch):
    """The registered MPI3D sets on the small grids, for the CLI and load()."""
    for dataset in (mpi3d.TOY, mpi3d.REALISTIC, mpi3d.REAL):
        monkeypatch.setitem(gtf.DATASETS, dataset.name, dataclasses.replace(dataset, layouts=LAYOUTS))
    monkeypatch.setitem(gtf.DATASETS, "mpi3d_complex", dataclasses.replace(mpi3d.COMPLEX, layouts=(SMALL_COMPLEX,)))


# ---------------------------------------------------------------------------------------------
# Conversion and the grid
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout, misleading_name",
    [(SMALL_6X6, "mpi3d_toy_4x4_old.npz"), (SMALL_4X4, "mpi3d_toy_6x6.npz")],
)
def test_the_grid_is_told_from_the_shape_not_the_name(tmp_path, rng, capsys, layout, misleading_name):
    images = tagged_images(rng, layout.factor_sizes)
    entry = convert(write_npz(tmp_path / misleading_name, images), tmp_path)
    meta = cache.read_meta(entry)
    assert meta["layout"] == layout.name and meta["factor_sizes"] == list(layout.factor_sizes)
    assert meta["images"] == layout.images
    assert meta["factor_values"][0] == list(layout.factor_values[0])  # the README's colour names of that release
    assert f"{misleading_name} holds {layout.images:,} images: {layout.description}" in capsys.readouterr().err
    assert np.array_equal(np.load(entry / "images.npy"), images.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("layout", [SMALL_6X6, SMALL_4X4])
def test_each_image_lands_at_the_index_the_readme_gives(tmp_path, rng, layout):
    images = tagged_images(rng, layout.factor_sizes)
    loaded = gtf.FileGroundTruth(convert(write_npz(tmp_path / "mpi3d_toy.npz", images), tmp_path))
    classes = readme_classes(layout.factor_sizes)
    assert np.array_equal(loaded.index_of(classes), np.arange(layout.images))
    shuffled = np.random.default_rng(0).permutation(classes)
    obs = loaded.sample_observations_from_factors(shuffled, np.random.default_rng(0))
    assert np.array_equal(np.rint(obs[:, 1, 0, :7] * 255).astype(np.int64), shuffled)
    # Channels first, rows and columns untouched: image [c, h, w] is the file's [h, w, c].
    index = loaded.index_of(shuffled)
    assert np.array_equal(obs, images[index].transpose(0, 3, 1, 2).astype(np.float32) / 255)


def test_conversion_streams_compressed_archives_in_chunks(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(gtf, "IMPORT_CHUNK", 5)  # not a divisor of 72: the last chunk is short
    images = tagged_images(rng, SMALL_6X6.factor_sizes)
    entry = convert(write_npz(tmp_path / "mpi3d_toy.npz", images, compressed=True), tmp_path)
    assert np.array_equal(np.load(entry / "images.npy"), images.transpose(0, 3, 1, 2))


def test_the_dataset_interface_and_the_nominal_factors(tmp_path, rng):
    from nsvae import metrics

    images = tagged_images(rng, SMALL_6X6.factor_sizes)
    loaded = gtf.FileGroundTruth(convert(write_npz(tmp_path / "mpi3d_toy.npz", images), tmp_path))
    assert loaded.name == "mpi3d_toy" and loaded.layout == "6x6"
    assert loaded.factor_names == mpi3d.FACTOR_NAMES and loaded.factor_sizes == SMALL_6X6.factor_sizes
    assert loaded.nominal_factors == ("object_color", "object_shape", "background_color")
    assert list(loaded.factor_values()[1]) == ["cone", "cube", "cylinder"]
    assert loaded.describe()["layout"] == "6x6"

    def represent(obs):
        return np.rint(obs[:, 1, 0, :7] * 255) + 0.01 * np.random.default_rng(2).standard_normal((obs.shape[0], 7))

    result = metrics.mig(loaded, represent, np.random.default_rng(3), num_train=300)
    # camera_height and background_color have one class on this grid: no entropy, no gap to score.
    assert result["score"] > 0.9


def test_mpi3d_complex_has_its_own_objects(tmp_path, rng):
    images = tagged_images(rng, SMALL_COMPLEX.factor_sizes)
    path = write_npz(tmp_path / "real3d_complicated_shapes_ordered.npz", images)
    entry = convert(path, tmp_path, dataset=mpi3d.COMPLEX, layouts=(SMALL_COMPLEX,))
    meta = cache.read_meta(entry)
    assert meta["factor_values"][1] == ["coffee-cup", "tennis-ball"] and meta["layout"] == "official"
    six = write_npz(tmp_path / "six.npz", tagged_images(rng, SMALL_6X6.factor_sizes))
    with pytest.raises(UserError, match=r"images has shape \(72, 64, 64, 3\), expected \(32, 64, 64, 3\)"):
        convert(six, tmp_path, dataset=mpi3d.COMPLEX, layouts=(SMALL_COMPLEX,))


def test_the_checksum_is_recorded_and_known_copies_are_named(tmp_path, rng):
    path = write_npz(tmp_path / "mpi3d_toy.npz", tagged_images(rng, SMALL_6X6.factor_sizes))
    md5 = gtf.md5_of(path, progress=False, label="")
    meta = cache.read_meta(convert(path, tmp_path, verify_checksum=True))  # an unknown copy is not refused
    assert meta["checksum"] == f"md5:{md5}" and meta["checksum_verified"] is False
    known = dataclasses.replace(mpi3d.TOY, known_md5={md5: "mpi3d_toy.npz of the 2019 release"})
    meta = cache.read_meta(convert(path, tmp_path, dataset=known, force=True))
    assert meta["checksum_verified"] is True and meta["checksum_known_as"] == "mpi3d_toy.npz of the 2019 release"


# ---------------------------------------------------------------------------------------------
# Files that are not what they claim
# ---------------------------------------------------------------------------------------------


def _raw_zip(path, member_bytes: bytes, name="images.npy"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, member_bytes)
    return path


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, i: write_npz(p, i, key="imgs"), r"missing array 'images' \(the file has imgs\)"),
        (lambda p, i: write_npz(p, i.astype(np.float32)), "images is float32, expected uint8"),
        (lambda p, i: write_npz(p, np.asfortranarray(i)), "images is Fortran-ordered uint8"),
        (lambda p, i: write_npz(p, i[:-1]), r"images has shape \(71, 64, 64, 3\), expected \(72, 64, 64, 3\) "),
        (lambda p, i: write_npz(p, i.transpose(0, 3, 1, 2)), r"images has shape \(72, 3, 64, 64\)"),
        (lambda p, i: write_npz(p, i[..., 0]), r"images has shape \(72, 64, 64\)"),
        (lambda p, i: write_npz(p, i.reshape(3, 3, 2, 1, 1, 2, 2, 64, 64, 3)), r"images has shape \(3, 3, 2"),
        (lambda p, i: _raw_zip(p, b"not an array"), "images.npy is not a valid .npy array"),
        (lambda p, i: _raw_zip(p, _npy_bytes(i)[: -64 * 64 * 3 * 5]), "ends early at image 67 of 72"),
        (lambda p, i: _raw_zip(p, _npy_bytes(i) + b"\0" * 10), "holds more bytes than its shape"),
    ],
)
def test_malformed_files_are_refused_and_leave_nothing(tmp_path, rng, make, message):
    path = make(tmp_path / "mpi3d_toy.npz", tagged_images(rng, SMALL_6X6.factor_sizes))
    with pytest.raises(UserError, match=message) as caught:
        convert(path, tmp_path)
    assert len(str(caught.value).splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_a_wrong_shape_names_both_published_grids(tmp_path, rng):
    path = write_npz(tmp_path / "mpi3d_toy.npz", tagged_images(rng, SMALL_6X6.factor_sizes)[:50])
    with pytest.raises(UserError) as caught:
        convert(path, tmp_path)
    assert f"({SMALL_6X6.images}, 64, 64, 3) ({SMALL_6X6.description})" in str(caught.value)
    assert f"({SMALL_4X4.images}, 64, 64, 3) ({SMALL_4X4.description})" in str(caught.value)


def test_truncated_file_is_refused(tmp_path, rng):
    path = write_npz(tmp_path / "full.npz", tagged_images(rng, SMALL_6X6.factor_sizes))
    cut = tmp_path / "mpi3d_toy.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="not a valid .npz file .truncated or corrupt zip"):
        convert(cut, tmp_path)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_a_damaged_byte_is_caught_by_the_zip_crc(tmp_path, rng):
    path = write_npz(tmp_path / "mpi3d_toy.npz", tagged_images(rng, SMALL_6X6.factor_sizes))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the stored pixels
    path.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="images.npy is damaged .*CRC.*download mpi3d_toy.npz again"):
        convert(path, tmp_path)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_missing_file_names_where_to_get_it(tmp_path):
    with pytest.raises(
        UserError, match="get mpi3d_real.npz from https://github.com/rr-learning/disentanglement_dataset"
    ):
        convert(tmp_path / "nope.npz", tmp_path, dataset=mpi3d.REAL)


# ---------------------------------------------------------------------------------------------
# The registry and the command line
# ---------------------------------------------------------------------------------------------


def test_cli_prepare_says_which_grid_and_lists_it(tmp_path, rng, small_registry, capsys):
    path = write_npz(tmp_path / "mpi3d_realistic.npz", tagged_images(rng, SMALL_4X4.factor_sizes))
    cache_dir = str(tmp_path / "cache")
    argv = ["data", "prepare", "mpi3d_realistic", "--from", str(path), "--cache-dir", cache_dir, "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "mpi3d_realistic: ready at" in out.out and "an older 4x4 copy" in out.err
    assert main(["data", "list", "--json", "--cache-dir", cache_dir]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}
    (row,) = rows["mpi3d_realistic"]["prepared"]
    assert row["layout"] == "4x4" and row["images"] == SMALL_4X4.images
    assert "github.com/rr-learning/disentanglement_dataset" in rows["mpi3d_toy"]["source_hint"]
    assert rows["mpi3d_toy"]["prepared"] == []
    loaded = data.load("mpi3d_realistic", cache_dir=cache_dir)
    assert loaded.factor_sizes == SMALL_4X4.factor_sizes and loaded.layout == "4x4"


def test_cli_refuses_a_bad_file_with_one_line_and_exit_2(tmp_path, rng, small_registry, capsys):
    path = write_npz(tmp_path / "mpi3d_toy.npz", tagged_images(rng, SMALL_6X6.factor_sizes), key="arr_0")
    code = main(["data", "prepare", "mpi3d_toy", "--from", str(path), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing array 'images'" in err and len(err.splitlines()) == 1
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_not_prepared_says_where_the_file_comes_from(tmp_path):
    with pytest.raises(
        UserError, match="nsvae data prepare mpi3d_complex --from real3d_complicated_shapes_ordered.npz"
    ):
        data.load("mpi3d_complex", cache_dir=tmp_path / "cache")


def test_every_mpi3d_name_can_be_a_training_dataset():
    from nsvae.config import apply_overrides, load_config

    for name in ("mpi3d_toy", "mpi3d_realistic", "mpi3d_real", "mpi3d_complex", "shapes3d"):
        config = apply_overrides(load_config("quick-vae"), {"data.dataset": name, "model.channels": 3})
        assert config.data.dataset == name and config.data.load_options() == {"origin": "auto"}


@pytest.mark.parametrize(
    "name, nominal",
    [
        ("shapes3d", ("shape",)),
        ("mpi3d_toy", ("object_color", "object_shape", "background_color")),
        ("mpi3d_realistic", ("object_color", "object_shape", "background_color")),
        ("mpi3d_real", ("object_color", "object_shape", "background_color")),
        ("mpi3d_complex", ("object_color", "object_shape", "background_color")),
    ],
)
def test_declared_factors_need_no_file(name, nominal):
    from nsvae.metrics.chen_mig import resolve_excluded

    declared = gtf.declared(name)
    assert declared.name == name and declared.nominal_factors == nominal
    assert resolve_excluded(declared, "auto") == nominal  # Chen's MIG leaves them out by default
    assert len(declared) == int(np.prod(declared.factor_sizes)) and declared.observation_shape == (3, 64, 64)
    with pytest.raises(UserError, match=f"{name} is not prepared"):
        declared.observations_at([0])
