"""`runtime: knative` through a real `faasemu up`, and against Knative's own middleware.

The handlers are written for Knative Functions (func-python): `new()` returning an object with
`async handle(scope, receive, send)`, or a module-level `handle`; event functions read
`scope["event"]` and reply through `send`. They record what they receive into $FAASEMU_STATE.
The fidelity test serves the same files with func-python's `serve()` (as knative/func's
scaffolding does) and compares the answers. Parliament's older `main(context)` style needs Flask
and cloudevents 1.x: those tests run in the gcf family's environment.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, free_port, run_cli, write_project

SCHEMA = "CREATE TABLE calls (id INTEGER PRIMARY KEY, fn TEXT, kind TEXT, payload TEXT);\n"

RECORD = '''\
import json
import os
import sqlite3


def record(fn, kind, payload):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)
    with db:
        db.execute("INSERT INTO calls (fn, kind, payload) VALUES (?, ?, ?)", (fn, kind, json.dumps(payload)))
    db.close()


def event_record(event):
    attributes = dict(event.get_attributes())
    attributes["time"] = attributes["time"].isoformat() if attributes.get("time") else None
    data = event.get_data()
    if isinstance(data, bytes):
        data = {"bytes": data.hex()}
    return {"attributes": attributes, "data": data}
'''

# -- the fidelity project: the same files under func-python's serve() and under faasemu up ----------

WEB = '''\
import base64
import json


def new():
    return Function()


class Function:
    def start(self, cfg):
        self.service = cfg.get("K_SERVICE")

    async def handle(self, scope, receive, send):
        path = scope["path"]
        if path == "/raise":
            raise RuntimeError("boom")
        if path == "/silent":
            return
        if path == "/late":
            await send({"type": "http.response.start", "status": 201, "headers": [(b"x-late", b"1")]})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise RuntimeError("late failure")
        if path == "/str-body":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": "not bytes"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        report = {key: scope[key] for key in ("type", "http_version", "asgi", "method", "scheme", "path",
                                              "root_path", "extensions", "state")}
        report["raw_path"] = scope["raw_path"].decode()
        report["query_string"] = scope["query_string"].decode()
        report["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"] if k != b"host"]
        report["body"] = base64.b64encode(body).decode()
        report["service"] = self.service
        status = int(scope["query_string"].decode().partition("status=")[2] or 200)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"x-multi", b"a"), (b"x-multi", b"b"),
            (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": json.dumps(report).encode()})

    def alive(self):
        return True, "Alive"

    def ready(self):
        return False, "Not yet"
'''

CE = '''\
from cloudevents.core.v1.event import CloudEvent

from record import event_record, record


def new():
    return Function()


class Function:
    async def handle(self, scope, receive, send):
        event = scope["event"]
        record("ce", "received", {**event_record(event), "prefer": dict(scope["headers"]).get(b"prefer", b"").decode()})
        mode = event.get_extension("mode") or "structured"
        if mode == "raise":
            raise RuntimeError("bad event")
        if mode == "raise-value":
            raise ValueError("bad value")
        reply = CloudEvent(
            attributes={"type": "fid.reply", "source": "fid", "id": f"reply-{event.get_id()}",
                        "time": event.get_time(), "subject": mode},
            data={"echo": event.get_data()},
        )
        if mode == "binary":
            await send.binary(reply)
        elif mode == "raw":
            await send.http({"type": "http.response.start", "status": 202, "headers": [(b"x-raw", b"yes")]})
            await send.http({"type": "http.response.body", "body": b""})
        elif mode == "created":
            await send(reply, 201)
        else:
            await send(reply)
'''

SINK = '''\
from record import event_record, record


async def handle(scope, receive, send):
    record("sink", "reply", event_record(scope["event"]))
    await send.http({"type": "http.response.start", "status": 202, "headers": []})
    await send.http({"type": "http.response.body", "body": b""})
'''

# What knative/func writes around a Python function when it builds one (templates/python/
# scaffolding/instanced-{http,cloudevents}/service/main.py), less the ulimit setup.
SCAFFOLD = '''\
import logging
import sys

from func_python.{middleware} import serve

logging.basicConfig(level=logging.INFO)

try:
    from function import new as handler
except ImportError:
    from function import handle as handler

if __name__ == "__main__":
    serve(handler)
'''

FIDELITY_MANIFEST = """\
name: fidelity
state: {schema: schema.sql}
functions:
  web:
    handler: web/function/func.py
    runtime: knative
    http: [{path: /}, {path: "/{path+}"}]
  ce:
    handler: ce/function/func.py
    runtime: knative
    signature: cloudevent
    http: [{path: /ce}, {path: "/ce/{path+}"}]
    events: [fid.request]
  sink:
    handler: sink.py
    runtime: knative
    events: [fid.reply]
