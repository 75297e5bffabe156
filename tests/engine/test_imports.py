"""The layers point one way: library ← training ← service, and the plugin stands apart.

The engine's library (the model and the raster → polygons pipeline) imports nothing of
`saymap.training`; the service (engine/server, engine/cli.py, engine/commands) may import
both. No two modules import each other, even through a chain or inside a function. The
plugin imports only QGIS, PyQt (as qgis.PyQt), the standard library and itself, since it
runs inside QGIS's Python. Read from the source with `ast`: nothing is imported to check.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"engine": "saymap.engine", "training": "saymap.training", "plugin": "plugin"}
# The service: the HTTP server and the command line, the only engine modules above training.
SERVICE = ("saymap.engine.server", "saymap.engine.cli", "saymap.engine.commands")
PLUGIN_ALLOWED_ROOTS = {"qgis", "plugin"}  # PyQt comes as qgis.PyQt, as QGIS ships it


def module_name(path: Path) -> str:
    """engine/server/app.py → saymap.engine.server.app; a package's __init__ is the package."""
    relative = path.relative_to(ROOT).with_suffix("")
    top, *rest = relative.parts
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join([PACKAGES[top], *rest])


def source_files() -> Iterator[Path]:
    for folder in PACKAGES:
        yield from sorted((ROOT / folder).rglob("*.py"))


def imported_names(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """(absolute name, line) of every import in the file, at any depth, relative ones
    resolved; `from a import b` gives a.b (a submodule or a name in a, settled later)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
            # `from . import plan` inside a package runs no new code from the package itself
            # (its __init__ is already running); from anywhere else it runs the __init__.
            if not (module + ".").startswith(base + "."):
                yield base, node.lineno


def import_graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int]]]]:
    """Edges between the project's own modules, and every raw import per module."""
    files = {module_name(path): path for path in source_files()}
    edges: dict[str, set[str]] = {name: set() for name in files}
    raw: dict[str, list[tuple[str, int]]] = {name: [] for name in files}
    for name, path in files.items():
        for target, line in imported_names(path, name):
            raw[name].append((target, line))
            # The longest known module the name starts with: `from a import b` is a.b when
            # b is a submodule, else a itself.
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in files:
                    if candidate != name:
                        edges[name].add(candidate)
                    break
    return edges, raw


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(edges):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def in_service(module: str) -> bool:
    return any(module == s or module.startswith(s + ".") for s in SERVICE)


def test_no_module_imports_itself_through_others() -> None:
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_engine_library_does_not_import_training() -> None:
    _, raw = import_graph()
    offending = [
        f"{module}:{line} imports {target}"
        for module, imports in raw.items()
        if module.startswith("saymap.engine") and not in_service(module)
        for target, line in imports
        if target == "saymap.training" or target.startswith("saymap.training.")
    ]
    assert offending == []


def test_plugin_imports_only_qgis_and_the_standard_library() -> None:
    _, raw = import_graph()
    offending = [
        f"{module}:{line} imports {target}"
        for module, imports in raw.items()
        if module == "plugin" or module.startswith("plugin.")
        for target, line in imports
        if target.split(".")[0] not in PLUGIN_ALLOWED_ROOTS | sys.stdlib_module_names
    ]
    assert offending == []


def test_the_checks_see_what_they_look_for() -> None:
    """The graph is not empty: known imports are found, and a made-up circle is one."""
    edges, raw = import_graph()
    assert "saymap.engine.errors" in edges["saymap.engine.raster"]
    assert any(t.startswith("qgis") for t, _ in raw["plugin.toolbar"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
