"""`state: {postgres: auto}` and a user's own PostgreSQL under a real `faasemu up` and `invoke` (issue 11).

The app of test_triggers_up.py (tests/triggers/app.py, which writes through psycopg when it finds
$DATABASE_URL) runs unchanged on PostgreSQL: an order POSTed is inserted, its insert's trigger pays it,
the payment's status update ships it. The server is faasemu's private one, in `.faasemu/postgres/` of
the project; these tests share it through the `postgres_server` fixture (tests/conftest.py) to read the rows.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, run_cli, wait_for, write_project

APP = Path(__file__).with_name("app.py")
SCHEMA = """\
CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL, placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE payments (n serial PRIMARY KEY, order_id text NOT NULL);
CREATE TABLE shipments (n serial PRIMARY KEY, order_id text NOT NULL);
"""
MANIFEST = """\
state: {postgres: auto, schema: schema.sql}
functions:
  place-order: {handler: app.py:place, http: {path: /orders, methods: [POST]}}
  charge: {handler: app.py:charge}
  ship: {handler: app.py:ship}
  who: {handler: app.py:who, http: {path: /who}}
triggers:
  order-placed: {table: orders, on: [insert], webhook: charge, retries: 1, interval: 200ms}
  order-paid: {table: orders, on: [update], columns: [status], webhook: ship}
