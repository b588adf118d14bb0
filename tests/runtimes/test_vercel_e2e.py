"""`runtime: vercel` through a real `faasemu up`: file routes, the three entry-point kinds, what the
handler sees and writes, Vercel's error pages, event pushes and their retries, and `faasemu chaos`.

One module-scoped server answers the HTTP and event tests; handlers record what they receive
into $FAASEMU_STATE so the tests can read exactly what a deployed function would have been given.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, run_cli, write_project

SCHEMA = """\
CREATE TABLE calls (n INTEGER PRIMARY KEY AUTOINCREMENT, fn TEXT, headers TEXT, body BLOB, path TEXT);
"""

ECHO = """\
import json
import os
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply(b"")

    def do_POST(self):
        self.reply(self.rfile.read(int(self.headers["Content-Length"])))

    def reply(self, body):
        out = json.dumps({"path": self.path, "method": self.command, "headers": self.headers.items(),
                          "body": body.hex(), "env": os.environ.get("VERCEL_ENV")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.end_headers()
        self.wfile.write(out)
"""

WSGI = """\
def app(environ, start_response):
    start_response("418 I'm a teapot", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode(), b"?", environ["QUERY_STRING"].encode()]
"""

ASGI = """\
import json


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["started"] = True
        await send({"type": "lifespan.startup.complete"})
        await receive()
        return
    body = (await receive())["body"]
    out = json.dumps({"path": scope["path"], "query": scope["query_string"].decode(), "state": scope["state"],
                      "body": body.decode(), "client": scope["client"][0]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": out})
"""

BOOM = """\
import time
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        raise ValueError("the handler broke")

    def do_POST(self):
        time.sleep(5)
"""

RECORDER = """\
import os
import sqlite3
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)
        with db:
            name = os.path.basename(__file__)[:-3]
            seen = db.execute("SELECT COUNT(*) FROM calls WHERE fn = ?", (name,)).fetchone()[0]
            db.execute("INSERT INTO calls (fn, headers, body, path) VALUES (?, ?, ?, ?)",
                       (name, repr(self.headers.items()), body, self.path))
        db.close()
        failing = name == "flaky" and seen == 0
        self.send_response(503 if failing else 204)
        self.end_headers()
"""

MANIFEST = """\
state:
  schema: schema.sql
functions:
  echo:
    handler: api/echo.py
    runtime: vercel
  item:
    handler: api/items/[id].py
    runtime: vercel
  asgi:
    handler: api/index.py
    runtime: vercel
    http: {path: "/custom/{name}", methods: [GET, POST]}
  boom:
    handler: api/boom.py
    runtime: vercel
    timeout: 1
  consumer:
    handler: api/consumer.py
    runtime: vercel
    events: [order.paid]
  flaky:
    handler: api/flaky.py
    runtime: vercel
    events: [order.flaky]
    retries: 2
  no-entry:
    handler: api/no_entry.py
    runtime: vercel
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vercel")
    return write_project(root, {
        "faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "api/echo.py": ECHO, "api/items/[id].py": WSGI,
        "api/index.py": ASGI, "api/boom.py": BOOM, "api/consumer.py": RECORDER, "api/flaky.py": RECORDER,
        "api/no_entry.py": "def handler(request):\n    return 'a Lambda-style handler'\n",
    })


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Server]:
    with Server(project, "--retry-delay", "0.05") as running:
        yield running


def calls(project: Path, fn: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(project.parent / ".faasemu" / "state.db", timeout=10)
    try:
        rows = db.execute("SELECT headers, body, path FROM calls WHERE fn = ? ORDER BY n", (fn,)).fetchall()
    finally:
        db.close()
    return [{"headers": dict(eval(headers)), "body": body, "path": path} for headers, body, path in rows]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.03)
    return result


def publish(server: Server, event: dict[str, Any]) -> None:
    response = httpx.post(f"{server.url}/_faasemu/events", json=event, timeout=10)
    assert response.status_code == 202, response.text


# -- HTTP ----------------------------------------------------------------------------------------


def test_a_handler_class_sees_the_request_and_writes_the_response(server: Server) -> None:
    binary = bytes(range(256))
    response = httpx.post(f"{server.url}/api/echo?a=1&a=2&q=caf%C3%A9", content=binary,
                          headers={"content-type": "application/octet-stream", "x-tag": "one",
                                   "x-forwarded-for": "6.6.6.6"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["server"] == "Vercel" and response.headers["x-vercel-id"].startswith("dev1::")
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    seen = response.json()
    assert seen["method"] == "POST" and seen["path"] == "/api/echo?a=1&a=2&q=caf%C3%A9"
    assert bytes.fromhex(seen["body"]) == binary and seen["env"] == "development"
    headers = dict(seen["headers"])
    assert headers["x-tag"] == "one" and headers["x-forwarded-for"] == "127.0.0.1"  # the edge's, not the client's
    assert headers["x-vercel-id"] == response.headers["x-vercel-id"]


def test_a_file_is_also_served_at_its_own_path_with_the_extension(server: Server) -> None:
    """As Vercel does: its fixtures probe `/api/python.py?query=...` beside `/api/python`."""
    response = httpx.get(f"{server.url}/api/echo.py?query=hello%20%40world", timeout=10)
    assert response.status_code == 200 and response.headers["server"] == "Vercel"
    assert response.json()["path"] == "/api/echo.py?query=hello%20%40world"
    assert httpx.get(f"{server.url}/api/echo", timeout=10).json()["path"] == "/api/echo"


def test_a_method_the_handler_lacks_answers_501(server: Server) -> None:
    response = httpx.delete(f"{server.url}/api/echo", timeout=10)
    assert response.status_code == 501 and "Unsupported method ('DELETE')" in response.text


def test_a_wsgi_file_with_a_dynamic_segment_gets_it_in_the_query(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/items/42?x=1", timeout=10)
    assert (response.status_code, response.text) == (418, "/api/items/42?x=1&id=42")
    assert response.headers["content-type"] == "text/plain"


def test_declared_routes_replace_the_file_route_and_asgi_keeps_its_lifespan_state(server: Server) -> None:
    response = httpx.post(f"{server.url}/custom/ada?z=%20", content=b"hi", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"path": "/custom/ada", "query": "z=%20", "state": {"started": True}, "body": "hi",
                               "client": "127.0.0.1"}
    assert httpx.get(f"{server.url}/api", timeout=10).status_code == 404  # index.py's file route is not served


def test_an_exception_is_function_invocation_failed_and_its_traceback_is_shown(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/boom", timeout=10)
    assert response.status_code == 500
    assert response.headers["x-vercel-error"] == "FUNCTION_INVOCATION_FAILED"
    assert response.text.splitlines()[:3] == ["A server error has occurred", "", "FUNCTION_INVOCATION_FAILED"]
    out = server.wait_for_output("the handler broke")
    assert "ValueError" in out and "api/boom.py" in out


def test_a_timeout_is_function_invocation_timeout(server: Server) -> None:
    started = time.monotonic()
    response = httpx.post(f"{server.url}/api/boom", content=b"", timeout=10)
    assert response.status_code == 504 and time.monotonic() - started < 4
    assert response.headers["x-vercel-error"] == "FUNCTION_INVOCATION_TIMEOUT"
    assert "An error occurred with your deployment" in response.text


def test_a_file_without_an_entry_point_answers_503_saying_what_vercel_wants(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/no_entry", timeout=10)
    assert response.status_code == 503
    assert 'Could not find a top-level "app", "application", or "handler"' in response.text
    assert "BaseHTTPRequestHandler" in response.text


def test_vercel_defaults_apply(server: Server) -> None:
    functions = {f["name"]: f for f in httpx.get(f"{server.url}/_faasemu/functions", timeout=10).json()["functions"]}
    assert (functions["echo"]["timeout"], functions["echo"]["retries"], functions["echo"]["memory"]) == (300, 0, 2048)
    assert functions["echo"]["http"] == [{"path": "/api/echo", "methods": ["ANY"]},
                                         {"path": "/api/echo.py", "methods": ["ANY"]}]


# -- events ----------------------------------------------------------------------------------------


def test_an_event_is_pushed_as_a_binary_cloudevent_post(server: Server, project: Path) -> None:
    event_id = f"paid-{uuid.uuid4().hex[:8]}"
    publish(server, {"type": "order.paid", "id": event_id, "source": "shop", "data": {"order": "A-1"}})
    got = wait_for(lambda: [c for c in calls(project, "consumer") if c["headers"].get("ce-id") == event_id],
                   "the push")
    headers = got[0]["headers"]
    assert got[0]["path"] == "/api/consumer" and json.loads(got[0]["body"]) == {"order": "A-1"}
    assert headers["ce-type"] == "order.paid" and headers["ce-source"] == "shop" and headers["ce-specversion"] == "1.0"
    assert headers["content-type"] == "application/json" and headers["x-vercel-id"].startswith("dev1::")


def test_a_non_2xx_answer_is_redelivered_with_the_same_id(server: Server, project: Path) -> None:
    event_id = f"flaky-{uuid.uuid4().hex[:8]}"
    publish(server, {"type": "order.flaky", "id": event_id, "data": {"n": 1}})
    got = wait_for(lambda: (lambda mine: mine if len(mine) >= 2 else [])(
        [c for c in calls(project, "flaky") if c["headers"].get("ce-id") == event_id]), "the redelivery")
    first, second = got[0]["headers"], got[1]["headers"]
    assert first["ce-id"] == second["ce-id"] == event_id
    assert first["x-vercel-id"] != second["x-vercel-id"]  # a new invocation, the same message
    assert server.wait_for_output("answered 503")


# -- chaos -----------------------------------------------------------------------------------------

CHAOS_CONSUMER = """\
import json
import os
import sqlite3
from http.server import BaseHTTPRequestHandler

DEDUP = {dedup}


class handler(BaseHTTPRequestHandler):
    def do_POST(self):
        credit = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        db = sqlite3.connect(os.environ["FAASEMU_STATE"])
        with db:
            first = not DEDUP or db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)",
                                            (self.headers["ce-id"],)).rowcount
            if first:
                db.execute("INSERT INTO accounts (id, balance) VALUES (?, ?) ON CONFLICT (id) "
                           "DO UPDATE SET balance = balance + excluded.balance", (credit["account"], credit["amount"]))
        db.close()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass
"""

CHAOS_MANIFEST = """\
state:
  schema: schema.sql
functions:
  credit:
    handler: api/credit.py
    runtime: vercel
    events: [account.credited]
"""

CHAOS_EVENTS = "\n".join(json.dumps({"type": "account.credited", "data": {"account": a, "amount": n}})
                         for a, n in (("alice", 20), ("bob", 5))) + "\n"


@pytest.mark.parametrize("dedup, exit_code", [(True, 0), (False, 1)])
def test_chaos_passes_a_deduplicating_consumer_and_fails_a_naive_one(tmp_path: Path, dedup: bool,
                                                                      exit_code: int) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": CHAOS_MANIFEST, "events.jsonl": CHAOS_EVENTS,
        "api/credit.py": CHAOS_CONSUMER.format(dedup=dedup),
        "schema.sql": "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER);\n"
                      "CREATE TABLE seen (id TEXT PRIMARY KEY);\n",
    })
    result = run_cli("chaos", "events.jsonl", "--runs", "10", "--seed", "1", "--json", "r.json", cwd=tmp_path)
    assert result.returncode == exit_code, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["functions"]["credit"]["idempotent"] is dedup
