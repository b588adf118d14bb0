"""`runtime: kubeless` through a real `faasemu up`: the event and context a handler gets over HTTP,
bottle's answers, errors and the 408 timeout, the Kafka trigger's delivery with a new event-id on
every send, and `faasemu chaos`: deduplicating on event-id fails there (with a hint to use a
business key), deduplicating on a key in the data passes. Handlers are written for Kubeless."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, run_cli, write_project

HANDLERS = '''\
import base64
import base64
import json
import os
import sqlite3
import time

STATE = {"calls": 0}


def echo(event, context):
    STATE["calls"] += 1
    req = event["extensions"]["request"]
    data = event["data"]
    if req.path == "/raise":
        raise KeyError("kaboom-kubeless")
    if req.path == "/text":
        return "plain text"
    return {"data": base64.b64encode(data).decode() if isinstance(data, bytes) else data,
            "event": {k: v for k, v in event.items() if k not in ("data", "extensions")}, "context": context,
            "method": req.method, "path": req.path, "query": req.query.getall("tag"), "name": req.query.name,
            "header": req.get_header("X-Trace"), "calls": STATE["calls"]}


def slow(event, context):
    time.sleep(5)


def record(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)
    with db:
        db.execute("INSERT INTO calls (event) VALUES (?)",
                   (json.dumps({k: v for k, v in event.items() if k != "extensions"}),))
    db.close()
    if event["data"].get("fail"):
        raise RuntimeError("this send fails")
    return "ok"
'''

MANIFEST = """\
state:
  schema: schema.sql
functions:
  echo:
    handler: fn/handlers.py:echo
    runtime: kubeless
    http: {path: /echo, methods: [GET, POST, PUT]}
  slow:
    handler: fn/handlers.py:slow
    runtime: kubeless
    timeout: 1
  rec:
    handler: fn/handlers.py:record
    runtime: kubeless
    events: [payment.*]
    retries: 1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("kubeless")
    write_project(root, {"faasemu.yaml": MANIFEST, "fn/handlers.py": HANDLERS,
                         "schema.sql": "CREATE TABLE calls (n INTEGER PRIMARY KEY, event TEXT);\n"})
    server = Server(root / "faasemu.yaml", "--retry-delay", "0.05")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def recorded(server: Server, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(server.manifest.parent / ".faasemu" / "state.db", timeout=10)
        rows = [json.loads(row[0]) for row in db.execute("SELECT event FROM calls ORDER BY n")]
        db.close()
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} calls recorded, not {count}\n{server.output()}")
        time.sleep(0.05)


