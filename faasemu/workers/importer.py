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
from types import ModuleType

_INSTALLED_MARKERS = ("site-packages", "dist-packages")


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """A SourceFileLoader that neither reads nor writes `__pycache__`."""

    def get_code(self, fullname: str):  # type: ignore[override]
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


def import_handler_module(root: str, handler_file: str | None, handler_module: str | None) -> ModuleType:
    """Import the module a handler lives in.

    `pkg.orders` is imported by name. A file `sample_functions/orders.py` is imported by its dotted
    path from the root (`sample_functions.orders`, as the Lambda runtime reads `_HANDLER`), so
    relative imports work; its own folder is also put on `sys.path` after the root so that sibling
    imports (`import db`) work as they do when that folder is the deployed code root.
    """
    if handler_module:
        return importlib.import_module(handler_module)
    assert handler_file is not None
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
    spec = importlib.util.spec_from_file_location(name, handler_file, loader=_SourceOnlyLoader(name, handler_file))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {relative}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def project_module_files(root: str) -> list[str]:
    """Files under `root` that this process has imported: what a change to can affect it."""
    root = os.path.realpath(root)
    own_package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path:
            path = os.path.realpath(path)
            if _is_project_path(path, root, own_package):
                files.add(path)
    return sorted(files)
