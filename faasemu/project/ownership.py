"""Who serves a project: the `up.lock` one `faasemu up` holds, and the `up.json` marker saying where it listens.

They live in project/ rather than beside `up` because other commands read them: `faasemu events
--redrive` wakes the running `up` through the marker, and nothing below the server layer may import
the server.
"""

from __future__ import annotations

import json
import os

from faasemu.project.console import relative
from faasemu.project.errors import FaasemuError
from faasemu.project.paths import ProjectPaths
from faasemu.project.private import write_private_text
from faasemu.project.spec import Manifest

try:
    import fcntl
except ImportError:  # Windows: no flock; `up` runs without the one-per-project lock there
    fcntl = None  # type: ignore[assignment]  # the module is optional; every use checks for None


class ProjectInUse(FaasemuError):
    """Another `faasemu up` owns this project's event log: two would both deliver every event."""

    def __init__(self, lock_path: str, holder: dict[str, object]) -> None:
        pid = holder.get("pid") or "unknown"
        url = holder.get("url") or "its URL not written yet"
        super().__init__(
            f"another faasemu up (pid {pid}, {url}) is already serving this project and owns its event log "
            f"(lock {lock_path}); two would both deliver every event. Stop it first (Ctrl+C in its terminal, "
            f"or kill {pid}), or send it events: faasemu replay EVENTS.jsonl --target {holder.get('url') or 'URL'}"
        )


class ProjectLock:
    """`.faasemu/up.lock`, held with `flock` for the life of one `up`.

    An OS lock rather than a pid file: the kernel drops it when the process dies, however it dies
    (`kill -9` included), so a stale lock is simply taken over, and a recycled pid cannot fake one.
    The descriptor is not inheritable (PEP 446) and workers get only their own socket, so no worker
    keeps the lock after `up` is gone. The file holds the owner's pid and URL, for the refusal.
    `faasemu events` and `replay` do not take it: they share the log through SQLite as they always did.
    """

    def __init__(self, manifest: Manifest) -> None:
        paths = ProjectPaths(manifest.root)
        paths.folder()
        self.path = paths.up_lock
        self.shown = relative(self.path, os.getcwd())
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read()
            os.close(self.fd)
            raise ProjectInUse(self.shown, holder) from None
        self.write(None)

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(os.pread(self.fd, 4096, 0) or b"{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write(self, url: str | None) -> None:
        if fcntl is None:
            return
        data = json.dumps({"pid": os.getpid(), "url": url}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        try:
            if fcntl is not None:
                os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the descriptor drops the flock


def write_server_marker(manifest: Manifest, base_url: str) -> str:
    """`.faasemu/up.json`: where this `up` listens, so `faasemu events --redrive` can wake it."""
    path = ProjectPaths(manifest.root).up_marker
    write_private_text(path, json.dumps({"url": base_url, "pid": os.getpid()}))  # .faasemu/ is 0600 throughout
    return path


def remove_server_marker(path: str) -> None:
    """Remove the marker, but only this process's: a second `up` refused by the lock must not delete the first's."""
    try:
        with open(path, encoding="utf-8") as file:
            if json.load(file).get("pid") == os.getpid():
                os.unlink(path)
    except (OSError, ValueError):
        pass


def running_server_url(manifest: Manifest) -> str | None:
    """The URL of the `faasemu up` serving this project, if one is alive."""
    try:
        with open(ProjectPaths(manifest.root).up_marker, encoding="utf-8") as file:
            marker = json.load(file)
        os.kill(int(marker["pid"]), 0)
        return str(marker["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
