"""Change capture in a PostgreSQL state database: install the triggers, read and forget captured changes,
apply an outside change. The SQL is capture.py's; this module only runs it, through psycopg
(`postgres_sql.connect`, which imports it only when called: the core install needs no driver).

Everything faasemu adds lives in the schema `faasemu` (the event table and one plpgsql function, as
Hasura keeps hdb_catalog), apart from the triggers themselves, which must sit on the user's tables.

`db` is the database's URL, or a connection `connect` made: opening one costs ~9 ms on a Unix socket
(a server process forks), 50 times what `pending` costs on an open one, so a caller polling keeps one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faasemu.project import postgres_sql
from faasemu.project.capture import (
    ADMIN_SESSION,
    PG_CATALOG,
    PG_FORGET,
    PG_INSTALL_LOCK,
    PG_OWN_TRIGGERS,
    PG_PENDING,
    PG_SETUP,
    POSTGRES_SCHEMA,
    CapturedChange,
    ChangeError,
    NoMatchingRow,
    TableChange,
    captured,
    change_sql,
    check_change,
    pg_trigger_sql,
    quote_ident,
    resolve_target,
)
from faasemu.project.errors import ManifestError
from faasemu.project.spec import TriggerSpec

if TYPE_CHECKING:
    import psycopg

Catalog = dict[tuple[str, str], list[str]]
Types = dict[tuple[str, str], dict[str, str]]  # (schema, table) -> column -> its type, as format_type names it
_JSON_TYPES = ("json", "jsonb")


Db = Any  # str | psycopg.Connection: psycopg is imported only when used


def connect(db: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (transactions are explicit); every function here takes it for the URL."""
    return postgres_sql.connect(db, autocommit=True)


@contextmanager
def _session(db: Db) -> Iterator[psycopg.Connection[Any]]:
    if not isinstance(db, str):
        if not db.autocommit:
            raise ValueError("capture needs a connection in autocommit mode (use connect())")
        yield db
        return
    with connect(db) as connection:
        yield connection


def install(db: Db, triggers: Sequence[TriggerSpec], manifest_path: str) -> None:
    """Create the `faasemu` schema (event table, capture function) and exactly the triggers of `triggers`:
    every trigger calling faasemu's function is dropped first, so an edited manifest leaves none stale.
    One transaction (PostgreSQL's DDL is transactional). Each trigger's table and columns are checked
    against the catalog: ManifestError at the trigger's line otherwise.

    With no triggers it only drops stale ones (and creates nothing)."""
    import psycopg

    with _session(db) as connection, connection.transaction():
        connection.execute(PG_INSTALL_LOCK)
        for name, schema, table in connection.execute(PG_OWN_TRIGGERS).fetchall():
            connection.execute(f"DROP TRIGGER {quote_ident(name)} ON {quote_ident(schema)}.{quote_ident(table)}")
        if not triggers:
            return
        connection.execute(PG_SETUP)
        catalog, views, _ = _catalog(connection)
        for trigger in triggers:
            target = resolve_target(trigger, catalog, manifest_path, schema=POSTGRES_SCHEMA, views=views)
            for op in trigger.on:
                try:
                    with connection.transaction():
                        connection.execute(pg_trigger_sql(trigger, op, target))
                except psycopg.Error as exc:
                    raise ManifestError(manifest_path, trigger.line,
                                        f"triggers.{trigger.name}: PostgreSQL refused the {op} trigger on "
                                        f"{target.schema}.{target.table}: {_said(exc)}") from None


def pending(db: Db, limit: int) -> list[CapturedChange]:
    """The captured changes not yet forgotten, oldest first (by seq, the primary key), at most `limit`.

    A transaction that took a lower seq may commit after a higher one was read: its change is read on a
    later call, since forgetting goes by seq, not by a high-water mark."""
    with _session(db) as connection:
        return [captured(row) for row in connection.execute(PG_PENDING, (limit,)).fetchall()]


def forget(db: Db, seqs: Iterable[int]) -> None:
    """Delete these captured changes (once faasemu's own log holds them)."""
    numbers = [int(seq) for seq in seqs]
    if not numbers:
        return
    with _session(db) as connection:
        connection.execute(PG_FORGET, (numbers,))


def apply_change(db: Db, change: TableChange, session_variables: Mapping[str, Any] | None = ADMIN_SESSION) -> int:
    """Apply one outside change in one transaction and return the rows it touched. The changes it captures
    carry `session_variables`, put where Hasura's GraphQL transactions put them (the transaction-local
    setting `hasura.user`, which the capture function reads). Values are bound, cast to their column's type
    (json and jsonb columns take any JSON value); an update or delete matching no row raises NoMatchingRow
    (nothing is written); an unknown table or column, or a write PostgreSQL refuses, raises ChangeError."""
    import psycopg
    from psycopg.types.json import Jsonb

    with _session(db) as connection:
        try:
            with connection.transaction():
                catalog, _, types = _catalog(connection)
                target = check_change(change, catalog, schema=POSTGRES_SCHEMA)
                columns = types[(target.schema, target.table)]
                if session_variables is not None:
                    connection.execute("SELECT set_config('hasura.user', %s, true)",
                                       (json.dumps(dict(session_variables)),))
                table = f"{quote_ident(target.schema)}.{quote_ident(target.table)}"
                sql, params = change_sql(change, table, "%s", cast=columns)
                named = list(change.values) + [column for column, value in change.where.items() if value is not None]
                bound = [Jsonb(value) if value is not None and columns.get(column) in _JSON_TYPES else value
                         for column, value in zip(named, params)]
                touched = connection.execute(sql, bound).rowcount
                if touched == 0 and change.op != "insert":
                    raise NoMatchingRow(change)
                return touched
        except psycopg.Error as exc:
            raise ChangeError(f"{change.op} of {change.qualified} failed: {_said(exc)}") from None


def _catalog(connection: psycopg.Connection[Any]) -> tuple[Catalog, list[tuple[str, str]], Types]:
    """Tables (ordinary, partitioned, foreign) with their columns in order, the views, and every column's type."""
    tables: Catalog = {}
    types: Types = {}
    views: list[tuple[str, str]] = []
    for schema, name, kind, column, kind_name in connection.execute(PG_CATALOG).fetchall():
        if kind in ("v", "m"):
            views.append((schema, name))
            continue
        tables.setdefault((schema, name), [])
        types.setdefault((schema, name), {})
        if column is not None:
            tables[(schema, name)].append(column)
            types[(schema, name)][column] = kind_name
    return tables, sorted(set(views)), types


def _said(exc: Exception) -> str:
    """PostgreSQL's message, first line only (the rest is psycopg's context)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or str(exc).strip().splitlines()[0]
