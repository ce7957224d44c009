"""Preparing real-size Shapes3D and MPI3D files streams them: peak memory stays far below one copy of the images.

Slow (about a minute and 11 GB of disk each): the files have the official
sizes and formats, written here a chunk at a time; each preparation runs in a
fresh process whose peak resident memory (``VmHWM``) is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from nsvae.data import mpi3d, shapes3d

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc/self/status"),
]

#: Far below the 1.5x of the images' size that preparing may use (5.3-5.5 GiB here); measured: 90-120 MiB.
PEAK_LIMIT = 512 << 20

_PREPARE = """
import json, sys
from nsvae import data
name, source, cache_dir = sys.argv[1:4]
entry = data.prepare(name, cache_dir=cache_dir, source=source, force=True, progress=False)
loaded = data.load(name, cache_dir=cache_dir)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forked copy of the parent (pytest).
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
peak = int(hwm.split()[1]) * 1024
probe = [0, len(loaded) // 3, len(loaded) - 1]
print(json.dumps({"peak": peak, "n": len(loaded), "probe": loaded.images[probe].tolist()}))
"""


def tag(index: np.ndarray) -> np.ndarray:
    """Constant images (they compress well) whose first three pixels spell the image's index."""
    images = np.zeros((index.size, 64, 64, 3), dtype=np.uint8)
    images[:, 0, :3, 0] = np.stack([index >> 16, (index >> 8) & 255, index & 255], axis=1)
    return images


def run_prepare(name: str, source, cache_dir) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PREPARE, name, str(source), str(cache_dir)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_probe(result: dict, n: int) -> None:
    assert result["n"] == n
    for index, image in zip([0, n // 3, n - 1], np.asarray(result["probe"], dtype=np.int64), strict=True):
        assert (image[0, 0, :3] == [index >> 16, (index >> 8) & 255, index & 255]).all()
    assert result["peak"] < PEAK_LIMIT, f"peak memory {result['peak'] / 2**20:.0f} MiB"


def test_full_size_shapes3d_is_streamed(tmp_path):
    h5py = pytest.importorskip("h5py")
    sizes = shapes3d.FACTOR_SIZES
    n = int(np.prod(sizes))
    path = tmp_path / "3dshapes.h5"
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in sizes], indexing="ij")
    with h5py.File(path, "w") as f:
        images = f.create_dataset(
            "images", shape=(n, 64, 64, 3), dtype=np.uint8, chunks=(1000, 64, 64, 3), compression="gzip"
        )
        for start in range(0, n, 20000):
            images[start : start + 20000] = tag(np.arange(start, min(start + 20000, n)))
        f.create_dataset("labels", data=np.stack([g.reshape(-1) for g in grids], axis=1))
    check_probe(run_prepare("shapes3d", path, tmp_path / "cache"), n)


def test_full_size_mpi3d_is_streamed(tmp_path):
    layout = mpi3d.LAYOUT_4X4
    n = layout.images
    path = tmp_path / "mpi3d_toy.npz"
    # As np.savez writes it, one chunk at a time: a stored zip64 member images.npy with a version 1.0 header.
    with (
        zipfile.ZipFile(path, "w", allowZip64=True) as archive,
        archive.open("images.npy", "w", force_zip64=True) as out,
    ):
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, 64, 64, 3)}
        np.lib.format.write_array_header_1_0(out, header)
        for start in range(0, n, 20000):
            out.write(tag(np.arange(start, min(start + 20000, n))).tobytes())
    result = run_prepare("mpi3d_toy", path, tmp_path / "cache")
    check_probe(result, n)
    meta = json.loads((tmp_path / "cache" / "mpi3d_toy" / "official" / "meta.json").read_text())
    assert meta["layout"] == "4x4" and meta["factor_sizes"] == list(layout.factor_sizes)
