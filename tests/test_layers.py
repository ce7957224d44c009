"""The layer rule (docs/development.md, "Layers"): every module imports only from its own layer or lower ones.

Every ``import`` and ``from ... import`` in ``src/nsvae`` counts, relative or
absolute, at module level or inside a function (a lazy import is still a
dependency), and so does a string that names a module of the package (what
``importlib.import_module`` or a forkserver preload list is given). The one
sanctioned upward reference is the package's lazy facade: ``nsvae.train``,
``nsvae.Config``, ... resolved by name in ``nsvae/__init__.py`` on first use
(pinned below). Module-level imports form no cycle anywhere.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nsvae"
DOC = ROOT / "docs" / "development.md"

#: The layers, bottom to top, as docs/development.md lists them: a name is a module or a package (all its modules).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        (
            "nsvae",
            "nsvae.errors",
            "nsvae.names",
            "nsvae.stats",
            "nsvae.atomic",
            "nsvae.clock",
            "nsvae.markdown",
            "nsvae.cpus",
            "nsvae.locks",
            "nsvae.processes",
            "nsvae.pictures",
            "nsvae.stop_signals",
        ),
    ),
    ("info", ("nsvae.info",)),
    ("data", ("nsvae.data",)),
    ("models", ("nsvae.models",)),
    ("objectives", ("nsvae.objectives",)),
    ("metrics", ("nsvae.metrics",)),
    ("config", ("nsvae.config",)),
    ("train", ("nsvae.train",)),
    ("evaluation", ("nsvae.evaluation",)),
    ("viz", ("nsvae.viz",)),
    ("experiments", ("nsvae.experiments",)),
    ("commands", ("nsvae.commands",)),
    ("cli", ("nsvae.cli", "nsvae.__main__")),
)

#: What ``nsvae/__init__.py`` may name lazily (``nsvae.train(...)``, ``nsvae.Config``): the package's facade.
FACADE = {"nsvae.train", "nsvae.config"}

_MODULE_STRING = re.compile(r"^nsvae(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module of the package
    path: Path
    line: int
    top_level: bool  # executed when the module is imported (not inside a function)

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` (relative ones against the importing module's package)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _function_lines(tree: ast.AST) -> set[int]:
    """The line numbers inside function bodies (imports there run when the function is called, not on import)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


@cache
def imports() -> tuple[Import, ...]:
    """Every reference from a module of the package to another module of it."""
    known = modules()
    found: list[Import] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        inside = _function_lines(tree)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                # ``from . import config`` imports the module nsvae.config, not only the package above it.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
                if module != "nsvae" and node.value in known:  # the facade's names are pinned by their own test
                    targets = [node.value]
            for target in targets:
                if target == "nsvae" or target.startswith("nsvae."):
                    top = node.lineno not in inside and not isinstance(node, ast.Constant)
                    found.append(Import(module, target, path, node.lineno, top))
    return tuple(found)


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer that holds ``module`` (its longest listed prefix)."""
    best, index = "", -1
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != "nsvae" and module.startswith(name + "."))
            if covers and len(name) > len(best):
                best, index = name, i
    return index


def test_every_module_is_in_a_layer():
    unplaced = [m for m in modules() if layer_of(m) < 0]
    assert not unplaced, (
        f"modules in no layer: {', '.join(unplaced)}; add each to LAYERS here and to the table in "
        "docs/development.md ('Layers')"
    )


def test_each_module_imports_only_from_its_own_layer_or_lower():
    wrong = []
    for imp in imports():
        source, target = layer_of(imp.source), layer_of(imp.target)
        if target > source:
            wrong.append(
                f"{imp.where()}: {imp.source} ({LAYERS[source][0]}, layer {source + 1}) imports {imp.target} "
                f"({LAYERS[target][0]}, layer {target + 1})"
            )
    assert not wrong, "imports from a higher layer (docs/development.md, 'Layers'):\n" + "\n".join(wrong)


def test_no_import_cycle_at_module_level():
    """Module-level imports (those run when a module is imported) form no cycle, within a package or across."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in modules()}
    for imp in imports():
        if imp.top_level and imp.target in graph and imp.target != imp.source:
            graph[imp.source].setdefault(imp.target, imp)
    cycles = _cycles(graph)
    lines = []
    for cycle in cycles:
        steps = [graph[a][b] for a, b in zip(cycle, cycle[1:] + cycle[:1])]
        lines.append(" -> ".join(cycle + cycle[:1]) + "  (" + ", ".join(s.where() for s in steps) + ")")
    assert not cycles, "import cycles among module-level imports:\n" + "\n".join(lines)


