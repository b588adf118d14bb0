"""`faasemu up` over HTTP, as a user sees it: routes, request events, responses, errors, console.

One server (module-scoped, always stopped) answers most tests; `--log-format json` and `--quiet`
get servers of their own. Handlers return the event they received, so the assertions are on
exactly what a deployed handler would be given.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, write_project

ECHO = """\
import json


def echo(event, context):
    return event


def echo_v1(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}


def bare(event, context):
    return {"hello": "world"}
"""

RESPOND = """\
import base64

PNG = bytes(range(256)) + b"\\x89PNG\\r\\n\\x1a\\n\\x00\\xff"


def respond(event, context):
    kind = event["pathParameters"]["kind"]
    if kind == "dict":
        return {"a": 1, "b": [True, None]}
    if kind == "str":
        return "hello"
    if kind == "status":
        return {
            "statusCode": 201,
            "headers": {"content-type": "text/plain", "x-custom": "yes"},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": "created",
        }
    if kind == "raise-request-id":
        raise LookupError(context.aws_request_id)
    if kind == "binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(PNG).decode(),
            "isBase64Encoded": True,
        }
    raise ValueError(kind)
"""

BOOM = """\
def boom(event, context):
    detail = "kaboom-http"
    raise ValueError(detail)


def chatty(event, context):
    import sys

    print("said on stdout")
    print("said on stderr", file=sys.stderr)
    return "done"
"""

CTX = """\
import os
import sqlite3

import helper  # a sibling module, found as in a deployed package


def handler(event, context):
    state = os.environ["FAASEMU_STATE"]
    tables = []
    if os.path.isfile(state):
        db = sqlite3.connect(state)
        try:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        finally:
            db.close()
    with open("data.txt") as file:  # relative to the working directory: the manifest's folder
        data = file.read().strip()
    return {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "memory_type": type(context.memory_limit_in_mb).__name__,
        "remaining": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "env": {name: os.environ.get(name) for name in (
            "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER", "TZ", "FAASEMU_STATE", "STAGE", "SHARED", "OWN")},
        "cwd": os.getcwd(),
        "helper": helper.VALUE,
        "data": data,
        "tables": tables,
    }
"""

MANIFEST = """\
name: httpdemo
env: {STAGE: local, SHARED: from-manifest}
state:
  sqlite: .faasemu/state.db
  schema: schema.sql
functions:
  echo:
    handler: fns/echo.py:echo
    http:
      - {path: /echo, methods: [GET, POST]}
      - {path: "/items/{id}", methods: [GET]}
      - {path: "/files/{path+}"}
  echo-v1:
    handler: fns/echo.py:echo_v1
    payload: v1
    http:
      - {path: /v1/echo, methods: [GET, POST]}
      - {path: "/v1/items/{id}", methods: [GET]}
  v1-bare:
    handler: fns/echo.py:bare
    payload: v1
    http: {path: /v1/bare, methods: [GET]}
  respond:
    handler: fns/respond.py:respond
    http: {path: "/respond/{kind}", methods: [GET]}
  boom:
    handler: fns/boom.py:boom
    http: {path: /boom, methods: [GET]}
  chatty:
    handler: fns/boom.py:chatty
    http: {path: /chatty, methods: [GET]}
  ctx:
    handler: fns/ctx.py:handler
    http: {path: /ctx, methods: [GET]}
    timeout: 2
    memory: 256
    env: {SHARED: from-function, OWN: mine}
"""

FILES = {
    "faasemu.yaml": MANIFEST,
    "fns/echo.py": ECHO,
    "fns/respond.py": RESPOND,
    "fns/boom.py": BOOM,
    "fns/ctx.py": CTX,
    "fns/helper.py": "VALUE = 'sibling import works'\n",
    "data.txt": "read from the manifest folder\n",
    "schema.sql": "CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY, name TEXT);\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("http")
    manifest = write_project(root, FILES)
    server = Server(manifest)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def header_values(headers: dict[str, object], name: str) -> object:
    """A header from a v1 event's map, whatever case the gateway kept."""
    found = [value for key, value in headers.items() if key.lower() == name]
    assert found, f"no {name!r} in {headers}"
    return found[0]


