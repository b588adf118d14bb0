"""`runtime: openfaas` through a real `faasemu up`: the gateway's routes and headers, the three
templates, return values, errors and timeouts, async invocations with callbacks, connector-style
event delivery with retries (a new X-Call-Id per connector call), and `faasemu chaos` on handlers
deduplicating on X-Call-Id or on a business key.
Handlers are written for OpenFaaS (no faasemu import) and record what they get in $FAASEMU_STATE."""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, run_cli, write_project

HANDLERS = '''\
import base64
import json
import os
import sqlite3
import sys
import time


def echo(event, context):
    kind = event.path.strip("/")
    if kind == "status":
        return {"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-Custom": "yes"}, "body": "created"}
    if kind == "none":
        return None
    if kind == "list":
        return ["a", {"b": 1}]
    if kind == "tuple":
        return ("accepted", 202)
    if kind == "bytes-body":
        return {"body": b"raw"}
    if kind == "raise":
        raise ValueError("kaboom-openfaas")
    if kind == "missing-query":
        return event.query["nope"]
    return {"statusCode": 200, "body": {
        "method": event.method, "path": event.path, "query": event.query.to_dict(flat=False),
        "headers": dict(event.headers), "body": base64.b64encode(event.body).decode(), "hostname": context.hostname}}


def shout(req):
    return req.upper()


def classic(req):
    print("log: got", len(req), "chars")
    return os.environ["Http_Method"] + " " + os.environ.get("Http_Query", "") + " " + req


def slow(event, context):
    time.sleep(5)


def record(event, context):
    data = json.loads(event.body) if event.body else {}
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)
    with db:
        db.execute("INSERT INTO calls (fn, call_id, topic, method, path, body) VALUES (?, ?, ?, ?, ?, ?)",
                   (os.environ["HOSTNAME"].rsplit("-", 2)[0], event.headers.get("X-Call-Id"),
                    event.headers.get("X-Topic"), event.method, event.path, event.body.decode()))
    db.close()
    return {"statusCode": data.get("status", 200), "body": "recorded"}
'''

SCHEMA = "CREATE TABLE calls (n INTEGER PRIMARY KEY, fn TEXT, call_id TEXT, topic TEXT, method TEXT, path TEXT, body TEXT);\n"

MANIFEST = """\
state:
  schema: schema.sql
functions:
  echo:
    handler: fn/handler.py:echo
    runtime: openfaas
    http: {path: /hello, methods: [GET]}
  shout:
    handler: fn/handler.py:shout
    runtime: openfaas
    template: python3-flask
  classic:
    handler: fn/handler.py:classic
    runtime: openfaas
    template: python3
  slow:
    handler: fn/handler.py:slow
    runtime: openfaas
    timeout: 1
  rec:
    handler: fn/handler.py:record
    runtime: openfaas
    events: [order.created]
  rec-retry:
    handler: fn/handler.py:record
    runtime: openfaas
    events: [order.failing]
    retries: 1
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("openfaas")
    write_project(root, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "fn/handler.py": HANDLERS})
    server = Server(root / "faasemu.yaml", "--retry-delay", "0.05")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def calls(server: Server, fn: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until `fn` recorded `count` calls; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect(server.manifest.parent / ".faasemu" / "state.db", timeout=10)
        rows = db.execute("SELECT call_id, topic, method, path, body FROM calls WHERE fn = ? ORDER BY n",
                          (fn,)).fetchall()
        db.close()
        if len(rows) >= count:
            return [dict(zip(("call_id", "topic", "method", "path", "body"), row)) for row in rows]
        if time.monotonic() > deadline:
            raise AssertionError(f"{fn} recorded {len(rows)} calls, not {count}\n{server.output()}")
        time.sleep(0.05)


def matching(server: Server, fn: str, keep: Any, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait until `fn` recorded `count` calls for which `keep(call)` holds; returns those."""
    deadline = time.monotonic() + timeout
    while len(found := [c for c in calls(server, fn, 0) if keep(c)]) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{fn} recorded {len(found)} matching calls, not {count}\n{server.output()}")
        time.sleep(0.05)
    return found


def body_n(call: dict[str, Any]) -> Any:
    return json.loads(call["body"]).get("n") if call["body"].startswith("{") else None


