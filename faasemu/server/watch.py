"""Watching the project for source edits: the reload half of `faasemu up`.

Like uvicorn's reloader, but it never restarts the server: it tells the supervisor which files
changed, and the supervisor restarts only the workers they can affect. It watches the project's
folders, never virtual environments, `.faasemu/`, `.git` or `node_modules` (a recursive watch on
those can exhaust inotify), and reacts only to writes of Python sources and the manifest.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import watchfiles

IGNORED_DIRS = frozenset({
    ".faasemu", "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "env", ".env", "node_modules",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", "site-packages", "build", "dist", ".idea",
    ".vscode",
})
STEP_MS = 15  # quiet period after a change before it is reported
DEBOUNCE_MS = 300  # the longest a burst of changes is grouped


class SourceFilter(watchfiles.DefaultFilter):
    """Python sources and the manifest, outside ignored folders."""

    def __init__(self, manifest_path: str) -> None:
        super().__init__(ignore_dirs=sorted(IGNORED_DIRS))
        self.manifest_path = os.path.realpath(manifest_path)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if os.path.realpath(path) == self.manifest_path:
            return True
        return path.endswith(".py") and super().__call__(change, path)


def watched_folders(root: str) -> list[str]:
    """The root's sub-folders worth a recursive watch (the root itself is watched flat): not the
    ignored ones, not virtualenvs, and not hidden ones (`.ci`, `.tox`, `.idea` ... hold tools'
    files, often whole virtualenvs, never a handler's sources)."""
    folders = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if (entry.is_dir(follow_symlinks=False) and entry.name not in IGNORED_DIRS
                and not entry.name.startswith(".") and not _is_virtualenv(entry.path)):
            folders.append(entry.path)
    return folders


def _is_virtualenv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


class _RootFilter(SourceFilter):
    """At the root (watched flat): sources, the manifest, and new folders worth watching."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if change == watchfiles.Change.added and os.path.isdir(path):
            name = os.path.basename(path)
            return name not in IGNORED_DIRS and not name.startswith(".") and not _is_virtualenv(path)
        return super().__call__(change, path)


async def source_changes(root: str, manifest_path: str, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Yield sets of changed absolute paths until `stop` is set.

    The root is watched flat and its folders recursively; a folder created later is added by
    restarting the recursive watch, and its Python files count as changed.
    """
    queue: asyncio.Queue[set[str]] = asyncio.Queue()
    watch_filter = SourceFilter(manifest_path)

    async def pump(paths: list[str], recursive: bool, pump_filter: SourceFilter, pump_stop: asyncio.Event) -> None:
        async for changes in watchfiles.awatch(
            *paths, watch_filter=pump_filter, recursive=recursive, step=STEP_MS, debounce=DEBOUNCE_MS,
            stop_event=pump_stop,
        ):
            await queue.put({os.path.realpath(path) for _, path in changes})

    def watch_folders() -> tuple[asyncio.Task[None] | None, asyncio.Event]:
        folders_stop = asyncio.Event()
        folders = watched_folders(root)
        if not folders:
            return None, folders_stop
        return asyncio.create_task(pump(folders, True, watch_filter, folders_stop)), folders_stop

    root_stop = asyncio.Event()
    root_task = asyncio.create_task(pump([root], False, _RootFilter(manifest_path), root_stop))
    folders_task, folders_stop = watch_folders()
    stopping = asyncio.create_task(stop.wait())
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            paths = getter.result()
            new_folders = {path for path in paths if os.path.isdir(path)}
            if new_folders:
                folders_stop.set()
                if folders_task is not None:
                    folders_task.cancel()
                folders_task, folders_stop = watch_folders()
                paths = (paths - new_folders) | {
                    os.path.realpath(os.path.join(folder, name))
                    for top in new_folders
                    for folder, _, names in os.walk(top)
                    for name in names
                    if name.endswith(".py")
                }
            if paths:
                yield paths
    finally:
        stopping.cancel()
        root_stop.set()
        folders_stop.set()
        for task in (root_task, folders_task):
            if task is not None:
                task.cancel()
