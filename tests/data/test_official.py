"""Importing the official dSprites file: structure checks, streaming conversion, refusals."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from nsvae import data
from nsvae.cli import main
from nsvae.data import dsprites as ds
from nsvae.data import dsprites_official as official
from nsvae.errors import UserError

#: A small layout with the official structure (the official sizes would be 3 GB of pixels).
SMALL_SIZES = (3, 2, 2, 4, 4)
N_SMALL = int(np.prod(SMALL_SIZES))


def official_classes(sizes=SMALL_SIZES) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")
    classes = np.stack([g.reshape(-1) for g in grids], axis=1)
    return np.concatenate([np.zeros((classes.shape[0], 1), dtype=np.int64), classes], axis=1)


def small_images(rng, n=N_SMALL) -> np.ndarray:
    return (rng.random((n, 64, 64)) < 0.3).astype(np.uint8)


def write_npz(path, imgs=None, classes=None, drop=(), extra=None):
    arrays = {"imgs": imgs, "latents_classes": classes, "latents_values": classes.astype(np.float64)}
    arrays.update(extra or {})
    arrays = {k: v for k, v in arrays.items() if k not in drop}
    np.savez_compressed(path, **arrays)
    return path


def entry_of(tmp_path):
    return tmp_path / "cache" / "dsprites" / ds.OFFICIAL_KEY


def leftovers(tmp_path):
    root = tmp_path / "cache" / "dsprites"
    return sorted(p.name for p in root.glob(".*building*")) if root.is_dir() else []


def test_small_official_layout_is_converted_exactly(tmp_path, rng):
    imgs = small_images(rng)
    path = write_npz(tmp_path / "small.npz", imgs, official_classes())
    entry = official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    packed = np.load(entry / "images.npy", mmap_mode="r")
    assert isinstance(packed, np.memmap)
    assert np.array_equal(np.unpackbits(packed, axis=-1), imgs)
    meta = data.cache.read_meta(entry)
    assert meta["source"] == "official" and meta["images"] == N_SMALL and meta["checksum_verified"] is False


def test_conversion_streams_in_chunks(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(ds, "IMPORT_CHUNK", 7)  # not a divisor of 192: the last chunk is short
    imgs = small_images(rng)
    path = write_npz(tmp_path / "small.npz", imgs, official_classes())
    entry = official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert np.array_equal(np.unpackbits(np.load(entry / "images.npy"), axis=-1), imgs)


def test_images_saved_as_0_255_are_accepted(tmp_path, rng):
    imgs = small_images(rng)
    path = write_npz(tmp_path / "small.npz", imgs * 255, official_classes())
    entry = official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert np.array_equal(np.unpackbits(np.load(entry / "images.npy"), axis=-1), imgs)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda imgs, classes: dict(drop=("imgs",)), "missing array 'imgs'"),
        (lambda imgs, classes: dict(drop=("latents_classes",)), "missing array 'latents_classes'"),
        (lambda imgs, classes: dict(imgs=imgs[:, :32]), "expected uint8 of shape"),
        (lambda imgs, classes: dict(imgs=imgs.astype(np.float32)), "float32"),
        (lambda imgs, classes: dict(imgs=imgs * 3), "binary"),
        (lambda imgs, classes: dict(classes=classes[::-1]), "official order"),
        (lambda imgs, classes: dict(classes=classes[:, 1:]), "latents_classes has shape"),
    ],
)
def test_malformed_files_are_refused_and_leave_nothing(tmp_path, rng, mutate, message):
    imgs, classes = small_images(rng), official_classes()
    kwargs = dict(imgs=imgs, classes=classes)
    kwargs.update(mutate(imgs, classes))
    path = write_npz(tmp_path / "bad.npz", **kwargs)
    with pytest.raises(UserError, match=message):
        official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert not entry_of(tmp_path).exists()
    assert leftovers(tmp_path) == []


def test_truncated_file_is_refused(tmp_path, rng):
    path = write_npz(tmp_path / "full.npz", small_images(rng), official_classes())
    blob = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        official.import_official(cut, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_truncated_imgs_member_is_refused(tmp_path, rng):
    # A zip whose imgs.npy member declares more images than it holds (a broken re-save).
    imgs = small_images(rng)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, imgs)
    raw = buffer.getvalue()[: -64 * 64 * 5]
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("imgs.npy", raw)
        classes = io.BytesIO()
        np.lib.format.write_array(classes, official_classes())
        archive.writestr("latents_classes.npy", classes.getvalue())
    with pytest.raises(UserError, match="ends early"):
        official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_not_an_archive_is_refused(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello")
    with pytest.raises(UserError, match="neither an .npz"):
        official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)


def test_wrong_checksum_is_refused_unless_forced(tmp_path, rng):
    path = write_npz(tmp_path / "copy.npz", small_images(rng), official_classes())
    with pytest.raises(UserError, match="not the official 7da33b31"):
        official.verify_checksum(path, force=False)
    forced = official.verify_checksum(path, force=True)
    assert forced["checksum_verified"] is False and forced["checksum"].startswith("md5:")


def test_cli_prepare_refuses_a_wrong_checksum_with_exit_2(tmp_path, rng, capsys):
    path = write_npz(tmp_path / "copy.npz", small_images(rng), official_classes())
    code = main(["data", "prepare", "dsprites", "--from", str(path), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert not entry_of(tmp_path).exists()


def test_cli_prepare_forced_with_a_small_file_reports_the_wrong_shape(tmp_path, rng, capsys):
    path = write_npz(tmp_path / "copy.npz", small_images(rng), official_classes())
    code = main(["data", "prepare", "dsprites", "--from", str(path), "--force", "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "latents_classes has shape (192, 6), expected (737280, 6)" in err
    assert not entry_of(tmp_path).exists() and leftovers(tmp_path) == []


def test_missing_file_names_where_to_get_it(tmp_path):
    with pytest.raises(UserError, match="github.com/deepmind/dsprites-dataset"):
        official.import_official(tmp_path / "nope.npz", entry_of(tmp_path))


def test_official_entry_is_preferred_once_prepared(tmp_path, monkeypatch):
    # Stand in a complete official entry (a copy of a packed file) and check load() picks it.
    cache_dir = tmp_path / "cache"
    official = cache_dir / "dsprites" / ds.OFFICIAL_KEY
    with data.cache.building(official, {"key": ds.OFFICIAL_KEY, "source": "official"}) as tmp:
        np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=ds.PACKED_SHAPE)
    loaded = data.load("dsprites", cache_dir=cache_dir)
    assert loaded.source == "official" and loaded.entry == official
    assert [row["source"] for row in ds.status(cache_dir)] == ["official"]


def test_origin_official_without_the_file_says_how(tmp_path):
    with pytest.raises(UserError, match="nsvae data prepare dsprites --from"):
        data.load("dsprites", cache_dir=tmp_path / "cache", origin="official")


def test_hdf5_twin_is_converted(tmp_path, rng):
    h5py = pytest.importorskip("h5py")
    imgs = small_images(rng)
    path = tmp_path / "small.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("imgs", data=imgs, chunks=(16, 64, 64))
        f.create_dataset("latents/classes", data=official_classes())
        f.create_dataset("latents/values", data=official_classes().astype(np.float64))
    entry = official.import_official(path, entry_of(tmp_path), factor_sizes=SMALL_SIZES, progress=False)
    assert np.array_equal(np.unpackbits(np.load(entry / "images.npy"), axis=-1), imgs)