def _cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan, then a path)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for component in components:
        members = set(component)
        start = min(component)
        path, seen = [start], {start}
        while True:  # walk inside the component until a module repeats
            nxt = min(w for w in graph[path[-1]] if w in members)
            if nxt in seen:
                cycles.append(path[path.index(nxt) :])
                break
            path.append(nxt)
            seen.add(nxt)
    return cycles


def test_the_lazy_facade_of_the_package_reaches_only_what_it_names():
    import nsvae

    assert {module for module, _ in nsvae._LAZY.values()} <= FACADE


def _documented_layers() -> list[tuple[str, tuple[str, ...]]]:
    """The table under '## Layers' in docs/development.md: (layer, modules), bottom to top."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].isdigit():
            continue
        names = []
        for item in re.findall(r"`([^`]+)`", cells[2]):
            if item == "__init__.py":
                names.append("nsvae")
            elif item.endswith("/"):
                names.append("nsvae." + item[:-1])
            elif item.endswith(".py"):
                names.append("nsvae." + item[:-3])
        rows.append((int(cells[0]), cells[1], tuple(names)))
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "the table numbers its layers 1, 2, ... upwards"
    return [(name, modules) for _, name, modules in rows]


@pytest.mark.skipif(not DOC.is_file(), reason="docs/development.md is not in this tree")
def test_the_documented_order_is_the_tested_one():
    assert _documented_layers() == [(name, names) for name, names in LAYERS]


# -- the test's own parts, on small cases it must get right --------------------------------------------------


def test_relative_imports_resolve_against_the_importing_module():
    def resolve(module: str, filename: str, code: str) -> str:
        node = ast.parse(code).body[0]
        return _resolve(module, Path(filename), node)

    assert resolve("nsvae.train.trainer", "trainer.py", "from ..config import x") == "nsvae.config"
    assert resolve("nsvae.train.trainer", "trainer.py", "from .run import x") == "nsvae.train.run"
    assert resolve("nsvae.train", "__init__.py", "from .run import x") == "nsvae.train.run"
    assert resolve("nsvae.train", "__init__.py", "from .. import errors") == "nsvae"
    assert resolve("nsvae.data.cache", "cache.py", "from nsvae.errors import x") == "nsvae.errors"


def test_layers_of_some_modules():
    names = [name for name, _ in LAYERS]
    assert names[layer_of("nsvae.train.latents")] == "train"
    assert names[layer_of("nsvae.evaluation")] == "evaluation"
    assert names[layer_of("nsvae")] == names[layer_of("nsvae.pictures")] == "foundation"
    assert names[layer_of("nsvae.config.schema")] == "config"
    assert names[layer_of("nsvae.__main__")] == "cli"


def test_the_scan_sees_lazy_relative_imports_and_module_strings():
    """The scan finds what the rule is about: a lazy import inside a function, and ``from . import <module>``."""
    found = {(i.source, i.target, i.top_level) for i in imports()}
    assert ("nsvae.train.latents", "nsvae.objectives.losses", False) in found  # inside kl_per_latent
    assert ("nsvae.train.run", "nsvae.config", True) in found  # from .. import config as config_module
    assert ("nsvae.data", "nsvae.data.dsprites", True) in found  # from . import dsprites, images, variants
    assert ("nsvae.experiments.worker", "nsvae.evaluation", False) in found  # inside _evaluate


def test_a_cycle_is_found_and_named():
    fake = Import("a", "b", ROOT / "x.py", 1, True)
    graph = {"a": {"b": fake}, "b": {"c": fake}, "c": {"a": fake}, "d": {"a": fake}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b": fake}, "b": {}}) == []