def test_a_json_request_is_parsed_into_the_event(server: Server) -> None:
    response = httpx.post(f"{server.url}/echo?tag=a&tag=b&name=%C3%A9", json={"order": 7},
                          headers={"X-Trace": "t1"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    seen = response.json()
    assert seen["data"] == {"order": 7} and seen["method"] == "POST" and seen["path"] == "/echo"
    assert seen["query"] == ["a", "b"] and seen["name"] == "é" and seen["header"] == "t1"
    assert seen["event"] == {"event-id": None, "event-type": None, "event-time": None, "event-namespace": None}
    assert seen["context"] == {"function-name": "echo", "timeout": 180.0, "runtime": seen["context"]["runtime"],
                               "memory-limit": "128Mi"}
    assert seen["context"]["runtime"].startswith("python3.")


def test_other_bodies_arrive_raw_and_module_state_does_not_survive_a_call(server: Server) -> None:
    binary = bytes(range(256))
    seen = httpx.post(f"{server.url}/kubeless/echo/", content=binary,
                      headers={"Content-Type": "application/json; charset=utf-8"}).json()
    assert seen["data"] == base64.b64encode(binary).decode() and seen["path"] == "/"
    assert seen["calls"] == 1  # each call runs in a fresh fork of the loaded module
    assert httpx.get(f"{server.url}/kubeless/echo/text").text == "plain text"


def test_methods_errors_and_timeouts(server: Server) -> None:
    put = httpx.put(f"{server.url}/echo", content=b"x")
    assert put.status_code == 405 and put.headers["allow"] == "DELETE,GET,PATCH,POST"
    error = httpx.get(f"{server.url}/kubeless/echo/raise")
    assert error.status_code == 500 and "<h1>Error: 500 Internal Server Error</h1>" in error.text
    assert re.search(r"<tt>&#039;http://127\.0\.0\.1:\d+/raise&#039;</tt>", error.text)
    server.wait_for_output("kaboom-kubeless")
    started = time.monotonic()
    slow = httpx.get(f"{server.url}/kubeless/slow", timeout=10)
    assert slow.status_code == 408 and "Timeout while processing the function" in slow.text
    assert time.monotonic() - started < 3


def test_each_send_of_an_event_gets_a_new_event_id(server: Server) -> None:
    answer = httpx.post(f"{server.url}/_faasemu/events", json={
        "type": "payment.received", "time": "2024-05-01T12:00:00.5Z", "data": {"payment_id": "p-1", "fail": True}})
    event_id = answer.json()["ids"][0]
    first, second = recorded(server, 2)[:2]  # failed, then retried once (retries: 1)
    assert first["data"] == {"payment_id": "p-1", "fail": True}
    assert first["event-type"] == "application/json" and first["event-namespace"] == "kafkatriggers.kubeless.io"
    assert first["event-time"] == "2024-05-01 12:00:00.5 +0000 UTC"
    assert re.fullmatch(r"[A-Za-z0-9_-]{15}", first["event-id"])
    assert first["event-id"] != second["event-id"] and event_id not in (first["event-id"], second["event-id"])


CHAOS_HANDLERS = '''\
import os
import sqlite3


def credit(event, context):
    key = event["event-id"] if os.environ["DEDUP_ON"] == "event-id" else event["data"]["payment_id"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    with db:
        if db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (key,)).rowcount:
            db.execute("INSERT INTO balances (account, amount) VALUES (?, ?) ON CONFLICT (account) "
                       "DO UPDATE SET amount = amount + excluded.amount",
                       (event["data"]["account"], event["data"]["amount"]))
    db.close()
    return "ok"
'''


def chaos_project(root: Path, dedup_on: str) -> Path:
    manifest = f"""\
state:
  schema: schema.sql
functions:
  credit:
    handler: credit.py:credit
    runtime: kubeless
    events: [payment.received]
    env: {{DEDUP_ON: {dedup_on}}}
"""
    events = "".join(json.dumps({"type": "payment.received", "data": {"payment_id": p, "account": a, "amount": n}})
                     + "\n" for p, a, n in (("p-1", "ada", 20), ("p-2", "bob", 5), ("p-3", "ada", 7)))
    write_project(root, {"faasemu.yaml": manifest, "credit.py": CHAOS_HANDLERS, "events.jsonl": events,
                         "schema.sql": "CREATE TABLE balances (account TEXT PRIMARY KEY, amount INTEGER);\n"
                                       "CREATE TABLE seen (id TEXT PRIMARY KEY);\n"})
    return root


def test_chaos_fails_deduplicating_on_event_id_and_passes_a_business_key(tmp_path: Path) -> None:
    roots = [chaos_project(tmp_path / "key", "payment_id"), chaos_project(tmp_path / "event-id", "event-id")]
    with ThreadPoolExecutor(2) as pool:  # two campaigns at once: each is mostly waiting on its workers
        procs = list(pool.map(lambda root: run_cli("chaos", "events.jsonl", "--runs", "10", "--seed", "1",
                                                   "--json", "r.json", cwd=root), roots))
    for root, proc, exit_code in zip(roots, procs, (0, 1)):
        assert proc.returncode == exit_code, proc.stdout + proc.stderr
        verdict = json.loads((root / "r.json").read_text())["functions"]["credit"]
        assert verdict["idempotent"] is (exit_code == 0)
    violation = json.loads((roots[1] / "r.json").read_text())["functions"]["credit"]["violations"][0]
    assert violation["kind"] == "idempotency"
    assert "new event-id on every send" in violation["hint"] and "business key" in violation["hint"]


def test_the_sample_serves(run_server: Any, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_functions" / "kubeless"
    shutil.copytree(sample, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    server = run_server(tmp_path / "faasemu.yaml")
    assert httpx.get(f"{server.url}/hello", params={"name": "Ada"}).json() == {
        "greeting": "hello, Ada", "function": "handler"}
    assert httpx.post(f"{server.url}/kubeless/hello", json={"name": "Bo"}).json()["greeting"] == "hello, Bo"
