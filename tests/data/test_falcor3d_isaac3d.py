"""Falcor3D and Isaac3D from the user's copy of NVIDIA's 128x128 release: folder or zip, grid, filter, refusals, CLI.

Every release is written here in the official layout (``<Set>3D_down128/``
holding ``images/NNNNNN.png``, 128x128 RGB PNGs named by their six-digit
index, and the labels array, a float64 ``.npy`` of shape ``(N, k)`` with
values in [0, 1], under the release's name ``train-rec.labels`` or
``labels.npy``), on a reduced grid with the same factors: the official
releases are 3.7 and 13 GB.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from nsvae import data
from nsvae.cli import main
from nsvae.data import cache, falcor3d, isaac3d, png_release
from nsvae.data import ground_truth_files as gtf
from nsvae.errors import UserError

#: Test grids, 48 images each, every factor of the official grid kept (some with one class).
SMALL_SIZES = {"falcor3d": (2, 3, 1, 2, 1, 2, 2), "isaac3d": (3, 2, 1, 2, 1, 1, 2, 1, 2)}
MODULES = {"falcor3d": falcor3d, "isaac3d": isaac3d}
NAMES = sorted(MODULES)


def small_layout(name):
    return MODULES[name].LAYOUT.shrunk(SMALL_SIZES[name])


def grid_classes(sizes) -> np.ndarray:
    """Row i: the factor classes of cell i, row-major (the README's ``index = lighting_intensity * 46656 + ...``)."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)


def label_values(name, classes) -> np.ndarray:
    """The release's labels: class c of a factor with m official classes is c / (m - 1) ("uniformly in [0, 1]")."""
    official = np.array(MODULES[name].FACTOR_SIZES, dtype=np.float64)
    return classes / (official - 1)


def tagged_png(rng, classes) -> Image.Image:
    """A 128x128 RGB image: 16x16 blocks, 8 a row from the top, spell the classes (red = 40 c + 20); noise below."""
    pixels = np.zeros((128, 128, 3), dtype=np.uint8)
    for f, c in enumerate(classes):
        row, column = divmod(f, 8)
        pixels[16 * row : 16 * row + 16, 16 * column : 16 * column + 16, 0] = 40 * c + 20
    pixels[32:] = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def tags(images: np.ndarray, k: int) -> np.ndarray:
    """The classes spelled by 64x64 images (channels first or last): the centre of each reduced block.

    The 2x reduction's kernel reaches 2 output pixels, so the centre of an 8x8 reduced block is its value alone.
    """
    red = images[:, 0] if images.shape[1] == 3 else images[..., 0]
    rows, columns = np.divmod(np.arange(k), 8)
    return np.rint((red[:, 8 * rows + 4, 8 * columns + 4].astype(np.float64) - 20) / 40).astype(np.int64)


@dataclasses.dataclass
class Release:
    """A small release written to disk: its folder, the classes of each image file, the PNGs' pixels."""

    name: str
    folder: object
    classes: np.ndarray
    pixels: np.ndarray

    @property
    def module(self):
        return MODULES[self.name]

    @property
    def labels_path(self):
        return self.folder / self.module.RELEASE.labels_file

    def image_path(self, index):
        return self.folder / "images" / f"{index:06d}.png"


def write_release(root, name, rng, order=None, labels_dtype=np.float64) -> Release:
    """The release's folder under ``root``; image file i shows (and its labels row i names) cell ``order[i]``."""
    module = MODULES[name]
    sizes = SMALL_SIZES[name]
    classes = grid_classes(sizes)
    if order is not None:
        classes = classes[order]
    folder = root / module.RELEASE.folder
    (folder / "images").mkdir(parents=True)
    pixels = []
    for i, row in enumerate(classes):
        image = tagged_png(rng, row)
        image.save(folder / "images" / f"{i:06d}.png")
        pixels.append(np.asarray(image))
    with open(folder / module.RELEASE.labels_file, "wb") as handle:  # np.save(name) would append ".npy"
        np.save(handle, label_values(name, classes).astype(labels_dtype))
    return Release(name, folder, classes, np.stack(pixels))


def zip_release(release: Release, path, compression=zipfile.ZIP_DEFLATED):
    """The folder as the publishers' zip holds it: members ``<Set>3D_down128/...``."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for file in sorted(release.folder.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(release.folder.parent).as_posix())
    return path


def entry_of(tmp_path, name):
    return tmp_path / "cache" / name / gtf.ENTRY_KEY


def leftovers(tmp_path, name):
    root = tmp_path / "cache" / name
    return sorted(p.name for p in root.glob(".*building*")) if root.is_dir() else []


def convert(source, tmp_path, name, **kwargs):
    kwargs.setdefault("progress", False)
    module = MODULES[name]
    return gtf.import_file(module.DATASET, source, entry_of(tmp_path, name), layouts=(small_layout(name),), **kwargs)


@pytest.fixture
def small_registry(monkeypatch):
    """The registered sets on the small grids, for the CLI and load()."""
    for name, module in MODULES.items():
        monkeypatch.setitem(gtf.DATASETS, name, dataclasses.replace(module.DATASET, layouts=(small_layout(name),)))


def keys_cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(
        x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0)
    )


def tf_resize_matrix(n_in=128, n_out=64) -> np.ndarray:
    """TensorFlow's antialiased resampling weights (scale_and_translate_op.cc, ComputeSpansCore) for Keys' cubic."""
    inverse = n_in / n_out
    stretch = max(inverse, 1.0)
    weights = np.zeros((n_out, n_in))
    for x in range(n_out):
        sample = (x + 0.5) * inverse
        start = max(int(np.ceil(sample - 2 * stretch - 0.5)), 0)
        end = min(int(np.floor(sample + 2 * stretch - 0.5)), n_in - 1) + 1
        w = keys_cubic((np.arange(start, end) + 0.5 - sample) / stretch)
        weights[x, start:end] = w / w.sum()
    return weights


def tf_bicubic_antialias(pixels: np.ndarray) -> np.ndarray:
    """``tf.image.resize(x, [64, 64], 'bicubic', antialias=True)`` of uint8 ``(n, 128, 128, 3)``, channels first."""
    w = tf_resize_matrix()
    return w @ pixels.transpose(0, 3, 1, 2).astype(np.float64) @ w.T


# ---------------------------------------------------------------------------------------------
# Conversion, the grid and the filter
# ---------------------------------------------------------------------------------------------


def test_the_filter_is_tensorflows_antialiased_bicubic_rounded(rng):
    pixels = rng.integers(0, 256, size=(6, 128, 128, 3), dtype=np.uint8)
    pixels[:3, 40:90, 30:70] = 255  # hard edges: the kernel's negative lobes overshoot, then are clipped
    reference = np.clip(tf_bicubic_antialias(pixels), 0, 255)
    ours = np.stack([png_release.reduce_to_64(image) for image in pixels]).transpose(0, 3, 1, 2)
    clear = np.abs(reference - np.floor(reference) - 0.5) > 1e-3  # not within float error of a rounding tie
    assert clear.mean() > 0.99
    assert np.array_equal(ours[clear], np.rint(reference[clear]))


@pytest.mark.parametrize("name", NAMES)
def test_the_official_order_is_stored_as_is_with_the_papers_filter(tmp_path, rng, name, capsys):
    release = write_release(tmp_path, name, rng)
    entry = convert(release.folder, tmp_path, name)
    stored = np.load(entry / "images.npy")
    layout = small_layout(name)
    assert stored.shape == (layout.images, 3, 64, 64)
    # Image i is cell i, reduced as the latent quantisation / Tripod loaders reduce it, up to rounding to uint8.
    reference = np.clip(tf_bicubic_antialias(release.pixels), 0, 255)
    assert np.abs(stored - reference).max() <= 0.5 + 1e-3
    assert np.array_equal(tags(stored, len(layout.factor_sizes)), grid_classes(layout.factor_sizes))
    meta = cache.read_meta(entry)
    assert meta["dataset"] == name and meta["images"] == layout.images and meta["layout"] == "official"
    assert meta["source"] == str(release.folder.resolve()) and meta["checksum"] is None
    assert meta["labels_file"]["md5"] == gtf.md5_of(release.labels_path, False, "")
    official = MODULES[name].FACTOR_SIZES
    for got, size, official_size in zip(meta["factor_values"], layout.factor_sizes, official, strict=True):
        assert got == [c / (official_size - 1) for c in range(size)]
    assert cache.verify_entry(entry, full=True) == ""
    assert "elsewhere than their file number" not in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_each_image_lands_at_the_cell_its_labels_name(tmp_path, rng, name, capsys):
    layout = small_layout(name)
    order = np.random.default_rng(7).permutation(layout.images)  # file i shows, and is labelled as, cell order[i]
    release = write_release(tmp_path, name, rng, order=order)
    loaded = gtf.FileGroundTruth(convert(release.folder, tmp_path, name))
    assert "the labels place" in capsys.readouterr().err
    k = len(layout.factor_sizes)
    # Every image sits at the index of the classes its own pixels spell, and those are its labels' classes.
    assert np.array_equal(tags(loaded.images, k), grid_classes(layout.factor_sizes))
    obs = loaded.sample_observations_from_factors(release.classes, np.random.default_rng(0))
    assert np.array_equal(tags(np.rint(obs * 255), k), release.classes)
    reduced = np.clip(np.rint(tf_bicubic_antialias(release.pixels)), 0, 255)
    assert np.abs(loaded.images[loaded.index_of(release.classes)] - reduced).max() <= 1
    assert np.array_equal(loaded.index_of(release.classes), order)


@pytest.mark.parametrize("name", NAMES)
def test_the_zip_gives_the_same_entry_as_the_folder(tmp_path, rng, name):
    release = write_release(tmp_path / "release", name, rng)
    folder_entry = convert(release.folder, tmp_path / "from-folder", name)
    path = zip_release(release, tmp_path / f"{name}.zip")
    entry = convert(path, tmp_path, name)
    assert np.array_equal(np.load(entry / "images.npy"), np.load(folder_entry / "images.npy"))
    meta = cache.read_meta(entry)
    assert meta["source"] == str(path.resolve()) and meta["file"]["md5"] == gtf.md5_of(path, False, "")


@pytest.mark.parametrize("given", ["parent", "folder", "labels"])
def test_the_folder_its_parent_or_its_labels_file_name_the_release(tmp_path, rng, given):
    release = write_release(tmp_path, "isaac3d", rng)
    source = {"parent": tmp_path, "folder": release.folder, "labels": release.labels_path}[given]
    meta = cache.read_meta(convert(source, tmp_path, "isaac3d"))
    assert meta["source"] == str(source.resolve()) and meta["images"] == 48


def test_chunks_that_do_not_divide_the_batches_and_the_worker_pool(tmp_path, rng, monkeypatch):
    release = write_release(tmp_path, "falcor3d", rng)
    inline = np.load(convert(release.folder, tmp_path / "inline", "falcor3d") / "images.npy")
    monkeypatch.setattr(gtf, "IMPORT_CHUNK", 7)
    monkeypatch.setattr(png_release, "DECODE_BATCH", 5)
    monkeypatch.setattr(png_release, "POOL_FROM_IMAGES", 1)  # decode in worker processes even this small set
    assert np.array_equal(np.load(convert(release.folder, tmp_path, "falcor3d") / "images.npy"), inline)


def test_float32_labels_and_rgba_pngs_are_read(tmp_path, rng):
    release = write_release(tmp_path, "falcor3d", rng, labels_dtype=np.float32)
    Image.open(release.image_path(5)).convert("RGBA").save(release.image_path(5))
    stored = np.load(convert(release.folder, tmp_path, "falcor3d") / "images.npy")
    reference = np.clip(tf_bicubic_antialias(release.pixels[5:6]), 0, 255)
    assert np.abs(stored[5:6] - reference).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_the_dataset_interface_and_a_metric(tmp_path, rng, name):
    from nsvae import metrics

    release = write_release(tmp_path, name, rng)
    loaded = gtf.FileGroundTruth(convert(release.folder, tmp_path, name))
    module = MODULES[name]
    layout = small_layout(name)
    k = len(layout.factor_sizes)
    assert loaded.name == name and loaded.factor_names == module.FACTOR_NAMES
    assert loaded.factor_sizes == layout.factor_sizes and loaded.observation_shape == (3, 64, 64)
    assert loaded.nominal_factors == module.DATASET.nominal_factors

    def represent(obs):  # a perfect code: the classes spelled in the pixels, with a little noise
        return tags(np.rint(obs * 255), k) + 0.01 * np.random.default_rng(2).standard_normal((obs.shape[0], k))

    result = metrics.mig(loaded, represent, np.random.default_rng(3), num_train=300)
    # Factors with one class on this grid have no entropy and no gap to score.
    assert result["score"] > 0.9 and set(result["per_factor"]) == set(module.FACTOR_NAMES)


# ---------------------------------------------------------------------------------------------
# Releases that are not what they claim: one line naming the file, nothing cached
# ---------------------------------------------------------------------------------------------


def _png_bytes(image: Image.Image, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _small_image(r):
    r.image_path(3).write_bytes(_png_bytes(Image.new("RGB", (64, 64))))
    return r"images/000003\.png is 64x64, expected 128x128"


def _grey_image(r):
    r.image_path(3).write_bytes(_png_bytes(Image.new("L", (128, 128))))
    return r"images/000003\.png has mode L, expected RGB"


def _jpeg_image(r):
    r.image_path(3).write_bytes(_png_bytes(Image.new("RGB", (128, 128)), "JPEG"))
    return r"images/000003\.png is JPEG, not PNG"


def _truncated_image(r):
    blob = r.image_path(40).read_bytes()
    r.image_path(40).write_bytes(blob[: len(blob) // 2])
    return r"images/000040\.png is not a readable PNG \(.*truncated"


def _missing_image(r):
    r.image_path(17).unlink()
    return r"images/000017\.png is missing \(1 of the 48 images"


def _extra_image(r):
    r.image_path(48).write_bytes(r.image_path(0).read_bytes())
    return r"images/000048\.png has no row in train-rec\.labels \(48 rows; 1 numbered PNGs beyond them\)"


def _labels(r, labels):
    with open(r.labels_path, "wb") as handle:
        np.save(handle, labels)


def _labels_wrong_shape(r):
    _labels(r, np.load(r.labels_path)[:, :-1])
    return r"labels have shape \(48, \d\), expected \(48, \d\)"


def _labels_too_few_rows(r):
    _labels(r, np.load(r.labels_path)[:-1])
    return r"labels have shape \(47, \d\), expected \(48, \d\)"


def _labels_off_grid(r):
    labels = np.load(r.labels_path)
    labels[10, 0] = 0.123  # a value no class has
    _labels(r, labels)
    return r"labels do not match the .* grid: \w+ takes 3 distinct values, expected 2"


def _labels_twice(r):
    labels = np.load(r.labels_path)
    labels[1] = labels[0]  # cell 1 has no image, cell 0 two
    _labels(r, labels)
    return r"labels do not hold the .* grid once: 000000\.png and 000001\.png have the same labels, and 1 of the 48 "


def _labels_nan(r):
    labels = np.load(r.labels_path)
    labels[2, 1] = np.nan
    _labels(r, labels)
    return "NaN or infinite"


def _labels_text(r):
    _labels(r, np.array([["a"] * 7] * 48))
    return "labels have dtype <U1, expected numbers"


def _labels_pickled(r):
    r.labels_path.write_bytes(b"\x93NUMPY" + b"\x01\x00" + b"garbage")
    return r"train-rec\.labels is not a readable \.npy array"


def _no_images_folder(r):
    for path in sorted((r.folder / "images").iterdir()):
        path.unlink()
    (r.folder / "images").rmdir()
    return r"images is missing: Falcor3D_down128 holds the PNGs in images/"


@pytest.mark.parametrize(
    "damage",
    [
        _small_image,
        _grey_image,
        _jpeg_image,
        _truncated_image,
        _missing_image,
        _extra_image,
        _labels_wrong_shape,
        _labels_too_few_rows,
        _labels_off_grid,
        _labels_twice,
        _labels_nan,
        _labels_text,
        _labels_pickled,
        _no_images_folder,
    ],
)
def test_a_damaged_folder_is_refused_in_one_line_and_leaves_nothing(tmp_path, rng, damage):
    release = write_release(tmp_path, "falcor3d", rng)
    message = damage(release)
    with pytest.raises(UserError, match=message) as caught:
        convert(release.folder, tmp_path, "falcor3d")
    assert len(str(caught.value).splitlines()) == 1
    assert not entry_of(tmp_path, "falcor3d").exists() and leftovers(tmp_path, "falcor3d") == []


@pytest.mark.parametrize("given", ["labels", "other"])
def test_a_file_that_is_neither_the_zip_nor_the_labels_is_refused(tmp_path, rng, given):
    release = write_release(tmp_path, "falcor3d", rng)
    path = release.labels_path if given == "labels" else tmp_path / "Falcor3D_128x128.rar"
    path.write_bytes(b"Rar!\x1a\x07\x00 not an array nor a zip")
    with pytest.raises(
        UserError, match=r"is neither the release's zip nor its labels file \(train-rec\.labels, a \.npy"
    ):
        convert(path, tmp_path, "falcor3d")
    assert not entry_of(tmp_path, "falcor3d").exists() and leftovers(tmp_path, "falcor3d") == []


def test_a_folder_without_the_labels_says_what_to_give(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UserError, match="holds neither labels.npy nor Isaac3D_down128/labels.npy; give the folder"):
        convert(tmp_path / "elsewhere", tmp_path, "isaac3d")


def test_missing_source_names_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match="does not exist; get Isaac3D_down128 from https://github.com/NVlabs/"):
        convert(tmp_path / "nope", tmp_path, "isaac3d")


def _rewrite_zip(path, release, replace):
    """The release's zip with member ``name`` -> ``replace(name, data)`` (None drops it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(release.folder.rglob("*")):
            if file.is_file():
                name = file.relative_to(release.folder.parent).as_posix()
                data = replace(name, file.read_bytes())
                if data is not None:
                    archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "replace, message",
    [
        (
            lambda n, d: None if n.endswith(".labels") else d,
            r"expected one Falcor3D_down128/train-rec.labels \(found none",
        ),
        (lambda n, d: None if n.endswith("000009.png") else d, r"Falcor3D_down128/images/000009\.png is missing"),
        (
            lambda n, d: b"\0" * (2 << 20) if n.endswith("000004.png") else d,
            r"000004\.png: expands .* decompression bomb",
        ),
        (lambda n, d: d[: len(d) // 3] if n.endswith("000004.png") else d, r"000004\.png is not a readable PNG"),
    ],
)
def test_a_damaged_zip_is_refused_in_one_line_and_leaves_nothing(tmp_path, rng, replace, message):
    release = write_release(tmp_path / "release", "falcor3d", rng)
    path = _rewrite_zip(tmp_path / "falcor3d.zip", release, replace)
    with pytest.raises(UserError, match=message) as caught:
        convert(path, tmp_path, "falcor3d")
    assert len(str(caught.value).splitlines()) == 1
    assert not entry_of(tmp_path, "falcor3d").exists() and leftovers(tmp_path, "falcor3d") == []


def test_a_truncated_or_corrupted_zip_is_refused(tmp_path, rng):
    release = write_release(tmp_path / "release", "falcor3d", rng)
    path = zip_release(release, tmp_path / "whole.zip", compression=zipfile.ZIP_STORED)
    whole = path.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UserError, match="cut.zip is not a complete zip archive"):
        convert(cut, tmp_path, "falcor3d")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("Falcor3D_down128/images/000020.png")
    data_start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    flipped = bytearray(whole)
    flipped[data_start + 100] ^= 0xFF  # one byte of a stored PNG: the zip's CRC-32 catches it
    (tmp_path / "flipped.zip").write_bytes(bytes(flipped))
    with pytest.raises(UserError, match=r"flipped.zip: Falcor3D_down128/images/000020\.png is damaged .*CRC"):
        convert(tmp_path / "flipped.zip", tmp_path, "falcor3d")
    assert not entry_of(tmp_path, "falcor3d").exists() and leftovers(tmp_path, "falcor3d") == []


# ---------------------------------------------------------------------------------------------
# The registry and the command line
# ---------------------------------------------------------------------------------------------


def test_cli_prepares_a_folder_lists_it_and_reuses_it(tmp_path, rng, small_registry, capsys, monkeypatch):
    release = write_release(tmp_path, "falcor3d", rng)
    cache_dir = str(tmp_path / "cache")
    argv = ["data", "prepare", "falcor3d", "--from", str(release.folder), "--cache-dir", cache_dir, "--no-progress"]
    assert main(argv) == 0
    assert "falcor3d: ready at" in capsys.readouterr().out
    assert main(["data", "list", "--json", "--cache-dir", cache_dir]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}
    assert "github.com/NVlabs/High-res-disentanglement-datasets" in rows["falcor3d"]["source_hint"]
    assert "drive.google.com" in rows["isaac3d"]["source_hint"] and rows["isaac3d"]["prepared"] == []
    (row,) = rows["falcor3d"]["prepared"]
    assert row["images"] == 48 and row["source"] == str(release.folder.resolve())
    loaded = data.load("falcor3d", cache_dir=cache_dir)
    assert loaded.factor_sizes == SMALL_SIZES["falcor3d"]
    picture = tmp_path / "falcor3d.png"
    assert main(["data", "show", "falcor3d", "-o", str(picture), "--cache-dir", cache_dir]) == 0
    assert picture.is_file()

    def no_reading(*args):
        raise AssertionError("the release was read again")

    with monkeypatch.context() as patched:
        patched.setattr(gtf, "_convert", no_reading)  # the same folder again: the entry is reused
        assert main(argv) == 0
        assert data.load("falcor3d", cache_dir=cache_dir, source=release.folder).entry == entry_of(tmp_path, "falcor3d")
    release.image_path(30).unlink()  # the folder changed: it is read again, and refused
    with pytest.raises(UserError, match=r"images/000030\.png is missing"):
        data.load("falcor3d", cache_dir=cache_dir, source=release.folder)


def test_cli_refuses_a_bad_release_with_one_line_and_exit_2(tmp_path, rng, small_registry, capsys):
    release = write_release(tmp_path, "isaac3d", rng)
    release.image_path(0).unlink()
    path = zip_release(release, tmp_path / "isaac3d.zip")
    code = main(["data", "prepare", "isaac3d", "--from", str(path), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Isaac3D_down128/images/000000.png is missing" in err and len(err.splitlines()) == 1
    assert not entry_of(tmp_path, "isaac3d").exists() and leftovers(tmp_path, "isaac3d") == []


@pytest.mark.parametrize("name", NAMES)
def test_not_prepared_says_where_the_release_comes_from(tmp_path, name, capsys):
    folder = MODULES[name].RELEASE.folder
    with pytest.raises(UserError, match=f"nsvae data prepare {name} --from {folder}`.*NVlabs.*drive.google.com"):
        data.load(name, cache_dir=tmp_path / "cache")
    assert main(["data", "prepare", name, "--cache-dir", str(tmp_path / "cache")]) == 2
    assert (
        f"{name} needs --from {folder}: your copy of {folder} from https://github.com/NVlabs/"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize("name, nominal", [("falcor3d", ()), ("isaac3d", ("object_shape",))])
def test_declared_factors_need_no_release(name, nominal):
    from nsvae.metrics.chen_mig import resolve_excluded

    declared = gtf.declared(name)
    assert declared.nominal_factors == nominal and resolve_excluded(declared, "auto") == nominal
    assert declared.factor_sizes == MODULES[name].FACTOR_SIZES
    assert len(declared) == {"falcor3d": 233_280, "isaac3d": 737_280}[name]


@pytest.mark.parametrize("name", NAMES)
def test_each_can_be_a_training_dataset(tmp_path, rng, name, small_registry, monkeypatch):
    from nsvae.config import apply_overrides, load_config, open_dataset

    release = write_release(tmp_path, name, rng)
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    data.prepare(name, source=release.folder, progress=False)
    config = apply_overrides(load_config("quick-vae"), {"data.dataset": name, "model.channels": 3})
    dataset = open_dataset(config)
    assert dataset.name == name and len(dataset) == 48
