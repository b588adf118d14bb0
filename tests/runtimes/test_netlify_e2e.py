"""`runtime: netlify` through a real `faasemu up`: /.netlify/functions routes, the event a handler
gets, response conversion, netlify dev's errors, background functions (202, then the bus, retried),
events as webhook POSTs, and `faasemu chaos`.

One module-scoped server answers the HTTP and event tests; handlers record what they receive into
$FAASEMU_STATE so the tests can read exactly what the handler was given.
"""

from __future__ import annotations

import base64
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
CREATE TABLE calls (n INTEGER PRIMARY KEY AUTOINCREMENT, fn TEXT, event TEXT, request_id TEXT);
"""

HANDLERS = """\
import base64
import json
import os
import sqlite3
import time


def record(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30)
    with db:
        seen = db.execute("SELECT COUNT(*) FROM calls WHERE fn = ?", (context.function_name,)).fetchone()[0]
        db.execute("INSERT INTO calls (fn, event, request_id) VALUES (?, ?, ?)",
                   (context.function_name, json.dumps(event), context.aws_request_id))
    db.close()
    return seen


def echo(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"event": event, "remaining": context.get_remaining_time_in_millis(),
                                "env": os.environ.get("NETLIFY_DEV")})}


def shapes(event, context):
    kind = event["queryStringParameters"]["kind"]
    if kind == "full":
        return {"statusCode": "201", "headers": {"X-One": "1"}, "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
                "body": "created"}
    if kind == "binary":
        return {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "isBase64Encoded": True,
                "body": base64.b64encode(bytes(range(256))).decode()}
    if kind == "no-status":
        return {"body": "hello"}
    if kind == "raise":
        raise LookupError("nothing here")
    time.sleep(5)


def background(event, context):
    if record(event, context) == 0:
        raise RuntimeError("the first attempt fails")
    return {"statusCode": 500}  # ignored: background functions answer nothing


def webhook(event, context):
    seen = record(event, context)
    return {"statusCode": 503 if seen == 0 else 204}
"""

MANIFEST = """\
state:
  schema: schema.sql
functions:
  echo:
    handler: functions.py:echo
    runtime: netlify
    http: {path: /api/echo, methods: [GET]}
  shapes:
    handler: functions.py:shapes
    runtime: netlify
    timeout: 1
  report-background:
    handler: functions.py:background
    runtime: netlify
  webhook:
    handler: functions.py:webhook
    runtime: netlify
    events: [user.signed_up]
    retries: 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("netlify")
    return write_project(root, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "functions.py": HANDLERS})


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Server]:
    with Server(project, "--retry-delay", "0.05") as running:
        yield running


def calls(project: Path, fn: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(project.parent / ".faasemu" / "state.db", timeout=10)
    try:
        rows = db.execute("SELECT event, request_id FROM calls WHERE fn = ? ORDER BY n", (fn,)).fetchall()
    finally:
        db.close()
    return [{"event": json.loads(event), "request_id": request_id} for event, request_id in rows]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.03)
    return result


# -- HTTP ------------------------------------------------------------------------------------------


