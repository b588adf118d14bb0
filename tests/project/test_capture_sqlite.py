"""Change capture on a real SQLite state file (capture_sqlite.py), and `CaptureContract`: the tests both
databases must pass, which test_capture_postgres.py runs again on a real PostgreSQL server.

The writes a test makes go through a connection of their own, as a handler's would; only `install`,
`pending`, `forget` and `apply_change` are faasemu's.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faasemu.project import capture_sqlite
from faasemu.project.capture import CapturedChange, CaptureStore, ChangeError, NoMatchingRow, TableChange
from faasemu.project.errors import ManifestError
from faasemu.project.spec import TriggerSpec

SCHEMA = """\
CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT, total NUMERIC, note TEXT);
CREATE TABLE payments (id TEXT PRIMARY KEY, order_id TEXT NOT NULL);
CREATE TABLE "order items" ("order id" TEXT, "unit price" NUMERIC);
CREATE VIEW open_orders AS SELECT * FROM orders WHERE status = 'placed';
"""
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z")  # Hasura's: no trailing zeros


def trigger(name: str = "order-placed", table: str = "orders", on: tuple = ("insert", "update", "delete"),
            columns: tuple = (), line: int = 7) -> TriggerSpec:
    return TriggerSpec(name=name, table=table, webhook="pay", on=on, columns=columns, line=line)


class Backend:
    """One database for a test: `store` is the capture module, `db` what it is given, `write` a handler's
    transaction on a connection of its own (rolled back instead of committed when `commit` is False)."""

    store: CaptureStore
    db: str
    schema: str

    def write(self, *statements: str, commit: bool = True) -> None:
        raise NotImplementedError

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def faasemu_triggers(self) -> set[str]:
        raise NotImplementedError


class SqliteBackend(Backend):
    schema = "main"

    def __init__(self, path: Path) -> None:
        self.store = capture_sqlite
        self.db = str(path)

    def write(self, *statements: str, commit: bool = True) -> None:
        connection = sqlite3.connect(self.db, isolation_level=None)
        try:
            connection.execute("BEGIN")
            for statement in statements:
                connection.execute(statement)
            connection.execute("COMMIT" if commit else "ROLLBACK")
        finally:
            connection.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.db)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def faasemu_triggers(self) -> set[str]:
        return {name for (name,) in self.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                if name.startswith("_faasemu_")}


class CaptureContract:
    """What capture does on either database. A subclass gives the `backend` fixture, made from SCHEMA."""

    prefix: str  # of faasemu's SQL triggers: <prefix><trigger>_<op>

    # --- capture in the writer's transaction ---------------------------------------------------

    def test_a_committed_write_is_captured_and_a_rolled_back_one_is_not(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        backend.write("INSERT INTO orders (id, status) VALUES ('o-1', 'placed')")
        backend.write("INSERT INTO orders (id, status) VALUES ('o-2', 'placed')",
                      "UPDATE orders SET status = 'paid' WHERE id = 'o-1'", commit=False)
        changes = backend.store.pending(backend.db, 100)
        assert [(c.op, (c.new or {}).get("id")) for c in changes] == [("INSERT", "o-1")]

    def test_one_transaction_s_changes_are_captured_in_order(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        backend.write("INSERT INTO orders (id, status) VALUES ('o-1', 'placed')",
                      "UPDATE orders SET status = 'paid' WHERE id = 'o-1'",
                      "DELETE FROM orders WHERE id = 'o-1'")
        changes = backend.store.pending(backend.db, 100)
        assert [c.op for c in changes] == ["INSERT", "UPDATE", "DELETE"]
        assert [c.seq for c in changes] == sorted(c.seq for c in changes)

    def test_payloads_hold_every_column_as_hasura_sends_them(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        backend.write("INSERT INTO orders (id, status, total) VALUES ('o-1', 'placed', 10)")
        backend.write("UPDATE orders SET status = 'paid', total = 12.5 WHERE id = 'o-1'")
        backend.write("DELETE FROM orders WHERE id = 'o-1'")
        insert, update, delete = backend.store.pending(backend.db, 100)
        placed = {"id": "o-1", "status": "placed", "total": 10, "note": None}
        paid = {"id": "o-1", "status": "paid", "total": 12.5, "note": None}
        assert (insert.op, insert.old, insert.new) == ("INSERT", None, placed)
        assert (update.op, update.old, update.new) == ("UPDATE", placed, paid)
        assert (delete.op, delete.old, delete.new) == ("DELETE", paid, None)
        for change in (insert, update, delete):
            assert (change.trigger, change.schema, change.table) == ("order-placed", backend.schema, "orders")
            assert change.session_variables is None  # a plain SQL client's write, as a handler's
            assert UUID.fullmatch(change.id) and CREATED_AT.fullmatch(change.created_at), change
        assert len({insert.id, update.id, delete.id}) == 3

    def test_only_the_operations_in_on_are_captured(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger(on=("delete",))], "faasemu.yaml")
        backend.write("INSERT INTO orders (id, status) VALUES ('o-1', 'placed')")
        backend.write("UPDATE orders SET status = 'paid'")
        backend.write("DELETE FROM orders")
        assert [c.op for c in backend.store.pending(backend.db, 100)] == ["DELETE"]

    def test_two_triggers_on_one_table_each_capture(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger("a", on=("insert",)), trigger("b", on=("insert",))], "m.yaml")
        backend.write("INSERT INTO orders (id) VALUES ('o-1')")
        assert sorted(c.trigger for c in backend.store.pending(backend.db, 100)) == ["a", "b"]

    # --- which updates fire (Hasura compares values, not the SET list) ---------------------------

    def test_an_update_with_columns_fires_only_when_one_of_them_changes_value(self, backend: Backend) -> None:
        backend.write("INSERT INTO orders (id, status, total) VALUES ('o-1', NULL, 1)")
        backend.store.install(backend.db, [trigger(on=("update",), columns=("status",))], "faasemu.yaml")
        backend.write("UPDATE orders SET total = 2 WHERE id = 'o-1'")  # not a listened column
        backend.write("UPDATE orders SET status = NULL WHERE id = 'o-1'")  # in the SET list, same value (NULL)
        backend.write("UPDATE orders SET status = 'placed' WHERE id = 'o-1'")  # NULL -> a value: a change
        backend.write("UPDATE orders SET status = 'placed', total = 3 WHERE id = 'o-1'")  # status unchanged
        backend.write("UPDATE orders SET status = 'paid' WHERE id = 'o-1'")
        changes = backend.store.pending(backend.db, 100)
        assert [((c.old or {})["status"], (c.new or {})["status"]) for c in changes] == [(None, "placed"),
                                                                                       ("placed", "paid")]
        assert changes[0].new == {"id": "o-1", "status": "placed", "total": 2, "note": None}  # every column sent

    def test_a_no_op_update_fires_nothing_and_any_change_fires(self, backend: Backend) -> None:
        backend.write("INSERT INTO orders (id, status, total) VALUES ('o-1', 'placed', 1)")
        backend.store.install(backend.db, [trigger(on=("update",))], "faasemu.yaml")
        backend.write("UPDATE orders SET status = status, total = total")  # matches a row, changes nothing
        backend.write("UPDATE orders SET status = 'placed' WHERE id = 'o-1'")
        backend.write("UPDATE orders SET note = 'hi' WHERE id = 'o-1'")
        changes = backend.store.pending(backend.db, 100)
        assert [(c.op, (c.new or {}).get("note")) for c in changes] == [("UPDATE", "hi")]

    # --- install -------------------------------------------------------------------------------

    def test_install_twice_with_an_edited_list_leaves_exactly_the_new_triggers(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger("old-one"), trigger("kept", table="payments", on=("insert",))],
                              "faasemu.yaml")
        assert len(backend.faasemu_triggers()) == 4
        backend.store.install(backend.db, [trigger("kept", table="payments", on=("delete",)),
                                           trigger("new-one", on=("insert",))], "faasemu.yaml")
        assert backend.faasemu_triggers() == {f"{self.prefix}kept_delete", f"{self.prefix}new-one_insert"}
        backend.write("INSERT INTO orders (id) VALUES ('o-1')", "UPDATE orders SET status = 'x'",
                      "INSERT INTO payments (id, order_id) VALUES ('p-1', 'o-1')", "DELETE FROM payments")
        assert [(c.trigger, c.op) for c in backend.store.pending(backend.db, 100)] == [("new-one", "INSERT"),
                                                                                      ("kept", "DELETE")]

    def test_install_with_no_triggers_removes_every_one(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        backend.store.install(backend.db, [], "faasemu.yaml")
        assert backend.faasemu_triggers() == set()
        backend.write("INSERT INTO orders (id) VALUES ('o-1')")
        assert backend.store.pending(backend.db, 100) == []

    def test_an_unknown_table_is_located_and_leaves_the_installed_triggers(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        before = backend.faasemu_triggers()
        with pytest.raises(ManifestError) as caught:
            backend.store.install(backend.db, [trigger("b"), trigger("order-placed", table="ordrs", line=11)],
                                  "faasemu.yaml")
        assert str(caught.value) == ("faasemu.yaml:11: triggers.order-placed.table: no table 'ordrs' in the state "
                                     "database; it has: order items, orders, payments")
        assert backend.faasemu_triggers() == before  # one transaction: nothing half-installed

    def test_an_unknown_column_is_located(self, backend: Backend) -> None:
        with pytest.raises(ManifestError) as caught:
            backend.store.install(backend.db, [trigger(columns=("stauts",), line=5)], "faasemu.yaml")
        assert str(caught.value) == ("faasemu.yaml:5: triggers.order-placed.columns: no column 'stauts' in table "
                                     "orders; it has: id, status, total, note")

    def test_a_view_is_refused(self, backend: Backend) -> None:
        with pytest.raises(ManifestError, match=r"triggers.order-placed.table: 'open_orders' is a view"):
            backend.store.install(backend.db, [trigger(table="open_orders")], "faasemu.yaml")

    def test_identifiers_are_quoted(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger("items", table="order items", on=("insert",))], "faasemu.yaml")
        backend.write("""INSERT INTO "order items" ("order id", "unit price") VALUES ('o-1', 3)""")
        assert backend.store.apply_change(backend.db, TableChange("order items", "insert",
                                                                  values={"order id": "o-2", "unit price": 4})) == 1
        assert [c.new for c in backend.store.pending(backend.db, 10)] == [{"order id": "o-1", "unit price": 3},
                                                                          {"order id": "o-2", "unit price": 4}]

    # --- pending and forget --------------------------------------------------------------------

    def test_pending_is_oldest_first_within_limit_and_forget_removes(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger(on=("insert",))], "faasemu.yaml")
        for number in range(5):
            backend.write(f"INSERT INTO orders (id) VALUES ('o-{number}')")
        first = backend.store.pending(backend.db, 2)
        assert [(c.new or {})["id"] for c in first] == ["o-0", "o-1"]
        assert backend.store.pending(backend.db, 2) == first  # not forgotten: read again, the same ids
        backend.store.forget(backend.db, [c.seq for c in first])
        backend.store.forget(backend.db, [])
        rest = backend.store.pending(backend.db, 10)
        assert [(c.new or {})["id"] for c in rest] == ["o-2", "o-3", "o-4"]
        backend.store.forget(backend.db, [c.seq for c in rest])
        assert backend.store.pending(backend.db, 10) == []

    def test_pending_is_cheap_with_ten_thousand_forgotten_rows_behind(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger(on=("insert",))], "faasemu.yaml")
        backend.write(*(f"INSERT INTO orders (id) VALUES ('o-{n}')" for n in range(10_000)))
        changes = backend.store.pending(backend.db, 20_000)
        assert len(changes) == 10_000
        backend.store.forget(backend.db, [c.seq for c in changes])
        calls = 200
        figures = []
        connection = backend.store.connect(backend.db)
        try:
            for db in (backend.db, connection):  # a connection per call, then the poller's own
                started = time.perf_counter()
                for _ in range(calls):
                    assert backend.store.pending(db, 100) == []
                figures.append((time.perf_counter() - started) / calls)
        finally:
            connection.close()
        print(f"\n{type(backend).__name__}: pending() on an empty table, 10,000 forgotten rows behind: "
              f"{figures[0] * 1000:.3f} ms per call opening a connection, {figures[1] * 1000:.3f} ms on an open one")
        assert figures[1] < 0.005  # it runs ~10 times a second
        assert figures[0] < 0.1

    # --- outside changes -----------------------------------------------------------------------

    def test_apply_change_inserts_updates_and_deletes_as_an_outside_client(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        apply = backend.store.apply_change
        assert apply(backend.db, TableChange("orders", "insert", values={"id": "o-1", "status": "placed"})) == 1
        assert apply(backend.db, TableChange("orders", "insert", values={"id": "o-2", "status": "placed"})) == 1
        assert apply(backend.db, TableChange("orders", "update", values={"status": "paid"},
                                             where={"status": "placed"})) == 2
        assert apply(backend.db, TableChange("orders", "delete", where={"id": "o-2"})) == 1
        assert backend.query("SELECT id, status FROM orders") == [("o-1", "paid")]
        backend.write("UPDATE orders SET note = 'handler'")  # a handler's own write: no session variables
        changes = backend.store.pending(backend.db, 100)
        assert [c.op for c in changes] == ["INSERT", "INSERT", "UPDATE", "UPDATE", "DELETE", "UPDATE"]
        assert [c.session_variables for c in changes] == [{"x-hasura-role": "admin"}] * 5 + [None]

    def test_apply_change_matching_no_row_is_an_error_and_writes_nothing(self, backend: Backend) -> None:
        backend.store.install(backend.db, [trigger()], "faasemu.yaml")
        backend.write("INSERT INTO orders (id, status) VALUES ('o-1', 'placed')")
        for change in (TableChange("orders", "update", values={"status": "x"}, where={"id": "o-9"}),
                       TableChange("orders", "delete", where={"id": "o-1", "status": None})):
            with pytest.raises(NoMatchingRow) as caught:
                backend.store.apply_change(backend.db, change)
            assert "of orders: where {" in str(caught.value) and str(caught.value).endswith("matches no row")
        assert [c.op for c in backend.store.pending(backend.db, 100)] == ["INSERT"]

    def test_apply_change_names_an_unknown_table_or_column_and_a_refused_write(self, backend: Backend) -> None:
        with pytest.raises(ChangeError, match=r"^change.table: no table 'ordrs' in the state database; it has: "):
            backend.store.apply_change(backend.db, TableChange("ordrs", "insert", values={"id": "o-1"}))
        with pytest.raises(ChangeError, match=r"^change.update.set: no column 'stauts' in table orders; it has: id"):
            backend.store.apply_change(backend.db, TableChange("orders", "update", values={"stauts": 1},
                                                               where={"id": "o-1"}))
        backend.store.apply_change(backend.db, TableChange("orders", "insert", values={"id": "o-1"}))
        with pytest.raises(ChangeError, match=r"^insert of orders failed: "):
            backend.store.apply_change(backend.db, TableChange("orders", "insert", values={"id": "o-1"}))
        with pytest.raises(ChangeError, match=r"^insert of payments failed: "):  # order_id NOT NULL
            backend.store.apply_change(backend.db, TableChange("payments", "insert", values={"id": "p-1"}))


def ids(changes: list[CapturedChange]) -> list[str]:
    return [change.id for change in changes]


# --- SQLite ----------------------------------------------------------------------------------------


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SqliteBackend]:
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    connection.close()
    yield SqliteBackend(path)


class TestSqlite(CaptureContract):
    prefix = "_faasemu_"


def test_the_capture_table_is_prefixed_for_snapshots_to_skip(backend: SqliteBackend) -> None:
    capture_sqlite.install(backend.db, [trigger()], "faasemu.yaml")
    tables = {name for (name,) in backend.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"orders", "payments", "order items", "_faasemu_changes"}


def test_blobs_are_sent_as_backslash_x_hex_as_postgres_sends_bytea(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "s.db")
    backend.write("CREATE TABLE files (id INTEGER PRIMARY KEY, body BLOB, size REAL)")
    capture_sqlite.install(backend.db, [trigger("files", table="files", on=("insert",))], "m.yaml")
    backend.write("INSERT INTO files (id, body, size) VALUES (1, x'00ff10', 1.5)")
    assert capture_sqlite.pending(backend.db, 1)[0].new == {"id": 1, "body": "\\x00ff10", "size": 1.5}


def test_a_table_wider_than_sqlites_argument_limit_sends_every_column(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "s.db")
    columns = [f"c{n}" for n in range(150)]
    backend.write(f"CREATE TABLE wide ({', '.join(columns)})")
    capture_sqlite.install(backend.db, [trigger("wide", table="wide")], "m.yaml")
    backend.write(f"INSERT INTO wide ({', '.join(columns)}) VALUES ({', '.join(str(n) for n in range(150))})")
    backend.write("UPDATE wide SET c149 = -1")  # the last column, added by json_insert, is compared too
    insert, update = capture_sqlite.pending(backend.db, 5)
    assert insert.new == {f"c{n}": n for n in range(150)}
    assert update.old == insert.new and (update.new or {})["c149"] == -1


def test_names_are_matched_as_sqlite_matches_them(backend: SqliteBackend) -> None:
    capture_sqlite.install(backend.db, [trigger(table="ORDERS", columns=("Status",), on=("update",))], "m.yaml")
    backend.write("INSERT INTO orders (id, status) VALUES ('o-1', 'placed')", "UPDATE orders SET status = 'paid'")
    assert [c.table for c in capture_sqlite.pending(backend.db, 5)] == ["orders"]


def test_a_schema_other_than_main_is_refused(backend: SqliteBackend) -> None:
    spec = TriggerSpec(name="t", table="orders", schema="shop", webhook="pay", line=4)
    with pytest.raises(ManifestError, match=r"^faasemu.yaml:4: triggers.t.table: 'shop.orders' names a schema"):
        capture_sqlite.install(backend.db, [spec], "faasemu.yaml")


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_the_journal_mode_is_left_as_the_user_set_it(tmp_path: Path, mode: str) -> None:
    backend = SqliteBackend(tmp_path / "s.db")
    backend.query(f"PRAGMA journal_mode = {mode}")
    backend.write("CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT)")
    capture_sqlite.install(backend.db, [trigger()], "m.yaml")
    capture_sqlite.apply_change(backend.db, TableChange("orders", "insert", values={"id": "o-1"}))
    capture_sqlite.forget(backend.db, [c.seq for c in capture_sqlite.pending(backend.db, 5)])
    assert backend.query("PRAGMA journal_mode") == [(mode,)]


def test_a_missing_state_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        capture_sqlite.pending(str(tmp_path / "absent.db"), 1)
    assert not (tmp_path / "absent.db").exists()


def test_forget_waits_for_a_handlers_write_transaction(backend: SqliteBackend) -> None:
    capture_sqlite.install(backend.db, [trigger(on=("insert",))], "faasemu.yaml")
    backend.write("INSERT INTO orders (id) VALUES ('o-1')")
    seqs = [c.seq for c in capture_sqlite.pending(backend.db, 5)]
    holder = sqlite3.connect(backend.db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO orders (id) VALUES ('o-2')")
    release = threading.Timer(0.3, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    try:
        capture_sqlite.forget(backend.db, seqs)  # waits on the busy timeout, then goes through
    finally:
        release.join()
    assert [(c.new or {})["id"] for c in capture_sqlite.pending(backend.db, 5)] == ["o-2"]


def test_a_callers_connection_must_be_in_autocommit_mode(backend: SqliteBackend) -> None:
    capture_sqlite.install(backend.db, [trigger()], "faasemu.yaml")
    plain = sqlite3.connect(backend.db)  # sqlite3's default opens transactions behind the caller's back
    try:
        with pytest.raises(ValueError, match="autocommit"):
            capture_sqlite.pending(plain, 1)
    finally:
        plain.close()
    own = capture_sqlite.connect(backend.db)
    try:
        backend.write("INSERT INTO orders (id) VALUES ('o-1')")
        capture_sqlite.forget(own, [c.seq for c in capture_sqlite.pending(own, 5)])
        assert capture_sqlite.pending(own, 5) == [] and not own.in_transaction
    finally:
        own.close()
