"""Importing the user's handler module inside a worker, never through bytecode caches.

Why: a `.pyc` records the source's mtime in whole seconds and its size, so an edit of the same
size within the same second would otherwise serve stale code after a reload. Project files are
compiled from source on every import; the standard library and installed packages keep their
caches (compiling them would slow every cold start). Standard library only.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from types import ModuleType
from typing import Literal

_INSTALLED_MARKERS = ("site-packages", "dist-packages")


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """A SourceFileLoader that neither reads nor writes `__pycache__`."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _is_project_path(path: str, root: str, own_package: str) -> bool:
    if not (path == root or path.startswith(root + os.sep)):
        return False
    if path == own_package or path.startswith(own_package + os.sep):
        return False
    return not any(marker in path.split(os.sep) for marker in _INSTALLED_MARKERS)


def install_source_only_imports(root: str) -> None:
    """Make every import from a folder under `root` (but not virtualenvs or faasemu itself) source-only."""
    root = os.path.realpath(root)
    own_package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    file_finder_hook = importlib.machinery.FileFinder.path_hook(
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (_SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES),
    )

    def source_only_hook(entry: str):
        path = os.path.realpath(entry or os.getcwd())
        if not os.path.isdir(path) or not _is_project_path(path, root, own_package):
            raise ImportError("not a project folder")
        return file_finder_hook(path)

    sys.path_hooks.insert(0, source_only_hook)
    sys.path_importer_cache.clear()


ImportStyle = Literal["dotted", "source", "package"]
IMPORT_STYLES: tuple[str, ...] = ("dotted", "source", "package")


def import_handler_module(root: str, handler_file: str | None, handler_module: str | None,
                          style: ImportStyle = "dotted") -> ModuleType:
    """Import the module a handler lives in, the way its platform's runtime does (`style`).

    `pkg.orders` is imported by name. A handler file is imported:

    - `dotted` (Lambda and most runtimes): by its dotted path from the root (`sample_functions/orders.py`
      is `sample_functions.orders`, as the Lambda runtime reads `_HANDLER`), so relative imports work; its
      own folder is also put on `sys.path` after the root so that sibling imports (`import db`) work as
      they do when that folder is the deployed code root.
    - `source` (functions-framework's `load_function_module`): as a module named after the file that is
      also a package over its own folder, so `main.py` may say `from .test import foo` (`main.test`).
    - `package` (Knative func's scaffolding, `from function import new`): the file's chain of package
      folders (with `__init__.py`) is imported from the folder above it, whatever that folder is called:
      `my-fn/function/func.py` is `function.func` with `my-fn/` on `sys.path`.
    """
    if handler_module:
        return importlib.import_module(handler_module)
    if handler_file is None:
        raise ImportError("the function names neither a handler file nor a module")
    if style == "source":
        return _import_as_package_file(handler_file)
    if style == "package":
        return _import_package_chain(root, handler_file)
    folder = os.path.dirname(handler_file)
    if folder not in sys.path:
        sys.path.insert(1, folder)
    relative = os.path.relpath(handler_file, root)
    parts = relative[: -len(".py")].split(os.sep) if relative.endswith(".py") else []
    if parts[-1:] == ["__init__"]:  # `Fn/__init__.py` (Azure's v1 layout) is the package `Fn`, imported once
        parts = parts[:-1]
    if parts and not relative.startswith("..") and all(part.isidentifier() for part in parts):
        return importlib.import_module(".".join(parts))
    name = os.path.splitext(os.path.basename(handler_file))[0]
    return _exec_source(name, handler_file)


def _exec_source(name: str, path: str, search: list[str] | None = None) -> ModuleType:
    """Execute `path` as the module `name` (a package over `search` when given), from source only."""
    spec = importlib.util.spec_from_file_location(name, path, loader=_SourceOnlyLoader(name, path),
                                                  submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)  # as the import system does: a half-run module is not left importable
        raise
    return module


def _import_as_package_file(handler_file: str) -> ModuleType:
    """functions-framework's load: the module is named after the file, its folder is its package path
    (so relative imports reach the files beside it) and is appended to `sys.path` (so plain ones do)."""
    path = os.path.realpath(handler_file)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.append(folder)
    return _exec_source(os.path.splitext(os.path.basename(path))[0], path, [folder])


def _import_package_chain(root: str, handler_file: str) -> ModuleType:
    """Import `handler_file` below the highest folder of its package chain, as func's scaffolding imports
    the `function` package from the project folder (the chain stops at the root, at a folder without
    `__init__.py` and at a name that cannot be imported, such as `my-fn`)."""
    path = os.path.realpath(handler_file)
    root = os.path.realpath(root)
    stem = os.path.splitext(os.path.basename(path))[0]
    parts = [] if stem == "__init__" else [stem]
    base = os.path.dirname(path)
    while (base != root and base.startswith(root + os.sep) and os.path.basename(base).isidentifier()
           and os.path.isfile(os.path.join(base, "__init__.py"))):
        parts.insert(0, os.path.basename(base))
        base = os.path.dirname(base)
    if not parts or not all(part.isidentifier() for part in parts):
        return _exec_source(stem, path)
    if base not in sys.path:
        sys.path.insert(1, base)
    return importlib.import_module(".".join(parts))


class ProjectModules:
    """The files under `root` that this process has imported: what a change to can affect it.

    Found incrementally: a worker asks after its load and after every request that imported
    something, and each asks `os.path.realpath` (a few syscalls) per module. Modules already imported
    when this is made (faasemu's own, the standard library and the SDKs a fork server preloaded,
    before any user code) are never project files and are skipped, as is every module seen before:
    a load then costs a realpath per new module, not per module in `sys.modules` (hundreds)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.own_package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
        self.seen: set[str] = set(sys.modules.copy())
        self.files: set[str] = set()

    def current(self) -> list[str]:
        # a C-level copy: a finalizer run by the garbage collector mid-iteration (a "coroutine was never
        # awaited" warning) may import modules, and a Python-level iteration would then fail
        for name, module in sys.modules.copy().items():
            if name in self.seen:
                continue
            self.seen.add(name)
            path = getattr(module, "__file__", None)
            if path:
                path = os.path.realpath(path)
                if _is_project_path(path, self.root, self.own_package):
                    self.files.add(path)
        return sorted(self.files)
