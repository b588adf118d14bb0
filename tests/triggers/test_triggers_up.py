"""Hasura-style event triggers under a real `faasemu up` (issue 11, docs/delivery.md#triggers).

A POST inserts an order; the insert's trigger POSTs Hasura's payload to `charge`, whose update of the
order's status fires the next trigger to `ship`: one handler's write is the next handler's event.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest
from conftest import Server, run_cli, wait_for, write_project

APP = Path(__file__).with_name("app.py")
SCHEMA = """\
CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE payments (n INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL);
CREATE TABLE shipments (n INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL);
"""
MANIFEST = """\
state: {sqlite: .faasemu/state.db, schema: schema.sql}
functions:
  place-order: {handler: app.py:place, http: {path: /orders, methods: [POST]}}
  charge: {handler: app.py:charge}
  ship: {handler: app.py:ship}
triggers:
  order-placed: {table: orders, on: [insert], webhook: charge, retries: 1, interval: 200ms}
  order-paid: {table: orders, on: [update], columns: [status], webhook: ship}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA})
    shutil.copy(APP, tmp_path / "app.py")
    return manifest


def lines(root: Path, name: str) -> list[dict]:
    path = root / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rows(root: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(root / ".faasemu" / "state.db", timeout=10) as db:
        return db.execute(sql).fetchall()


def test_an_insert_fires_the_next_handler_and_its_update_the_one_after(project: Path, run_server) -> None:
    root = project.parent
    server = run_server(project)
    assert httpx.post(f"{server.url}/orders", json={"id": "o-1"}).status_code == 201
    assert wait_for(lambda: rows(root, "SELECT order_id FROM shipments") == [("o-1",)], 30), server.output()
    [charged] = lines(root, "charge")
    assert charged["event"]["op"] == "INSERT"
    assert charged["event"]["data"] == {"old": None, "new": {"id": "o-1", "status": "placed"}}
    assert charged["event"]["session_variables"] is None  # a handler's own write, not a GraphQL mutation
    assert charged["trigger"] == {"name": "order-placed"}
    assert charged["table"] == {"schema": "main", "name": "orders"}
    assert charged["delivery_info"] == {"max_retries": 1, "current_retry": 0}
    [shipped] = lines(root, "ship")
    assert shipped["event"]["op"] == "UPDATE"
    assert shipped["event"]["data"]["old"]["status"] == "placed"
    assert shipped["event"]["data"]["new"]["status"] == "paid"
    assert shipped["id"] != charged["id"]
    out = server.wait_for_output("trigger order-paid UPDATE main.orders")
    assert "trigger order-placed INSERT main.orders" in out


def test_a_failed_webhook_is_retried_with_the_same_id_then_dead_lettered(project: Path, run_server) -> None:
    root = project.parent
    server = run_server(project)
    for order in ("flaky-1", "broken-1"):
        assert httpx.post(f"{server.url}/orders", json={"id": order}).status_code == 201
    assert wait_for(lambda: ("flaky-1",) in rows(root, "SELECT order_id FROM shipments"), 30), server.output()
    flaky = [p for p in lines(root, "charge") if p["event"]["data"]["new"]["id"] == "flaky-1"]
    assert [p["delivery_info"]["current_retry"] for p in flaky] == [0, 1]
    assert flaky[0]["id"] == flaky[1]["id"]
    server.wait_for_output("dead letter", 30)
    broken = [p for p in lines(root, "charge") if p["event"]["data"]["new"]["id"] == "broken-1"]
    assert [p["delivery_info"]["current_retry"] for p in broken] == [0, 1]  # retries: 1, as Hasura counts
    dead = run_cli("events", "--dead", "--json", cwd=root)
    assert "trigger.order-placed" in dead.stdout and "HTTP 500" in dead.stdout, dead.stdout + dead.stderr


def test_changes_captured_while_up_was_killed_are_all_delivered(project: Path) -> None:
    """The capture is in the writer's transaction: rows inserted by an outside client while no `up`
    runs, and an `up` killed with -9 while relaying them, lose no change's event."""
    root = project.parent
    with Server(project):
        pass  # the first `up` creates the database and installs the triggers
    with sqlite3.connect(root / ".faasemu" / "state.db") as db:
        db.executemany("INSERT INTO orders (id, status) VALUES (?, 'placed')", [(f"o-{n}",) for n in range(300)])
    server = Server(project).start()
    wait_for(lambda: len(lines(root, "charge")) >= 20, 30)
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    with Server(project) as again:
        charged = lambda: {p["event"]["data"]["new"]["id"] for p in lines(root, "charge")}  # noqa: E731
        assert wait_for(lambda: len(charged()) == 300, 60), again.output()
    assert len(rows(root, "SELECT DISTINCT order_id FROM payments")) == 300


def test_a_trigger_on_a_missing_table_is_a_located_error(project: Path) -> None:
    project.write_text(MANIFEST.replace("table: orders, on: [insert]", "table: ordrs, on: [insert]"))
    proc = run_cli("up", "--port", "0", cwd=project.parent)
    assert proc.returncode == 2
    assert "faasemu.yaml:7: triggers.order-placed.table" in proc.stderr and "ordrs" in proc.stderr, proc.stderr


def test_invoke_trigger_posts_one_hasura_payload(project: Path) -> None:
    root = project.parent
    proc = run_cli("invoke", "ship", "--trigger", "order-paid", "--data",
                   '{"old": {"id": "o-9", "status": "placed"}, "new": {"id": "o-9", "status": "paid"}}', cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "HTTP 200" in proc.stderr
    [payload] = lines(root, "ship")
    assert payload["event"]["op"] == "UPDATE" and payload["trigger"] == {"name": "order-paid"}
    assert payload["event"]["session_variables"] == {"x-hasura-role": "admin"}
    assert payload["delivery_info"] == {"max_retries": 0, "current_retry": 0}
    assert rows(root, "SELECT order_id FROM shipments") == [("o-9",)]
    wrong = run_cli("invoke", "ship", "--trigger", "order-shipped", "--data", "{}", cwd=root)
    assert wrong.returncode == 2 and "triggers: order-placed, order-paid" in wrong.stderr, wrong.stderr


def test_events_shows_a_change_with_its_trigger_op_and_table(project: Path, run_server) -> None:
    root = project.parent
    server = run_server(project)
    assert httpx.post(f"{server.url}/orders", json={"id": "o-2"}).status_code == 201
    assert wait_for(lambda: rows(root, "SELECT order_id FROM shipments") == [("o-2",)], 30), server.output()
    shown = run_cli("events", cwd=root)
    assert "trigger order-placed INSERT main.orders" in shown.stdout, shown.stdout
    assert "trigger order-paid UPDATE main.orders" in shown.stdout, shown.stdout
