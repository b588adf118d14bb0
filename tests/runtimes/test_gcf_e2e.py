"""`runtime: gcf` through a real `faasemu up`, and side by side with Google's own functions-framework.

The fidelity tests run the same handler file under `functions-framework --target X --source main.py`
(Google's server, started on a free loopback port) and under `faasemu up`, send both the same HTTP
requests and CloudEvents, and require the same answers (status, body, the headers that matter) and
the same recorded events. The other tests cover what only faasemu does: the environment, timeouts,
event delivery and retries through the bus, the missing-SDK 503, and `faasemu chaos` verdicts.
Handlers record into SQLite at $FAASEMU_STATE; none of them imports faasemu.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, free_port, run_cli, write_project

from faasemu.events import model as events
from faasemu.events.ingress import STRUCTURED

HANDLERS = '''\
"""Written for Cloud Run functions; nothing here knows about faasemu."""

import base64
import json
import os
import sqlite3
import time

import flask
import functions_framework

PNG = bytes(range(256))


def _db():
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)


def _plain(value):
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    return value


def _stream():
    yield "one,"
    yield "two"


def web(request):
    """Every response shape, chosen by the first path segment."""
    kind = request.path.strip("/").split("/")[0]
    if kind == "echo":
        headers = sorted([k, v] for k, v in request.headers.items() if k not in ("Host", "Function-Execution-Id"))
        return {
            "method": request.method, "path": request.path, "full_path": request.full_path,
            "args": request.args.to_dict(flat=False), "headers": headers,
            "content_type": request.content_type, "content_length": request.content_length,
            "data": base64.b64encode(request.get_data()).decode(), "json": request.get_json(silent=True),
            "form": request.form.to_dict(flat=False),
            "files": {k: [f.filename, f.read().decode()] for k, f in request.files.items()},
            "cookies": request.cookies.to_dict(), "scheme": request.scheme, "remote_addr": request.remote_addr,
            "execution_id": len(request.headers.get("Function-Execution-Id", "")),
            "target": os.environ.get("FUNCTION_TARGET"),
        }
    if kind == "tuple":
        return "created", 201, {"X-Custom": "yes", "X-Other": "1"}
    if kind == "dict":
        return {"a": 1, "b": [True, None], "c": "caf\\u00e9"}
    if kind == "list":
        return [1, "two", {"three": 3}]
    if kind == "str":
        return "plain text \\u00e9"
    if kind == "bytes":
        return PNG
    if kind == "response":
        response = flask.make_response(PNG, 202)
        response.mimetype = "application/octet-stream"
        response.set_cookie("session", "abc", httponly=True)
        response.headers["X-Custom"] = "made"
        return response
    if kind == "jsonify":
        return flask.jsonify(ok=True, n=[1, 2]), 203
    if kind == "redirect":
        return flask.redirect("/echo?from=redirect")
    if kind == "abort":
        flask.abort(403)
    if kind == "abort500":
        flask.abort(500)
    if kind == "stream":
        return flask.Response(_stream(), mimetype="text/csv")
    if kind == "none":
        return None
    raise ValueError(f"no such kind: {kind}")


def _record(kind, key, value):
    with _db() as db:
        db.execute("INSERT INTO seen (kind, key, value) VALUES (?, ?, ?)", (kind, key, json.dumps(value)))


@functions_framework.cloud_event
def on_event(cloud_event):
    attributes = dict(cloud_event.get_attributes())
    _record("cloudevent", cloud_event["id"], {
        "class": type(cloud_event).__module__ + "." + type(cloud_event).__name__,
        "attributes": attributes, "data": _plain(cloud_event.data),
    })
    if cloud_event.data == {"fail": True}:
        raise RuntimeError("asked to fail")


def on_legacy(data, context):
    _record("event", context.event_id, {
        "class": type(context).__module__ + "." + type(context).__name__,
        "data": _plain(data), "event_id": context.event_id, "timestamp": context.timestamp,
        "event_type": context.event_type, "resource": context.resource,
    })


def http_events(request):
    """A plain HTTP function subscribed to events: it sees Eventarc's binary-mode POST."""
    _record("http", request.headers.get("ce-id"), {
        "method": request.method, "path": request.path, "content_type": request.content_type,
        "ce": {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")},
        "body": request.get_data(as_text=True), "execution_id": request.headers.get("Function-Execution-Id"),
    })
    return "", 204


def flaky(cloud_event):
    """Fails the first attempt of every event; records each attempt's execution id."""
    with _db() as db:
        tries = db.execute("SELECT COUNT(*) FROM seen WHERE kind = 'flaky' AND key = ?", (cloud_event["id"],))
        first = tries.fetchone()[0] == 0
        db.execute("INSERT INTO seen (kind, key, value) VALUES ('flaky', ?, ?)",
                   (cloud_event["id"], json.dumps({"data": cloud_event.data})))
    if first:
        raise RuntimeError("first attempt fails")


def env(request):
    names = ["FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE", "K_SERVICE", "K_REVISION", "K_CONFIGURATION", "PORT",
             "STAGE"]
    return {name: os.environ.get(name) for name in names}


@functions_framework.http
def decorated(request):
    return {"signature": os.environ.get("FUNCTION_SIGNATURE_TYPE"), "app": flask.current_app.name}


def slow(request):
    time.sleep(float(request.args.get("sleep", "3")))
    return "finally"


def boom(request):
    detail = "kaboom-gcf"
    raise KeyError(detail)
'''

SCHEMA = """\
CREATE TABLE seen (n INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, key TEXT, value TEXT);
"""

MANIFEST = """\
name: gcf
state:
  schema: schema.sql
env: {STAGE: test}
functions:
  web:
    handler: main.py:web
    runtime: gcf
    http: {path: "/{path+}"}
  on-event:
    handler: main.py:on_event
    runtime: gcf
    events: ["fidelity.*"]
    http: {path: /ce}
  on-legacy:
    handler: main.py:on_legacy
    runtime: gcf
    signature: event
    events: ["legacy.*", google.cloud.pubsub.topic.v1.messagePublished]
  http-events:
    handler: main.py:http_events
    runtime: gcf
    signature: http
    events: [hook.*]
  flaky:
    handler: main.py:flaky
    runtime: gcf
    events: [flaky.*]
    retries: 2
  fails:
    handler: main.py:on_event
    runtime: gcf
    events: [fails.*]
  env:
    handler: main.py:env
    runtime: gcf
    http: {path: /_env}
  decorated:
    handler: main.py:decorated
    runtime: gcf
    signature: cloudevent
    http: {path: /_decorated}
  slow:
    handler: main.py:slow
    runtime: gcf
    timeout: 1
    http: {path: /_slow}
  boom:
    handler: main.py:boom
    runtime: gcf
    http: {path: /_boom}
"""

gcf = pytest.mark.gcf  # every test but the missing-SDK one needs functions-framework


# -- servers ----------------------------------------------------------------------------------------


class FunctionsFramework:
    """Google's `functions-framework` serving one target of the project, on a free loopback port."""

    def __init__(self, root: Path, target: str, signature: str, state: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"ff-{target}.log"
        cli = Path(sys.executable).with_name("functions-framework")
        command = [str(cli)] if cli.exists() else [sys.executable, "-m", "functions_framework"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [*command, "--target", target, "--source", str(root / "main.py"), "--host", "127.0.0.1",
                 "--port", str(self.port), "--signature-type", signature],
                cwd=root, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "FAASEMU_STATE": str(state or root / "ff.db"), "STAGE": "test", **(env or {})},
            )

    def wait(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"functions-framework exited:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"functions-framework did not listen within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gcf")
    write_project(root, {"faasemu.yaml": MANIFEST, "main.py": HANDLERS, "schema.sql": SCHEMA})
    with sqlite3.connect(root / "ff.db") as db:
        db.executescript(SCHEMA)
    return root


@pytest.fixture(scope="module")
def both(project: Path) -> Iterator[dict[str, Any]]:
    """faasemu up and three functions-framework servers (http, a decorated cloudevent, event)."""
    frameworks = {
        # on_event runs with --signature-type http: its @cloud_event decorator must win, as in faasemu.
        name: FunctionsFramework(project, target, signature, project / "ff.db")
        for name, target, signature in (("web", "web", "http"), ("cloudevent", "on_event", "http"),
                                        ("event", "on_legacy", "event"))
    }
    server = Server(project / "faasemu.yaml", "--retry-delay", "0.05")
    try:
        server.start()
        for framework in frameworks.values():
            framework.wait()
        yield {"faasemu": server, **frameworks}
    finally:
        server.stop()
        for framework in frameworks.values():
            framework.stop()


def seen(db: Path, kind: str, key: str | None = None) -> list[Any]:
    with sqlite3.connect(db, timeout=30) as conn:
        query = "SELECT value FROM seen WHERE kind = ?" + (" AND key = ?" if key is not None else "") + " ORDER BY n"
        rows = conn.execute(query, (kind,) if key is None else (kind, key)).fetchall()
    return [json.loads(value) for (value,) in rows]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def faasemu_db(project: Path) -> Path:
    return project / ".faasemu" / "state.db"


# -- fidelity: HTTP ---------------------------------------------------------------------------------

# Headers each server sets for itself; everything else must be the same.
SERVER_HEADERS = {"date", "server", "connection", "keep-alive", "transfer-encoding"}
MULTIPART = (b"--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"
             b"--XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n"
             b"Content-Type: text/plain\r\n\r\nfile body\r\n--XyZ--\r\n")
REQUESTS = [
    ("GET", "/echo?a=1&a=2&b=x%20y&empty=", {"X-Custom": "v", "Cookie": "c1=one; c2=two", "X_Under": "dropped"}, None),
    ("POST", "/echo", {"Content-Type": "application/json"}, b'{"name": "Ada", "n": [1, 2]}'),
    ("POST", "/echo/bin", {"Content-Type": "application/octet-stream"}, bytes(range(256))),
    ("POST", "/echo/form", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=1&a=2&b=caf%C3%A9"),
    ("POST", "/echo/multipart", {"Content-Type": "multipart/form-data; boundary=XyZ"}, MULTIPART),
    ("PUT", "/echo/nested/deep/path", {"Content-Type": "text/plain; charset=utf-8"}, "caf\u00e9".encode()),
    ("DELETE", "/echo/caf%C3%A9", {}, None),
    ("PATCH", "/echo?x", {"Content-Type": "application/json"}, b"not json"),
    ("HEAD", "/echo?head=1", {}, None),
    ("OPTIONS", "/echo", {}, None),
    ("GET", "/tuple", {}, None),
    ("GET", "/dict", {}, None),
    ("GET", "/list", {}, None),
    ("GET", "/str", {}, None),
    ("GET", "/bytes", {}, None),
    ("GET", "/response", {}, None),
    ("GET", "/jsonify", {}, None),
    ("GET", "/redirect", {}, None),
    ("GET", "/abort", {}, None),
    ("GET", "/abort500", {}, None),
    ("GET", "/stream", {}, None),
    ("GET", "/none", {}, None),
    ("POST", "/raise", {"Content-Type": "application/json"}, b"{}"),
    ("GET", "/favicon.ico", {}, None),
    ("GET", "/robots.txt", {}, None),
]


def comparable(response: httpx.Response) -> dict[str, Any]:
    headers = sorted((k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in SERVER_HEADERS)
    if "content-length" not in response.headers:  # streamed by gunicorn: faasemu answers with the length
        headers.append(("content-length", str(len(response.content))))
        headers.sort()
    body: Any = response.content
    if response.headers.get("content-type") == "application/json" and response.content:
        body = json.loads(response.content)
    return {"status": response.status_code, "headers": headers, "body": body}


@gcf
@pytest.mark.parametrize(("method", "path", "headers", "body"), REQUESTS, ids=[f"{m} {p}" for m, p, _, _ in REQUESTS])
def test_http_answers_match_functions_framework(both: dict[str, Any], method: str, path: str,
                                                headers: dict[str, str], body: bytes | None) -> None:
    answers = []
    for url in (both["web"].url, both["faasemu"].url):
        answers.append(httpx.request(method, url + path, headers=headers, content=body, timeout=10,
                                     follow_redirects=False))
    real, emulated = (comparable(answer) for answer in answers)
    assert emulated == real


@gcf
def test_the_crash_answer_is_flasks_text_with_the_crash_header(both: dict[str, Any]) -> None:
    answer = httpx.get(both["faasemu"].url + "/raise")
    assert answer.status_code == 500
    assert answer.headers["x-google-status"] == "crash"
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.text.startswith("500 Internal Server Error: The server encountered an internal error")


@gcf
def test_a_cloudevent_function_answers_405_to_get_and_ok_to_a_structured_post(both: dict[str, Any]) -> None:
    event = {"specversion": "1.0", "id": "direct-1", "source": "curl", "type": "fidelity.direct",
             "datacontenttype": "application/json", "data": {"via": "http"}}
    for url in (both["cloudevent"].url + "/ce", both["faasemu"].url + "/ce"):
        refused = httpx.get(url)
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
        taken = httpx.post(url, content=json.dumps(event), headers={"content-type": STRUCTURED})
        assert (taken.status_code, taken.text) == (200, "OK")


# -- fidelity: events -------------------------------------------------------------------------------

CLOUDEVENTS = [
    {"specversion": "1.0", "id": "fid-json", "source": "//shop/orders", "type": "fidelity.json",
     "subject": "orders/7", "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json",
     "myext": "extension value", "data": {"order": 7, "items": ["a", "b"], "note": "caf\u00e9"}},
    {"specversion": "1.0", "id": "fid-text", "source": "shop", "type": "fidelity.text",
     "time": "2024-05-01T12:00:01Z", "datacontenttype": "text/plain", "data": "hello there"},
    {"specversion": "1.0", "id": "fid-bin", "source": "shop", "type": "fidelity.binary",
     "time": "2024-05-01T12:00:02Z", "datacontenttype": "application/octet-stream",
     "data_base64": "AAEC/w=="},
]

PUBSUB = {
    "specversion": "1.0", "id": "pubsub-1", "source": "//pubsub.googleapis.com/projects/p/topics/t",
    "type": "google.cloud.pubsub.topic.v1.messagePublished", "time": "2024-05-01T12:00:03Z",
    "datacontenttype": "application/json",
    "data": {"message": {"data": "aGk=", "attributes": {"k": "v"}, "messageId": "m-1",
                         "publishTime": "2024-05-01T12:00:03Z"},
             "subscription": "projects/p/subscriptions/s"},
}


def post_binary(url: str, event: dict[str, Any]) -> httpx.Response:
    headers, body = events.to_binary(event)
    return httpx.post(url, headers=headers, content=body, timeout=10)


def ingest(server: Server, event: dict[str, Any]) -> None:
    answer = httpx.post(server.url + "/_faasemu/events", content=json.dumps(event),
                        headers={"content-type": STRUCTURED})
    assert answer.status_code == 202, answer.text


@gcf
@pytest.mark.parametrize("event", CLOUDEVENTS, ids=[e["id"] for e in CLOUDEVENTS])
def test_cloudevents_reach_the_handler_as_under_functions_framework(both: dict[str, Any], project: Path,
                                                                    event: dict[str, Any]) -> None:
    answer = post_binary(both["cloudevent"].url, event)
    assert (answer.status_code, answer.text) == (200, "OK")
    ingest(both["faasemu"], event)
    emulated = wait_for(lambda: seen(faasemu_db(project), "cloudevent", event["id"]), "the delivery")
    assert emulated == seen(project / "ff.db", "cloudevent", event["id"])
    assert emulated[0]["class"] == "cloudevents.http.event.CloudEvent"


@gcf
def test_a_0_3_event_with_an_offsetless_time_reaches_the_handler_as_the_sdk_reads_it(
        both: dict[str, Any], project: Path) -> None:
    # The ingress used to answer 400 to both; functions-framework takes such an event as it is.
    event = {"specversion": "0.3", "id": "fid-v03", "source": "//old/producer", "type": "fidelity.v03",
             "time": "2024-05-01T12:00:00", "datacontenttype": "application/json", "data": {"old": True}}
    answer = post_binary(both["cloudevent"].url, event)
    assert (answer.status_code, answer.text) == (200, "OK")
    ingest(both["faasemu"], event)
    emulated = wait_for(lambda: seen(faasemu_db(project), "cloudevent", "fid-v03"), "the delivery")[0]
    real = seen(project / "ff.db", "cloudevent", "fid-v03")[0]
    assert emulated["attributes"]["specversion"] == real["attributes"]["specversion"] == "0.3"
    assert emulated["data"] == real["data"] == {"old": True}
    assert emulated["attributes"]["time"] == "2024-05-01T12:00:00Z"  # an offset-less time is taken as UTC


@gcf
def test_legacy_event_functions_get_data_and_context_as_under_functions_framework(
        both: dict[str, Any], project: Path) -> None:
    event = {"specversion": "1.0", "id": "legacy-1", "source": "//shop/orders", "subject": "orders/9",
             "type": "legacy.order", "time": "2024-05-01T12:00:04Z", "datacontenttype": "application/json",
             "data": {"order": 9}}
    # What a 1st-gen trigger POSTs: the legacy JSON (faasemu builds the same from the CloudEvent).
    legacy = {"context": {"eventId": "legacy-1", "timestamp": "2024-05-01T12:00:04Z", "eventType": "legacy.order",
                          "resource": "//shop/orders/orders/9"}, "data": {"order": 9}}
    answer = httpx.post(both["event"].url, json=legacy)
    assert (answer.status_code, answer.text) == (200, "OK")
    ingest(both["faasemu"], event)
    emulated = wait_for(lambda: seen(faasemu_db(project), "event", "legacy-1"), "the delivery")
    assert emulated == seen(project / "ff.db", "event", "legacy-1")
    assert emulated[0]["class"] == "google.cloud.functions_v1.context.Context"


@gcf
def test_google_event_types_are_converted_for_legacy_functions_as_functions_framework_does(
        both: dict[str, Any], project: Path) -> None:
    answer = post_binary(both["event"].url, PUBSUB)
    assert answer.status_code == 200
    ingest(both["faasemu"], PUBSUB)
    emulated = wait_for(lambda: seen(faasemu_db(project), "event", "pubsub-1"), "the delivery")
    assert emulated == seen(project / "ff.db", "event", "pubsub-1")
    assert emulated[0]["event_type"] == "google.pubsub.topic.publish"
    assert emulated[0]["resource"] == {"service": "pubsub.googleapis.com", "name": "projects/p/topics/t",
                                       "type": "type.googleapis.com/google.pubsub.v1.PubsubMessage"}
    assert emulated[0]["data"] == {"data": "aGk=", "attributes": {"k": "v"}}


# -- faasemu only: environment, errors, timeouts ---------------------------------------------------


@gcf
def test_environment_is_cloud_run_functions(both: dict[str, Any]) -> None:
    got = httpx.get(both["faasemu"].url + "/_env").json()
    assert got["FUNCTION_TARGET"] == "env"
    assert got["FUNCTION_SIGNATURE_TYPE"] == "http"
    assert got["K_SERVICE"] == got["K_CONFIGURATION"] == "env"
    assert got["K_REVISION"].startswith("env-00001-") and len(got["K_REVISION"]) == len("env-00001-abc")
    assert got["PORT"] == "8080"
    assert got["STAGE"] == "test"


@gcf
def test_a_decorator_wins_over_the_manifest_signature(both: dict[str, Any]) -> None:
    # `signature: cloudevent` in the manifest, but @functions_framework.http on the function
    got = httpx.get(both["faasemu"].url + "/_decorated")
    assert got.json() == {"signature": "http", "app": "decorated"}


@gcf
def test_echo_sees_an_execution_id_and_its_target(both: dict[str, Any]) -> None:
    got = httpx.get(both["faasemu"].url + "/echo").json()
    assert got["execution_id"] == 12
    assert got["target"] == "web"


@gcf
def test_a_raising_handler_answers_500_crash_and_the_console_shows_the_traceback(both: dict[str, Any]) -> None:
    server = both["faasemu"]
    answer = httpx.get(server.url + "/_boom")
    assert answer.status_code == 500
    assert answer.headers["x-google-status"] == "crash"
    out = server.wait_for_output("kaboom-gcf")
    assert "KeyError" in out and "main.py" in out


@gcf
def test_a_timeout_answers_504_upstream_request_timeout(both: dict[str, Any]) -> None:
    started = time.monotonic()
    answer = httpx.get(both["faasemu"].url + "/_slow?sleep=5", timeout=10)
    assert time.monotonic() - started < 3
    assert answer.status_code == 504
    assert answer.text == "upstream request timeout"
    # the worker was replaced: the function answers again
    assert httpx.get(both["faasemu"].url + "/_slow?sleep=0", timeout=10).text == "finally"


# -- faasemu only: event delivery through the bus --------------------------------------------------


@gcf
def test_an_http_function_receives_events_as_binary_mode_posts(both: dict[str, Any], project: Path) -> None:
    event = {"type": "hook.fired", "id": "hook-1", "source": "//hooks", "subject": "s", "data": {"x": 1}}
    ingest(both["faasemu"], event)
    got = wait_for(lambda: seen(faasemu_db(project), "http", "hook-1"), "the delivery")[0]
    assert got["method"] == "POST" and got["path"] == "/"
    assert got["content_type"] == "application/json"
    assert got["ce"]["ce-id"] == "hook-1" and got["ce"]["ce-type"] == "hook.fired"
    assert got["ce"]["ce-source"] == "//hooks" and got["ce"]["ce-subject"] == "s"
    assert got["ce"]["ce-specversion"] == "1.0"
    assert json.loads(got["body"]) == {"x": 1}
    assert len(got["execution_id"]) == 12


@gcf
def test_a_failed_delivery_is_retried_with_the_same_event_id(both: dict[str, Any], project: Path) -> None:
    ingest(both["faasemu"], {"type": "flaky.one", "id": "flaky-1", "data": {"n": 1}})
    attempts = wait_for(lambda: len(seen(faasemu_db(project), "flaky", "flaky-1")) >= 2 and
                        seen(faasemu_db(project), "flaky", "flaky-1"), "the retry")
    assert [a["data"] for a in attempts] == [{"n": 1}, {"n": 1}]
    time.sleep(0.3)  # succeeded on attempt 2: no third
    assert len(seen(faasemu_db(project), "flaky", "flaky-1")) == 2


@gcf
def test_retries_are_off_by_default(both: dict[str, Any], project: Path) -> None:
    server = both["faasemu"]
    ingest(server, {"type": "fails.one", "id": "fails-1", "data": {"fail": True}})
    wait_for(lambda: seen(faasemu_db(project), "cloudevent", "fails-1"), "the delivery")
    server.wait_for_output("asked to fail")
    time.sleep(0.4)  # --retry-delay 0.05: a retry would have come by now
    assert len(seen(faasemu_db(project), "cloudevent", "fails-1")) == 1


# -- faasemu chaos ----------------------------------------------------------------------------------

CHAOS_MANIFEST = """\
name: signups
state:
  schema: schema.sql
functions:
  count:
    handler: main.py:{fn}
    runtime: gcf
    events: [user.signed_up]
"""

CHAOS_HANDLERS = '''\
import os
import sqlite3

import functions_framework


@functions_framework.cloud_event
def dedup(cloud_event):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            if db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (cloud_event["id"],)).rowcount:
                db.execute("INSERT INTO plans (plan, n) VALUES (?, 1) ON CONFLICT (plan) DO UPDATE SET n = n + 1",
                           (cloud_event.data["plan"],))
    finally:
        db.close()