"""

# func-python's cloudevent middleware takes a ValueError for "not a CloudEvent" and answers 400 through
# the CloudEvent sender, which fails on the plain dict: the client gets a 500 naming that failure.
ERROR_MESSAGES = {"raise": "Error: bad event", "raise-value": "Error: 'dict' object has no attribute 'get_data'"}

# Headers only the HTTP servers differ in (hypercorn writes `server: hypercorn-h11` and chunks;
# uvicorn writes its own and a content-length).
SERVER_HEADERS = {"date", "server", "content-length", "transfer-encoding", "connection"}


def fidelity_files() -> dict[str, str]:
    return {
        "faasemu.yaml": FIDELITY_MANIFEST, "schema.sql": SCHEMA, "record.py": RECORD, "sink.py": SINK,
        "web/function/__init__.py": "from .func import new\n", "web/function/func.py": WEB,
        "ce/function/__init__.py": "from .func import new\n", "ce/function/func.py": CE,
        "ce/record.py": RECORD,
    }


class RealFunction:
    """A function served as Knative runs it: func-python's serve() on LISTEN_ADDRESS, in its own process."""

    def __init__(self, folder: Path, middleware: str, env: dict[str, str]) -> None:
        (folder / "service_main.py").write_text(SCAFFOLD.format(middleware=middleware))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "func-python.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "service_main.py"], cwd=folder, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, **env, "LISTEN_ADDRESS": f"127.0.0.1:{self.port}"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(f"{self.url}/health/liveness", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"func-python did not start:\n{(folder / 'func-python.log').read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def exchange(url: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """Status, the headers that matter, and the body; `truncated` when the server broke the body off."""
    with httpx.stream(method, url + path, timeout=10, **kwargs) as response:
        body, truncated = b"", False
        try:
            for chunk in response.iter_raw():
                body += chunk
        except httpx.RemoteProtocolError:
            truncated = True
    headers = [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in SERVER_HEADERS]
    return {"status": response.status_code, "headers": headers, "body": body, "truncated": truncated}


def calls(state: Path, fn: str, kind: str | None = None) -> list[Any]:
    db = sqlite3.connect(state)
    try:
        sql = "SELECT payload FROM calls WHERE fn = ?" + (" AND kind = ?" if kind else "") + " ORDER BY id"
        return [json.loads(p) for (p,) in db.execute(sql, (fn, kind) if kind else (fn,))]
    finally:
        db.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.knative
def test_same_answers_as_func_python(tmp_path: Path, run_server: Any) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event, to_binary_event
    from cloudevents.core.v1.event import CloudEvent

    manifest = write_project(tmp_path, fidelity_files())
    real_state = tmp_path / "real.db"
    sqlite3.connect(real_state).executescript(SCHEMA)
    real_web = RealFunction(tmp_path / "web", "http", {"K_SERVICE": "web"})
    try:
        real_ce = RealFunction(tmp_path / "ce", "cloudevent", {"FAASEMU_STATE": str(real_state)})
    except AssertionError:
        real_web.stop()
        raise
    try:
        server = run_server(manifest)
        binary = bytes(range(256)) * 3
        http_cases: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/?a=1&a=2&sp=%20x", {"headers": [("x-one", "1"), ("x-rep", "a"), ("x-rep", "b")]}),
            ("POST", "/items/42?status=201", {"content": binary, "headers": {"content-type": "image/png"}}),
            ("PUT", "/caf%C3%A9/a%20b", {"json": {"k": "v"}}),
            ("DELETE", "/x?status=404", {}),
            ("HEAD", "/head", {}),
            ("GET", "/health/liveness", {}),
            ("GET", "/health/readiness", {}),
            ("GET", "/silent", {}),
            ("GET", "/late", {}),
            ("GET", "/str-body", {}),
            ("GET", "/raise", {}),
        ]
        for method, path, kwargs in http_cases:
            real = exchange(real_web.url, method, path, **kwargs)
            ours = exchange(server.url, method, path, **kwargs)
            if path in ("/raise", "/str-body", "/late"):
                # hypercorn breaks the chunked body off after the handler's error (func-python's
                # http middleware sends its 500 text as a str): faasemu ends the body there instead.
                assert real["truncated"] and not ours["truncated"], path
                real["truncated"] = False
            assert ours == real, f"{method} {path}"

        # The cloudevent middleware, over HTTP: replies in each mode, a non-event, an error.
        def binary_request(mode: str, event_id: str) -> tuple[dict[str, str], bytes]:
            event = CloudEvent(attributes={"type": "fid.request", "source": "test", "id": event_id,
                                           "time": _time("2024-05-01T12:00:00+00:00"), "mode": mode,
                                           "datacontenttype": "application/json"},
                               data={"n": 1, "text": "é"})
            message = to_binary_event(event)
            return {**message.headers, "prefer": "reply"}, message.body

        for mode in ("structured", "binary", "raw", "created", "raise", "raise-value"):
            headers, body = binary_request(mode, f"http-{mode}")
            real = exchange(real_ce.url, "POST", "/", headers=headers, content=body)
            ours = exchange(server.url, "POST", "/ce", headers=headers, content=body)
            if mode.startswith("raise"):  # a fresh id and time in func-python's error event
                real_body, our_body = json.loads(real.pop("body")), json.loads(ours.pop("body"))
                for doc in (real_body, our_body):
                    assert doc.pop("id") and doc.pop("time")
                assert our_body == real_body
                assert our_body["data"] == {"message": ERROR_MESSAGES[mode]}
            assert ours == real, mode
        for method, kwargs in (("POST", {"json": {"not": "an event"}}), ("GET", {})):
            assert exchange(server.url, method, "/ce", **kwargs) == exchange(real_ce.url, method, "/", **kwargs)

        # Event deliveries: the same event through the bus and as a broker's POST to func-python.
        our_state = tmp_path / ".faasemu" / "state.db"
        for mode in ("structured", "binary", "raw"):
            headers, body = binary_request(mode, f"evt-{mode}")
            real_answer = httpx.post(real_ce.url, headers=headers, content=body)
            httpx.post(f"{server.url}/_faasemu/events", headers=headers, content=body).raise_for_status()
            ours_received = wait_for(lambda mode=mode: [c for c in calls(our_state, "ce", "received")
                                                        if c["attributes"]["id"] == f"evt-{mode}"])
            real_received = [c for c in calls(real_state, "ce", "received") if c["attributes"]["id"] == f"evt-{mode}"]
            assert ours_received == real_received
            if mode == "raw":
                assert real_answer.status_code == 202
                continue
            real_reply = from_http_event(HTTPMessage(dict(real_answer.headers), real_answer.content))
            our_reply = wait_for(lambda mode=mode: [r for r in calls(our_state, "sink", "reply")
                                                    if r["attributes"]["id"] == f"reply-evt-{mode}"])
            expected = dict(real_reply.get_attributes(), time=real_reply.get_time().isoformat())
            # The one difference: every event on faasemu's bus has a datacontenttype (the
            # default for JSON data, docs/architecture.md#an-event); a broker forwards a reply without one as it is.
            expected.setdefault("datacontenttype", "application/json")
            assert our_reply == [{"attributes": expected, "data": real_reply.get_data()}]
        assert not calls(our_state, "sink", "reply")[2:]  # `raw` replied with nothing
    finally:
        real_web.stop()
        real_ce.stop()


def _time(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


# -- one server for the behaviours a user relies on -------------------------------------------------

ECHO = '''\
import base64
import json
import os

from record import record


def new():
    return Function()


class Function:
    def start(self, cfg):
        record("echo", "start", {k: cfg.get(k) for k in ("K_SERVICE", "K_REVISION", "K_CONFIGURATION", "PORT")})

    async def handle(self, scope, receive, send):
        messages = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False)
        body = b"".join(m.get("body", b"") for m in messages)
        report = {
            "method": scope["method"], "path": scope["path"], "raw_path": scope["raw_path"].decode(),
            "query_string": scope["query_string"].decode(), "root_path": scope["root_path"],
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "client": list(scope["client"]), "server": list(scope["server"]),
            "messages": [len(m.get("body", b"")) for m in messages],
            "body": base64.b64encode(body).decode(),
        }
        status = int(scope["query_string"].decode().partition("status=")[2] or 200)
        await send({"type": "http.response.start", "status": status, "headers": [
            [b"content-type", b"application/json"], [b"set-cookie", b"a=1"], [b"set-cookie", b"b=2"]]})
        await send({"type": "http.response.body", "body": json.dumps(report).encode()})
'''

PLAIN = '''\
import asyncio
import os


async def handle(scope, receive, send):
    path = scope["path"]
    if path == "/boom":
        raise LookupError("no such thing")
    if path == "/slow":
        await asyncio.sleep(5)
    if path == "/exit":
        os._exit(3)
    if path == "/silent":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]})
    await send({"type": "http.response.body", "body": b"plain " + path.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})
'''

RECORDER = '''\
from cloudevents.core.v1.event import CloudEvent

from record import event_record, record


def new():
    return Function()


class Function:
    async def handle(self, scope, receive, send):
        event = scope["event"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if not k.startswith(b"ce-")}
        record("recorder", event.get_type(), {**event_record(event), "headers": headers,
                                              "method": scope["method"], "path": scope["path"]})
        if event.get_type() == "order.noreply":
            await send.http({"type": "http.response.start", "status": 202, "headers": []})
            await send.http({"type": "http.response.body", "body": b""})
            return
        reply = CloudEvent(attributes={"type": "audit.recorded", "source": "recorder",
                                       "id": f"recorded-{event.get_id()}"},
                           data={"order": event.get_data()["order"]})
        await send.binary(reply)
'''

AUDITOR = '''\
from record import event_record, record


async def handle(scope, receive, send):
    record("auditor", "reply", event_record(scope["event"]))
    await send.http({"type": "http.response.start", "status": 200, "headers": []})
    await send.http({"type": "http.response.body", "body": b"noted"})
'''

FUSSY = '''\
from record import record


def new():
    return Fussy()


class Fussy:
    async def handle(self, scope, receive, send):
        event = scope["event"]
        record("fussy", event.get_id(), event.get_data())
        await send.http({"type": "http.response.start", "status": event.get_data()["status"], "headers": []})
        await send.http({"type": "http.response.body", "body": b"answer"})
'''

FLAKY = '''\
import json
import os
import sqlite3

from record import record


async def handle(scope, receive, send):
    event = scope["event"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    seen = db.execute("SELECT COUNT(*) FROM calls WHERE fn = 'flaky'").fetchone()[0]
    db.close()
    record("flaky", "attempt", {"id": event.get_id(), "source": event.get_source()})
    if not seen:
        raise RuntimeError("first attempt fails")
    await send.http({"type": "http.response.start", "status": 204, "headers": []})
    await send.http({"type": "http.response.body", "body": b""})
'''

RAWSIG = '''\
import base64

from record import record


async def handle(scope, receive, send):
    message = await receive()
    record("rawsig", "request", {"headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                                 "body": base64.b64encode(message["body"]).decode(), "event": "event" in scope})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''

MANIFEST = """\
name: knative-tests
state: {schema: schema.sql}
functions:
  echo:
    handler: echo/function/func.py
    runtime: knative
    http: [{path: /echo}, {path: "/echo/{rest+}"}, {path: "/users/{id}/posts", methods: [GET]}]
  plain:
    handler: plain.py
    runtime: knative
    timeout: 1
    http: [{path: /plain}, {path: "/plain/{rest+}"}]
  recorder:
    handler: recorder/func.py
    runtime: knative
    events: [order.placed, order.noreply]
  auditor:
    handler: auditor.py
    runtime: knative
    events: [audit.recorded]
  fussy:
    handler: fussy.py
    runtime: knative
    retries: 2
    events: [status.*]
  flaky:
    handler: flaky.py
    runtime: knative
    retries: 1
    events: [flaky.*]
  rawsig:
    handler: rawsig.py
    runtime: knative
    signature: http
    events: [raw.*]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("knative")
    manifest = write_project(root, {
        "faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "record.py": RECORD,
        "echo/function/__init__.py": "from .func import new\n", "echo/function/func.py": ECHO,
        "plain.py": PLAIN, "recorder/func.py": RECORDER, "auditor.py": AUDITOR, "fussy.py": FUSSY,
        "flaky.py": FLAKY, "rawsig.py": RAWSIG,
    })
    server = Server(manifest, "--retry-delay", "0.05").start()
    try:
        yield server, root / ".faasemu" / "state.db"
    finally:
        server.stop()


def header_values(headers: list[list[str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


@pytest.mark.knative
def test_http_request_is_the_asgi_scope_hypercorn_builds(project: tuple[Server, Path]) -> None:
    server, state = project
    body = bytes(range(256)) * 4
    response = httpx.post(f"{server.url}/echo/a%20b/c?x=1&x=2&e=%C3%A9&status=201", content=body,
                          headers=[("content-type", "application/octet-stream"), ("x-rep", "1"), ("x-rep", "2")])
    assert response.status_code == 201
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    report = response.json()
    assert report["method"] == "POST"
    assert report["path"] == "/a b/c"  # below the mount point /echo: the function owns its service
    assert report["raw_path"] == "/a%20b/c" and report["root_path"] == ""
    assert report["query_string"] == "x=1&x=2&e=%C3%A9&status=201"
    assert header_values(report["headers"], "x-rep") == ["1", "2"]
    assert header_values(report["headers"], "content-type") == ["application/octet-stream"]
    assert base64.b64decode(report["body"]) == body
    assert report["messages"] == [len(body), 0]  # the body, then hypercorn's empty last message
    assert report["server"] == ["127.0.0.1", 8080] and report["client"][0] == "127.0.0.1"

    for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert httpx.request(method, f"{server.url}/echo").json()["method"] == method
    assert httpx.get(f"{server.url}/echo").json()["path"] == "/"
    assert httpx.get(f"{server.url}/users/7/posts").json()["path"] == "/7/posts"

    big = os.urandom(150_000)
    report = httpx.post(f"{server.url}/echo/big", content=big).json()
    assert report["messages"] == [65536, 65536, 150_000 - 131072, 0]
    assert base64.b64decode(report["body"]) == big
    # start(cfg) ran once for this instance, with the variables Knative Serving sets
    assert calls(state, "echo", "start") == [{"K_SERVICE": "echo", "K_REVISION": "echo-00001",
                                              "K_CONFIGURATION": "echo", "PORT": "8080"}]


@pytest.mark.knative
def test_responses_health_paths_and_failures(project: tuple[Server, Path]) -> None:
    server, _ = project
    response = httpx.get(f"{server.url}/plain/hi")
    assert (response.status_code, response.headers["content-type"]) == (200, "text/plain")
    assert response.content == b"plain /hi!"  # two body messages, joined
    # func-python answers its health paths itself; the defaults say OK
    for path in ("/plain/health/liveness", "/plain/health/readiness"):
        response = httpx.get(server.url + path)
        assert (response.status_code, response.text, response.headers["content-type"]) == (200, "OK", "text/plain")
    # a handler error: func-python's 500 text/plain, whose body hypercorn never finishes
    response = httpx.get(f"{server.url}/plain/boom")
    assert (response.status_code, response.headers["content-type"], response.content) == (500, "text/plain", b"")
    out = server.wait_for_output("no such thing")
    assert "LookupError" in out and "plain.py" in out
    # nothing sent: hypercorn's own empty 500
    response = httpx.get(f"{server.url}/plain/silent")
    assert (response.status_code, response.content) == (500, b"")
    # past the timeout: the queue-proxy's 504; a dead container: the reverse proxy's 502
    response = httpx.get(f"{server.url}/plain/slow", timeout=10)
    assert (response.status_code, response.text) == (504, "request timeout")
    response = httpx.get(f"{server.url}/plain/exit", timeout=10)
    assert response.status_code == 502 and response.headers["content-type"] == "text/plain; charset=utf-8"
    assert httpx.get(f"{server.url}/plain/again").status_code == 200


def post_event(server: Server, event: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}/_faasemu/events", json=event, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["ids"][0]


def delivery(server: Server, event_id: str, function: str) -> dict[str, Any] | None:
    listing = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 100000}).json()["events"]
    event = next((e for e in listing if e["id"] == event_id), None)
    return next((d for d in event["deliveries"] if d["function"] == function), None) if event else None


def settled(server: Server, event_id: str, function: str) -> dict[str, Any]:
    return wait_for(lambda: (d := delivery(server, event_id, function)) and d["status"] in ("done", "dead") and d)


@pytest.mark.knative
def test_event_arrives_as_a_broker_post_and_the_reply_is_routed_on(project: tuple[Server, Path]) -> None:
    server, state = project
    event_id = post_event(server, {"id": "ord-1", "type": "order.placed", "source": "shop", "subject": "o/1",
                                   "time": "2024-05-01T12:00:00Z", "tenant": "acme", "data": {"order": "o-1"}})
    assert settled(server, event_id, "recorder")["status"] == "done"
    [seen] = calls(state, "recorder", "order.placed")
    assert seen["attributes"] == {"specversion": "1.0", "id": "ord-1", "source": "shop", "type": "order.placed",
                                  "subject": "o/1", "time": "2024-05-01T12:00:00+00:00",
                                  "datacontenttype": "application/json", "tenant": "acme"}
    assert seen["data"] == {"order": "o-1"} and (seen["method"], seen["path"]) == ("POST", "/")
    assert seen["headers"]["prefer"] == "reply"
    assert seen["headers"]["host"] == "recorder.default.svc.cluster.local"
    assert seen["headers"]["content-type"] == "application/json"
    # the binary reply went back to the bus, which delivered it to the function subscribed to it
    replies = wait_for(lambda: calls(state, "auditor", "reply"))
    assert replies[0]["attributes"]["id"] == "recorded-ord-1"
    assert (replies[0]["attributes"]["type"], replies[0]["data"]) == ("audit.recorded", {"order": "o-1"})
    assert settled(server, "recorded-ord-1", "auditor")["status"] == "done"

    quiet = post_event(server, {"type": "order.noreply", "source": "shop", "data": {"order": "o-2"}})
    assert settled(server, quiet, "recorder")["status"] == "done"
    time.sleep(0.3)
    assert len(calls(state, "auditor", "reply")) == 1  # a 202 carries no reply


@pytest.mark.knative
def test_status_decides_whether_the_broker_retries(project: tuple[Server, Path]) -> None:
    server, state = project
    statuses = {400: 1, 401: 1, 403: 1, 422: 1, 302: 1, 404: 3, 408: 3, 409: 3, 429: 3, 500: 3, 503: 3, 200: 1, 202: 1}
    ids = {status: post_event(server, {"id": f"st-{status}", "type": f"status.s{status}", "source": "t",
                                       "data": {"status": status}}) for status in statuses}
    for status, attempts in statuses.items():
        found = settled(server, ids[status], "fussy")
        assert (found["status"], found["attempts"]) == ("done" if status < 300 else "dead", attempts), status
        assert len(calls(state, "fussy", ids[status])) == attempts
    assert "not retried" in (delivery(server, ids[400], "fussy") or {})["last_error"]
    assert "fussy answered 400 Bad Request: answer" in server.output()


@pytest.mark.knative
def test_a_retried_event_keeps_its_id(project: tuple[Server, Path]) -> None:
    server, state = project
    event_id = post_event(server, {"type": "flaky.one", "source": "t", "data": {}})
    assert settled(server, event_id, "flaky") == {**settled(server, event_id, "flaky"), "status": "done", "attempts": 2}
    assert calls(state, "flaky", "attempt") == [{"id": event_id, "source": "t"}] * 2
    assert "first attempt fails" in server.output()  # func-python's 500 hides it; the console does not


@pytest.mark.knative
def test_signature_http_receives_the_binary_mode_request(project: tuple[Server, Path]) -> None:
    server, state = project
    event_id = post_event(server, {"type": "raw.thing", "source": "t", "data": {"k": "é"}})
    assert settled(server, event_id, "rawsig")["status"] == "done"
    [seen] = calls(state, "rawsig", "request")
    assert seen["event"] is False
    assert header_values(seen["headers"], "ce-id") == [event_id]
    assert header_values(seen["headers"], "ce-type") == ["raw.thing"]
    assert json.loads(base64.b64decode(seen["body"])) == {"k": "é"}


def test_missing_func_python_answers_503_and_the_rest_serves(tmp_path: Path, run_server: Any) -> None:
    stubs = tmp_path / "stubs" / "func_python"
    stubs.mkdir(parents=True)
    (stubs / "__init__.py").write_text("raise ImportError('func-python is not installed here')\n")
    manifest = write_project(tmp_path / "app", {
        "faasemu.yaml": """\
            functions:
              kn:
                handler: kn.py
                runtime: knative
                http: {path: /kn}
              lam:
                handler: lam.py:handler
                http: {path: /lam}
            """,
        "kn.py": "async def handle(scope, receive, send):\n    pass\n",
        "lam.py": "def handler(event, context):\n    return {'ok': True}\n",
    })
    server = run_server(manifest, env={"PYTHONPATH": str(tmp_path / "stubs")})
    response = httpx.get(f"{server.url}/kn")
    assert response.status_code == 503
    assert "func-python" in response.text and "pip install 'faasemu[knative]'" in response.text
    assert httpx.get(f"{server.url}/lam").json() == {"ok": True}


# -- chaos verdicts -------------------------------------------------------------------------------------

CREDIT_SCHEMA = ("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);\n"
                 "CREATE TABLE processed (event_id TEXT PRIMARY KEY);\n")

CREDIT = '''\
import os
import sqlite3


def new():
    return Credit()


class Credit:
    async def handle(self, scope, receive, send):
        event = scope["event"]
        data = event.get_data()
        db = sqlite3.connect(os.environ["FAASEMU_STATE"])
        try:
            with db:
                first = True
                if os.environ.get("DEDUP"):
                    first = db.execute("INSERT OR IGNORE INTO processed VALUES (?)", (event.get_id(),)).rowcount
                if first:
                    db.execute("INSERT INTO accounts VALUES (?, ?) ON CONFLICT (id) "
                               "DO UPDATE SET balance = balance + excluded.balance", (data["account"], data["amount"]))
        finally:
            db.close()
        await send.http({"type": "http.response.start", "status": 202, "headers": []})
        await send.http({"type": "http.response.body", "body": b""})
'''


@pytest.mark.knative
def test_chaos_passes_the_deduplicating_handler_and_fails_the_naive_one(tmp_path: Path) -> None:
    roots = {"dedup": tmp_path / "dedup", "naive": tmp_path / "naive"}
    for name, env in (("dedup", "\n    env: {DEDUP: '1'}"), ("naive", "")):
        root = roots[name]
        write_project(root, {
            "faasemu.yaml": f"name: credits\nstate: {{schema: schema.sql}}\nfunctions:\n  credit:\n"
                            f"    handler: credit.py\n    runtime: knative\n    events: [account.credited]{env}\n",
            "schema.sql": CREDIT_SCHEMA, "credit.py": CREDIT,
            "events.jsonl": "".join(json.dumps({"type": "account.credited", "source": "bank",
                                                "data": {"account": a, "amount": n}}) + "\n"
                                    for a, n in (("alice", 20), ("bob", 5), ("alice", 7))),
        })
    with ThreadPoolExecutor(2) as pool:  # both campaigns at once: the test takes one's time
        procs = dict(zip(roots, pool.map(lambda root: run_cli(
            "chaos", "events.jsonl", "--runs", "10", "--seed", "1", "--json", "r.json", cwd=root, timeout=120),
            roots.values()), strict=True))
    for name, expected in (("dedup", 0), ("naive", 1)):
        assert procs[name].returncode == expected, procs[name].stdout + procs[name].stderr
        verdict = json.loads((roots[name] / "r.json").read_text())["functions"]["credit"]
        assert verdict["idempotent"] is (name == "dedup") and verdict["order_tolerant"], verdict
        assert bool(verdict["violations"]) is (name == "naive")


@pytest.mark.knative
def test_sample_project_serves(tmp_path: Path, run_server: Any) -> None:
    import shutil

    sample = Path(__file__).resolve().parents[2] / "sample_functions" / "knative"
    shutil.copytree(sample, tmp_path / "sample", ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    server = run_server(tmp_path / "sample" / "faasemu.yaml")
    assert httpx.get(f"{server.url}/hello?name=Ann").json() == {"message": "Hello, Ann!", "method": "GET", "path": "/"}
    for line in (tmp_path / "sample" / "events.jsonl").read_text().splitlines():
        post_event(server, json.loads(line))
    server.wait_for_output("receipt for order o-2: total 25")


# -- `func create my-fn`: a hyphenated project folder whose function imports relatively --------------

HYPHENATED = {
    "my-fn/function/__init__.py": "from .func import new\n",
    "my-fn/function/func.py": """\
        import json

        from .mylib import greet
        from . import mylib


        def new():
            return Greeter()


        class Greeter:
            async def handle(self, scope, receive, send):
                body = json.dumps({"greeting": greet("Ada"), "module": __name__, "lib": mylib.__name__})
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body.encode()})
        """,
    "my-fn/function/mylib.py": "def greet(name):\n    return f'hello, {name}'\n",
    "faasemu.yaml": """\
        name: hyphen
        functions:
          my-fn:
            handler: my-fn/function/func.py
            runtime: knative
            http: {path: /greet}
        """,
}


@pytest.mark.knative
def test_a_function_in_a_hyphenated_folder_imports_relatively_as_under_func_python(tmp_path: Path,
                                                                                  run_server: Any) -> None:
    manifest = write_project(tmp_path, HYPHENATED)
    real = RealFunction(tmp_path / "my-fn", "http", {})
    try:
        server = run_server(manifest)
        emulated = exchange(server.url, "GET", "/greet")
        assert emulated == exchange(real.url, "GET", "/"), server.output()
    finally:
        real.stop()
    assert json.loads(emulated["body"]) == {"greeting": "hello, Ada", "module": "function.func",
                                            "lib": "function.mylib"}


# -- parliament's main(context): func's older templates, with Flask and cloudevents 1.x ---------------

PARLIAMENT = '''\
import json
import os
import sqlite3

from cloudevents.http import CloudEvent


def main(context):
    if "cloud_event" in context.keys():
        event = context.cloud_event
        db = sqlite3.connect(os.environ["FAASEMU_STATE"])
        with db:
            db.execute("INSERT INTO calls (fn, kind, payload) VALUES (?, ?, ?)",
                       (os.environ["K_SERVICE"], event["type"], json.dumps({"id": event["id"], "data": event.data})))
        db.close()
        if event["type"] == "legacy.ping":
            return CloudEvent({"type": "legacy.pong", "source": "legacy", "id": "pong-" + event["id"],
                               "datacontenttype": "application/json"}, {"echo": event.data})
        return "", 204
    request = context.request
    if request.args.get("fail"):
        raise RuntimeError("asked to fail")
    return {"method": request.method, "path": request.path, "args": request.args.to_dict(flat=False)}
'''


@pytest.mark.gcf
def test_parliament_main_context_through_faasemu_up(tmp_path: Path, run_server: Any) -> None:
    manifest = write_project(tmp_path, {
        "faasemu.yaml": """\
            name: legacy
            state: {schema: schema.sql}
            functions:
              legacy:
                handler: func.py
                runtime: knative
                http: {path: /legacy}
                events: [legacy.ping]
              pong:
                handler: func.py:main
                runtime: knative
                events: [legacy.pong]
            """,
        "schema.sql": SCHEMA, "func.py": PARLIAMENT,
    })
    server = run_server(manifest, "--retry-delay", "0.05")
    response = httpx.get(f"{server.url}/legacy?a=1&a=2")
    assert response.json() == {"method": "GET", "path": "/", "args": {"a": ["1", "2"]}}
    failed = httpx.get(f"{server.url}/legacy?fail=1")
    assert (failed.status_code, failed.text) == (500, "Function raised asked to fail")
    assert failed.headers["content-type"] == "text/html; charset=utf-8"
    assert httpx.put(f"{server.url}/legacy").status_code == 405  # parliament routes GET and POST only

    event_id = post_event(server, {"type": "legacy.ping", "source": "t", "data": {"n": 1}})
    state = tmp_path / ".faasemu" / "state.db"
    assert wait_for(lambda: calls(state, "legacy", "legacy.ping")) == [{"id": event_id, "data": {"n": 1}}]
    assert wait_for(lambda: calls(state, "pong", "legacy.pong")) == [{"id": f"pong-{event_id}",
                                                                      "data": {"echo": {"n": 1}}}]