"""
WHO = '''

def who(event, context):
    return {"statusCode": 200, "body": json.dumps({"DATABASE_URL": os.environ.get("DATABASE_URL"),
                                                   "FAASEMU_STATE": os.environ.get("FAASEMU_STATE"),
                                                   "PGPASSWORD": os.environ.get("PGPASSWORD")})}
'''


@pytest.fixture
def project(postgres_project: Path) -> Path:
    manifest = write_project(postgres_project, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA})
    (postgres_project / "app.py").write_text(APP.read_text() + WHO)
    return manifest


def lines(root: Path, name: str) -> list[dict]:
    path = root / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    from faasemu.project.postgres_sql import connect

    with connect(url) as connection:
        return connection.execute(sql).fetchall()  # type: ignore[arg-type]


def postmasters(root: Path) -> list[Path]:
    return list(root.rglob("postmaster.pid"))


def test_up_serves_the_database_and_one_handlers_write_fires_the_next(project: Path, postgres_env, run_server) -> None:
    root = project.parent
    server = run_server(project, env=postgres_env)
    assert "state postgresql://faasemu@/app?host=" in " ".join(server.output().split())  # the banner may wrap
    seen = httpx.get(f"{server.url}/who").json()
    assert seen["DATABASE_URL"] == seen["FAASEMU_STATE"] and seen["DATABASE_URL"].startswith("postgresql://faasemu@/app")
    url = seen["DATABASE_URL"]
    assert httpx.post(f"{server.url}/orders", json={"id": "o-1"}).status_code == 201
    assert wait_for(lambda: rows(url, "SELECT order_id FROM shipments") == [("o-1",)], 30), server.output()
    [charged] = lines(root, "charge")
    assert charged["event"]["op"] == "INSERT"
    assert charged["table"] == {"schema": "public", "name": "orders"}
    new = charged["event"]["data"]["new"]
    assert (new["id"], new["status"]) == ("o-1", "placed") and new["placed_at"]  # timestamptz as Hasura sends it
    assert charged["event"]["data"]["old"] is None
    assert charged["delivery_info"] == {"max_retries": 1, "current_retry": 0}
    [shipped] = lines(root, "ship")
    assert (shipped["event"]["op"], shipped["event"]["data"]["old"]["status"]) == ("UPDATE", "placed")
    assert rows(url, "SELECT count(*) FROM faasemu.event_log") == [(0,)]  # relayed, then forgotten
    server.wait_for_output("trigger order-paid UPDATE public.orders")


def test_an_outside_clients_write_is_delivered_and_the_database_outlives_up(project: Path, postgres_env) -> None:
    root = project.parent
    with Server(project, env=postgres_env) as server:
        url = httpx.get(f"{server.url}/who").json()["DATABASE_URL"]
        rows(url, "INSERT INTO orders (id, status) VALUES ('outside-1', 'placed') RETURNING id")
        assert wait_for(lambda: rows(url, "SELECT order_id FROM shipments") == [("outside-1",)], 30), server.output()
    assert postmasters(root) == []  # the last lease ended: the private server stopped with `up`
    with Server(project, env=postgres_env) as again:  # never reset: the rows are still there
        assert rows(url, "SELECT id, status FROM orders") == [("outside-1", "paid")], again.output()
        assert len(lines(root, "charge")) == 1  # and nothing delivered twice
    assert postmasters(root) == []


def test_invoke_trigger_writes_to_the_private_server(project: Path, postgres_env, postgres_server) -> None:
    root = project.parent
    proc = run_cli("invoke", "ship", "--trigger", "order-paid", "--data",
                   '{"old": {"id": "o-9", "status": "placed"}, "new": {"id": "o-9", "status": "paid"}}',
                   cwd=root, env=postgres_env)
    assert proc.returncode == 0, proc.stderr
    [payload] = lines(root, "ship")
    assert payload["table"] == {"schema": "public", "name": "orders"}
    assert rows(postgres_server.url("app"), "SELECT order_id FROM shipments") == [("o-9",)]


def test_a_users_own_server_by_url(tmp_path: Path, postgres_server, postgres_env, run_server) -> None:
    """`state: {postgres: URL}`: the database is created on that server (schema applied) when absent."""
    root = tmp_path / "shop"
    root.mkdir()
    url = postgres_server.url("shop")
    manifest = write_project(root, {"faasemu.yaml": MANIFEST.replace("postgres: auto", f"postgres: '{url}'"),
                                    "schema.sql": SCHEMA})
    shutil.copy(APP, root / "app.py")
    with open(root / "app.py", "a") as app:
        app.write(WHO)
    server = run_server(manifest, env=postgres_env)
    assert httpx.get(f"{server.url}/who").json()["DATABASE_URL"] == url
    assert httpx.post(f"{server.url}/orders", json={"id": "o-2"}).status_code == 201
    assert wait_for(lambda: rows(url, "SELECT order_id FROM shipments") == [("o-2",)], 30), server.output()
    assert not (root / ".faasemu" / "postgres").exists()  # no private server for a URL


def test_a_schema_error_is_located(project: Path, postgres_env) -> None:
    (project.parent / "schema.sql").write_text(SCHEMA + "CREATE TABLE broken (id integr);\n")
    proc = run_cli("up", "--port", "0", cwd=project.parent, env=postgres_env)
    assert proc.returncode == 2, proc.stderr
    assert "schema.sql:4" in proc.stderr and "integr" in proc.stderr, proc.stderr
    assert postmasters(project.parent) == []


def test_handlers_get_no_postgres_variable_of_the_shell(project: Path, postgres_env, run_server) -> None:
    env = {**postgres_env, "PGPASSWORD": "hunter2", "PGHOST": "db.example.com"}
    server = run_server(project, env=env)
    assert httpx.get(f"{server.url}/who").json()["PGPASSWORD"] is None  # only what the manifest passes
    assert httpx.post(f"{server.url}/orders", json={"id": "o-3"}).status_code == 201  # faasemu's own psql unaffected
    assert wait_for(lambda: len(lines(project.parent, "ship")) == 1, 30), server.output()
    assert "hunter2" not in server.output()


def test_changes_captured_while_up_was_killed_are_all_delivered(project: Path, postgres_env, postgres_server) -> None:
    """As on SQLite (test_triggers_up.py): rows an outside client inserted while no `up` ran, and an `up`
    killed with -9 while relaying them, lose no change's event. The server outlives the killed `up`
    (the fixture's lease), and the next `up` reuses it."""
    root = project.parent
    with Server(project, env=postgres_env):
        pass  # the first `up` creates the database and installs the triggers
    url = postgres_server.url("app")
    rows(url, "INSERT INTO orders (id, status) SELECT 'o-' || n, 'placed' FROM generate_series(1, 100) n RETURNING id")
    server = Server(project, env=postgres_env).start()
    assert wait_for(lambda: len(lines(root, "charge")) >= 10, 30), server.output()
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    with Server(project, env=postgres_env) as again:
        charged = lambda: {p["event"]["data"]["new"]["id"] for p in lines(root, "charge")}  # noqa: E731
        assert wait_for(lambda: len(charged()) == 100, 90), again.output()
    assert len(rows(url, "SELECT DISTINCT order_id FROM payments")) == 100


def test_triggers_removed_from_the_manifest_are_dropped_from_the_database(project: Path, postgres_env,
                                                                          postgres_server) -> None:
    """Without triggers the stale ones go through psql (no driver imported): a write fires nothing after."""
    root = project.parent
    run = run_cli("invoke", "who", cwd=root, env=postgres_env)  # installs the manifest's two triggers
    assert run.returncode == 0, run.stdout + run.stderr
    url = postgres_server.url("app")
    assert len(rows(url, "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'faasemu_%'")) == 2
    project.write_text(MANIFEST.split("triggers:")[0])
    run = run_cli("invoke", "who", cwd=root, env=postgres_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert rows(url, "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'faasemu_%'") == []
