"""Cache entries carry checksums (issue 16, point 6): `data prepare` verifies them in full, a cheap check runs
before every use, and a damaged cache is drawn again (generated) or reported with the command that fixes it."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from nsvae import data
from nsvae.cli import main
from nsvae.data import cache, dsprites
from nsvae.data import dsprites as dsprites_module
from nsvae.errors import NsvaeWarning, UserError


def _small_entry(tmp_path):
    entry = tmp_path / "ds" / "key"
    with cache.entry_lock(entry), cache.building(entry, {"key": "key"}) as tmp:
        np.save(tmp / "images.npy", np.arange(10_000, dtype=np.uint8).reshape(100, 100))
    return entry


def _poke(path, offset: int, keep_mtime: bool = False) -> None:
    st = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_entry_records_its_checksums_and_verifies(tmp_path):
    entry = _small_entry(tmp_path)
    meta = cache.read_meta(entry)
    assert set(meta["checksums"]) == {"images.npy"} and meta["checksums"]["images.npy"]["bytes"] > 10_000
    assert cache.verify_entry(entry) == "" and cache.verify_entry(entry, full=True) == ""


def test_changed_bytes_are_caught_by_the_cheap_check_when_the_file_was_written(tmp_path):
    entry = _small_entry(tmp_path)
    _poke(entry / "images.npy", 5000)
    assert "SHA-256" in cache.verify_entry(entry)


def test_bit_rot_that_keeps_the_modification_time_is_caught_by_the_full_check(tmp_path):
    entry = _small_entry(tmp_path)
    _poke(entry / "images.npy", 5000, keep_mtime=True)
    assert cache.verify_entry(entry) == ""  # cheap: unchanged stamp
    assert "SHA-256" in cache.verify_entry(entry, full=True)


@pytest.mark.parametrize("damage", ["truncate", "header", "pickle"])
def test_a_damaged_file_is_caught_by_the_cheap_check(tmp_path, damage):
    entry = _small_entry(tmp_path)
    path = entry / "images.npy"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "header":
        _poke(path, 3)
    else:
        np.save(path, np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    assert cache.verify_entry(entry) != ""


@pytest.fixture
def copy_of_dsprites(dsprites, tmp_path, monkeypatch):
    """A private copy of the session's generated dSprites cache (it may be damaged); drawing it again copies the
    session's images instead of running the generator."""
    root = tmp_path / "cache"
    shutil.copytree(dsprites.entry, root / "dsprites" / dsprites.entry.name)
    monkeypatch.setattr(dsprites_module, "generate_into", _copy_from(dsprites))
    return root


def _copy_from(session):
    def generate_into(images_path, progress=True, workers=None):
        shutil.copyfile(session.entry / "images.npy", images_path)

    return generate_into


@pytest.mark.parametrize("damage", ["header", "bytes"])
def test_data_prepare_verifies_and_draws_a_damaged_generated_cache_again(copy_of_dsprites, damage, capsys):
    entry = copy_of_dsprites / "dsprites" / dsprites.GENERATED_KEY
    if damage == "header":
        _poke(entry / "images.npy", 2)
    else:
        _poke(entry / "images.npy", 10_000_000, keep_mtime=True)  # only the full check sees it
    assert main(["data", "prepare", "dsprites", "--cache-dir", str(copy_of_dsprites), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "is damaged" in captured.err and "drawing it again" in captured.err and "ready" in captured.out
    assert cache.verify_entry(entry, full=True) == ""


def test_the_check_before_training_draws_a_changed_generated_cache_again(copy_of_dsprites):
    entry = copy_of_dsprites / "dsprites" / dsprites.GENERATED_KEY
    _poke(entry / "images.npy", 20_000_000)
    with pytest.warns(NsvaeWarning, match="is damaged"):
        loaded = data.load("dsprites", cache_dir=copy_of_dsprites, progress=False)
    assert loaded.packed.shape == dsprites.PACKED_SHAPE
    assert cache.verify_entry(entry, full=True) == ""


def test_a_damaged_official_cache_is_reported_with_the_command_that_fixes_it(copy_of_dsprites, capsys):
    generated = copy_of_dsprites / "dsprites" / dsprites.GENERATED_KEY
    official = generated.parent / dsprites.OFFICIAL_KEY
    shutil.copytree(generated, official)
    meta = json.loads((official / "meta.json").read_text())
    meta.update(key="official", source="official", file="/data/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
    (official / "meta.json").write_text(json.dumps(meta))
    assert data.load("dsprites", cache_dir=copy_of_dsprites).source == "official"
    _poke(official / "images.npy", 1)
    with pytest.raises(UserError, match="--from /data/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz --force"):
        data.load("dsprites", cache_dir=copy_of_dsprites)
    assert main(["data", "prepare", "dsprites", "--origin", "official", "--cache-dir", str(copy_of_dsprites)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is damaged" in err and "--force" in err


def test_a_damaged_image_cache_is_reported_with_the_command_that_fixes_it(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    entry = data.prepare("folder", cache_dir=tmp_path / "cache", source=folder, progress=False)
    assert len(data.load("folder", cache_dir=tmp_path / "cache")) == 8
    npy = sorted(entry.glob("*.npy"))[0]
    _poke(npy, npy.stat().st_size - 5)
    with pytest.raises(UserError, match="is damaged .* --force"):
        data.load("folder", cache_dir=tmp_path / "cache")
