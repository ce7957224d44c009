"""Packaging: every import of the package is covered by a declared dependency; one version, in one place."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, requires, version
from pathlib import Path

import nsvae

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nsvae"
#: Imports that need a package under another module name than their own.
IMPLIED = {"torch.utils.tensorboard": "tensorboard"}
#: Optional features: imported only inside the function that needs them, declared as extras.
EXTRAS = {"h5py": "hdf5", "ray": "ray", "wandb": "wandb", "mlflow": "mlflow", "submitit": "slurm"}


def _imports() -> dict[str, set[str]]:
    """Every module imported anywhere in src/nsvae (absolute imports), with the files importing it."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _requirement_name(text: str) -> tuple[str, str | None]:
    name = re.match(r"[A-Za-z0-9._-]+", text).group(0).lower().replace("_", "-")
    extra = re.search(r'extra == "([^"]+)"', text)
    return name, extra.group(1) if extra else None


def test_every_import_is_a_declared_dependency():
    declared: dict[str, set[str | None]] = {}
    for line in requires("nsvae") or []:
        name, extra = _requirement_name(line)
        declared.setdefault(name, set()).add(extra)
    providers = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing = []
    for module, files in sorted(_imports().items()):
        top = module.split(".")[0]
        if top in stdlib or top in ("nsvae", "__future__"):
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
        for prefix, dist in IMPLIED.items():
            if module == prefix or module.startswith(prefix + "."):
                dists = {dist}
        extra = EXTRAS.get(top)
        ok = any(None in declared.get(d, set()) or (extra and extra in declared.get(d, set())) for d in dists)
        if not ok:
            missing.append(f"{module} ({', '.join(sorted(dists))}) in {', '.join(sorted(files))}")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_tensorboard_is_declared_because_torch_utils_tensorboard_needs_it():
    assert "torch.utils.tensorboard" in _imports()


def test_one_version_in_one_place():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert nsvae.__version__ == version("nsvae") == project["version"]
    literal = re.compile(r"__version__\s*=\s*['\"]")
    assert not [p for p in SRC.rglob("*.py") if literal.search(p.read_text(encoding="utf-8"))]


def test_requires_python_is_the_tested_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floor = tuple(int(x) for x in project["requires-python"].removeprefix(">=").split("."))
    assert sys.version_info[:2] >= floor
    tested = [c for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    assert f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}" in tested
