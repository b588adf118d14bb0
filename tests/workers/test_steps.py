"""Step tracing and crash-after-k in a real worker (faasemu/workers/steps.py, the `batch` item fields).

Each test loads a small aws-lambda handler into a real worker process and ships `batch` messages as
the campaign runner does; the handler writes to a real SQLite file named in its event. What is
checked is what the runner sees: the item frames, the step lists, the database afterwards, the
worker's end. (docs/verification.md#steps-crashes-and-the-overlap-gate)
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import loaded_worker, write_project

from faasemu.project import stepcounter
from faasemu.workers.process import WorkerDied, WorkerProcess
from faasemu.workers.steps import written_table

APP = """\
import gc
import os
import sqlite3
import sys

from faasemu.project.stepcounter import StepCounter


def _db(event, **options):
    return sqlite3.connect(event["detail"]["db"], **options)


def _mark(event, name):
    with open(os.path.join(event["detail"]["marks"], name), "w") as file:
        file.write(str(os.getpid()))


def autocommit(event, context):
    conn = _db(event, isolation_level=None)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.execute('UPDATE "stock" SET n = n - 1')
    conn.execute("SELECT * FROM orders").fetchall()  # reads: not a step
    conn.execute("UPDATE stock SET n = n WHERE 0")  # changes nothing: not a step
    conn.close()


def explicit(event, context):
    conn = _db(event)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.execute("UPDATE main.stock SET n = n - 1")
    conn.commit()
    cursor = conn.cursor()
    cursor.execute("INSERT INTO audit (what) VALUES ('placed')")
    conn.commit()
    conn.close()


def with_block(event, context):
    conn = _db(event)
    with conn:
        conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    _mark(event, "between")
    with conn:
        conn.execute("INSERT INTO audit (what) VALUES ('placed')")
    _mark(event, "after")
    conn.close()


def rolls_back(event, context):
    conn = _db(event)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.rollback()
    try:
        with conn:
            conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
            raise ValueError("undo")
    except ValueError:
        pass
    conn.execute("INSERT INTO audit (what) VALUES ('tried')")
    conn.commit()
    conn.close()


def many(event, context):
    conn = _db(event, isolation_level=None)
    conn.executemany("INSERT INTO orders (id) VALUES (?)", [("m1",), ("m2",)])
    conn.executescript("INSERT INTO audit (what) VALUES ('s1'); UPDATE stock SET n = 0;")
    conn.close()


def two_commits(event, context):
    conn = _db(event)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.commit()
    _mark(event, "after-first")
    conn.execute("INSERT INTO audit (what) VALUES ('placed')")
    conn.commit()
    _mark(event, "after-second")
    conn.close()


def with_sink(event, context):
    # stands in for the effect sink, which bumps the same counter when the handler calls it
    conn = _db(event, isolation_level=None)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    StepCounter(event["detail"]["counter"]).bump()
    conn.execute("INSERT INTO audit (what) VALUES ('charged')")
    conn.close()


def dropped(event, context):
    forgotten = _db(event, timeout=2)
    forgotten.execute("INSERT INTO audit (what) VALUES ('never committed')")
    del forgotten
    gc.collect()  # a dropped connection is a cycle (its statement cache): rolled back and unlocked here
    conn = _db(event, timeout=2)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.commit()
    conn.close()


SHARED = None


def warm(event, context):
    # one connection for the worker's life, opened by its first invocation (as a module-level one)
    global SHARED
    if SHARED is None:
        SHARED = _db(event, isolation_level=None)
    SHARED.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))


def own_trace(event, context):
    seen = []
    conn = _db(event, isolation_level=None)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.set_trace_callback(seen.append)
    conn.execute("INSERT INTO audit (what) VALUES ('traced by the handler')")
    conn.close()
    with open(os.path.join(event["detail"]["marks"], "seen"), "w") as file:
        file.write("\\n".join(seen))


def profiled(event, context):
    with open(os.path.join(event["detail"]["marks"], "profile"), "w") as file:
        file.write(repr(sys.getprofile()))
    conn = _db(event)
    conn.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["id"],))
    conn.commit()
    conn.close()
"""

HANDLERS = ("autocommit", "explicit", "with_block", "rolls_back", "many", "two_commits", "with_sink",
            "dropped", "warm", "own_trace", "profiled")
MANIFEST = "name: steps\nfunctions:\n" + "".join(
    f"  {name.replace('_', '-')}:\n    handler: app.py:{name}\n    events: [order.placed]\n" for name in HANDLERS
)
SCHEMA = "CREATE TABLE orders (id TEXT); CREATE TABLE stock (n INTEGER); CREATE TABLE audit (what TEXT);" \
         "INSERT INTO stock VALUES (10);"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": APP})
    (tmp_path / "marks").mkdir()
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as conn:
        conn.executescript(SCHEMA)
    stepcounter.create(str(tmp_path / "steps"))
    return tmp_path


def loaded(root: Path, function: str) -> contextlib.AbstractAsyncContextManager[WorkerProcess]:
    """A real worker with `function` loaded, as the campaign runner's `_load` does it."""
    return loaded_worker(root, function.replace("_", "-"))


