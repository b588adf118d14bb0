"""`state.postgres` in a campaign: a template database built once, a fresh copy of it for every run.

Measured on the private server (2 cores, fsync on): `DROP DATABASE` + `CREATE DATABASE ... TEMPLATE`
costs ~35 ms (STRATEGY FILE_COPY ~52 ms, as it checkpoints), resetting in place (TRUNCATE ... RESTART
IDENTITY and reseeding) 1-5 ms. A fresh copy is always exactly the template, whatever the handlers
did (DDL, sequences, triggers, seed rows), so every lane keeps its *next* database ready: it is made
in a thread while the current run executes, and a run's reset is a swap (bench/bench_chaos_postgres.py
measures what remains). Commits in run databases skip the WAL flush (`synchronous_commit = off`):
a run's state is thrown away, and the durability of the project's own database is untouched.

A snapshot is every row of every table outside PostgreSQL's and faasemu's own schemas, each row read
as `to_jsonb(row)` so every type is normalised the same way: numbers as JSON numbers, dates and times as
ISO text (the session in UTC), arrays as tuples, json/jsonb as canonical JSON text, bytea as bytes (shown
`x'..'` as on SQLite). Tables outside `public` are named `schema.table`. Columns whose values a sequence
gives (serial, identity) are nondeterministic by construction (a duplicate that ON CONFLICT ignores still
consumes one): `generated_columns` names them so the campaign masks them (docs/verification.md#postgresql).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from faasemu.project import postgres
from faasemu.project.errors import FaasemuError, ManifestError, PostgresError
from faasemu.project.paths import ProjectPaths
from faasemu.project.postgres_sql import Target, connect, database_url, drop_database, ensure_database
from faasemu.project.spec import Manifest
from faasemu.verify.model import Snapshot, Table

PREFIX = "faasemu_chaos_"
BYTEA = 17
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "faasemu")

_TABLES = """
SELECT c.oid, n.nspname, c.relname,
       array(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       array(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 17),
       array(SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord), pg_attribute a
             WHERE i.indrelid = c.oid AND i.indisprimary AND a.attrelid = c.oid AND a.attnum = k.attnum
             ORDER BY k.ord),
       array(SELECT a.attname FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> ALL (%s) AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
ORDER BY n.nspname, c.relname
"""


@dataclass
class _TableInfo:
    name: str  # as reported: `orders`, or `audit.orders` outside public
    sql: str  # the quoted, qualified name
    columns: tuple[str, ...]
    bytea: frozenset[str]
    key: tuple[str, ...]
    generated: tuple[str, ...]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def tables(connection: Any) -> list[_TableInfo]:
    found = []
    for _oid, schema, name, columns, bytea, key, generated in connection.execute(_TABLES, [list(SYSTEM_SCHEMAS)]):
        shown = name if schema == "public" else f"{schema}.{name}"
        found.append(_TableInfo(shown, f"{_quote(schema)}.{_quote(name)}", tuple(columns), frozenset(bytea),
                                tuple(key), tuple(generated)))
    return found


def normalise(value: Any, bytea: bool = False) -> Any:
    """A JSON value from `to_jsonb` as a hashable snapshot value (see the module docstring)."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, list):
        return tuple(normalise(item, bytea) for item in value)
    if bytea and isinstance(value, str) and value.startswith("\\x"):
        return bytes.fromhex(value[2:])
    return value


def snapshot(connection: Any) -> Snapshot:
    """Every row of every user table, read in one transaction (a consistent picture), in a stable order."""
    with connection.transaction():
        found = tables(connection)
        if not found:
            return Snapshot(())
        union = " UNION ALL ".join(f"SELECT {i}, to_jsonb(t) FROM {info.sql} t" for i, info in enumerate(found))
        rows: list[list[tuple[Any, ...]]] = [[] for _ in found]
        for number, document in connection.execute(union):
            info = found[number]
            rows[number].append(tuple(normalise(document.get(column), column in info.bytea) for column in info.columns))
    return Snapshot(tuple(
        Table(info.name, info.columns, info.key, tuple(sorted(table, key=_sort_key)))
        for info, table in zip(found, rows)
    ))


def _sort_key(row: tuple[Any, ...]) -> str:
    return json.dumps([_plain(v) for v in row], sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "x'" + value.hex() + "'"
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass
class _LaneDatabases:
    """One lane's databases: the one its run uses and the next, being prepared in a thread."""

    admin: Any  # an autocommit connection to the server's `postgres` database, used by this lane alone
    current: str | None = None
    pending: asyncio.Future[str] | None = None
    reader: Any = None  # a connection to `current`, for snapshots
    made: list[str] = field(default_factory=list)
    number: int = 0


class CampaignDatabases:
    """The campaign's databases on the project's server: `auto` leases the private server for the
    campaign (shared with an `up` running meanwhile), a URL uses the user's own (CREATE DATABASE needed)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.stack = ExitStack()
        self.target: Target | None = None
        self.name = f"{PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.template = self.name + "_t"
        self.lanes: dict[str, _LaneDatabases] = {}
        self.generated: frozenset[str] = frozenset()

    def open(self, lanes: list[str]) -> None:
        """Start (or join) the server, build the template from `state.schema` and each lane's first database."""
        target = self.manifest.state.postgres
        assert target is not None
        try:
            if target == "auto":
                paths = ProjectPaths(self.manifest.root)
                paths.folder()
                self.target = self.stack.enter_context(postgres.private_server(paths.postgres))
                _drop_stale(self.target)
            else:
                self.target = target
            ensure_database(self.target, self.template, self.manifest.state.schema)
            if self.manifest.triggers:  # captured in every copy, as in the project's database
                from faasemu.project import capture_postgres

                capture_postgres.install(database_url(self.target, self.template), self.manifest.triggers,
                                         self.manifest.path)
            with connect(database_url(self.target, self.template), autocommit=True) as connection:
                self.generated = frozenset(f"{info.name}.{column}" for info in tables(connection)
                                           for column in info.generated)
            for lane in lanes:
                admin = connect(database_url(self.target, "postgres"), autocommit=True)
                self.lanes[lane] = _LaneDatabases(admin)
        except ManifestError:  # a trigger's table or column the schema lacks: at the trigger's line
            self.close()
            raise
        except FaasemuError as exc:
            self.close()
            raise PostgresError(f"{self.manifest.path}: state.postgres: the campaign's databases: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _make(self, lane: str) -> str:
        """Create the lane's next database from the template (in a thread: it takes ~35 ms)."""
        databases = self.lanes[lane]
        databases.number += 1
        name = f"{self.name}_{lane}_{databases.number}"
        databases.made.append(name)
        _execute(databases.admin, "CREATE DATABASE {} TEMPLATE {}", name, self.template,
                 doing=f"copying {self.template}")
        _execute(databases.admin, "ALTER DATABASE {} SET synchronous_commit = off", name, doing=f"setting up {name}")
        return name

    def _retire(self, lane: str, old: str | None) -> str:
        databases = self.lanes[lane]
        if old is not None:
            _execute(databases.admin, "DROP DATABASE IF EXISTS {} WITH (FORCE)", old, doing=f"dropping {old}")
            databases.made.remove(old)
        return self._make(lane)

    async def fresh(self, lane: str) -> str:
        """The URL of a fresh copy of the template for the lane's next run; the previous one is dropped
        and the one after is prepared meanwhile."""
        assert self.target is not None
        databases = self.lanes[lane]
        if databases.pending is None:
            databases.pending = asyncio.ensure_future(asyncio.to_thread(self._make, lane))
        name = await databases.pending
        old, databases.current = databases.current, name
        if databases.reader is not None:
            databases.reader.close()
            databases.reader = None
        databases.pending = asyncio.ensure_future(asyncio.to_thread(self._retire, lane, old))
        return database_url(self.target, name)

    def connection(self, lane: str) -> Any:
        """An autocommit connection to the lane's current database (snapshots, captured changes, table
        changes), open until the lane's next run."""
        databases = self.lanes[lane]
        assert self.target is not None and databases.current is not None
        if databases.reader is None:
            databases.reader = connect(database_url(self.target, databases.current),
                                       autocommit=True, options="-c TimeZone=UTC")
        return databases.reader

    def snapshot(self, lane: str) -> Snapshot:
        return snapshot(self.connection(lane))

    async def aclose(self) -> None:
        for databases in self.lanes.values():
            if databases.pending is not None:
                await asyncio.gather(databases.pending, return_exceptions=True)
                databases.pending = None
        self.close()

    def close(self) -> None:
        """Drop every database the campaign made (also after Ctrl+C or an error) and end the lease."""
        try:
            for databases in self.lanes.values():
                if databases.reader is not None:
                    databases.reader.close()
                    databases.reader = None
                for name in list(databases.made):
                    try:
                        _execute(databases.admin, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name,
                                 doing=f"dropping {name}")
                        databases.made.remove(name)
                    except FaasemuError:
                        pass
                databases.admin.close()
            self.lanes.clear()
            if self.target is not None:
                try:
                    drop_database(self.target, self.template)
                except FaasemuError:
                    pass
        finally:
            self.target = None
            self.stack.close()


def _execute(connection: Any, sql: str, *names: str, doing: str) -> None:
    from psycopg import Error
    from psycopg import sql as psql

    try:
        connection.execute(psql.SQL(sql).format(*(psql.Identifier(name) for name in names)))
    except Error as exc:
        raise PostgresError(f"PostgreSQL failed {doing}: {str(exc).strip()}") from None


def _drop_stale(server: postgres.PgServer) -> None:
    """Databases of a campaign that was killed (its process is gone) on the private server: dropped."""
    with connect(server.admin_url, autocommit=True) as connection:
        names = [row[0] for row in connection.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                      [PREFIX.replace("_", "\\_") + "%"])]
        for name in names:
            pid = name[len(PREFIX):].split("_", 1)[0]
            if pid.isdigit() and not postgres.process_alive(int(pid), None):
                _execute(connection, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name, doing=f"dropping {name}")

