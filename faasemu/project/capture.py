"""PURE: change capture for Hasura-style event triggers: the captured-change record, the SQL that
captures changes on SQLite and PostgreSQL, and the payload and CloudEvent a change becomes.

A committed write to a triggered table leaves one row in an event table, written by a row-level
trigger in the same transaction (so an event exists if and only if its change committed), as
Hasura's triggers write `hdb_catalog.event_log`. capture_sqlite.py and capture_postgres.py run
this SQL; `up` reads the rows (`pending`), publishes each as `change_event(...)` into faasemu's own
durable log, then `forget`s them: a crash between the two re-reads them, duplicates but loses none.

What Hasura does, and so what this module does (graphql-engine, server/src-rsr and server/src-lib):

- The payload (https://hasura.io/docs/latest/event-triggers/payload/,
  docs/docs/event-triggers/payload.mdx): `{"event": {"session_variables", "op", "data": {"old",
  "new"}, "trace_context"}, "created_at", "id", "delivery_info": {"max_retries", "current_retry"},
  "trigger": {"name"}, "table": {"schema", "name"}}`. INSERT: old null, new the row; UPDATE: both;
  DELETE: old the row, new null; MANUAL: old null, new the row. Every column by default
  (Hasura/Backends/Postgres/DDL/EventTrigger.hs `mkTriggerQ`: the delivery columns default to `*`).
- `session_variables` and `trace_context` are read from the settings `hasura.user` and
  `hasura.tracecontext`, which only Hasura's own GraphQL transactions set
  (src-rsr/init_pg_source.sql `insert_event_log`): a plain SQL client's write, a handler's, gets
  null for both. `trace_context` is `{"trace_id", "span_id"}` in hex, plus `sampling_state` when
  there is one (Hasura/Tracing/Context.hs).
- An UPDATE fires only when the listened columns (`columns:`, else every column) differ in VALUE
  between the old and the new row, not when they are in the SET list: src-rsr/trigger.sql.shakespeare
  builds `row(OLD.c, ...)` and `row(NEW.c, ...)` and inserts the event only if `_old <> _new`
  (falling back to a binary `*<>` for types without `=`). So an update that changes nothing (SET
  status = status) fires nothing, with or without `columns`; the docs' note says the same.
- `created_at` is an aeson-encoded UTCTime (Hasura/Eventing/EventTrigger.hs `EventPayload`):
  UTC, `Z`, the fraction of a second without its trailing zeros and absent when zero
  (aeson src/Data/Aeson/Encoding/Builder.hs `timeOfDay64`): `2018-09-05T07:14:21.601701Z`.
- Key order: the body is an aeson `Value` (`genericToJSON`), whose objects are maps sorted by key,
  at every level (the row's columns too: Hasura keeps the payload as JSONB and parses it back);
  the docs' latest payload listing shows that order. `webhook_body` sorts likewise.
- The event `id` is a random uuid made once by the trigger (`gen_random_uuid()`), so it is the same
  for every attempt and every duplicate; `current_retry` is 0 on the first attempt.

Where faasemu differs, said once: the old/new comparison of an UPDATE is on the columns' JSON values
(`to_jsonb` on PostgreSQL, `IS NOT` on SQLite), which agrees with Postgres's `=` except on types
whose equality is not their text (citext, json whitespace); geometry is not run through
`ST_AsGeoJSON`. A change made as an outside client would through Hasura's GraphQL (`apply_change`,
`invoke --trigger`) carries `{"x-hasura-role": "admin"}` and a trace context derived from its id.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from faasemu.project.errors import ManifestError, UsageError
from faasemu.project.spec import TriggerOp, TriggerSpec

Op = Literal["INSERT", "UPDATE", "DELETE", "MANUAL"]
ChangeOp = Literal["insert", "update", "delete"]
OPS: tuple[Op, ...] = ("INSERT", "UPDATE", "DELETE", "MANUAL")
CHANGE_OPS: tuple[ChangeOp, ...] = ("insert", "update", "delete")

SQLITE_SCHEMA = "main"  # SQLite's name for the database a connection opens
POSTGRES_SCHEMA = "public"  # where an unqualified table is created (the default search_path)
# What an outside change carries, as a GraphQL mutation by Hasura's admin role (the console, an
# admin-secret client) would: Hasura's `hasura.user` setting holds the session variables.
ADMIN_SESSION: dict[str, str] = {"x-hasura-role": "admin"}

# SQLite: one table in the state database itself (a trigger can write only to its own database), named
# with the prefix faasemu's snapshots skip; triggers carry the prefix too, so `install` finds its own.
SQLITE_PREFIX = "_faasemu_"
SQLITE_TABLE = "_faasemu_changes"
# PostgreSQL: a schema of faasemu's own, as Hasura keeps hdb_catalog: the event table, one function.
PG_SCHEMA = "faasemu"
PG_TABLE = "faasemu.event_log"
PG_FUNCTION = "faasemu.capture"
PG_TRIGGER_PREFIX = "faasemu_"
_CHANGE_KEYS = ("table", "insert", "update", "delete")


class ChangeError(ValueError):
    """A table change (an events-file line, or applying one) is wrong; the message names the field.
    The caller adds `file:line`."""


class NoMatchingRow(ChangeError):
    """An update or delete whose `where` matches no row: said, never silently skipped."""

    def __init__(self, change: TableChange) -> None:
        self.change = change
        super().__init__(f"{change.op} of {change.qualified}: where {json.dumps(change.where)} matches no row")


@dataclass(frozen=True, slots=True)
class CapturedChange:
    """One captured row change, as read from the event table (`seq` orders them; 0 when not stored).

    `old`/`new` are the rows as JSON objects (None where Hasura sends null), `created_at` is already
    in Hasura's format (`hasura_time`), `session_variables` None for a plain SQL client's write.
    """

    seq: int
    id: str
    trigger: str
    schema: str
    table: str
    op: str  # "INSERT" | "UPDATE" | "DELETE" | "MANUAL"
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    created_at: str
    session_variables: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class TableChange:
    """One outside change of an events file: `values` is the inserted row or the update's `set`,
    `where` the equalities an update or delete matches (ANDed; a None value matches NULL)."""

    table: str
    op: ChangeOp
    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, Any] = field(default_factory=dict)
    schema: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


@dataclass(frozen=True, slots=True)
class Target:
    """A trigger's table as the database has it: the real names, every column in table order, and
    the columns an update listens to (empty: all of them)."""

    schema: str
    table: str
    columns: tuple[str, ...]
    listen: tuple[str, ...] = ()


# Tables and their columns, as a database's catalog lists them: (schema, table) -> columns in order.
Catalog = Mapping[tuple[str, str], Sequence[str]]


class CaptureStore(Protocol):
    """What the modules capture_sqlite and capture_postgres both provide. `db` is a SQLite path or a
    PostgreSQL URL, or the connection the module's `connect(db)` made (which a caller polling keeps:
    opening a PostgreSQL connection costs 50 times a `pending` on an open one)."""

    def connect(self, db: str) -> Any: ...
    def install(self, db: Any, triggers: Sequence[TriggerSpec], manifest_path: str) -> None: ...
    def pending(self, db: Any, limit: int) -> list[CapturedChange]: ...
    def forget(self, db: Any, seqs: Iterable[int]) -> None: ...
    def apply_change(self, db: Any, change: TableChange,
                     session_variables: Mapping[str, Any] | None = ADMIN_SESSION) -> int: ...


# --- the payload and the CloudEvent ----------------------------------------------------------------


def hasura_time(moment: datetime) -> str:
    """`created_at` as Hasura writes it (aeson's UTCTime): UTC, `Z`, no trailing zeros in the fraction.

    >>> hasura_time(datetime(2018, 9, 5, 7, 14, 21, 601700, tzinfo=UTC))
    '2018-09-05T07:14:21.6017Z'

    A naive datetime is taken as UTC (SQLite's `strftime('now')` is UTC).
    """
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def trace_context(change: CapturedChange) -> dict[str, str] | None:
    """Hasura's `trace_context`: set by Hasura's own transactions only, null for a plain SQL client.

    A change made as through Hasura (it has session variables) gets ids derived from the event id,
    in Hasura's hex form (a 16-byte trace id, an 8-byte span id), so that runs repeat exactly.
    """
    if change.session_variables is None:
        return None
    digest = hashlib.sha256(change.id.encode()).hexdigest()
    return {"trace_id": digest[:32], "span_id": digest[32:48]}


def event_data(change: CapturedChange) -> dict[str, Any]:
    """The Hasura payload of a change, without `delivery_info` (which differs per attempt)."""
    return {
        "event": {
            "session_variables": change.session_variables,
            "op": change.op,
            "data": {"old": change.old, "new": change.new},
            "trace_context": trace_context(change),
        },
        "created_at": change.created_at,
        "id": change.id,
        "trigger": {"name": change.trigger},
        "table": {"schema": change.schema, "name": change.table},
    }


def change_event(change: CapturedChange, webhook: str) -> dict[str, Any]:
    """The CloudEvent faasemu's bus stores and delivers for a change: the event id is the change's
    (stable across retries and duplicates), `data` the Hasura payload without `delivery_info`.

    `faasemutrigger` and `faasemuwebhook` (CloudEvent extensions) name the trigger and the function
    it is delivered to; `subject` the table.
    """
    return {
        "specversion": "1.0",
        "id": change.id,
        "source": f"faasemu/triggers/{change.trigger}",
        "type": f"trigger.{change.trigger}",
        "subject": f"{change.schema}.{change.table}",
        "time": change.created_at,
        "datacontenttype": "application/json",
        "faasemutrigger": change.trigger,
        "faasemuwebhook": webhook,
        "data": event_data(change),
    }


def webhook_body(event_data: Mapping[str, Any], current_retry: int, max_retries: int) -> bytes:
    """The JSON body of one attempt: the payload plus this attempt's `delivery_info`, as Hasura
    encodes it (keys sorted at every level, no spaces, UTF-8 unescaped; see the module's notes)."""
    body = dict(event_data)
    body["delivery_info"] = {"max_retries": max_retries, "current_retry": current_retry}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def default_schema(kind: str) -> str:
    """The schema an unqualified table is in: `main` on SQLite, `public` on PostgreSQL."""
    return POSTGRES_SCHEMA if kind == "postgres" else SQLITE_SCHEMA


def manual_change(trigger: TriggerSpec, data: Mapping[str, Any], op: str | None, now: datetime, *,
                  kind: str = "sqlite", event_id: str | None = None) -> CapturedChange:
    """The change `faasemu invoke FN --trigger NAME --data '{"new": {...}}'` delivers.

    The op follows from the data (new only: INSERT, old and new: UPDATE, old only: DELETE) unless
    `op` is given (MANUAL too, Hasura's "invoke trigger" from the console). `kind` is the state's
    database (the schema defaults as that database's does). Raises UsageError naming `--data`.
    """
    if not isinstance(data, Mapping):
        raise UsageError(f"--data: a trigger's data is a JSON object such as {{\"new\": {{...}}}}, "
                         f"not {_kind(data)}")
    unknown = [key for key in data if key not in ("old", "new")]
    if unknown:
        raise UsageError(f"--data: unknown key '{unknown[0]}'; a trigger's data has old and/or new rows, "
                         'as {"new": {"id": "o-1"}}')
    rows: dict[str, dict[str, Any] | None] = {}
    for key in ("old", "new"):
        value = data.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise UsageError(f"--data: '{key}' is a row, a JSON object of column: value, not {_kind(value)}")
        rows[key] = dict(value) if value is not None else None
    if op is None:
        if rows["new"] is not None:
            op = "UPDATE" if rows["old"] is not None else "INSERT"
        elif rows["old"] is not None:
            op = "DELETE"
        else:
            raise UsageError('--data: give the row in "new" (an insert), "old" (a delete) or both (an update)')
    op = op.upper()
    if op not in OPS:
        raise UsageError(f"--op: '{op}' is not an operation; use one of {', '.join(OPS)}")
    return CapturedChange(
        seq=0, id=event_id or str(uuid.uuid4()), trigger=trigger.name, schema=trigger.schema or default_schema(kind),
        table=trigger.table, op=op, old=rows["old"], new=rows["new"], created_at=hasura_time(now),
        session_variables=dict(ADMIN_SESSION),
    )


# --- outside changes (events files) ----------------------------------------------------------------


def parse_change(line: Mapping[str, Any], where: str = "change") -> TableChange:
    """An events-file line `{"change": {"table": "orders", "insert": {...}}}` (or `update` with `where`
    and `set`, or `delete` with `where`). Raises ChangeError naming the field; `where` prefixes it."""
    body = line.get("change") if isinstance(line, Mapping) else None
    example = '{"change": {"table": "orders", "insert": {"id": "o-1"}}}'
    if not isinstance(body, Mapping):
        raise ChangeError(f"{where}: a change is an object, as {example}; found {_kind(body)}")
    unknown = [key for key in body if key not in _CHANGE_KEYS]
    if unknown:
        raise ChangeError(f"{where}: unknown key '{unknown[0]}'; a change has table and one of insert, update, delete")
    table = body.get("table")
    if not isinstance(table, str) or not table:
        raise ChangeError(f"{where}.table: the table's name, as \"orders\" or \"public.orders\"; found {_kind(table)}")
    schema, _, name = table.rpartition(".")
    if not name or (table.count(".") > 1):
        raise ChangeError(f"{where}.table: '{table}' is not [schema.]table, as orders or public.orders")
    ops = [op for op in CHANGE_OPS if op in body]
    if len(ops) != 1:
        found = " and ".join(ops) or "none"
        raise ChangeError(f"{where}: give exactly one of insert, update, delete (found {found})")
    op = ops[0]
    spec = body[op]
    if op == "insert":
        return TableChange(name, "insert", values=_row(spec, f"{where}.insert", '{"id": "o-1", "status": "placed"}'),
                           schema=schema or None)
    shape = '{"where": {"id": "o-1"}, "set": {"status": "paid"}}' if op == "update" else '{"where": {"id": "o-1"}}'
    if not isinstance(spec, Mapping):
        raise ChangeError(f"{where}.{op}: an object, as {shape}; found {_kind(spec)}")
    allowed = ("where", "set") if op == "update" else ("where",)
    extra = [key for key in spec if key not in allowed]
    if extra:
        raise ChangeError(f"{where}.{op}: unknown key '{extra[0]}'; {op} takes {' and '.join(allowed)}, as {shape}")
    match = _row(spec.get("where"), f"{where}.{op}.where", '{"id": "o-1"}')
    values = _row(spec.get("set"), f"{where}.{op}.set", '{"status": "paid"}') if op == "update" else {}
    return TableChange(name, op, values=values, where=match, schema=schema or None)


def _row(value: Any, where: str, example: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise ChangeError(f"{where}: a non-empty object of column: value, as {example}; found {_kind(value)}")
    for column in value:
        if not isinstance(column, str) or not column:
            raise ChangeError(f"{where}: a column name must be a non-empty string")
    return dict(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "an empty object" if not value else "an object"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# --- checking a trigger against the database -------------------------------------------------------


def resolve_target(trigger: TriggerSpec, catalog: Catalog, manifest_path: str, *, schema: str,
                   views: Iterable[tuple[str, str]] = (), fold_case: bool = False) -> Target:
    """The trigger's table and columns as the database has them, or a ManifestError at the trigger's line
    naming the table or column and what the database has. `schema` is the default schema; `fold_case`
    matches names as SQLite does (case-insensitively)."""
    where = f"triggers.{trigger.name}"
    wanted = (trigger.schema or schema, trigger.table)

    def key(pair: tuple[str, str]) -> tuple[str, str]:
        return (pair[0].lower(), pair[1].lower()) if fold_case else pair

    found = {key(pair): pair for pair in catalog}
    shown = trigger.table if trigger.schema is None else f"{trigger.schema}.{trigger.table}"
    if key(wanted) not in found:
        if key(wanted) in {key(view) for view in views}:
            raise ManifestError(manifest_path, trigger.line, f"{where}.table: '{shown}' is a view; a trigger captures "
                                                             "the changes to a table")
        names = sorted(name if owner == schema else f"{owner}.{name}" for owner, name in catalog)
        has = f"it has: {', '.join(names)}" if names else "it has no tables (is state.schema applied?)"
        raise ManifestError(manifest_path, trigger.line,
                            f"{where}.table: no table '{shown}' in the state database; {has}")
    real = found[key(wanted)]
    columns = tuple(catalog[real])
    by_key = {(column.lower() if fold_case else column): column for column in columns}
    listen: list[str] = []
    for column in trigger.columns:
        actual = by_key.get(column.lower() if fold_case else column)
        if actual is None:
            raise ManifestError(manifest_path, trigger.line,
                                f"{where}.columns: no column '{column}' in table {_shown_table(real, schema)}; "
                                f"it has: {', '.join(columns)}")
        listen.append(actual)
    return Target(real[0], real[1], columns, tuple(listen))


def _shown_table(pair: tuple[str, str], schema: str) -> str:
    return pair[1] if pair[0] == schema else f"{pair[0]}.{pair[1]}"


def check_change(change: TableChange, catalog: Catalog, *, schema: str, fold_case: bool = False) -> Target:
    """The table an outside change writes and its columns, or a ChangeError naming what the database has."""
    wanted = (change.schema or schema, change.table)

    def key(pair: tuple[str, str]) -> tuple[str, str]:
        return (pair[0].lower(), pair[1].lower()) if fold_case else pair

    found = {key(pair): pair for pair in catalog}
    if key(wanted) not in found:
        names = sorted(_shown_table(pair, schema) for pair in catalog)
        raise ChangeError(f"change.table: no table '{change.qualified}' in the state database; "
                          f"it has: {', '.join(names) or 'no tables'}")
    real = found[key(wanted)]
    columns = tuple(catalog[real])
    known = {(column.lower() if fold_case else column) for column in columns}
    for part, row in (("set" if change.op == "update" else change.op, change.values), ("where", change.where)):
        for column in row:
            if (column.lower() if fold_case else column) not in known:
                field_name = f"change.{change.op}" if change.op == "insert" else f"change.{change.op}.{part}"
                raise ChangeError(f"{field_name}: no column '{column}' in table {_shown_table(real, schema)}; "
                                  f"it has: {', '.join(columns)}")
    return Target(real[0], real[1], columns)


# --- SQL: shared -----------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """A quoted SQL identifier (both databases): a table or column from a user's file is data."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal (both databases, PostgreSQL with standard_conforming_strings, its default)."""
    return "'" + text.replace("'", "''") + "'"


def change_sql(change: TableChange, table: str, placeholder: str = "?",
               cast: Mapping[str, str] | None = None) -> tuple[str, list[Any]]:
    """The statement applying an outside change, and its parameters. `table` is already quoted;
    `placeholder` is `?` (sqlite3) or `%s` (psycopg, which then needs `%` in identifiers doubled:
    done here); `cast` maps a column to the type its parameter is cast to (PostgreSQL)."""
    percent = placeholder == "%s"

    def ident(name: str) -> str:
        quoted = quote_ident(name)
        return quoted.replace("%", "%%") if percent else quoted

    def param(column: str) -> str:
        kind = (cast or {}).get(column)
        return f"CAST({placeholder} AS {kind.replace('%', '%%') if percent else kind})" if kind else placeholder

    if percent:
        table = table.replace("%", "%%")
    params: list[Any] = []
    if change.op == "insert":
        columns = list(change.values)
        params.extend(change.values[column] for column in columns)
        sql = (f"INSERT INTO {table} ({', '.join(ident(c) for c in columns)}) "
               f"VALUES ({', '.join(param(c) for c in columns)})")
        return sql, params
    tests = []
    for column, value in change.where.items():
        if value is None:
            tests.append(f"{ident(column)} IS NULL")
        else:
            tests.append(f"{ident(column)} = {param(column)}")
    if change.op == "update":
        sets = [f"{ident(column)} = {param(column)}" for column in change.values]
        params.extend(change.values.values())
        params.extend(value for value in change.where.values() if value is not None)
        return f"UPDATE {table} SET {', '.join(sets)} WHERE {' AND '.join(tests)}", params
    params.extend(value for value in change.where.values() if value is not None)
    return f"DELETE FROM {table} WHERE {' AND '.join(tests)}", params


# --- SQL: SQLite -----------------------------------------------------------------------------------

# seq is the rowid (so `pending` reads the primary key's b-tree from its start: no scan of what was
# forgotten). Without AUTOINCREMENT, which would write sqlite_sequence on every captured change: a rowid
# is reused only once the table is empty, so oldest-first holds.
SQLITE_CAPTURE_TABLE = f"""CREATE TABLE IF NOT EXISTS {SQLITE_TABLE} (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  trigger_name TEXT NOT NULL,
  schema_name TEXT NOT NULL,
  table_name TEXT NOT NULL,
  op TEXT NOT NULL,
  old TEXT,
  new TEXT,
  created_at TEXT NOT NULL,
  session_variables TEXT
)"""
SQLITE_PENDING = (f"SELECT seq, id, trigger_name, schema_name, table_name, op, old, new, created_at, session_variables "
                  f"FROM {SQLITE_TABLE} ORDER BY seq LIMIT ?")
SQLITE_OWN_TRIGGERS = r"SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\_faasemu\_%' ESCAPE '\'"
# A version-4 uuid made by SQLite, as Hasura's trigger makes one with gen_random_uuid().
SQLITE_UUID = ("lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' "
               "|| substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' "
               "|| hex(randomblob(6)))")
SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_SQLITE_ARGS = 120  # SQLite's functions take at most 127 arguments (SQLITE_MAX_FUNCTION_ARG)


def sqlite_trigger_name(trigger: str, op: TriggerOp) -> str:
    return f"{SQLITE_PREFIX}{trigger}_{op}"


def sqlite_value(row: str, column: str) -> str:
    """A column of OLD or NEW as json_object takes it: a BLOB (which JSON cannot hold) as `\\x` and
    lowercase hex, the text PostgreSQL's to_jsonb gives a bytea, so both databases send the same."""
    ref = f"{row}.{quote_ident(column)}"
    return f"CASE WHEN typeof({ref}) = 'blob' THEN '\\x' || lower(hex({ref})) ELSE {ref} END"


def sqlite_row_json(row: str, columns: Sequence[str]) -> str:
    """`json_object('id', NEW."id", ...)` over every column, in table order; past SQLite's argument
    limit the rest are added with json_insert."""
    head, rest = columns[: _SQLITE_ARGS // 2], columns[_SQLITE_ARGS // 2:]
    expr = "json_object(" + ", ".join(f"{quote_literal(c)}, {sqlite_value(row, c)}" for c in head) + ")"
    while rest:
        chunk, rest = rest[: _SQLITE_ARGS // 2], rest[_SQLITE_ARGS // 2:]
        pairs = ", ".join(f"{quote_literal('$.' + json.dumps(c, ensure_ascii=False))}, {sqlite_value(row, c)}"
                          for c in chunk)
        expr = f"json_insert({expr}, {pairs})"
    return expr


def sqlite_trigger_sql(trigger: TriggerSpec, op: TriggerOp, target: Target) -> str:
    """The AFTER ... FOR EACH ROW trigger that captures `op` on the target table for `trigger`.

    An update fires when a listened column differs by value (`IS NOT`, NULL-safe), as Hasura's
    `_old <> _new`; SQLite's `UPDATE OF col` would fire on the SET list instead, which Hasura does not.
    """
    old = sqlite_row_json("OLD", target.columns) if op in ("update", "delete") else "NULL"
    new = sqlite_row_json("NEW", target.columns) if op in ("insert", "update") else "NULL"
    when = ""
    if op == "update":
        listen = target.listen or target.columns
        when = " WHEN " + " OR ".join(f"OLD.{quote_ident(c)} IS NOT NEW.{quote_ident(c)}" for c in listen)
    values = ", ".join([SQLITE_UUID, quote_literal(trigger.name), quote_literal(target.schema),
                        quote_literal(target.table), quote_literal(op.upper()), old, new, SQLITE_NOW])
    return (f"CREATE TRIGGER {quote_ident(sqlite_trigger_name(trigger.name, op))} AFTER {op.upper()} "
            f"ON {quote_ident(target.table)} FOR EACH ROW{when}\nBEGIN\n"
            f"  INSERT INTO {SQLITE_TABLE} (id, trigger_name, schema_name, table_name, op, old, new, created_at)\n"
            f"  VALUES ({values});\nEND")


# --- SQL: PostgreSQL -------------------------------------------------------------------------------

# One function for every trigger (its name is the trigger's argument), as Hasura's insert_event_log;
# the rows are to_jsonb(OLD/NEW): numeric, timestamps, json/jsonb and arrays as Postgres renders them
# in JSON, which is what Hasura's row_to_json sends. `hasura.user` is where Hasura's own transactions
# put the session variables (init_pg_source.sql); empty means unset (a Postgres quirk Hasura notes too).
PG_SETUP = f"""CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA};
CREATE TABLE IF NOT EXISTS {PG_TABLE} (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL DEFAULT gen_random_uuid()::text,
  trigger_name text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  op text NOT NULL,
  old jsonb,
  new jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  session_variables jsonb
);
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $faasemu$
BEGIN
  INSERT INTO {PG_TABLE} (trigger_name, schema_name, table_name, op, old, new, session_variables)
  VALUES (TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP,
          CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
          CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END,
          NULLIF(current_setting('hasura.user', true), '')::jsonb);
  RETURN NULL;
END
$faasemu$;"""
PG_PENDING = (f"SELECT seq, id, trigger_name, schema_name, table_name, op, old, new, created_at, session_variables "
              f"FROM {PG_TABLE} ORDER BY seq LIMIT %s")
PG_FORGET = f"DELETE FROM {PG_TABLE} WHERE seq = ANY(%s)"
PG_OWN_TRIGGERS = f"""SELECT t.tgname, n.nspname, c.relname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND t.tgfoid = to_regprocedure('{PG_FUNCTION}()')"""
# (a partition's copy of its parent's trigger goes with the parent's: tgparentid, PostgreSQL 13+, as gen_random_uuid)
# The same as one statement, for a manifest without triggers (run through psql: no driver imported for it).
PG_DROP_OWN_TRIGGERS = f"""DO $faasemu$ DECLARE found record; BEGIN
FOR found IN {PG_OWN_TRIGGERS.replace("t.tgname, n.nspname, c.relname",
                                      "t.tgname AS name, n.nspname AS sch, c.relname AS tab")}
LOOP EXECUTE format('DROP TRIGGER %I ON %I.%I', found.name, found.sch, found.tab); END LOOP; END $faasemu$"""
# Two installs at once (an `up` and a `chaos` starting together) take turns: CREATE OR REPLACE FUNCTION and
# CREATE SCHEMA IF NOT EXISTS are not safe against each other.
PG_INSTALL_LOCK = "SELECT pg_advisory_xact_lock(7361246021658247749)"  # any constant of faasemu's own
# Ordinary and partitioned tables and views, with their columns in order, outside the catalogs and faasemu's schema.
PG_CATALOG = f"""SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{PG_SCHEMA}')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY n.nspname, c.relname, a.attnum"""


def pg_trigger_name(trigger: str, op: TriggerOp) -> str:
    """At most 8 + 42 + 7 characters: within Postgres's 63 (Hasura's 42-character limit on names is why)."""
    return f"{PG_TRIGGER_PREFIX}{trigger}_{op}"


def pg_trigger_sql(trigger: TriggerSpec, op: TriggerOp, target: Target) -> str:
    """The AFTER ... FOR EACH ROW trigger for `op`. An update fires only when the listened columns differ
    by value: compared as JSON (`jsonb` equality is defined for every type, so no update can fail on a
    column type without `=`, which Hasura works around with a binary comparison)."""
    when = ""
    if op == "update":
        if target.listen:
            old = ", ".join(f"OLD.{quote_ident(c)}" for c in target.listen)
            new = ", ".join(f"NEW.{quote_ident(c)}" for c in target.listen)
            when = f" WHEN (jsonb_build_array({old}) IS DISTINCT FROM jsonb_build_array({new}))"
        else:
            when = " WHEN (to_jsonb(OLD) IS DISTINCT FROM to_jsonb(NEW))"
    table = f"{quote_ident(target.schema)}.{quote_ident(target.table)}"
    return (f"CREATE TRIGGER {quote_ident(pg_trigger_name(trigger.name, op))} AFTER {op.upper()} ON {table} "
            f"FOR EACH ROW{when} EXECUTE FUNCTION {PG_FUNCTION}({quote_literal(trigger.name)})")


# --- reading rows back ---------------------------------------------------------------------------


def captured(row: Sequence[Any]) -> CapturedChange:
    """A row of SQLITE_PENDING or PG_PENDING as a CapturedChange (JSON as text or already decoded,
    created_at as text or a datetime)."""
    seq, event_id, trigger, schema, table, op, old, new, created_at, session = row
    moment = created_at if isinstance(created_at, datetime) else datetime.fromisoformat(str(created_at))
    return CapturedChange(int(seq), str(event_id), trigger, schema, table, op, _json(old), _json(new),
                          hasura_time(moment), _json(session))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value
