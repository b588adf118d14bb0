"""Where handlers keep state: the project's state file for `up`, `invoke` and `replay`.

`chaos` uses fresh copies per run (its adapters live beside this module) and never touches the
project's file.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from urllib.parse import unquote, urlsplit

from faasemu.project.errors import CorruptDatabase, ManifestError
from faasemu.project.paths import ProjectPaths
from faasemu.project.private import is_project_folder, private_folder
from faasemu.project.spec import Manifest

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class OpenState:
    """The project's state while a command runs.

    `location` is what handlers get in $FAASEMU_STATE (a SQLite file, a folder, or a PostgreSQL URL,
    which they also get as $DATABASE_URL); `capture` the capture module of its database
    (project/capture_sqlite.py or capture_postgres.py) when the manifest has triggers, else None.
    """

    location: str
    capture: ModuleType | None = None


@contextmanager
def open_project_state(manifest: Manifest) -> Iterator[OpenState]:
    """The project's state for `up`, `invoke` and `replay`: created when absent (never reset), with the
    manifest's triggers installed in it and every stale one dropped (project/capture_sqlite.py,
    capture_postgres.py). With `state.postgres` the database is served while the block runs: the
    private server (`auto`) is leased and, when the last lease ends, stopped (project/postgres.py)."""
    if manifest.state.kind == "postgres":
        with project_database(manifest) as url:
            capture = _postgres_capture(manifest, url)
            yield OpenState(url, capture)
        return
    location = ensure_project_state(manifest)
    if manifest.state.kind != "sqlite":
        yield OpenState(location)
        return
    from faasemu.project import capture_sqlite

    capture_sqlite.install(location, manifest.triggers, manifest.path)
    yield OpenState(location, capture_sqlite if manifest.triggers else None)


@contextmanager
def state_location(manifest: Manifest) -> Iterator[str]:
    """Where the state is while the block runs, without touching triggers (`replay`): a PostgreSQL
    database is served meanwhile, a SQLite file or folder is created when absent."""
    if manifest.state.kind == "postgres":
        with project_database(manifest) as url:
            yield url
    else:
        yield ensure_project_state(manifest)


@contextmanager
def project_database(manifest: Manifest) -> Iterator[str]:
    """The URL of the project's PostgreSQL database, created with `state.schema` when absent.

    `auto`: database `app` on the private server under `.faasemu/postgres/` (a Unix socket only, no TCP
    port). A URL: that database on the user's own server, created there (schema applied) only if it
    does not exist yet."""
    from faasemu.project import postgres, postgres_sql

    target = manifest.state.postgres
    assert target is not None
    if target != "auto":
        parts = urlsplit(target)
        name = unquote(parts.path.lstrip("/")) or parts.username or "postgres"
        postgres_sql.ensure_database(target, name, manifest.state.schema)
        yield target
        return
    paths = ProjectPaths(manifest.root)
    paths.folder()
    with postgres.private_server(paths.postgres) as server:
        postgres_sql.ensure_database(server, postgres.DATABASE, manifest.state.schema)
        yield server.url(postgres.DATABASE)


def _postgres_capture(manifest: Manifest, url: str) -> ModuleType | None:
    """capture_postgres with the triggers installed, or None when there are none. Without triggers, the
    triggers an earlier manifest had are dropped through psql (importing psycopg, faasemu's own driver,
    costs ~0.2 s of a start; handlers bring their own, and faasemu needs one only to read captured changes)."""
    if not manifest.triggers:
        from faasemu.project import postgres_sql
        from faasemu.project.capture import PG_DROP_OWN_TRIGGERS

        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/")) or "postgres"
        postgres_sql.run_sql(url, database, PG_DROP_OWN_TRIGGERS, "dropping the triggers of an earlier manifest")
        return None
    from faasemu.project import capture_postgres

    capture_postgres.install(url, manifest.triggers, manifest.path)
    return capture_postgres if manifest.triggers else None


def ensure_project_state(manifest: Manifest) -> str:
    """The absolute path handlers get in $FAASEMU_STATE, created (with `schema`) only when absent.

    A new SQLite database is built under a temporary name and renamed into place, so an
    interrupted start never leaves a half-initialised database that would then never be reset.
    """
    state = manifest.state
    assert state.kind != "postgres", "a PostgreSQL state is served while it is used: open_project_state"
    paths = ProjectPaths(manifest.root)
    if state.kind == "dir":
        path = state.path or paths.state_dir
        if is_project_folder(os.path.dirname(os.path.abspath(path))):
            private_folder(os.path.dirname(os.path.abspath(path)))
        os.makedirs(path, exist_ok=True)
        return path
    path = state.path or paths.state_db
    if state.kind == "hooks":
        return path
    if os.path.exists(path):
        check_state_database(manifest, path)
        return path
    folder = os.path.dirname(path)
    if is_project_folder(folder):
        private_folder(folder)
    else:
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


def check_state_database(manifest: Manifest, path: str) -> None:
    """Refuse a state file SQLite cannot read, before a handler trips over it with a DatabaseError
    of its own (a 500 for every request): name it, say why, and what deleting it costs."""
    reason = ""
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        head = SQLITE_HEADER
    if head and head != SQLITE_HEADER:
        reason = "it does not start with SQLite's header"
    elif not reason:
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", None) not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                return  # busy, locked, unreadable: the handlers' business, not proof of damage
            reason = str(exc)
    if reason:
        schema = os.path.relpath(manifest.state.schema, manifest.root) if manifest.state.schema else None
        rebuilt = f"rebuilt from state.schema ({schema})" if schema else "recreated empty"
        raise CorruptDatabase(
            path, reason, holds=f"what your handlers stored (state.sqlite in {os.path.basename(manifest.path)})",
            lost=f"the next command finds it absent and it is {rebuilt}, and the rows in it are lost",
        )