@functions_framework.cloud_event
def naive(cloud_event):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute("INSERT INTO plans (plan, n) VALUES (?, 1) ON CONFLICT (plan) DO UPDATE SET n = n + 1",
                       (cloud_event.data["plan"],))
    finally:
        db.close()
'''

CHAOS_SCHEMA = "CREATE TABLE plans (plan TEXT PRIMARY KEY, n INTEGER);\nCREATE TABLE seen (id TEXT PRIMARY KEY);\n"
CHAOS_EVENTS = "".join(json.dumps({"type": "user.signed_up", "data": {"plan": plan}}) + "\n"
                       for plan in ("pro", "free"))


@gcf
@pytest.mark.parametrize(("fn", "code", "idempotent"), [("dedup", 0, True), ("naive", 1, False)])
def test_chaos_verdicts_on_gcf_handlers(tmp_path: Path, fn: str, code: int, idempotent: bool) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": CHAOS_MANIFEST.format(fn=fn), "main.py": CHAOS_HANDLERS, "events.jsonl": CHAOS_EVENTS,
        "schema.sql": CHAOS_SCHEMA,
    })
    result = run_cli("chaos", "events.jsonl", "--runs", "10", "--seed", "1", "--json", "r.json", cwd=tmp_path)
    assert result.returncode == code, result.stdout + result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["functions"]["count"]["idempotent"] is idempotent
    assert report["functions"]["count"]["deliveries"] == 2


# -- the sample ------------------------------------------------------------------------------------


@gcf
def test_the_sample_serves_and_counts_a_redelivered_signup_once(run_server: Any, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_functions" / "gcf"
    root = tmp_path / "gcf"
    shutil.copytree(sample, root, ignore=shutil.ignore_patterns(".faasemu", "__pycache__"))
    server = run_server(root / "faasemu.yaml")
    assert httpx.get(server.url + "/hello", params={"name": "Ada"}).json() == {"greeting": "hello, Ada",
                                                                               "service": "hello"}
    assert httpx.post(server.url + "/hello", json={"name": "Bob"}).json()["greeting"] == "hello, Bob"
    signup = {"type": "user.signed_up", "id": "signup-1", "source": "auth", "data": {"user": "ada", "plan": "pro"}}
    for _ in range(2):
        ingest(server, signup)
    database = root / ".faasemu" / "state.db"

    def counted() -> list[tuple[str, int]]:
        with sqlite3.connect(database, timeout=30) as db:
            return db.execute("SELECT plan, count FROM signups").fetchall()

    wait_for(lambda: server.output().count("evt signup-1") >= 2, "both deliveries")
    assert counted() == [("pro", 1)]


# -- the missing SDK: no marker, the server runs where flask cannot be imported ---------------------

MISSING_MANIFEST = """\
name: nosdk
functions:
  google:
    handler: main.py:hello
    runtime: gcf
    http: {path: /google}
  lambda:
    handler: lam.py:hello
    http: {path: /lambda}
"""


def test_a_missing_sdk_answers_503_naming_the_extra_and_others_keep_serving(run_server: Any, tmp_path: Path) -> None:
    blocked = "flask"
    write_project(tmp_path, {
        "faasemu.yaml": MISSING_MANIFEST,
        "main.py": "def hello(request):\n    return 'hi'\n",
        "lam.py": "def hello(event, context):\n    return {'ok': True}\n",
        f"blocked/{blocked}/__init__.py": f"raise ImportError(\"No module named '{blocked}'\")\n",
    })
    python_path = os.pathsep.join(filter(None, [str(tmp_path / "blocked"), os.environ.get("PYTHONPATH")]))
    server = run_server(tmp_path / "faasemu.yaml", env={"PYTHONPATH": python_path})
    answer = httpx.get(server.url + "/google", timeout=10)
    assert answer.status_code == 503
    assert "pip install 'faasemu[gcf]'" in answer.text
    assert f"'{blocked}'" in answer.text
    assert httpx.get(server.url + "/lambda", timeout=10).json() == {"ok": True}



# -- scenario folders (tests/gcf_functions/), each served by functions-framework and by faasemu -------

SCENARIOS = Path(__file__).resolve().parents[1] / "gcf_functions"


def scenario(tmp_path: Path, name: str, functions: str, env: dict[str, str] | None = None) -> Path:
    """A copy of tests/gcf_functions/NAME with a manifest serving `functions` (YAML, one per line group)."""
    root = tmp_path / name
    shutil.copytree(SCENARIOS / name, root, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = f"name: {name.replace('_', '-')}\n"
    if env:
        manifest += "env: " + json.dumps(env) + "\n"
    manifest += "functions:\n" + textwrap.indent(textwrap.dedent(functions), "  ")
    (root / "faasemu.yaml").write_text(manifest)
    return root


@contextlib.contextmanager
def side_by_side(root: Path, targets: dict[str, str], signature: str = "http",
                 env: dict[str, str] | None = None) -> Iterator[tuple[Server, dict[str, FunctionsFramework]]]:
    """`faasemu up` on the scenario and one functions-framework per target (name -> target)."""
    frameworks = {name: FunctionsFramework(root, target, signature, env=env) for name, target in targets.items()}
    server = Server(root / "faasemu.yaml")
    try:
        server.start()
        for framework in frameworks.values():
            framework.wait()
        yield server, frameworks
    finally:
        server.stop()
        for framework in frameworks.values():
            framework.stop()


def answers(real: str, emulated: str, method: str = "GET", **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same request to functions-framework (at `real`) and to faasemu (at `emulated`), comparable."""
    got = [httpx.request(method, url, timeout=15, follow_redirects=False, **kw) for url in (real, emulated)]
    return comparable(got[0]), comparable(got[1])


@gcf
def test_errorhandler_answers_as_under_functions_framework(tmp_path: Path) -> None:
    root = scenario(tmp_path, "errorhandler", """\
        divide:
          handler: main.py:divide
          runtime: gcf
          http: {path: /divide}
        order:
          handler: main.py:order
          runtime: gcf
          http: {path: /order}
        """)
    with side_by_side(root, {"divide": "divide", "order": "order"}) as (server, ff):
        for query in ("n=6&by=0", "n=6&by=2"):
            real, emulated = answers(f"{ff['divide'].url}/?{query}", f"{server.url}/divide?{query}")
            assert emulated == real
        assert real["status"] == 200 and emulated["body"] == b"3.0"
        teapot = httpx.get(f"{server.url}/divide?n=1&by=0")
        assert (teapot.status_code, teapot.text) == (418, "I'm a teapot")
        for query in ("item=widget", "item=crash"):
            real, emulated = answers(f"{ff['order'].url}/?{query}", f"{server.url}/order?{query}")
            assert emulated == real
        assert real["status"] == 500 and ("x-google-status", "crash") in emulated["headers"]
        conflict = httpx.get(f"{server.url}/order?item=widget")
        assert conflict.status_code == 409 and conflict.headers["retry-after"] == "60"
        assert conflict.json() == {"error": "out of stock", "item": "widget"}
        server.wait_for_output("not handled by any errorhandler")  # an unhandled one is still shown


@gcf
def test_main_py_at_the_root_may_import_relatively_as_under_functions_framework(tmp_path: Path) -> None:
    root = scenario(tmp_path, "relative_imports", """\
        hello:
          handler: main.py:hello
          runtime: gcf
          http: {path: /hello}
        """)
    with side_by_side(root, {"hello": "hello"}) as (server, ff):
        real, emulated = answers(f"{ff['hello'].url}/?name=Ada", f"{server.url}/hello?name=Ada")
        assert emulated == real
        assert emulated["body"] == {"greeting": "hello, Ada", "module": "main.greetings",
                                    "plain": "imported plainly", "name": "main"}


TYPED = ["by_decorator", "by_annotation", "returns_builtin", "returns_none", "returns_no_to_dict"]
TYPED_REQUESTS = [
    ("POST", {"json": {"item": "tea", "quantity": 2}}),
    ("POST", {"json": {"item": "abort", "quantity": 1}}),
    ("POST", {"json": {"item": "tea", "quantity": "two"}}),
    ("POST", {"content": b"not json", "headers": {"content-type": "text/plain"}}),
    ("GET", {}),
]


@gcf
def test_typed_functions_answer_as_under_functions_framework(tmp_path: Path) -> None:
    root = scenario(tmp_path, "typed", "".join(
        f"{name}:\n  handler: main.py:{name}\n  runtime: gcf\n  http: {{path: /{name}}}\n" for name in TYPED))
    with side_by_side(root, {name: name for name in TYPED}) as (server, ff):
        for name in TYPED:
            for method, kw in TYPED_REQUESTS:
                real, emulated = answers(ff[name].url + "/", f"{server.url}/{name}", method, **kw)
                assert emulated == real, (name, method, kw)
        receipt = httpx.post(f"{server.url}/by_decorator", json={"item": "tea", "quantity": 2})
        assert (receipt.status_code, receipt.json()) == (200, {"total": 6, "currency": "EUR"})
        assert httpx.post(f"{server.url}/by_annotation", json={"item": "tea", "quantity": 2}).json() == {
            "item": "tea", "quantity": 2}
        assert httpx.post(f"{server.url}/returns_builtin", json={"item": "tea", "quantity": 2}).text == "2 x tea"
        server.wait_for_output("quantity must be an integer")  # the user's error behind the 500


AIO_REQUESTS = [
    ("POST", "/echo/deep?a=1&b=two", {"content": b"caf\xc3\xa9 body", "headers": {"content-type": "text/plain"}}),
    ("GET", "/text", {}),
    ("HEAD", "/text", {}),
    ("PUT", "/tuple", {}),
    ("GET", "/dict-tuple", {}),
    ("GET", "/response", {}),
    ("GET", "/none", {}),
    ("GET", "/http-error", {}),
    ("DELETE", "/crash", {}),
    ("GET", "/favicon.ico", {}),
    ("GET", "/robots.txt", {}),
]


@gcf
def test_aio_functions_run_in_asgi_mode_as_under_functions_framework(tmp_path: Path) -> None:
    record = tmp_path / "ff-events.jsonl"
    emulated_record = tmp_path / "faasemu-events.jsonl"
    root = scenario(tmp_path, "aio", """\
        web:
          handler: main.py:web
          runtime: gcf
          http: {path: "/{path+}"}
        sync-web:
          handler: main.py:sync_web
          runtime: gcf
          http: {path: /_sync}
        on-event:
          handler: main.py:on_event
          runtime: gcf
          events: [aio.*]
          http: {path: /_event}
        """, env={"RECORD_FILE": str(emulated_record)})
    with side_by_side(root, {"web": "web", "sync": "sync_web", "event": "on_event"},
                      env={"RECORD_FILE": str(record)}) as (server, ff):
        for method, path, kw in AIO_REQUESTS:
            real, emulated = answers(ff["web"].url + path, server.url + path, method, **kw)
            assert emulated == real, (method, path)
        echoed = httpx.post(server.url + "/echo/deep?a=1", content=b"x").json()
        assert echoed["class"] == "starlette.requests.Request" and echoed["has_execution_id"] is True
        assert echoed["path"] == "/echo/deep" and echoed["body"] == "x"
        crash = httpx.get(server.url + "/crash")
        assert (crash.status_code, crash.text, crash.headers["x-google-status"]) == (500, "Internal Server Error",
                                                                                      "crash")
        server.wait_for_output("aio crash: crash")

        real, emulated = answers(ff["sync"].url + "/", server.url + "/_sync")
        assert emulated == real and emulated["body"] == {"sync": True, "class": "Request"}

        event = {"specversion": "1.0", "id": "aio-1", "source": "//aio", "type": "aio.order",
                 "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json", "data": {"n": 1}}
        for url in (ff["event"].url, server.url + "/_event"):
            answer = post_binary(url, event)
            assert (answer.status_code, answer.text) == (200, "OK")
            not_an_event = httpx.post(url, json={"plain": True})
            assert not_an_event.status_code == 400 and "Got CloudEvent exception" in not_an_event.text
        ingest(server, {**event, "id": "aio-2"})
        lines = wait_for(lambda: emulated_record.exists() and len(emulated_record.read_text().splitlines()) >= 2
                         and emulated_record.read_text().splitlines(), "the bus delivery")
        real_lines = [json.loads(line) for line in record.read_text().splitlines()]
        assert [json.loads(line) for line in lines] == real_lines + [
            {"id": "aio-2", "type": "aio.order", "data": {"n": 1}, "class": "cloudevents.http.event.CloudEvent"}]


@gcf
@pytest.mark.parametrize("flag", [True, False], ids=["FUNCTION_USE_ASGI", "flask-mode"])
def test_an_undecorated_async_def_runs_only_in_asgi_mode_as_under_functions_framework(tmp_path: Path,
                                                                                    flag: bool) -> None:
    env = {"FUNCTION_USE_ASGI": "true"} if flag else None
    root = scenario(tmp_path, "asgi_flag", """\
        handler:
          handler: main.py:handler
          runtime: gcf
          http: {path: /run}
        """, env=env)
    with side_by_side(root, {"handler": "handler"}, env=env) as (server, ff):
        real, emulated = answers(ff["handler"].url + "/", server.url + "/run", "POST")
        assert emulated == real
        if flag:
            assert emulated["body"] == {"awaited": True, "method": "POST"}
        else:  # Flask gets a coroutine back: 500, and faasemu says why
            assert emulated["status"] == 500
            server.wait_for_output("is an async def, which functions-framework's Flask server does not await")
