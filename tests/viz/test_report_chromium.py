"""The HTML reports in a real browser: headless Chromium renders them, every image loads, nothing is logged.

The page is checked by a copy with one probe script appended that, after the
load event, counts the images and those that failed to decode; Chromium's
``--dump-dom`` returns the page with the counts, and ``--enable-logging``
prints every console message on stderr (the reports run no script, so any
message is an error). A second run takes the screenshot. The first test
shows the probe catches a broken image and a console error.

Debian's ``chromium`` package provides the browser; ``.ci/run`` installs it
and sets ``NSVAE_REQUIRE_CHROMIUM=1`` so that CI fails rather than skips
when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nsvae.viz.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("NSVAE_REQUIRE_CHROMIUM"):
        raise RuntimeError("NSVAE_REQUIRE_CHROMIUM is set but no chromium is on PATH (apt-get install chromium)")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)", allow_module_level=True)

#: Flags for a closed network, as root, with no GPU and a throwaway profile.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0));
  document.body.setAttribute("data-probe-images", String(images.length));
  document.body.setAttribute("data-probe-broken", String(broken.length));
});
</script>"""


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def render(page: Path, workdir: Path) -> dict:
    """Load ``page`` in Chromium: image counts, console messages, and a screenshot."""
    probed = workdir / f"probed-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dump = chromium(
        ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
        workdir / "profile-dom",
    )
    images = re.search(r'data-probe-images="(\d+)"', dump.stdout)
    broken = re.search(r'data-probe-broken="(\d+)"', dump.stdout)
    assert images and broken, f"the page did not finish loading in Chromium:\n{dump.stderr[-2000:]}"
    console = [line for line in dump.stderr.splitlines() if ":CONSOLE" in line]
    shot = workdir / f"{page.stem}.png"
    taken = chromium(["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()], workdir / "profile-shot")
    assert shot.is_file(), f"Chromium wrote no screenshot:\n{taken.stderr[-2000:]}"
    return {"images": int(images.group(1)), "broken": int(broken.group(1)), "console": console, "screenshot": shot}


def test_the_probe_catches_a_broken_image_and_a_console_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="data:image/png;base64,AAAA" alt="x">'
        '<script>console.error("boom")</script></body></html>',
        encoding="utf-8",
    )
    seen = render(page, tmp_path)
    assert seen["images"] == 1 and seen["broken"] == 1
    assert any("boom" in line for line in seen["console"])


def _check(page: Path, workdir: Path, expected_images: int) -> None:
    html = page.read_text(encoding="utf-8")
    assert html.count("<img ") == expected_images
    seen = render(page, workdir)
    assert seen["images"] == expected_images and seen["broken"] == 0
    assert seen["console"] == []
    with Image.open(seen["screenshot"]) as shot:
        assert shot.size == (1200, 1600)
        pixels = np.asarray(shot.convert("L"), dtype=np.float64)
    assert pixels.std() > 5.0  # text, tables and figures, not a blank page


def test_a_run_report_renders_with_every_image(report_sweep, tmp_path):
    page = write_report([report_sweep / "runs" / "nonsyn-s0"], tmp_path / "run.html", samples=400)
    _check(page, tmp_path, expected_images=5)


def test_a_comparison_report_renders_with_every_image(report_sweep, tmp_path):
    page = write_report([report_sweep], tmp_path / "comparison.html")
    _check(page, tmp_path, expected_images=6)