def test_a_request_through_the_gateway(server: Server) -> None:
    body = bytes(range(256))
    response = httpx.put(f"{server.url}/function/echo/items/7?tag=a&tag=b&empty=", content=body,
                         headers={"Content-Type": "application/octet-stream", "X-Trace": "t1"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    seen = response.json()
    assert (seen["method"], seen["path"]) == ("PUT", "/items/7")
    assert seen["query"] == {"tag": ["a", "b"], "empty": [""]}
    assert base64.b64decode(seen["body"]) == body and seen["hostname"].startswith("echo-")
    headers = seen["headers"]
    assert headers["X-Trace"] == "t1" and headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Call-Id"] == response.headers["x-call-id"] and "X-Start-Time" in headers
    assert float(response.headers["x-duration-seconds"]) >= 0
    assert httpx.get(f"{server.url}/function/echo").json()["path"] == "/"
    assert httpx.get(f"{server.url}/hello").json()["path"] == "/hello"  # a manifest route keeps its path


@pytest.mark.parametrize(("kind", "status", "content_type", "body"), [
    ("status", 201, "text/plain", b"created"),
    ("none", 200, "text/html; charset=utf-8", b""),
    ("list", 200, "application/json", b'["a",{"b":1}]\n'),
    ("tuple", 202, "text/html; charset=utf-8", b"accepted"),
    ("bytes-body", 200, "text/html; charset=utf-8", b"b'raw'"),
])
def test_return_values(server: Server, kind: str, status: int, content_type: str, body: bytes) -> None:
    response = httpx.get(f"{server.url}/function/echo/{kind}")
    assert (response.status_code, response.headers["content-type"], response.content) == (status, content_type, body)
    if kind == "status":
        assert response.headers["x-custom"] == "yes"


def test_errors_answer_flasks_pages_and_the_console_shows_the_traceback(server: Server) -> None:
    response = httpx.get(f"{server.url}/function/echo/raise")
    assert response.status_code == 500 and b"<title>500 Internal Server Error</title>" in response.content
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "kaboom-openfaas" not in response.text
    server.wait_for_output("kaboom-openfaas")
    missing = httpx.get(f"{server.url}/function/echo/missing-query")
    assert missing.status_code == 400 and b"<title>400 Bad Request</title>" in missing.content


def test_python3_flask_and_classic_templates(server: Server) -> None:
    assert httpx.post(f"{server.url}/function/shout", content="café").text == "CAFÉ"
    assert httpx.put(f"{server.url}/function/shout").status_code == 405  # the template routes GET and POST only
    classic = httpx.post(f"{server.url}/function/classic?x=1", content="hi", headers={"Content-Type": "text/csv"})
    assert classic.text == "log: got 2 chars\nPOST x=1 hi\n" and classic.headers["content-type"] == "text/csv"


def test_a_timeout_is_the_watchdogs_504(server: Server) -> None:
    started = time.monotonic()
    response = httpx.get(f"{server.url}/function/slow", timeout=10)
    assert response.status_code == 504 and response.content == b"" and time.monotonic() - started < 4


def test_async_invocation_is_accepted_then_posted_with_its_call_id_and_called_back(server: Server) -> None:
    response = httpx.put(f"{server.url}/async-function/rec/jobs?q=1", content=b'{"n": 1}',
                         headers={"X-Callback-Url": f"{server.url}/_faasemu/sink/done"})
    assert response.status_code == 405  # only POST is accepted there
    response = httpx.post(f"{server.url}/async-function/rec/jobs?q=1", content=b'{"n": 1}',
                          headers={"X-Callback-Url": f"{server.url}/_faasemu/sink/done"})
    assert response.status_code == 202 and response.content == b""
    call_id = response.headers["x-call-id"]
    call = next(c for c in calls(server, "rec", 1) if c["call_id"] == call_id)
    assert (call["method"], call["path"], call["body"]) == ("POST", "/jobs", '{"n": 1}')
    deadline = time.monotonic() + 10
    while not (sink := [c for c in httpx.get(f"{server.url}/_faasemu/sink").json()["calls"] if c["name"] == "done"]):
        assert time.monotonic() < deadline, "the callback never came"
        time.sleep(0.05)
    assert "recorded" in json.dumps(sink[0])


def test_head_answers_the_content_length_of_the_get_body(server: Server) -> None:
    get = httpx.get(f"{server.url}/function/echo/status")
    head = httpx.head(f"{server.url}/function/echo/status")
    assert (head.status_code, head.content, head.headers["x-custom"]) == (201, b"", "yes")
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(b"created"))


def test_an_event_gets_a_new_call_id_per_call_and_failures_are_retried(server: Server) -> None:
    answer = httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.created", "data": {"id": 7}}).json()
    event_id = answer["ids"][0]
    call = matching(server, "rec", lambda c: c["topic"] == "order.created", 1)[0]
    assert (call["method"], call["path"], json.loads(call["body"])) == ("POST", "/", {"id": 7})
    assert call["call_id"] != event_id and uuid.UUID(call["call_id"]).version == 4  # the gateway assigns one
    httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.failing", "data": {"status": 500, "n": "f1"}})
    attempts = matching(server, "rec-retry", lambda c: body_n(c) == "f1", 2)
    # a 500 is retried (retries: 1); the connector's second call through the gateway has a new X-Call-Id
    assert len(attempts) == 2 and len({a["call_id"] for a in attempts}) == 2
    final = httpx.post(f"{server.url}/_faasemu/events",
                       json={"type": "order.failing", "data": {"status": 400, "n": "f2"}})
    final_id = final.json()["ids"][0]
    server.wait_for_output(f"evt {final_id}  attempt 1")
    time.sleep(0.5)
    assert len(matching(server, "rec-retry", lambda c: body_n(c) == "f2", 1)) == 1  # a 400 is final


def test_async_invocation_retries_keep_their_call_id(server: Server) -> None:
    response = httpx.post(f"{server.url}/async-function/rec-retry", json={"status": 500, "n": "a1"})
    assert response.status_code == 202
    attempts = matching(server, "rec-retry", lambda c: body_n(c) == "a1", 2)
    assert [a["call_id"] for a in attempts] == [response.headers["x-call-id"]] * 2  # as the queue-worker replays it


CHAOS_HANDLERS = '''\
import json
import os
import sqlite3


def credit(event, context):
    order = json.loads(event.body)
    key = {"call-id": event.headers.get("X-Call-Id"), "order": order["id"]}.get(os.environ["DEDUP"])
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    with db:
        if key is not None and not db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (key,)).rowcount:
            return {"statusCode": 200, "body": "duplicate"}
        db.execute("INSERT INTO totals (account, total) VALUES (?, ?) "
                   "ON CONFLICT (account) DO UPDATE SET total = total + excluded.total", (order["account"], order["amount"]))
    db.close()
    return {"statusCode": 200, "body": "ok"}
'''


def chaos_project(root: Path, dedup: str) -> Path:
    manifest = f"""\
state:
  schema: schema.sql
functions:
  credit:
    handler: credit.py:credit
    runtime: openfaas
    events: [account.credited]
    env: {{DEDUP: "{dedup}"}}
"""
    events = "".join(json.dumps({"type": "account.credited", "data": {"id": i, "account": a, "amount": n}}) + "\n"
                     for i, a, n in (("c1", "ada", 20), ("c2", "bob", 5), ("c3", "ada", 7)))
    write_project(root, {"faasemu.yaml": manifest, "credit.py": CHAOS_HANDLERS, "events.jsonl": events,
                         "schema.sql": "CREATE TABLE totals (account TEXT PRIMARY KEY, total INTEGER);\n"
                                       "CREATE TABLE seen (id TEXT PRIMARY KEY);\n"})
    return root


def test_chaos_fails_a_handler_deduplicating_on_x_call_id_and_passes_one_using_a_business_key(tmp_path: Path) -> None:
    """A connector's redelivery is a new call with a new X-Call-Id, so deduplicating on it does not work."""
    roots = [chaos_project(tmp_path / "call-id", "call-id"), chaos_project(tmp_path / "order", "order")]
    with ThreadPoolExecutor(2) as pool:  # two campaigns at once: each is mostly waiting on its workers
        procs = list(pool.map(lambda root: run_cli("chaos", "events.jsonl", "--runs", "10", "--seed", "1",
                                                   "--json", "r.json", cwd=root, timeout=180), roots))
    for root, proc, exit_code in zip(roots, procs, (1, 0)):
        assert proc.returncode == exit_code, proc.stdout + proc.stderr
        verdict = json.loads((root / "r.json").read_text())["functions"]["credit"]
        assert verdict["idempotent"] is (exit_code == 0)
    hints = [v["hint"] for v in json.loads((roots[0] / "r.json").read_text())["functions"]["credit"]["violations"]]
    assert any("new X-Call-Id" in h and "business key" in h for h in hints), hints


def test_the_sample_serves(run_server: Any, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_functions" / "openfaas"
    shutil.copytree(sample, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    server = run_server(tmp_path / "faasemu.yaml")
    hello = httpx.get(f"{server.url}/function/hello", params={"name": "Ada"})
    assert hello.status_code == 200 and hello.json()["greeting"] == "hello, Ada"
    accepted = httpx.post(f"{server.url}/async-function/record-order", json={"order": "A-9", "day": "d1", "total": 30})
    assert accepted.status_code == 202 and accepted.headers["x-call-id"]
    server.wait_for_output("record-order")


def test_the_samples_campaign_passes(tmp_path: Path) -> None:
    """The sample deduplicates on the order id, which survives a connector's redelivery."""
    sample = Path(__file__).resolve().parents[2] / "sample_functions" / "openfaas"
    shutil.copytree(sample, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    proc = run_cli("chaos", "events.jsonl", "--runs", "5", "--seed", "3", "--json", "r.json", cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["functions"]["record-order"]["idempotent"] is True
