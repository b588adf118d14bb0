"""Change capture in a SQLite state database: install the triggers, read and forget captured changes,
apply an outside change. The SQL is capture.py's; this module only runs it.

Handlers write the same file at the same time, so every call opens its own connection with a busy
timeout (or uses the one `connect` gave, for a caller that polls: `db` is a path or that connection)
and holds no lock longer than its statement or transaction. The journal mode is the user's:
nothing here changes it (a WAL database stays WAL, a rollback-journal one stays so).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from faasemu.project.capture import (
    ADMIN_SESSION,
    SQLITE_CAPTURE_TABLE,
    SQLITE_OWN_TRIGGERS,
    SQLITE_PENDING,
    SQLITE_PREFIX,
    SQLITE_SCHEMA,
    SQLITE_TABLE,
    CapturedChange,
    ChangeError,
    NoMatchingRow,
    TableChange,
    captured,
    change_sql,
    check_change,
    quote_ident,
    resolve_target,
    sqlite_trigger_sql,
)
from faasemu.project.errors import ManifestError
from faasemu.project.spec import TriggerSpec

BUSY_TIMEOUT = 10.0  # seconds to wait for a handler's write transaction to end


Db = str | sqlite3.Connection  # the state file's path, or a connection `connect` made


def connect(db: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) to an existing file; never creates one.
    Every function here takes it instead of the path, which saves opening one per call."""
    return sqlite3.connect(f"file:{quote(db)}?mode=rw", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)


@contextmanager
def _session(db: Db) -> Iterator[sqlite3.Connection]:
    if isinstance(db, sqlite3.Connection):
        if db.isolation_level is not None or db.in_transaction:
            raise ValueError("capture needs a connection in autocommit mode outside a transaction (use connect())")
        yield db
        return
    connection = connect(db)
    try:
        yield connection
    finally:
        connection.close()


def install(db: Db, triggers: Sequence[TriggerSpec], manifest_path: str) -> None:
    """Create the capture table and exactly the triggers of `triggers` (every faasemu trigger found is
    dropped first, so an edited manifest leaves none stale), in one transaction. Each trigger's table
    and columns are checked against the database: ManifestError at the trigger's line otherwise.

    With no triggers it only drops stale ones (and creates no table)."""
    with _session(db) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            for (name,) in connection.execute(SQLITE_OWN_TRIGGERS).fetchall():
                connection.execute(f"DROP TRIGGER IF EXISTS {quote_ident(name)}")
            if triggers:
                connection.execute(SQLITE_CAPTURE_TABLE)
                catalog, views = _catalog(connection)
                for trigger in triggers:
                    if trigger.schema not in (None, SQLITE_SCHEMA):
                        raise ManifestError(manifest_path, trigger.line,
                                            f"triggers.{trigger.name}.table: '{trigger.schema}.{trigger.table}' names "
                                            f"a schema, and a SQLite state database has one ({SQLITE_SCHEMA}); "
                                            f"write {trigger.table}")
                    target = resolve_target(trigger, catalog, manifest_path, schema=SQLITE_SCHEMA, views=views,
                                            fold_case=True)
                    for op in trigger.on:
                        try:
                            connection.execute(sqlite_trigger_sql(trigger, op, target))
                        except sqlite3.Error as exc:
                            raise ManifestError(manifest_path, trigger.line,
                                                f"triggers.{trigger.name}: SQLite refused the {op} trigger on "
                                                f"{target.table}: {exc}") from None
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def pending(db: Db, limit: int) -> list[CapturedChange]:
    """The captured changes not yet forgotten, oldest first (by seq, the rowid), at most `limit`."""
    with _session(db) as connection:
        return [captured(row) for row in connection.execute(SQLITE_PENDING, (limit,)).fetchall()]


def forget(db: Db, seqs: Iterable[int]) -> None:
    """Delete these captured changes (once faasemu's own log holds them)."""
    numbers = [int(seq) for seq in seqs]
    if not numbers:
        return
    with _session(db) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(f"DELETE FROM {SQLITE_TABLE} WHERE seq = ?", [(seq,) for seq in numbers])
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def apply_change(db: Db, change: TableChange, session_variables: Mapping[str, Any] | None = ADMIN_SESSION) -> int:
    """Apply one outside change in one transaction and return the rows it touched; the changes it
    captured carry `session_variables` (an outside GraphQL mutation's). An update or delete matching
    no row raises NoMatchingRow (nothing is written); an unknown table or column, or a write SQLite
    refuses (a constraint), raises ChangeError."""
    if change.schema not in (None, SQLITE_SCHEMA):
        raise ChangeError(f"change.table: '{change.qualified}' names a schema, and a SQLite state database has one "
                          f"({SQLITE_SCHEMA}); write {change.table}")
    with _session(db) as connection:
        connection.execute("BEGIN IMMEDIATE")
        try:
            catalog, _ = _catalog(connection)
            target = check_change(change, catalog, schema=SQLITE_SCHEMA, fold_case=True)
            capturing = _has_capture_table(connection)
            before = connection.execute(f"SELECT coalesce(max(seq), 0) FROM {SQLITE_TABLE}").fetchone()[0] \
                if capturing else 0
            sql, params = change_sql(change, quote_ident(target.table))
            try:
                touched = connection.execute(sql, [_bindable(value) for value in params]).rowcount
            except sqlite3.Error as exc:
                raise ChangeError(f"{change.op} of {change.qualified} failed: {exc}") from None
            if touched == 0 and change.op != "insert":
                raise NoMatchingRow(change)
            if capturing and session_variables is not None:
                # Every row after `before` is this transaction's: it holds the database's write lock.
                connection.execute(f"UPDATE {SQLITE_TABLE} SET session_variables = ? WHERE seq > ?",
                                   (_json_text(dict(session_variables)), before))
            connection.execute("COMMIT")
            return touched
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


def _catalog(connection: sqlite3.Connection) -> tuple[dict[tuple[str, str], list[str]], list[tuple[str, str]]]:
    """The tables (with their columns, generated ones included) and the views, faasemu's own left out."""
    rows = connection.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        r"AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE ? ESCAPE '\' ORDER BY name",
        (SQLITE_PREFIX.replace("_", "\\_") + "%",),
    ).fetchall()
    tables: dict[tuple[str, str], list[str]] = {}
    views: list[tuple[str, str]] = []
    for name, kind in rows:
        if kind == "view":
            views.append((SQLITE_SCHEMA, name))
            continue
        # hidden: 0 an ordinary column, 1 a virtual table's hidden one, 2 and 3 generated (readable in triggers)
        columns = [column for column, hidden in
                   connection.execute("SELECT name, hidden FROM pragma_table_xinfo(?)", (name,)) if hidden != 1]
        tables[(SQLITE_SCHEMA, name)] = columns
    return tables, views


def _has_capture_table(connection: sqlite3.Connection) -> bool:
    row = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SQLITE_TABLE,))
    return row.fetchone() is not None


def _bindable(value: Any) -> Any:
    """A JSON value as SQLite stores it: objects and lists as JSON text (SQLite has no JSON type)."""
    return _json_text(value) if isinstance(value, (dict, list)) else value


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
