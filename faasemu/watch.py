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
        super().__init__(ignore_dirs=IGNORED_DIRS)
        self.manifest_path = os.path.realpath(manifest_path)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if os.path.realpath(path) == self.manifest_path:
            return True
        return path.endswith(".py") and super().__call__(change, path)


def watched_folders(root: str) -> list[str]:
    """The root's sub-folders worth a recursive watch (the root itself is watched flat)."""
    folders = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and entry.name not in IGNORED_DIRS and not _is_virtualenv(entry.path):
            folders.append(entry.path)
    return folders


def _is_virtualenv(path: str) -> bool:
    return os.path.exists(os.path.join(path, "pyvenv.cfg"))


async def source_changes(root: str, manifest_path: str, stop: asyncio.Event) -> AsyncIterator[set[str]]:
    """Yield sets of changed absolute paths until `stop` is set."""
    queue: asyncio.Queue[set[str]] = asyncio.Queue()
    watch_filter = SourceFilter(manifest_path)

    async def pump(paths: list[str], recursive: bool) -> None:
        async for changes in watchfiles.awatch(
            *paths, watch_filter=watch_filter, recursive=recursive, step=STEP_MS, debounce=DEBOUNCE_MS,
            stop_event=stop,
        ):
            await queue.put({os.path.realpath(path) for _, path in changes})

    tasks = [asyncio.create_task(pump([root], recursive=False))]
    folders = watched_folders(root)
    if folders:
        tasks.append(asyncio.create_task(pump(folders, recursive=True)))
    stopping = asyncio.create_task(stop.wait())
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            yield getter.result()
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()
