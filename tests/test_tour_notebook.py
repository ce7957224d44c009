"""examples/tour.ipynb: stored without outputs (fast), and run end to end in a Jupyter kernel (slow).

The slow test runs a copy of the notebook with nbclient in a kernel started from this test's own interpreter
(a kernelspec written into a temporary directory), so the tour is checked against the installed nsvae and
never against whatever ``python3`` kernel the machine has. It needs no network: dSprites comes from the
built-in generator, in the session's own cache (the ``dsprites`` fixture).
"""

from __future__ import annotations

import ast
import base64
import io
import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"
KERNEL = "nsvae-tour-test"


def _read_stored():
    return nbformat.read(TOUR, as_version=nbformat.NO_CONVERT)


def test_the_stored_tour_is_valid_and_has_no_outputs():
    nb = _read_stored()
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert len(code) >= 8
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} was stored with outputs: clear them before committing"
        assert cell.execution_count is None, f"cell {cell.id} was stored with an execution count"
        assert "execution" not in cell.metadata, f"cell {cell.id} was stored with execution timings"
    # Markdown between the code: the tour explains each step.
    kinds = [cell.cell_type for cell in nb.cells]
    assert kinds[0] == "markdown"
    assert ("code", "code") not in set(zip(kinds, kinds[1:]))
    ids = [cell.id for cell in nb.cells]
    assert len(set(ids)) == len(ids)


def test_the_tour_code_is_python_and_uses_a_temporary_run_directory():
    nb = _read_stored()
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    ast.parse(source)  # a syntax error fails here, without a kernel
    assert "tempfile.mkdtemp" in source and 'out=workdir / "run"' in source
    assert "shutil.rmtree(workdir)" in nb.cells[-1].source


def _image(output) -> tuple[int, int]:
    """The size (width, height) of a cell output's PNG."""
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"]))).size


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _cell(cells, snippet: str):
    """The one cell whose source holds ``snippet``."""
    found = [cell for cell in cells if snippet in cell.source]
    assert len(found) == 1, (snippet, len(found))
    return found[0]


def _pngs(cell) -> list:
    return [o for o in cell.outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]


@pytest.mark.slow
def test_the_tour_runs_in_a_kernel(dsprites, tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    # The kernel inherits this environment: its own temporary, IPython and Jupyter runtime directories, the
    # session's dataset cache (NSVAE_CACHE_DIR, set by conftest), and the kernel's inline matplotlib backend.
    for name in ("tmp", "ipython", "runtime"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("MPLBACKEND", raising=False)

    work = tmp_path / "work"
    work.mkdir()
    copy = work / "tour.ipynb"
    copy.write_bytes(TOUR.read_bytes())
    nb = nbformat.read(copy, as_version=4)
    n_tour = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    km = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    )
    client = NotebookClient(nb, km=km, timeout=600, allow_errors=False, resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError on any cell's error

    cells = nb.cells[:n_tour]
    assert _text(nb.cells[-1]).strip() == sys.executable
    assert not [o for c in cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    outputs = [_text(c) for c in cells if c.cell_type == "code"]
    everything = "\n".join(outputs)

    # 1. the gates: XOR is one bit, all of it synergy under every measure; AND as docs/information.md works out.
    assert "the same table as info.gate('xor'): True" in everything
    xor = _text(_cell(cells, "measures(xor)"))
    for line in (
        "I(X1;Y) = 0.000000",
        "I(X2;Y) = 0.000000",
        "I(X1,X2;Y) = 1.000000",
        "S_max = 1.000000",
        "WMS = 1.000000",
        "S_VK = 1.000000",
        "PID redundancy = 0.000000",
        "PID synergy = 1.000000",
    ):
        assert line + " bits" in xor, line
    gate_and = _text(_cell(cells, "measures(gate_and)"))
    for line in (
        "I(X1,X2;Y) = 0.811278",
        "I(X1;Y) = 0.311278",
        "I_max = 0.311278",
        "S_max = 0.500000",
        "WMS = 0.188722",
        "S_VK = 0.500000",
        "PID redundancy = 0.311278",
        "PID unique X1 = 0.000000",
        "PID synergy = 0.500000",
    ):
        assert line + " bits" in gate_and, line

    # 2. dSprites and its factor traversal: five rows of 64-pixel images with 2-pixel gaps, ten columns.
    assert "('shape', 'scale', 'orientation', 'posX', 'posY')" in everything
    assert "(3, 6, 40, 32, 32)" in everything and "(4, 1, 64, 64) float32" in everything
    preview = _pngs(_cell(cells, "preview_grid(data"))
    assert len(preview) == 1
    width, height = _image(preview[0])
    assert height == 5 * 66 + 2 and width > 10 * 66 + 2

    # 3. training: finished, a run directory in the kernel's temporary directory, the log plotted inline.
    assert "state: finished" in everything
    run_dir = Path(re.search(r"run directory: (.+)", everything).group(1).strip())
    assert run_dir.is_relative_to(tmp_path / "tmp") and run_dir.name == "run"
    assert len(_pngs(_cell(cells, "plt.show()"))) == 1
    kl = re.search(r"KL per latent at the last step: \[([^\]]*)\]", everything).group(1).split()
    assert len(kl) == 10 and all(float(v) >= 0 for v in kl)

    # 4. the scores: fractions of one, from the changed protocol.
    for name in ("FactorVAE score", "MIG"):
        value = float(re.search(rf"{name}: +(-?[0-9.]+)", everything).group(1))
        assert 0.0 <= value <= 1.0, (name, value)
    for name in ("synergy S_max", "synergy WMS"):
        value = float(re.search(rf"{name}: +(-?[0-9.]+)", everything).group(1))
        assert -1.0 <= value <= 1.0, (name, value)
    assert "protocol: default+custom" in everything

    # 5. the traversal: the default figure of a 10-latent model on 64x64 images (docs/figures.md: 1,478 x 761).
    traversal = _pngs(_cell(cells, "run_traversal(run)"))
    assert len(traversal) == 1 and _image(traversal[0]) == (1478, 761)

    # The last cell removed the run; nothing was written beside the notebook copy.
    assert f"removed {run_dir.parent}" in everything and not run_dir.parent.exists()
    assert sorted(p.name for p in work.iterdir()) == ["tour.ipynb"]
