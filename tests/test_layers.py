"""The package's layering (docs/architecture.md#layers): imports point down only, and no circle.

Every module under faasemu/ is parsed with `ast` (never imported, so this is fast and sees imports
inside functions too, which are the ones that usually slip past a reviewer). A module belongs to the
layer named by its first folder under faasemu/; the top-level faasemu/__init__.py and __main__.py
belong to no layer (__main__ is only `python -m faasemu`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "faasemu"

# Lowest first; a module may import its own layer and any layer to its left.
LAYERS = ("project", "events", "chaos", "runtimes", "workers", "delivery", "server", "verify", "cli")
RANK = {name: rank for rank, name in enumerate(LAYERS)}
UNLAYERED = {"faasemu", "faasemu.__main__"}


def module_name(path: Path) -> str:
    """faasemu/server/up.py -> faasemu.server.up; faasemu/verify/__init__.py -> faasemu.verify."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str | None:
    """The layer a faasemu module belongs to: its first package under faasemu/ (None: top level)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, faasemu module) for every import of faasemu in the file, at any depth in the code.

    Relative imports are resolved against the module's package; `from faasemu.x import y` counts as
    an import of faasemu.x (whether y is a module or a name in it does not change the layer)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "faasemu"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "faasemu":
                if target == "faasemu" or target in UNLAYERED:
                    # `from faasemu import runtimes`: each name is a subpackage, so each is an import.
                    found += [(node.lineno, f"faasemu.{alias.name}") for alias in node.names]
                else:
                    found.append((node.lineno, target))
    return found


def upward_imports() -> list[str]:
    problems = []
    for module, path in modules().items():
        own = layer(module)
        if own is None:
            continue
        for line, target in imported(module, path):
            theirs = layer(target)
            if theirs is not None and RANK[theirs] > RANK[own]:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {target} ({theirs})")
    return problems


def package_graph() -> dict[str, set[str]]:
    """Layer -> the other layers it imports."""
    graph: dict[str, set[str]] = {name: set() for name in LAYERS}
    for module, path in modules().items():
        own = layer(module)
        if own is None:
            continue
        for _, target in imported(module, path):
            theirs = layer(target)
            if theirs is not None and theirs != own:
                graph[own].add(theirs)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle found by depth-first search, each reported once from its lowest node."""
    found: list[list[str]] = []

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                found.append([*trail, start])
            elif nxt not in trail and LAYERS.index(nxt) > LAYERS.index(start):
                walk(start, nxt, [*trail, nxt])

    for start in LAYERS:
        walk(start, start, [start])
    return found


def test_every_module_is_in_a_layer() -> None:
    strays = [name for name in modules() if layer(name) is None and name not in UNLAYERED]
    assert strays == [], f"modules outside the layer packages {LAYERS}: {strays}"


def test_no_module_imports_a_higher_layer() -> None:
    problems = upward_imports()
    assert problems == [], "imports that point up (order: " + " < ".join(LAYERS) + "):\n" + "\n".join(problems)


def test_no_circle_between_packages() -> None:
    circles = cycles(package_graph())
    assert circles == [], "circles between packages:\n" + "\n".join(" -> ".join(c) for c in circles)


# The checker checks itself on small, made-up trees, so a pass above means something.


@pytest.mark.parametrize(
    ("source", "where", "expected"),
    [
        ("import faasemu.server.up\n", "faasemu/delivery/x.py", ["faasemu.server.up"]),
        ("from faasemu.server import up\n", "faasemu/delivery/x.py", ["faasemu.server"]),
        ("from faasemu import server\n", "faasemu/delivery/x.py", ["faasemu.server"]),
        ("def f():\n    from ..server.up import run_up\n", "faasemu/delivery/x.py", ["faasemu.server.up"]),
        ("from . import bus\n", "faasemu/delivery/x.py", ["faasemu.delivery"]),
        ("from .bus import Bus\n", "faasemu/delivery/__init__.py", ["faasemu.delivery.bus"]),
        ("import json\nfrom asyncio import run\n", "faasemu/delivery/x.py", []),
    ],
)
def test_imports_are_found_at_any_depth(tmp_path: Path, source: str, where: str, expected: list[str]) -> None:
    path = PACKAGE.parent / where
    fake = tmp_path / Path(where).name  # imported() tells a package by its __init__.py name
    fake.write_text(source)
    names = [target for _, target in imported(module_name(path), fake)]
    assert names == expected


def test_a_circle_is_found() -> None:
    graph = {name: set[str]() for name in LAYERS}
    graph["delivery"].add("server")
    graph["server"].add("delivery")
    assert cycles(graph) == [["delivery", "server", "delivery"]]
    graph["server"].clear()
    assert cycles(graph) == []
