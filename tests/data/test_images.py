"""CelebA, 3D Chairs and folders of images: preparation, exact preprocessing, errors, caching.

Every fixture is made here in ``tmp_path``: a small zip with CelebA's layout,
a small tar with the 3D Chairs layout, and a folder with a broken image and a
non-image file. References are written out literally with Pillow calls.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nsvae.data import cache, registry
from nsvae.data import images as img
from nsvae.errors import UserError

LANCZOS = Image.Resampling.LANCZOS


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _face(rng: np.random.Generator, i: int) -> np.ndarray:
    """A 218x178 RGB picture: gradients, a bright block whose place depends on i, some noise."""
    y, x = np.mgrid[0:218, 0:178]
    out = np.stack([x * 255 // 177, y * 255 // 217, (x + y + 40 * i) % 256], axis=-1).astype(np.int16)
    out[30 + 10 * i : 90 + 10 * i, 20 + 8 * i : 70 + 8 * i] = 250
    out += rng.integers(-20, 21, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


CELEBA_NAMES = [f"img_align_celeba/{i:06d}.jpg" for i in range(1, 7)]


@pytest.fixture
def celeba_files(tmp_path):
    """``(zip path, {member name: jpeg bytes})``; members written out of order, plus a directory entry."""
    rng = np.random.default_rng(7)
    members = {name: _jpeg(_face(rng, i)) for i, name in enumerate(CELEBA_NAMES)}
    path = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("img_align_celeba/", b"")
        for name in [CELEBA_NAMES[i] for i in (3, 0, 5, 1, 4, 2)]:
            archive.writestr(name, members[name])
        archive.writestr("__MACOSX/img_align_celeba/._000001.jpg", b"not an image")
    return path, members


def _chair(chair: int, view: int) -> Image.Image:
    """A 600x600 render-like image: white background, a grey 'chair' that moves with the view."""
    array = np.full((600, 600, 3), 255, dtype=np.uint8)
    left = 150 + 40 * view
    array[200:450, left : left + 120] = (60 + 50 * chair, 90, 140)
    array[420:520, left : left + 20] = 30
    return Image.fromarray(array)


CHAIR_IDS = ["1a6f615e8b1b5ae4dbbc9440457e303e", "1b05971a4373c7d2463600025db2266"]
CHAIR_VIEWS = ["image_000_p020_t000_r096.png", "image_001_p020_t011_r096.png", "image_032_p030_t000_r096.png"]
CHAIR_NAMES = sorted(f"rendered_chairs/{c}/renders/{v}" for c in CHAIR_IDS for v in CHAIR_VIEWS)


def _write_chairs_tar(path: Path, mode: str) -> dict[str, bytes]:
    members = {}
    with tarfile.open(path, mode) as archive:
        info = tarfile.TarInfo("rendered_chairs/all_chair_names.mat")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"MATLB"))
        for c, chair in enumerate(reversed(CHAIR_IDS)):  # archive order differs from sorted order
            for v, view in enumerate(CHAIR_VIEWS):
                name = f"rendered_chairs/{chair}/renders/{view}"
                data = _png(_chair(1 - c, v))
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                members[name] = data
    return members


@pytest.fixture
def chairs_tar(tmp_path):
    path = tmp_path / "rendered_chairs.tar"
    return path, _write_chairs_tar(path, "w")


@pytest.fixture
def image_folder(tmp_path):
    """Four image files (one broken), a hidden image and a text file, in nested folders."""
    root = tmp_path / "pictures"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)).save(root / "a" / "one.png")
    Image.fromarray(rng.integers(0, 256, (90, 40), dtype=np.uint8)).save(root / "b" / "two.jpg", quality=95)
    rgba = rng.integers(0, 256, (70, 70, 4), dtype=np.uint8)
    rgba[:, :35, 3] = 0  # the left half fully transparent
    rgba[:, 35:, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(root / "three.PNG")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(range(200)))
    (root / "notes.txt").write_text("not an image\n")
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / ".hidden.png")
    return root


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------------
# Literal references
# ---------------------------------------------------------------------------------------------


def ref_celeba_original(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).resize((64, 78), LANCZOS)
    return np.asarray(image)[7:71].transpose(2, 0, 1)


def ref_celeba_center(data: bytes) -> np.ndarray:
    # 178x218, a centred 148 square: left (178-148)/2 = 15, top (218-148)/2 = 35
    image = Image.open(io.BytesIO(data)).convert("RGB").crop((15, 35, 163, 183)).resize((64, 64), LANCZOS)
    return np.asarray(image).transpose(2, 0, 1)


def ref_chair_gray(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("L").crop((100, 100, 500, 500)).resize((64, 64), LANCZOS)
    return np.asarray(image)[None]


def ref_folder(path: Path) -> np.ndarray:
    image = Image.open(path)
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    image = image.convert("RGB")
    w, h = image.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return np.asarray(image.crop(box).resize((64, 64), LANCZOS)).transpose(2, 0, 1)


def assert_nothing_cached(cache_dir: Path, name: str) -> None:
    """No entry and no temporary build directory (only the hidden lock file may remain)."""
    directory = cache_dir / name
    if directory.exists():
        left = sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))
        assert left == []


# ---------------------------------------------------------------------------------------------
# CelebA
# ---------------------------------------------------------------------------------------------


def test_celeba_original_crop_matches_the_authors_preprocessing(celeba_files, cache_dir):
    path, members = celeba_files
    data = img.load_images("celeba", cache_dir=cache_dir, source=path, progress=False)
    assert isinstance(data, img.CachedImages)
    assert data.name == "celeba"
    assert len(data) == 6 and data.observation_shape == (3, 64, 64)
    assert data.images.dtype == np.uint8 and data.images.shape == (6, 3, 64, 64)
    assert isinstance(data.images, np.memmap)
    assert data.names == CELEBA_NAMES  # sorted, not the archive's order; the __MACOSX fork is ignored
    expected = np.stack([ref_celeba_original(members[n]) for n in CELEBA_NAMES])
    np.testing.assert_array_equal(np.asarray(data.images), expected)
    obs = data.observations_at([5, 0, 5])
    assert obs.dtype == np.float32 and obs.shape == (3, 3, 64, 64)
    np.testing.assert_array_equal(obs, expected[[5, 0, 5]].astype(np.float32) / np.float32(255))
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    assert data.name_of(2) == "img_align_celeba/000003.jpg"
    assert data.path == cache_dir / "celeba" / "original-rgb-64"
    meta = data.meta
    assert meta["images"] == 6 and meta["skipped"] == [] and meta["preprocessing"]["crop"] == "original"
    assert meta["source"] == str(path.resolve()) and meta["ignored_files"] == 1
    assert "202,599" in meta["note"]
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        data.observations_at([6])


def test_celeba_center_crop_is_a_centred_148_square(celeba_files, cache_dir):
    path, members = celeba_files
    entry = img.prepare_images("celeba", cache_dir=cache_dir, source=path, crop="center", progress=False)
    assert entry.name == "center148-rgb-64"
    data = img.load_images("celeba", cache_dir=cache_dir, crop="center")
    expected = np.stack([ref_celeba_center(members[n]) for n in CELEBA_NAMES])
    np.testing.assert_array_equal(np.asarray(data.images), expected)
    # a different square size is a different entry
    other = img.prepare_images("celeba", cache_dir=cache_dir, source=path, crop="center", crop_size=140, progress=False)
    assert other.name == "center140-rgb-64"


def test_order_is_stable_across_workers_and_sources(celeba_files, cache_dir, tmp_path):
    path, members = celeba_files
    serial = img.load_images("celeba", cache_dir=cache_dir, source=path, progress=False, workers=0)
    pooled_path = img.prepare_images(
        "celeba", cache_dir=tmp_path / "other", source=path, progress=False, workers=2, force=True
    )
    pooled = img.CachedImages(pooled_path)
    np.testing.assert_array_equal(np.asarray(pooled.images), np.asarray(serial.images))
    # the extracted folder gives the same images, named relative to the folder
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    from_folder = img.load_images("celeba", cache_dir=tmp_path / "third", source=folder, progress=False)
    assert from_folder.names == CELEBA_NAMES
    np.testing.assert_array_equal(np.asarray(from_folder.images), np.asarray(serial.images))


def test_load_celeba_unprepared_says_how_to_prepare(cache_dir, celeba_files):
    with pytest.raises(UserError, match=r"nsvae data prepare celeba --from PATH/img_align_celeba\.zip"):
        img.load_images("celeba", cache_dir=cache_dir)
    with pytest.raises(UserError, match="not prepared"):
        img.prepare_images("celeba", cache_dir=cache_dir)
    img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], progress=False)
    with pytest.raises(UserError, match=r"other settings: original-rgb-64.*--crop center"):
        img.load_images("celeba", cache_dir=cache_dir, crop="center")


def test_only_prepared_entry_is_used_without_options(celeba_files, cache_dir):
    img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], crop="center", progress=False)
    assert img.load_images("celeba", cache_dir=cache_dir).path.name == "center148-rgb-64"


def test_second_prepare_reuses_the_cache_unless_forced(celeba_files, cache_dir, monkeypatch):
    path, _ = celeba_files
    first = img.prepare_images("celeba", cache_dir=cache_dir, source=path, progress=False)
    inode = (first / "images.npy").stat().st_ino

    def no_rebuild(*args, **kwargs):
        raise AssertionError("rebuilt a prepared entry")

    with monkeypatch.context() as patch:
        patch.setattr(img, "_build_into", no_rebuild)
        assert img.prepare_images("celeba", cache_dir=cache_dir, source=path, progress=False) == first
        assert img.prepare_images("celeba", cache_dir=cache_dir, progress=False) == first
    again = img.prepare_images("celeba", cache_dir=cache_dir, source=path, progress=False, force=True)
    assert again == first and (again / "images.npy").stat().st_ino != inode
    assert not [p for p in (cache_dir / "celeba").iterdir() if ".building-" in p.name or ".old-" in p.name]


def test_truncated_zip_is_refused_and_nothing_is_cached(celeba_files, cache_dir, tmp_path):
    path, _ = celeba_files
    cut = tmp_path / "cut" / "img_align_celeba.zip"
    cut.parent.mkdir()
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match=r"not a complete zip archive \(truncated or corrupt"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=cut, progress=False)
    assert_nothing_cached(cache_dir, "celeba")


def test_dataset_pickles_without_its_pixels(celeba_files, cache_dir):
    data = img.load_images("celeba", cache_dir=cache_dir, source=celeba_files[0], progress=False)
    _ = data.images, data.names
    blob = pickle.dumps(data)
    assert len(blob) < 4000
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back.observations_at([1, 2]), data.observations_at([1, 2]))


# ---------------------------------------------------------------------------------------------
# 3D Chairs
# ---------------------------------------------------------------------------------------------


def test_chairs_are_grey_centre_400_crops(chairs_tar, cache_dir):
    path, members = chairs_tar
    data = img.load_images("chairs", cache_dir=cache_dir, source=path, progress=False)
    assert data.path.name == "center400-gray-64"
    assert data.images.shape == (6, 1, 64, 64) and data.observation_shape == (1, 64, 64)
    assert data.names == CHAIR_NAMES
    expected = np.stack([ref_chair_gray(members[n]) for n in CHAIR_NAMES])
    np.testing.assert_array_equal(np.asarray(data.images), expected)
    assert data.meta["ignored_files"] == 1  # all_chair_names.mat


def test_chairs_rgb_option_and_compressed_tar(chairs_tar, cache_dir, tmp_path):
    path, members = chairs_tar
    rgb = img.load_images("chairs", cache_dir=cache_dir, source=path, channels=3, progress=False)
    assert rgb.images.shape == (6, 3, 64, 64)
    name = CHAIR_NAMES[4]
    expected = Image.open(io.BytesIO(members[name])).crop((100, 100, 500, 500)).resize((64, 64), LANCZOS)
    np.testing.assert_array_equal(rgb.images[4], np.asarray(expected).transpose(2, 0, 1))
    gz = tmp_path / "rendered_chairs.tar.gz"
    _write_chairs_tar(gz, "w:gz")
    grey_gz = img.load_images("chairs", cache_dir=tmp_path / "gz-cache", source=gz, progress=False)
    grey = img.load_images("chairs", cache_dir=cache_dir, source=path, progress=False)
    np.testing.assert_array_equal(np.asarray(grey_gz.images), np.asarray(grey.images))


@pytest.mark.parametrize("cut", ["middle", "at_header", "gzip"])
def test_truncated_tar_is_refused(chairs_tar, cache_dir, tmp_path, cut):
    path, _ = chairs_tar
    raw = path.read_bytes()
    if cut == "middle":
        broken, data = tmp_path / "cut.tar", raw[: int(len(raw) * 0.6)]
    elif cut == "at_header":  # ends exactly where the last member's header starts: tarfile lists the rest silently
        with tarfile.open(path) as archive:
            last = archive.getmembers()[-1]
        broken, data = tmp_path / "cut.tar", raw[: last.offset]
    else:
        gz = tmp_path / "full.tar.gz"
        _write_chairs_tar(gz, "w:gz")
        broken, data = tmp_path / "cut.tar.gz", gz.read_bytes()[: gz.stat().st_size * 2 // 3]
    broken.write_bytes(data)
    with pytest.raises(UserError, match="not a complete tar archive"):
        img.prepare_images("chairs", cache_dir=cache_dir, source=broken, progress=False)
    assert_nothing_cached(cache_dir, "chairs")


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------


def test_unreadable_image_is_refused_by_name(image_folder, cache_dir):
    with pytest.raises(UserError) as info:
        img.prepare_images("folder", cache_dir=cache_dir, source=image_folder, progress=False)
    message = str(info.value)
    assert "1 of 4 images could not be read: broken.jpg (" in message and "--skip-bad" in message
    assert "\n" not in message
    assert_nothing_cached(cache_dir, "folder")


def test_skip_unreadable_prepares_the_rest_and_lists_the_skipped(image_folder, cache_dir):
    entry = img.prepare_images("folder", cache_dir=cache_dir, source=image_folder, progress=False, skip_unreadable=True)
    assert entry.name == f"{img.source_hash(image_folder)}-centermax-rgb-exif-64"
    data = img.load_images("folder", cache_dir=cache_dir, source=image_folder)
    assert data.names == ["a/one.png", "b/two.jpg", "three.PNG"]
    assert [s["name"] for s in data.skipped] == ["broken.jpg"] and data.skipped[0]["reason"]
    assert data.meta["candidates"] == 4 and data.meta["ignored_files"] == 2  # notes.txt and .hidden.png
    # the file on disk was shortened in place to the kept rows
    stored = np.load(entry / "images.npy")
    assert stored.shape == (3, 3, 64, 64)
    expected = np.stack([ref_folder(image_folder / n) for n in data.names])
    np.testing.assert_array_equal(stored, expected)
    np.testing.assert_array_equal(np.asarray(data.images), expected)
    # the transparent half of three.PNG is white
    assert (expected[2][:, :, :28] == 255).all()


def test_grey_folder(image_folder, cache_dir):
    (image_folder / "broken.jpg").unlink()
    data = img.load_images("folder", cache_dir=cache_dir, source=image_folder, channels=1, progress=False)
    assert data.images.shape == (3, 1, 64, 64)
    two = Image.open(image_folder / "b" / "two.jpg").crop((0, 25, 40, 65)).resize((64, 64), LANCZOS)
    np.testing.assert_array_equal(data.images[1, 0], np.asarray(two))


def test_folder_without_source_uses_the_only_prepared_one(image_folder, cache_dir, tmp_path, celeba_files):
    with pytest.raises(UserError, match="no folder of images is prepared"):
        img.load_images("folder", cache_dir=cache_dir)
    (image_folder / "broken.jpg").unlink()
    img.prepare_images("folder", cache_dir=cache_dir, source=image_folder, progress=False)
    assert img.load_images("folder", cache_dir=cache_dir).source == str(image_folder.resolve())
    img.prepare_images("folder", cache_dir=cache_dir, source=celeba_files[0], progress=False)
    with pytest.raises(UserError, match=r"2 folders of images are prepared .*pass source=DIR") as info:
        img.load_images("folder", cache_dir=cache_dir)
    assert str(image_folder.resolve()) in str(info.value) and str(celeba_files[0].resolve()) in str(info.value)


def test_bad_sources(tmp_path, cache_dir):
    with pytest.raises(UserError, match="does not exist"):
        img.prepare_images("folder", cache_dir=cache_dir, source=tmp_path / "nowhere", progress=False)
    text = tmp_path / "list.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="neither a zip archive, a tar archive nor a folder"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=text, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no pictures")
    with pytest.raises(UserError, match="no images found in folder"):
        img.prepare_images("folder", cache_dir=cache_dir, source=empty, progress=False)
    assert_nothing_cached(cache_dir, "folder")
    assert_nothing_cached(cache_dir, "celeba")


def test_all_unreadable_with_skip_is_refused(tmp_path, cache_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="none of the 1 images"):
        img.prepare_images("folder", cache_dir=cache_dir, source=bad, progress=False, skip_unreadable=True)
    assert_nothing_cached(cache_dir, "folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_cache_dir(image_folder, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UserError, match="not writable"):
            img.prepare_images("folder", cache_dir=locked / "cache", source=image_folder, progress=False)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_cache_dir_under_a_file_is_refused_even_for_root(image_folder, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match="not writable"):
        img.prepare_images("folder", cache_dir=blocker / "cache", source=image_folder, progress=False)


def test_bad_options(celeba_files, cache_dir):
    with pytest.raises(ValueError, match="crop must be one of original, center"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], crop="full")
    with pytest.raises(ValueError, match="unknown option"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], origin="official")
    with pytest.raises(ValueError, match="channels must be 1"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], channels=2)
    with pytest.raises(ValueError, match="crop_size only applies"):
        img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], crop_size=100)
    assert_nothing_cached(cache_dir, "celeba")


def test_damaged_entry_gives_a_user_error(celeba_files, cache_dir):
    entry = img.prepare_images("celeba", cache_dir=cache_dir, source=celeba_files[0], progress=False)
    with open(entry / "images.npy", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(UserError, match="--force"):
        _ = img.load_images("celeba", cache_dir=cache_dir).images


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_registry_entries(celeba_files, cache_dir):
    for name in ("celeba", "chairs", "folder"):
        entry = registry.entry(name)
        assert entry.needs_source and entry.source_hint and entry.status(cache_dir=cache_dir) == []
    assert "img_align_celeba.zip" in registry.entry("celeba").source_hint
    assert "rendered_chairs.tar" in registry.entry("chairs").source_hint
    path = registry.entry("celeba").prepare(cache_dir=cache_dir, source=celeba_files[0], progress=False)
    data = registry.entry("celeba").load(cache_dir=cache_dir)
    assert data.path == path
    (row,) = registry.entry("celeba").status(cache_dir=cache_dir)
    assert row["path"] == str(path) and row["images"] == 6 and row["shape"] == [3, 64, 64]
    assert row["source"] == str(celeba_files[0].resolve())
    assert row["bytes"] >= 6 * 3 * 64 * 64
    assert cache.read_meta(path)["dataset"] == "celeba"


def test_the_decoding_pool_works_under_spawn(celeba_files, cache_dir, tmp_path, monkeypatch):
    """`data prepare celeba` on macOS and Windows: spawned decoding workers give the same cache (issue 17, §1)."""
    from nsvae import processes

    path, _ = celeba_files
    serial = img.load_images("celeba", cache_dir=cache_dir, source=path, progress=False, workers=0)
    monkeypatch.setenv(processes.START_METHOD_ENV, "spawn")
    spawned = []
    real_pool = img.worker_pool

    def pool(n):
        executor = real_pool(n)
        spawned.append(executor._mp_context.get_start_method())
        return executor

    monkeypatch.setattr(img, "worker_pool", pool)
    pooled_path = img.prepare_images("celeba", cache_dir=tmp_path / "spawned", source=path, progress=False, workers=2)
    assert spawned == ["spawn"]
    np.testing.assert_array_equal(np.asarray(img.CachedImages(pooled_path).images), np.asarray(serial.images))