# --- routes and methods ------------------------------------------------------------------------


def test_static_route_answers_with_the_v2_event(client: httpx.Client) -> None:
    response = client.get("/echo")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /echo"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == ""
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["http"]["path"] == "/echo"
    assert event["requestContext"]["http"]["userAgent"] == event["headers"]["user-agent"]
    assert event["isBase64Encoded"] is False
    assert "queryStringParameters" not in event
    assert "pathParameters" not in event
    assert "body" not in event


def test_wrong_method_answers_405_with_allow(client: httpx.Client) -> None:
    response = client.delete("/echo")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST"}


def test_path_parameter(client: httpx.Client) -> None:
    event = client.get("/items/42").json()
    assert event["routeKey"] == "GET /items/{id}"
    assert event["rawPath"] == "/items/42"
    assert event["pathParameters"] == {"id": "42"}


def test_greedy_path_parameter_takes_the_rest_of_the_path(client: httpx.Client) -> None:
    response = client.put("/files/a/b/c.txt")  # no methods: every method
    assert response.status_code == 200
    event = response.json()
    assert event["pathParameters"] == {"path": "a/b/c.txt"}
    assert event["routeKey"] == "ANY /files/{path+}"
    assert event["requestContext"]["http"]["method"] == "PUT"


def test_unknown_path_answers_404_listing_the_routes(client: httpx.Client) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    text = response.text
    for route in ("/echo", "/items/{id}", "/files/{path+}", "/v1/echo", "/respond/{kind}", "/boom", "/ctx"):
        assert route in text
    assert "echo-v1" in text


# --- the v2 request event ----------------------------------------------------------------------


def test_v2_query_string_with_repeated_keys(client: httpx.Client) -> None:
    event = client.get("/echo?a=1&a=2&b=x%20y&empty=").json()
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y&empty="
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y", "empty": ""}


def test_v2_headers_are_lower_case_and_repeats_comma_joined(client: httpx.Client) -> None:
    event = client.get("/echo", headers=[("X-Multi", "one"), ("X-Multi", "two"), ("X-Single-Header", "Value")]).json()
    headers = event["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["x-multi"] == "one,two"
    assert headers["x-single-header"] == "Value"


def test_v2_cookies_move_to_cookies(client: httpx.Client) -> None:
    event = client.get("/echo", headers={"Cookie": "c1=v1; c2=v2"}).json()
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]


def test_v2_text_body_passes_as_text(client: httpx.Client) -> None:
    event = client.post("/echo", json={"sku": "a1", "quantity": 2}).json()
    assert json.loads(event["body"]) == {"sku": "a1", "quantity": 2}
    assert event["isBase64Encoded"] is False
    assert event["routeKey"] == "POST /echo"


def test_v2_binary_body_is_base64(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 4
    event = client.post("/echo", content=payload, headers={"content-type": "application/octet-stream"}).json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


# --- the v1 request event ----------------------------------------------------------------------


def test_v1_event_shape(client: httpx.Client) -> None:
    response = client.get("/v1/items/7?a=1&a=2&b=3", headers=[("X-Multi", "one"), ("X-Multi", "two")])
    assert response.status_code == 200
    event = response.json()
    assert event["resource"] == "/v1/items/{id}"
    assert event["path"] == "/v1/items/7"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "7"}
    assert event["queryStringParameters"] == {"a": "2", "b": "3"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["3"]}
    assert header_values(event["multiValueHeaders"], "x-multi") == ["one", "two"]
    assert event["requestContext"]["httpMethod"] == "GET"
    assert event["body"] is None
    assert event["isBase64Encoded"] is False


def test_v1_null_where_nothing_is_given(client: httpx.Client) -> None:
    event = client.get("/v1/echo").json()
    assert event["resource"] == "/v1/echo"
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None


def test_v1_binary_body_is_base64(client: httpx.Client) -> None:
    payload = b"\x00\x01\x02\xff\xfe" * 10
    event = client.post("/v1/echo", content=payload, headers={"content-type": "application/octet-stream"}).json()
    assert event["httpMethod"] == "POST"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_v1_dict_without_status_code_is_502(client: httpx.Client) -> None:
    response = client.get("/v1/bare")
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


# --- v2 responses ------------------------------------------------------------------------------


