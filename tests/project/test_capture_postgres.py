"""Change capture on a real PostgreSQL server (capture_postgres.py): `CaptureContract` of
test_capture_sqlite.py again, then what only PostgreSQL has (schemas, JSON of its types, `hasura.user`).

The server is the `postgres_server` fixture's (tests/conftest.py): skipped, saying why, only where
PostgreSQL is not installed, and failed instead under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_capture_sqlite import SCHEMA, Backend, CaptureContract, trigger

from faasemu.project import capture_postgres
from faasemu.project.capture import ChangeError, TableChange
from faasemu.project.errors import ManifestError
from faasemu.project.postgres_sql import connect, ensure_database
from faasemu.project.spec import TriggerSpec


class PostgresBackend(Backend):
    schema = "public"

    def __init__(self, url: str) -> None:
        self.store = capture_postgres
        self.db = url

    def write(self, *statements: str, commit: bool = True) -> None:
        with connect(self.db) as connection:
            for statement in statements:
                connection.execute(statement)  # type: ignore[arg-type]
            if commit:
                connection.commit()
            else:
                connection.rollback()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with connect(self.db) as connection:
            return connection.execute(sql).fetchall()  # type: ignore[arg-type]

    def faasemu_triggers(self) -> set[str]:
        return {name for (name,) in self.query("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
                if name.startswith("faasemu_")}


@pytest.fixture
def backend(postgres_server: Any, tmp_path: Path) -> Iterator[PostgresBackend]:
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    ensure_database(postgres_server, "app", str(schema))
    yield PostgresBackend(postgres_server.url("app"))


class TestPostgres(CaptureContract):
    prefix = "faasemu_"


def test_everything_faasemu_adds_is_in_its_own_schema(backend: PostgresBackend) -> None:
    capture_postgres.install(backend.db, [trigger()], "faasemu.yaml")
    assert backend.query("SELECT table_schema, table_name FROM information_schema.tables "
                         "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2") == [
        ("faasemu", "event_log"), ("public", "open_orders"), ("public", "order items"), ("public", "orders"),
        ("public", "payments")]
    assert backend.query("SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                         "WHERE n.nspname = 'faasemu'") == [("faasemu", "capture")]


def test_values_are_json_as_postgres_gives_them(backend: PostgresBackend) -> None:
    backend.write("CREATE TABLE kinds (id bigint PRIMARY KEY, price numeric(10, 2), at timestamptz, day date, "
                  "meta jsonb, doc json, tags text[], body bytea, ok boolean)")
    capture_postgres.install(backend.db, [trigger("kinds", table="kinds", on=("insert",))], "m.yaml")
    backend.write("SET TIME ZONE 'UTC'", "INSERT INTO kinds VALUES (9007199254740993, 12.50, '2024-05-01 12:00:00+00', "
                  """'2024-05-01', '{"b": 1, "a": [1, null]}', '{"z": true}', '{x,y}', '\\x00ff', true)""")
    assert capture_postgres.pending(backend.db, 1)[0].new == {
        "id": 9007199254740993, "price": 12.5, "at": "2024-05-01T12:00:00+00:00", "day": "2024-05-01",
        "meta": {"a": [1, None], "b": 1}, "doc": {"z": True}, "tags": ["x", "y"], "body": "\\x00ff", "ok": True,
    }


def test_a_table_in_another_schema_names_it(backend: PostgresBackend) -> None:
    backend.write("CREATE SCHEMA shop", "CREATE TABLE shop.orders (id text PRIMARY KEY)")
    spec = TriggerSpec(name="shop-orders", table="orders", schema="shop", webhook="pay", on=("insert",))
    capture_postgres.install(backend.db, [spec], "m.yaml")
    backend.write("INSERT INTO orders (id) VALUES ('public-one')", "INSERT INTO shop.orders (id) VALUES ('shop-one')")
    assert [(c.schema, c.table, (c.new or {})["id"]) for c in capture_postgres.pending(backend.db, 5)] == [
        ("shop", "orders", "shop-one")]
    assert capture_postgres.apply_change(backend.db, TableChange("orders", "delete", where={"id": "shop-one"},
                                                                 schema="shop")) == 1
    with pytest.raises(ManifestError, match=r"no table 'shop.ordrs' in the state database; it has: order items, "
                                            r"orders, payments, shop.orders$"):
        capture_postgres.install(backend.db, [TriggerSpec(name="t", table="ordrs", schema="shop", webhook="p")], "m")


def test_names_are_exact_as_quoted_identifiers_are(backend: PostgresBackend) -> None:
    with pytest.raises(ManifestError, match=r"no table 'Orders'"):
        capture_postgres.install(backend.db, [trigger(table="Orders")], "faasemu.yaml")


def test_a_handler_setting_hasura_user_passes_its_session_variables(backend: PostgresBackend) -> None:
    capture_postgres.install(backend.db, [trigger(on=("insert",))], "faasemu.yaml")
    backend.write("""SELECT set_config('hasura.user', '{"x-hasura-role": "user", "x-hasura-user-id": "7"}', true)""",
                  "INSERT INTO orders (id) VALUES ('o-1')")
    backend.write("INSERT INTO orders (id) VALUES ('o-2')")  # the setting was the transaction's only
    assert [c.session_variables for c in capture_postgres.pending(backend.db, 5)] == [
        {"x-hasura-role": "user", "x-hasura-user-id": "7"}, None]


def test_apply_change_casts_values_to_their_columns(backend: PostgresBackend) -> None:
    backend.write("CREATE TABLE typed (id integer PRIMARY KEY, at timestamptz, meta jsonb, tags text[], n numeric)")
    capture_postgres.install(backend.db, [trigger("typed", table="typed", on=("insert", "update"))], "m.yaml")
    apply = capture_postgres.apply_change
    assert apply(backend.db, TableChange("typed", "insert", values={
        "id": "1", "at": "2024-05-01T12:00:00Z", "meta": {"k": ["v"]}, "tags": ["a", "b"], "n": 1.25})) == 1
    assert apply(backend.db, TableChange("typed", "update", values={"meta": "just a string"}, where={"id": 1})) == 1
    insert, update = capture_postgres.pending(backend.db, 5)
    assert (insert.new or {})["meta"] == {"k": ["v"]} and (insert.new or {})["tags"] == ["a", "b"]
    assert (update.new or {})["meta"] == "just a string"
    with pytest.raises(ChangeError, match=r"^insert of typed failed: invalid input syntax for type integer"):
        apply(backend.db, TableChange("typed", "insert", values={"id": "one"}))


def test_a_commit_out_of_seq_order_is_still_read(backend: PostgresBackend) -> None:
    capture_postgres.install(backend.db, [trigger(on=("insert",))], "faasemu.yaml")
    with connect(backend.db) as slow:
        slow.execute("INSERT INTO orders (id) VALUES ('first-seq-last-commit')")
        backend.write("INSERT INTO orders (id) VALUES ('second-seq')")
        read = capture_postgres.pending(backend.db, 5)
        assert [(c.new or {})["id"] for c in read] == ["second-seq"]
        capture_postgres.forget(backend.db, [c.seq for c in read])
        slow.commit()
    assert [(c.new or {})["id"] for c in capture_postgres.pending(backend.db, 5)] == ["first-seq-last-commit"]


def test_a_partitioned_table_is_installed_twice(backend: PostgresBackend) -> None:
    backend.write("CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)",
                  "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    for _ in range(2):  # the partition's copy of the trigger is dropped with its parent's, not on its own
        capture_postgres.install(backend.db, [trigger("events", table="events", on=("insert",))], "m.yaml")
    backend.write("INSERT INTO events VALUES (1, '2024-05-01')")
    assert [(c.trigger, (c.new or {})["id"]) for c in capture_postgres.pending(backend.db, 5)] == [("events", 1)]