def item(root: Path, order: str = "o1", **fields: Any) -> dict[str, Any]:
    data = {"db": str(root / "state.db"), "marks": str(root / "marks"), "counter": str(root / "steps"), "id": order}
    event = {"specversion": "1.0", "id": f"evt-{order}", "source": "tests", "type": "order.placed",
             "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json", "data": data}
    return {"event": event, "attempt": 1, "attempt_id": f"att-{order}", "request_id": f"req-{order}", **fields}


async def ship(worker: WorkerProcess, *items: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One batch; the streamed frames (item, gated) and the final answer."""
    frames: list[dict[str, Any]] = []
    reply, _ = await worker.request({"op": "batch", "timeout": 30, "items": list(items)}, b"", 30.0,
                                    on_item=frames.append)
    return frames, reply


def rows(root: Path, table: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(root / "state.db")) as conn:
        return conn.execute(f"SELECT * FROM {table}").fetchall()


def traced(project: Path, function: str, **fields: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        async with loaded(project, function) as worker:
            frames, reply = await ship(worker, item(project, steps=str(project / "steps"), **fields))
            assert reply["op"] == "done"
            return frames

    return asyncio.run(run())


# -- the four commit styles ------------------------------------------------------------------------


def test_autocommit_statements_are_one_step_each(project: Path) -> None:
    [frame] = traced(project, "autocommit")
    assert frame["status"] == "ok"
    assert frame["steps"] == [[1, "commit", ["orders"]], [2, "commit", ["stock"]]]


def test_explicit_commits_group_the_statements_of_a_transaction(project: Path) -> None:
    [frame] = traced(project, "explicit")
    assert frame["steps"] == [[1, "commit", ["orders", "stock"]], [2, "commit", ["audit"]]]


def test_with_conn_commits_are_steps(project: Path) -> None:
    [frame] = traced(project, "with_block")
    assert frame["steps"] == [[1, "commit", ["orders"]], [2, "commit", ["audit"]]]


def test_rolled_back_work_is_not_a_step(project: Path) -> None:
    [frame] = traced(project, "rolls_back")
    assert frame["steps"] == [[1, "commit", ["audit"]]]
    assert rows(project, "orders") == []


def test_executemany_and_executescript_in_autocommit_count_each_statement(project: Path) -> None:
    [frame] = traced(project, "many")
    assert frame["steps"] == [[1, "commit", ["orders"]], [2, "commit", ["orders"]],
                              [3, "commit", ["audit"]], [4, "commit", ["stock"]]]


def test_steps_share_the_counter_with_the_sink(project: Path) -> None:
    [frame] = traced(project, "with_sink")
    assert frame["steps"] == [[1, "commit", ["orders"]], [3, "commit", ["audit"]]]


def test_a_dropped_connection_is_collected_as_without_tracing(project: Path) -> None:
    [frame] = traced(project, "dropped")
    assert frame["status"] == "ok", frame
    assert frame["steps"] == [[1, "commit", ["orders"]]]
    assert rows(project, "audit") == []


def test_each_traced_item_numbers_from_one(project: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        async with loaded(project, "explicit") as worker:
            counter = str(project / "steps")
            frames, _ = await ship(worker, item(project, "a", steps=counter), item(project, "b", steps=counter))
            return frames

    first, second = asyncio.run(run())
    assert first["steps"] == second["steps"] == [[1, "commit", ["orders", "stock"]], [2, "commit", ["audit"]]]


def test_a_connection_kept_across_items_is_traced_only_in_traced_items(project: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        async with loaded(project, "warm") as worker:
            counter = str(project / "steps")
            first, _ = await ship(worker, item(project, "a"))
            second, _ = await ship(worker, item(project, "b", steps=counter))
            third, _ = await ship(worker, item(project, "c"))
            fourth, _ = await ship(worker, item(project, "d", steps=counter))
            return [*first, *second, *third, *fourth]

    plain, traced_frame, after, again = asyncio.run(run())
    assert "steps" not in plain and "steps" not in after
    assert traced_frame["steps"] == again["steps"] == [[1, "commit", ["orders"]]]
    assert rows(project, "orders") == [("a",), ("b",), ("c",), ("d",)]


def test_the_handlers_own_trace_callback_wins(project: Path) -> None:
    [frame] = traced(project, "own_trace")
    assert frame["steps"] == [[1, "commit", ["orders"]], [2, "commit", []]]  # tables unknown once replaced
    assert (project / "marks" / "seen").read_text() == "INSERT INTO audit (what) VALUES ('traced by the handler')"


# -- crash after step k ----------------------------------------------------------------------------


def test_crash_after_the_first_commit_keeps_it_and_nothing_after(project: Path) -> None:
    frames: list[dict[str, Any]] = []

    async def run() -> None:
        async with loaded(project, "two_commits") as worker:
            with pytest.raises(WorkerDied) as died:
                await worker.request(
                    {"op": "batch", "timeout": 30, "items": [
                        item(project, "o1", steps=str(project / "steps"), crash_after=1), item(project, "o2")]},
                    b"", 30.0, on_item=frames.append)
            assert "137" in str(died.value)
            assert not worker.alive

    asyncio.run(run())
    assert frames == [{"op": "item", "i": 0, "status": "crashed", "steps": [[1, "commit", ["orders"]]]}]
    assert rows(project, "orders") == [("o1",)]
    assert rows(project, "audit") == []
    assert not (project / "marks" / "after-first").exists()


def test_crash_after_the_last_commit_runs_no_handler_code_after_it(project: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        async with loaded(project, "with_block") as worker:
            with pytest.raises(WorkerDied):
                await worker.request({"op": "batch", "timeout": 30, "items": [
                    item(project, steps=str(project / "steps"), crash_after=2)]}, b"", 30.0, on_item=frames.append)
        return frames

    [frame] = asyncio.run(run())
    assert frame["status"] == "crashed"
    assert frame["steps"] == [[1, "commit", ["orders"]], [2, "commit", ["audit"]]]
    assert rows(project, "audit") == [("placed",)]
    assert (project / "marks" / "between").exists()
    assert not (project / "marks" / "after").exists()


def test_crash_inside_executemany_stops_between_its_rows(project: Path) -> None:
    async def run() -> None:
        async with loaded(project, "many") as worker:
            with pytest.raises(WorkerDied):
                await ship(worker, item(project, steps=str(project / "steps"), crash_after=1))

    asyncio.run(run())
    assert rows(project, "orders") == [("m1",)]


def test_crash_after_more_steps_than_the_handler_has_completes_normally(project: Path) -> None:
    async def run() -> tuple[list[dict[str, Any]], bool]:
        async with loaded(project, "two_commits") as worker:
            frames, _ = await ship(worker, item(project, "o1", steps=str(project / "steps"), crash_after=3),
                                   item(project, "o2"))
            return frames, worker.alive

    frames, alive = asyncio.run(run())
    assert alive
    assert [f["status"] for f in frames] == ["ok", "ok"]
    assert frames[0]["steps"] == [[1, "commit", ["orders"]], [2, "commit", ["audit"]]]
    assert rows(project, "orders") == [("o1",), ("o2",)]


def test_a_sink_step_at_k_is_not_the_workers_to_crash_on(project: Path) -> None:
    # step 2 is the sink's: the sink kills the worker then; the worker itself carries on
    [frame] = traced(project, "with_sink", crash_after=2)
    assert frame["status"] == "ok"
    assert frame["steps"] == [[1, "commit", ["orders"]], [3, "commit", ["audit"]]]


# -- without the new fields ------------------------------------------------------------------------


def test_items_without_the_new_fields_are_untouched(project: Path) -> None:
    async def run() -> list[dict[str, Any]]:
        async with loaded(project, "profiled") as worker:
            first, _ = await ship(worker, item(project, "a", steps=str(project / "steps")))
            second, reply = await ship(worker, item(project, "b"))
            assert reply["op"] == "done" and reply["ok"]
            return [*first, *second]

    traced_frame, plain = asyncio.run(run())
    assert traced_frame["steps"] == [[1, "commit", ["orders"]]]
    assert plain == {"op": "item", "i": 0, "status": "ok"}
    assert (project / "marks" / "profile").read_text() == "None"  # the hook is gone after a traced item
    assert rows(project, "orders") == [("a",), ("b",)]


@pytest.mark.parametrize(("fields", "message"), [
    ({"crash_after": 1}, "`crash_after` needs `steps`"),
    ({"steps": "STEPS", "crash_after": 0}, "`crash_after` must be an integer >= 1, got 0"),
    ({"steps": "/nonexistent/steps"}, "cannot map the step counter /nonexistent/steps"),
])
def test_a_malformed_item_is_refused_naming_the_field(project: Path, fields: dict[str, Any], message: str) -> None:
    fields = {k: str(project / "steps") if v == "STEPS" else v for k, v in fields.items()}

    async def run() -> tuple[list[dict[str, Any]], bool]:
        async with loaded(project, "explicit") as worker:
            frames, _ = await ship(worker, item(project, **fields))
            return frames, worker.alive

    [frame], alive = asyncio.run(run())
    assert alive
    assert frame["status"] == "error" and frame["retryable"] is False
    assert frame["error"].startswith("batch item 0: ") and message in frame["error"]
    assert rows(project, "orders") == []


# -- the table parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(("sql", "table"), [
    ("INSERT INTO orders (id) VALUES (1)", "orders"),
    ("insert or replace into \"Order Items\" values (1)", "Order Items"),
    ("REPLACE INTO main.stock VALUES (1)", "stock"),
    ("UPDATE OR IGNORE [stock] SET n = 1", "stock"),
    ("DELETE FROM `audit` WHERE 1", "audit"),
    ("WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM x", "orders"),
    ("/* why */ -- note\n UPDATE stock SET n = 2", "stock"),
    ("SELECT 'UPDATE stock SET n = 1'", None),
    ("CREATE TABLE t (a)", None),
    ("COMMIT", None),
])
def test_written_table(sql: str, table: str | None) -> None:
    assert written_table(sql) == table
