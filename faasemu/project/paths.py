"""Every path faasemu keeps under a project's `.faasemu/` folder, named in one place.

Commands used to join `root, ".faasemu", ...` themselves (the event log, the state, the marker and
lock of `up`, counterexamples, chaos lanes on disk); a file moved in one of them and not in the
others would leave two commands looking in different places. `ProjectPaths` only names paths; the
methods that create something (`folder()`, `cex_folder()`, ...) create folders 0700 through
`private.py`, since everything in `.faasemu/` is the user's alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from faasemu.project.private import FOLDER, private_folder


@dataclass(frozen=True)
class ProjectPaths:
    """The `.faasemu/` paths of the project whose manifest sits in `root`."""

    root: str

    @property
    def base(self) -> str:
        """`.faasemu/` itself."""
        return os.path.join(self.root, FOLDER)

    @property
    def events_db(self) -> str:
        """The durable event log of `up` (delivery/eventlog.py), read by `events`, `chaos` and `replay`."""
        return os.path.join(self.base, "events.db")

    @property
    def state_db(self) -> str:
        """Handlers' state when the manifest says `state: {sqlite: }` or nothing (the default)."""
        return os.path.join(self.base, "state.db")

    @property
    def state_dir(self) -> str:
        """Handlers' state when the manifest says `state: {dir: }` without a path."""
        return os.path.join(self.base, "state")

    @property
    def up_marker(self) -> str:
        """`up.json`: where the running `up` listens, so `faasemu events --redrive` can wake it."""
        return os.path.join(self.base, "up.json")

    @property
    def up_lock(self) -> str:
        """`up.lock`: held with flock by the one `up` that owns the event log (project/ownership.py)."""
        return os.path.join(self.base, "up.lock")

    @property
    def cex(self) -> str:
        """Counterexamples `faasemu chaos` writes, one JSON file per violation."""
        return os.path.join(self.base, "cex")

    @property
    def chaos(self) -> str:
        """Chaos lanes when no RAM folder is available (verify/runner.py)."""
        return os.path.join(self.base, "chaos")

    @property
    def postgres(self) -> str:
        """The private PostgreSQL server of `state: {postgres: auto}` (project/postgres.py): the cluster
        in `data/`, its socket, log, lock and leases."""
        return os.path.join(self.base, "postgres")

    def cex_file(self, function: str, kind: str, *, relative: bool = False) -> str:
        """The counterexample of `function` breaking `kind`; relative to the root when asked, as reports print it."""
        path = os.path.join(FOLDER, "cex", f"{function}-{kind}.json")
        return path if relative else os.path.join(self.root, path)

    def holds(self, path: str) -> bool:
        """Whether `path` lies inside `.faasemu/` (a report written there is made private too)."""
        inside = os.path.realpath(self.base)
        return os.path.realpath(os.path.abspath(path)).startswith(inside + os.sep)

    # Creating: each returns the path, so `ProjectPaths(root).folder()` reads as "the folder, made".

    def folder(self) -> str:
        """`.faasemu/`, created 0700 (or tightened to it)."""
        return private_folder(self.base)

    def cex_folder(self) -> str:
        self.folder()
        return private_folder(self.cex)

    def chaos_folder(self) -> str:
        self.folder()
        os.makedirs(self.chaos, exist_ok=True)  # as before: lanes inside get their own temporary folders
        return self.chaos