def test_v2_plain_dict_is_json_200(client: httpx.Client) -> None:
    response = client.get("/respond/dict")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"a": 1, "b": [True, None]}


def test_v2_returned_str_keeps_its_quotes(client: httpx.Client) -> None:
    response = client.get("/respond/str")
    assert response.status_code == 200
    assert response.text == '"hello"'


def test_v2_status_code_dict_with_headers_and_cookies(client: httpx.Client) -> None:
    response = client.get("/respond/status")
    assert response.status_code == 201
    assert response.text == "created"
    assert response.headers["x-custom"] == "yes"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers.get_list("set-cookie") == ["session=abc; Path=/; HttpOnly", "theme=dark"]


def test_v2_binary_response(client: httpx.Client) -> None:
    response = client.get("/respond/binary")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == bytes(range(256)) + b"\x89PNG\r\n\x1a\n\x00\xff"


# --- limits and errors -------------------------------------------------------------------------


def test_body_over_6_mb_answers_413(client: httpx.Client) -> None:
    response = client.post("/echo", content=b"x" * (6 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert client.get("/echo").status_code == 200  # and the server still answers


def test_body_just_under_6_mb_is_accepted(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as fresh:
        body = b"y" * (6 * 1024 * 1024 - 1024)
        response = fresh.post("/echo", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 200
    assert len(response.json()["body"]) == len(body)


def test_handler_error_answers_500_as_an_http_api_does(server: Server, client: httpx.Client) -> None:
    # Issue 8: API Gateway never passes the error document on (it answered 502 with it before)
    response = client.get("/boom")
    assert (response.status_code, response.content) == (500, b'{"message":"Internal Server Error"}')
    assert response.headers["x-faasemu-error"] == "ValueError: kaboom-http"
    output = server.wait_for_output("kaboom-http")
    assert re.search(r"ValueError: kaboom-http", output)
    assert "boom.py" in output and "raise ValueError(detail)" in output  # the traceback, with the source line


def test_handler_output_is_relayed_with_the_function_name(server: Server, client: httpx.Client) -> None:
    assert client.get("/chatty").status_code == 200
    server.wait_for_output("said on stderr")
    lines = server.wait_for_output("said on stdout").splitlines()
    assert any("chatty" in line and "said on stdout" in line for line in lines), lines
    assert any("chatty" in line and "said on stderr" in line for line in lines), lines


def test_error_request_id_is_the_context_request_id(client: httpx.Client) -> None:
    response = client.get("/respond/raise-request-id")
    assert response.status_code == 500  # issue 8: API Gateway's answer, the error in faasemu's header
    kind, _, request_id = response.headers["x-faasemu-error"].partition(": ")
    assert kind == "LookupError" and len(request_id) == 36  # the context's UUID


# --- context and environment -------------------------------------------------------------------


def test_context_environment_and_working_directory(server: Server, client: httpx.Client) -> None:
    response = client.get("/ctx")
    assert response.status_code == 200, response.text
    got = response.json()
    root = server.manifest.parent
    assert got["function_name"] == "ctx"
    assert got["memory_limit_in_mb"] == "256"
    assert got["memory_type"] == "str"
    assert 0 < got["remaining"] <= 2000
    assert got["request_id"]
    env = got["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "ctx"
    assert env["_HANDLER"] == "fns/ctx.handler"
    assert env["TZ"] == ":UTC"
    assert env["STAGE"] == "local"
    assert env["SHARED"] == "from-function"  # the function's own env wins over the manifest's
    assert env["OWN"] == "mine"
    state = env["FAASEMU_STATE"]
    assert os.path.isabs(state)
    assert Path(state).resolve() == (root / ".faasemu" / "state.db").resolve()
    assert got["tables"] == ["things"]  # created with `schema`
    assert Path(got["cwd"]).resolve() == root.resolve()
    assert got["helper"] == "sibling import works"
    assert got["data"] == "read from the manifest folder"


def test_state_file_is_sqlite_with_the_schema(server: Server, client: httpx.Client) -> None:
    assert client.get("/ctx").status_code == 200
    path = server.manifest.parent / ".faasemu" / "state.db"
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    db = sqlite3.connect(path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(things)")]
    finally:
        db.close()
    assert columns == ["id", "name"]


# --- faasemu's own endpoints -------------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    response = client.get("/_faasemu/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_functions_endpoint(client: httpx.Client) -> None:
    response = client.get("/_faasemu/functions")
    assert response.status_code == 200
    functions = {f["name"]: f for f in response.json()["functions"]}
    assert set(functions) == {"echo", "echo-v1", "v1-bare", "respond", "boom", "chatty", "ctx"}
    ctx = functions["ctx"]
    assert ctx["runtime"] == "aws-lambda"
    assert ctx["timeout"] == 2
    assert ctx["memory"] == 256
    assert ctx["concurrency"] == 1
    assert ctx["http"] == [{"path": "/ctx", "methods": ["GET"]}]
    assert {"path": "/files/{path+}", "methods": ["ANY"]} in functions["echo"]["http"]


# --- the console -------------------------------------------------------------------------------


def test_startup_table(server: Server) -> None:
    output = server.output()
    lines = output.splitlines()
    assert re.search(rf"faasemu \S+ · httpdemo · {re.escape(server.url)}", output)
    header = next(line for line in lines if re.match(r"\s*function\s+runtime\s+triggers\s+route", line))
    assert header
    url = re.escape(server.url)
    assert any(re.match(rf"\s*echo\s+aws-lambda\s+GET POST /echo\s+{url}/echo\s*$", line) for line in lines), output
    assert any(re.match(rf"\s*ctx\s+aws-lambda\s+GET /ctx\s+{url}/ctx\s*$", line) for line in lines), output
    assert any(re.search(rf"GET /items/\{{id\}}\s+{url}/items/\{{id\}}", line) for line in lines), output


def test_one_line_per_invocation(server: Server, client: httpx.Client) -> None:
    for _ in range(3):
        assert client.get("/items/line-test").status_code == 200
    pattern = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}\s+echo\s+GET /items/line-test\s+200\s+[\d.]+ ms", re.M)
    server.wait_for_output("/items/line-test")
    deadline = time.monotonic() + 5
    while len(pattern.findall(server.output())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pattern.findall(server.output())) == 3, server.output()


def test_cold_start_is_logged_with_its_duration(server: Server, client: httpx.Client) -> None:
    assert client.get("/respond/dict").status_code == 200
    output = server.wait_for_output("GET /respond/dict")
    assert re.search(r"respond\s+GET /respond/\w+\s+200\s+[\d.]+ ms\s+cold \d+ ms", output), output


# --- log formats -------------------------------------------------------------------------------

SMALL = {
    "faasemu.yaml": """\
        functions:
          hello:
            handler: app.py:hello
            http: {path: /hello, methods: [GET]}
          fail:
            handler: app.py:fail
            http: {path: /fail, methods: [GET]}
    """,
    "app.py": """\
        def hello(event, context):
            print("printed by hello")
            return "hi"


        def fail(event, context):
            raise RuntimeError("marker-of-the-end")
    """,
}


def test_log_format_json_lines_parse(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, SMALL), "--log-format", "json")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/hello").status_code == 200
        assert client.get("/fail").status_code == 500  # issue 8: an HTTP API's answer to an unhandled error
    server.wait_for_output("marker-of-the-end")
    server.wait_for_output('"status":500')
    records = []
    for line in server.output().splitlines():
        if line.strip():
            records.append(json.loads(line))  # every line is a JSON object
    invocations = [r for r in records if r.get("event") == "invocation"]
    assert any(r["function"] == "hello" and r["status"] == 200 for r in invocations), records
    assert any(r["function"] == "fail" and r["status"] == 500 for r in invocations), records
    assert any("printed by hello" in json.dumps(r) for r in records)


def test_quiet_has_no_per_invocation_lines(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, SMALL), "--quiet")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/hello").status_code == 200
        assert client.get("/fail").status_code == 500  # issue 8: an HTTP API's answer to an unhandled error
    output = server.wait_for_output("marker-of-the-end")  # errors are still shown, after any earlier line
    assert "hello" in output  # the startup table is still printed
    assert not re.search(r"hello\s+GET /hello\s+200", output), output
    assert not re.search(r"fail\s+GET /fail\s+500", output), output
