"""dSprites data pipeline: generation time and peak memory, cache load time, batch throughput, official import.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_data.py [--workdir DIR] [--json OUT]

Each measured step runs in a fresh subprocess while this script samples the
resident memory of that process and all its children (sum of VmRSS, every
20 ms), so "peak memory" includes the worker processes and the pages of the
memory-mapped output. Goals (issue 3): generation <= 30 s and <= 1.5 GB;
loading an existing cache < 1 s; >= 20,000 images/s per core for training
batches; importing the official file with peak memory well under 1 GB.

The official file cannot be downloaded here, so the import is measured on a
stand-in with the official layout: the generated images written as an
``.npz`` with ``imgs`` (737280 x 64 x 64 uint8), ``latents_classes`` and
``latents_values`` (deflate-compressed like the original), imported with
``--force`` (its checksum is not the official one). The import also redraws
every image with the generator and counts differing pixels: 0 is expected
for this stand-in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def tree_rss_bytes(pid: int) -> int:
    """Sum of VmRSS over ``pid`` and its descendants (0 if gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as handle:
                    stack.extend(int(c) for c in handle.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_measured(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a new Python; return its JSON result plus wall time and peak tree RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env or os.environ.copy()
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_bytes(proc.pid))
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess failed:\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_s=time.perf_counter() - start, peak_rss_bytes=peak)
    return result


GENERATE = """
import json, time
from nsvae.data import dsprites
t = time.perf_counter()
dsprites.prepare(cache_dir={cache!r}, progress=False, workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

LOAD = """
import json, time
t0 = time.perf_counter()
from nsvae import data
t = time.perf_counter()
d = data.load("dsprites", cache_dir={cache!r})
x = d.observations_at([0, 737279])
print(json.dumps({{"seconds": time.perf_counter() - t, "import_seconds": t - t0}}))
"""

THROUGHPUT = """
import json, time
import numpy as np, torch
torch.set_num_threads(1)
from nsvae import data
from nsvae.data.loader import BatchLoader
d = data.load({name!r}, cache_dir={cache!r})
out = {{}}
for bs in (64, 256):
    loader = BatchLoader(d, bs, seed=0)
    next(loader)
    rates = []
    for _ in range(5):
        t = time.perf_counter(); n = 0
        while time.perf_counter() - t < 1.0:
            next(loader); n += bs
        rates.append(n / (time.perf_counter() - t))
    out[str(bs)] = rates
print(json.dumps(out))
"""

IMPORT = """
import json, time
from pathlib import Path
from nsvae.data import dsprites_official
t = time.perf_counter()
official = Path({cache!r}) / "dsprites" / "official"
entry = dsprites_official.import_official({path!r}, official, force=True, progress=False)
meta = json.loads((entry / "meta.json").read_text())
print(json.dumps({{"seconds": time.perf_counter() - t, "wrong_pixels": meta.get("generator_wrong_pixels")}}))
"""


def write_official_layout(cache: str, path: Path) -> float:
    """The generated images as an .npz with the official arrays, streamed (never 3 GB in memory)."""
    from nsvae.data import dsprites

    start = time.perf_counter()
    d = dsprites.load(cache_dir=cache, progress=False)
    n = dsprites.N_IMAGES
    grids = np.meshgrid(*[np.arange(s) for s in d.all_factor_sizes], indexing="ij")
    classes = np.concatenate([np.zeros((n, 1), np.int64)] + [g.reshape(-1, 1) for g in grids], axis=1)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, arr in (("latents_classes", classes), ("latents_values", classes.astype(np.float64))):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr)
        with archive.open("imgs.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": (n, 64, 64)}
            np.lib.format.write_array_header_1_0(member, header)
            for start_idx in range(0, n, 16384):
                member.write(dsprites.unpack_images(d.packed[start_idx : start_idx + 16384]).tobytes())
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    v = np.asarray(values)
    return f"{np.median(v):,.0f} ({v.min():,.0f}–{v.max():,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", help="write the raw results here")
    parser.add_argument("--skip-import", action="store_true", help="skip the official-layout import (needs ~1 min)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="nsvae-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "git": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    caches = {}
    for workers in (1, 2):
        cache = str(work / f"cache-w{workers}")
        caches[workers] = cache
        r = run_measured(GENERATE.format(cache=cache, workers=workers))
        results[f"generate_workers_{workers}"] = r
        print(f"generate, {workers} worker(s): {r['seconds']:.1f} s, peak {r['peak_rss_bytes'] / 2**30:.2f} GiB")
    loads = [run_measured(LOAD.format(cache=caches[2])) for _ in range(5)]
    results["load"] = loads
    print("load existing cache: " + ", ".join(f"{r['seconds'] * 1000:.1f} ms" for r in loads))
    for name in ("dsprites", "color_dsprites"):
        r = run_measured(THROUGHPUT.format(cache=caches[2], name=name))
        results[f"throughput_{name}"] = r
        rates = "; ".join(f"B={b}: {summary(v)} img/s" for b, v in r.items() if b.isdigit())
        print(f"{name} batches, 1 thread: {rates}")
    if not args.skip_import:
        npz = work / "official-layout.npz"
        build_s = write_official_layout(caches[2], npz)
        r = run_measured(IMPORT.format(path=str(npz), cache=str(work / "cache-import")))
        r.update(npz_bytes=npz.stat().st_size, build_seconds=build_s)
        results["import_official_layout"] = r
        print(
            f"import official-layout npz ({npz.stat().st_size / 2**20:.0f} MiB): {r['seconds']:.1f} s, "
            f"peak {r['peak_rss_bytes'] / 2**30:.2f} GiB, generator differences {r['wrong_pixels']} px"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
