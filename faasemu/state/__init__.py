"""Where handlers keep state: the project's state file for `up`, `invoke` and `replay`.

`chaos` uses fresh copies per run (its adapters live beside this module) and never touches the
project's file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile

from faasemu.errors import ManifestError
from faasemu.spec import Manifest


def ensure_project_state(manifest: Manifest) -> str:
    """The absolute path handlers get in $FAASEMU_STATE, created (with `schema`) only when absent.

    A new SQLite database is built under a temporary name and renamed into place, so an
    interrupted start never leaves a half-initialised database that would then never be reset.
    """
    state = manifest.state
    default = os.path.join(manifest.root, ".faasemu", "state.db")
    if state.kind == "dir":
        path = state.path or os.path.join(manifest.root, ".faasemu", "state")
        os.makedirs(path, exist_ok=True)
        return path
    path = state.path or default
    if state.kind == "hooks" or os.path.exists(path):
        return path
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".state-", suffix=".db", dir=folder)
    os.close(fd)
    try:
        connection = sqlite3.connect(temporary)
        try:
            if state.schema:
                with open(state.schema, encoding="utf-8") as schema:
                    connection.executescript(schema.read())
            connection.commit()
        finally:
            connection.close()
        os.replace(temporary, path)
    except sqlite3.Error as exc:
        os.unlink(temporary)
        raise ManifestError(manifest.path, None, f"state.schema: {state.schema} failed to apply: {exc}") from None
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path
