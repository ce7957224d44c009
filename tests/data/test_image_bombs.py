"""Decompression bombs and oversized members in an image source are refused before they are read (issue 29, case 6:
a 4.2 MB zip with a 4 GiB member reached 8.5 GB of memory before its one-line error)."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from nsvae.data import image_sources
from nsvae.data.image_sources import MemberError, open_source
from nsvae.data.image_transforms import decode_chunk
from nsvae.data.images import Preprocessing


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(image_sources, "MAX_MEMBER_BYTES", 2**20)  # 1 MiB, so the test files stay small


def _read(path) -> dict:
    return dict(open_source(path).iter_bytes())


def test_a_zip_member_that_expands_too_far_is_not_read(tmp_path, monkeypatch):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", _png())
        archive.writestr("face.png", bytes(3 * 2**20))  # 3 MiB of zeros: stored in a few KB
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    got = _read(path)
    assert got["a.png"] == _png()
    assert isinstance(got["face.png"], MemberError) and "decompression bomb" in got["face.png"].reason
    assert "expands" in got["face.png"].reason and "face.png" not in opened


def test_members_larger_than_an_image_may_be_are_not_read(tmp_path, small_cap):
    big = bytes(np.random.default_rng(0).integers(0, 256, 2 * 2**20, dtype=np.uint8))  # incompressible: no ratio
    zpath = tmp_path / "big.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("a.png", _png())
        archive.writestr("huge.png", big)
    tpath = tmp_path / "big.tar.gz"
    with tarfile.open(tpath, "w:gz") as archive:
        for name, payload in (("a.png", _png()), ("huge.png", big)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png())
    (folder / "huge.png").write_bytes(big)
    for path in (zpath, tpath, folder):
        got = _read(path)
        assert got["a.png"] == _png(), path
        assert isinstance(got["huge.png"], MemberError), path
        assert "2 MiB uncompressed, more than the 1 MiB an image file may have" in got["huge.png"].reason


def test_an_undecodable_member_is_named_not_its_buffer():
    ((index, array, error),) = decode_chunk([(0, "face.png", b"not an image", None)], Preprocessing())
    assert array is None and "'face.png'" in error and "BytesIO" not in error