def test_the_handler_gets_netlify_devs_event(server: Server) -> None:
    response = httpx.get(f"{server.url}/.netlify/functions/echo/sub/path?a=1&a=2&b=x%20y",
                         headers={"x-tag": "one", "cookie": "s=1"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    seen = response.json()
    event = seen["event"]
    assert event["path"] == "/.netlify/functions/echo/sub/path" and event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"a": "1, 2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["rawQuery"] == "?a=1&a=2&b=x%20y" and event["rawUrl"].endswith("/sub/path?a=1&a=2&b=x%20y")
    assert event["headers"]["x-tag"] == "one" and event["multiValueHeaders"]["cookie"] == ["s=1"]
    assert event["headers"]["client-ip"] == "127.0.0.1" and len(event["headers"]["x-nf-request-id"]) == 26
    assert event["body"] is None and event["isBase64Encoded"] is True  # no content type: netlify dev says base64
    assert 0 < seen["remaining"] <= 60_000 and seen["env"] == "true"


def test_bodies_arrive_as_text_or_base64(server: Server) -> None:
    binary = bytes(range(256))
    for content_type, body, expected, encoded in (("application/json", b'{"a": 1}', '{"a": 1}', False),
                                                  ("application/octet-stream", binary,
                                                   base64.b64encode(binary).decode(), True)):
        response = httpx.post(f"{server.url}/.netlify/functions/echo", content=body,
                              headers={"content-type": content_type}, timeout=10)
        event = response.json()["event"]
        assert (event["body"], event["isBase64Encoded"], event["httpMethod"]) == (expected, encoded, "POST")


def test_declared_http_paths_are_served_too(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/echo", timeout=10)
    assert response.status_code == 200 and response.json()["event"]["path"] == "/api/echo"


def test_the_response_dict_becomes_the_answer(server: Server) -> None:
    full = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=full", timeout=10)
    assert (full.status_code, full.text, full.headers["x-one"]) == (201, "created", "1")
    assert full.headers.get_list("set-cookie") == ["a=1", "b=2"] and "content-type" not in full.headers
    binary = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=binary", timeout=10)
    assert binary.content == bytes(range(256)) and binary.headers["content-type"] == "image/png"


def test_an_invalid_response_is_netlify_devs_500(server: Server) -> None:
    response = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=no-status", timeout=10)
    assert response.status_code == 500
    assert response.text == "Your function response must have a numerical statusCode. You gave: undefined"


def test_an_exception_answers_500_with_type_message_and_stack(server: Server) -> None:
    response = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=raise", timeout=10)
    assert response.status_code == 500
    first, _, stack = response.text.partition("\n")
    assert first == "LookupError: nothing here" and "functions.py" in stack
    page = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=raise", headers={"accept": "text/html"}, timeout=10)
    assert page.headers["content-type"].startswith("text/html") and "LookupError" in page.text
    assert "nothing here" in server.wait_for_output("LookupError")


def test_a_timeout_is_lambda_locals_timeout_error(server: Server) -> None:
    response = httpx.get(f"{server.url}/.netlify/functions/shapes?kind=sleep", timeout=10)
    assert response.status_code == 500
    assert response.text.startswith("TimeoutError: Task timed out after 1.00 seconds")


def test_netlify_defaults_apply(server: Server) -> None:
    functions = {f["name"]: f for f in httpx.get(f"{server.url}/_faasemu/functions", timeout=10).json()["functions"]}
    assert (functions["echo"]["timeout"], functions["echo"]["retries"], functions["echo"]["memory"]) == (60, 0, 1024)
    background = functions["report-background"]
    assert (background["timeout"], background["retries"]) == (900, 2)


# -- background functions and events ------------------------------------------------------------------


def test_a_background_function_answers_202_then_runs_and_is_retried(server: Server, project: Path) -> None:
    marker = uuid.uuid4().hex
    response = httpx.post(f"{server.url}/.netlify/functions/report-background?m={marker}", json={"title": "q3"},
                          timeout=10)
    assert response.status_code == 202 and response.content == b""
    mine = wait_for(lambda: (lambda got: got if len(got) >= 2 else [])(
        [c for c in calls(project, "report-background")
         if c["event"]["queryStringParameters"].get("m") == marker]), "the retried background run")
    first, second = mine[0], mine[1]
    assert json.loads(first["event"]["body"]) == {"title": "q3"} and first["event"]["httpMethod"] == "POST"
    assert first["request_id"] != second["request_id"]  # a new invocation ...
    assert first["event"]["headers"]["x-nf-request-id"] == second["event"]["headers"]["x-nf-request-id"]  # same request
    assert "the first attempt fails" in server.wait_for_output("the first attempt fails")


def test_an_event_is_a_webhook_post_and_a_non_2xx_answer_is_redelivered(server: Server, project: Path) -> None:
    event_id = f"signup-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{server.url}/_faasemu/events", timeout=10,
                          json={"type": "user.signed_up", "id": event_id, "source": "auth", "data": {"plan": "pro"}})
    assert response.status_code == 202, response.text
    mine = wait_for(lambda: (lambda got: got if len(got) >= 2 else [])(
        [c for c in calls(project, "webhook") if c["event"]["headers"].get("ce-id") == event_id]), "the redelivery")
    first, second = mine[0]["event"], mine[1]["event"]
    assert first["httpMethod"] == "POST" and first["path"] == "/.netlify/functions/webhook"
    assert json.loads(first["body"]) == {"plan": "pro"} and first["isBase64Encoded"] is False
    assert first["headers"]["ce-type"] == "user.signed_up" and first["headers"]["ce-source"] == "auth"
    assert first["headers"]["x-nf-request-id"] != second["headers"]["x-nf-request-id"]
    assert mine[0]["request_id"] != mine[1]["request_id"]
    assert server.wait_for_output("answered 503")


# -- chaos -----------------------------------------------------------------------------------------

CHAOS_HANDLER = """\
import json
import os
import sqlite3

DEDUP = {dedup}


def handler(event, context):
    signup = json.loads(event["body"])
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    with db:
        first = not DEDUP or db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)",
                                        (event["headers"]["ce-id"],)).rowcount
        if first:
            db.execute("INSERT INTO plans (plan, n) VALUES (?, 1) ON CONFLICT (plan) DO UPDATE SET n = n + 1",
                       (signup["plan"],))
    db.close()
    return {{"statusCode": 204}}
"""


@pytest.mark.parametrize("dedup, exit_code", [(True, 0), (False, 1)])
def test_chaos_passes_a_deduplicating_webhook_and_fails_a_naive_one(tmp_path: Path, dedup: bool,
                                                                     exit_code: int) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": "state:\n  schema: schema.sql\nfunctions:\n  signups:\n    handler: hook.py:handler\n"
                        "    runtime: netlify\n    events: [user.signed_up]\n",
        "hook.py": CHAOS_HANDLER.format(dedup=dedup),
        "events.jsonl": "".join(json.dumps({"type": "user.signed_up", "data": {"plan": p}}) + "\n"
                                for p in ("pro", "free")),
        "schema.sql": "CREATE TABLE plans (plan TEXT PRIMARY KEY, n INTEGER);\n"
                      "CREATE TABLE seen (id TEXT PRIMARY KEY);\n",
    })
    result = run_cli("chaos", "events.jsonl", "--runs", "10", "--seed", "1", "--json", "r.json", cwd=tmp_path)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["functions"]["signups"]["idempotent"] is dedup


def test_invoke_data_alone_names_the_runtime_and_what_to_use_instead(tmp_path: Path) -> None:
    """Netlify has no raw invocation: `invoke --data` alone used to end in an AttributeError."""
    write_project(tmp_path, {
        "faasemu.yaml": """\
            functions:
              hello:
                handler: app.py:handler
                runtime: netlify
            """,
        "app.py": """\
            def handler(event, context):
                return {"statusCode": 200, "body": "hi"}
            """,
    })
    result = run_cli("invoke", "hello", "--data", "{}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "AttributeError" not in result.stderr
    assert "runtime netlify" in result.stderr and "no raw invocation" in result.stderr
    assert "--event TYPE" in result.stderr and "--http METHOD PATH" in result.stderr
    http = run_cli("invoke", "hello", "--http", "GET", "/.netlify/functions/hello", cwd=tmp_path)
    assert http.returncode == 0, http.stderr
    assert http.stdout.strip() == "hi"
