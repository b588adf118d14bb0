"""Azure Functions handlers served by a real `faasemu up`, as a user drives them: v2 decorated
functions and a v1 function.json folder under /api/, the host's request shape and its reading of
str and HttpResponse answers, errors and timeouts (empty 500s), queue and Event Grid deliveries with
their per-attempt fields, the missing-SDK 503, the sample project, and `faasemu chaos` verdicts.
Handlers record what they get into $FAASEMU_STATE; every test here needs azure-functions.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import REPO, Server, run_cli, write_project

pytestmark = pytest.mark.azure

APP = '''
"""Functions written for Azure, recording what they receive."""
import asyncio
import json
import os
import sqlite3
import time

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def record(fn, **row):
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO calls (fn, row) VALUES (?, ?)", (fn, json.dumps(row)))


@app.route(route="echo/{id}", methods=["GET", "POST", "PUT", "DELETE"])
def echo(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    try:
        parsed = req.get_json()
    except ValueError as exc:
        parsed = f"ValueError: {exc}"
    return func.HttpResponse(json.dumps({
        "method": req.method, "url": req.url, "headers": dict(req.headers), "params": dict(req.params),
        "route_params": dict(req.route_params), "body": req.get_body().hex(), "json": parsed,
        "invocation_id": context.invocation_id, "function_name": context.function_name,
        "function_directory": context.function_directory,
        "retry": [context.retry_context.retry_count, context.retry_context.max_retry_count],
    }), mimetype="application/json")


@app.route(route="text")
def text(req: func.HttpRequest) -> str:
    return "plain words"


@app.route(route="jsonstr")
def jsonstr(req: func.HttpRequest) -> str:
    return json.dumps({"a": 1, "b": [True]})


@app.route(route="custom")
def custom(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(b"\\x00\\x01bin", status_code=202, mimetype="application/octet-stream",
                             headers={"X-Custom": "yes", "Set-Cookie": "sid=abc; Path=/app; HttpOnly"})


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise ValueError("the handler broke")


@app.route(route="slow")
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(10)
    return func.HttpResponse("never")


@app.route(route="nothing")
def nothing(req: func.HttpRequest):
    return None


@app.route(route="aio")
async def aio(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0.01)
    return func.HttpResponse(f"async {req.params.get('n')}")


@app.route(route="trace")
def trace(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    # the worker's own return_context test function reads the older names
    t = context.trace_context
    return func.HttpResponse(json.dumps({"Traceparent": t.Traceparent, "Tracestate": t.Tracestate,
                                         "trace_parent": t.trace_parent, "Attributes": t.Attributes}))


@app.route(route="cookies/{kind}")
def cookies(req: func.HttpRequest) -> func.HttpResponse:
    resp = func.HttpResponse("cookies")
    kind = req.route_params["kind"]
    if kind == "multiple":  # the worker's multiple_set_cookie_resp_headers
        for n, year in ((42, 2017), (43, 2018)):
            resp.headers.add("Set-Cookie", f"foo3={n}; Domain=example.com; Expires=Thu, 12-Jan-{year} 13:55:08 GMT; "
                                           "Path=/; Max-Age=10000000; Secure; HttpOnly")
    elif kind == "default":
        resp.headers.add("Set-Cookie", "foo=bar")
    elif kind == "bad-expires":
        resp.headers.add("Set-Cookie", "foo=bar; Domain=123; Expires=Dummy")
    return resp


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
def jobs(msg: func.QueueMessage, context: func.Context) -> None:
    data = msg.get_json()
    record("jobs", id=msg.id, dequeue_count=msg.dequeue_count, pop_receipt=msg.pop_receipt,
           invocation_id=context.invocation_id, retry=context.retry_context.retry_count, data=data,
           body=msg.get_body().decode())
    if data.get("fail") == "always" or (data.get("fail") == "twice" and msg.dequeue_count < 3):
        raise RuntimeError(f"attempt {msg.dequeue_count} fails")


@app.event_grid_trigger(arg_name="event")
def grid(event: func.EventGridEvent, context) -> None:
    record("grid", id=event.id, topic=event.topic, subject=event.subject, event_type=event.event_type,
           event_time=event.event_time.isoformat(), data=event.get_json(), invocation_id=context.invocation_id)
'''

LEGACY = '''
import azure.functions as func


def main(request: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json_text(context, request))


def json_text(context, request):
    import json
    return json.dumps({"name": context.function_name, "dir": context.function_directory,
                       "who": request.params.get("who")})
'''

NO_RETURN = '''
import logging


def main(req):
    logging.getLogger("test").error("hi")
'''

NO_RETURN_JSON = json.dumps({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"}]})

LENIENT = '''
import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    res.set(func.HttpResponse("read as the host reads it", status_code=201))
'''

# Comments and trailing commas: the host's Newtonsoft reader takes them (so do five function.json
# files of the Python worker's own repository).
LENIENT_JSON = """{
  "scriptFile": "__init__.py",
  "bindings": [
    // the request
    {"authLevel": "anonymous", "type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get",],},
    {"type": "http", "direction": "out", "name": "res",},  /* a named http output */
  ],
}
"""

BROKEN_JSON = '{\n  "bindings": [\n    {"type": "httpTrigger" "direction": "in", "name": "req"}\n  ]\n}\n'

LEGACY_JSON = json.dumps({"scriptFile": "__init__.py", "bindings": [
    {"authLevel": "anonymous", "type": "httpTrigger", "direction": "in", "name": "request", "methods": ["get"]},
    {"type": "http", "direction": "out", "name": "$return"}]})

MANIFEST = '''
name: azure-e2e
state:
  schema: schema.sql
functions:
  echo: {handler: function_app.py:echo, runtime: azure, http: {path: "/echo/{id}"}}
  text: {handler: function_app.py:text, runtime: azure, http: {path: /text}}
  jsonstr: {handler: function_app.py:jsonstr, runtime: azure, http: {path: /jsonstr}}
  custom: {handler: function_app.py:custom, runtime: azure, http: {path: /custom}}
  boom: {handler: function_app.py:boom, runtime: azure, http: {path: /boom}}
  slow: {handler: function_app.py:slow, runtime: azure, http: {path: /slow}, timeout: 1}
  nothing: {handler: function_app.py:nothing, runtime: azure, http: {path: /nothing}}
  aio: {handler: function_app.py:aio, runtime: azure, http: {path: /aio}}
  legacy: {handler: Legacy/__init__.py:main, runtime: azure, http: {path: /legacy, methods: [GET]}}
  trace: {handler: function_app.py:trace, runtime: azure, http: {path: /trace}}
  cookies: {handler: function_app.py:cookies, runtime: azure, http: {path: "/cookies/{kind}"}}
  noreturn: {handler: NoReturn/__init__.py:main, runtime: azure, http: {path: /noreturn}}
  lenient: {handler: Lenient/__init__.py:main, runtime: azure, http: {path: /lenient}}
  broken: {handler: Broken/__init__.py:main, runtime: azure, http: {path: /broken}}
  jobs: {handler: function_app.py:jobs, runtime: azure, events: ["job.*"], event_source: queue}
  grid: {handler: function_app.py:app, runtime: azure, events: ["job.*"]}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("azure")
    return write_project(root, {
        "faasemu.yaml": MANIFEST, "function_app.py": APP, "Legacy/__init__.py": LEGACY,
        "Legacy/function.json": LEGACY_JSON, "host.json": '{"version": "2.0"}',
        "NoReturn/__init__.py": NO_RETURN, "NoReturn/function.json": NO_RETURN_JSON,
        "Lenient/__init__.py": LENIENT, "Lenient/function.json": LENIENT_JSON,
        "Broken/__init__.py": NO_RETURN, "Broken/function.json": BROKEN_JSON,
        "schema.sql": "CREATE TABLE calls (n INTEGER PRIMARY KEY, fn TEXT, row TEXT);",
    })


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[Server]:
    with Server(project, "--warm", "--retry-delay", "0.05") as running:
        yield running


def rows(project: Path, fn: str) -> list[dict[str, Any]]:
    with sqlite3.connect(project.parent / ".faasemu" / "state.db") as db:
        return [json.loads(r[0]) for r in db.execute("SELECT row FROM calls WHERE fn = ? ORDER BY n", (fn,))]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- HTTP ----------------------------------------------------------------------------------


def test_the_request_as_the_host_builds_it(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/echo/o%201?a=1&a=2&empty=&q=x+y",
                         headers=[("X-Many", "1"), ("X-Many", "2")])
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    got = response.json()
    assert got["method"] == "GET"
    assert got["url"] == f"http://127.0.0.1:{server.port}/api/echo/o%201?a=1&a=2&empty=&q=x+y"
    assert got["headers"]["x-many"] == "1,2" and got["headers"]["host"] == f"127.0.0.1:{server.port}"
    assert got["params"] == {"a": "1,2", "q": "x y"}
    assert got["route_params"] == {"id": "o 1"}
    assert got["json"] == "ValueError: HTTP request does not contain valid JSON data"
    assert got["function_name"] == "echo" and got["retry"] == [0, 0]
    assert got["function_directory"] == str(server.manifest.parent)
    assert len(got["invocation_id"]) == 36 and got["invocation_id"] != httpx.get(f"{server.url}/api/echo/1").json()[
        "invocation_id"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_methods_and_bodies(server: Server, method: str) -> None:
    got = httpx.request(method, f"{server.url}/api/echo/7", json={"n": 1}).json()
    assert (got["method"], got["json"], bytes.fromhex(got["body"])) == (method, {"n": 1}, b'{"n":1}')


def test_a_binary_body_arrives_as_bytes(server: Server) -> None:
    body = bytes(range(256))
    got = httpx.post(f"{server.url}/api/echo/b", content=body,
                     headers={"content-type": "application/octet-stream"}).json()
    assert bytes.fromhex(got["body"]) == body


def test_routes_live_under_api_only(server: Server) -> None:
    assert httpx.get(f"{server.url}/echo/1").status_code == 404
    assert httpx.get(f"{server.url}/api/text").status_code == 200


def test_a_returned_str_is_a_text_200(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/text")
    assert (response.status_code, response.headers["content-type"], response.text) == (
        200, "text/plain; charset=utf-8", "plain words")


def test_a_returned_json_str_is_reprinted_as_text_by_the_host(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/jsonstr")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == '{\n  "a": 1,\n  "b": [\n    true\n  ]\n}'


def test_an_http_response_with_status_headers_cookies_and_binary(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/custom")
    assert response.status_code == 202 and response.content == b"\x00\x01bin"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-custom"] == "yes"
    assert response.headers["set-cookie"] == "sid=abc; domain=; path=/app; httponly"


def test_cookies_as_the_worker_parses_and_the_host_writes_them(server: Server) -> None:
    multiple = httpx.get(f"{server.url}/api/cookies/multiple")
    assert multiple.status_code == 200 and multiple.headers.get_list("set-cookie") == [
        "foo3=42; expires=Thu, 12 Jan 2017 13:55:08 GMT; max-age=10000000; domain=example.com; path=/; secure; "
        "httponly",
        "foo3=43; expires=Fri, 12 Jan 2018 13:55:08 GMT; max-age=10000000; domain=example.com; path=/; secure; "
        "httponly",  # 12 Jan 2018 was a Friday: the host prints the date it parsed
    ]
    assert httpx.get(f"{server.url}/api/cookies/default").headers["set-cookie"] == "foo=bar; domain=; path="
    bad = httpx.get(f"{server.url}/api/cookies/bad-expires")
    assert (bad.status_code, bad.content) == (500, b"")  # the worker cannot parse it: the invocation fails
    server.wait_for_output("Can not parse value Dummy of expires in the cookie")


def test_the_trace_context_has_the_workers_names(server: Server) -> None:
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    got = httpx.get(f"{server.url}/api/trace", headers={"traceparent": caller, "tracestate": "k=v"}).json()
    assert got["Traceparent"] == got["trace_parent"] and got["Traceparent"].startswith(caller[:36])
    assert got["Tracestate"] == "k=v" and got["Attributes"] == {}


def test_no_http_output_binding_answers_204(server: Server) -> None:
    """The worker's no_return test function: only an httpTrigger in function.json, nothing returned."""
    response = httpx.get(f"{server.url}/api/noreturn")
    assert (response.status_code, response.content) == (204, b"")
    assert "content-length" not in response.headers  # none on a 204, as Kestrel sends it


def test_function_json_with_comments_and_trailing_commas_is_read_as_the_host_reads_it(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/lenient")
    assert (response.status_code, response.text) == (201, "read as the host reads it")


def test_a_function_json_the_host_cannot_read_answers_503_naming_the_file_and_line(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/broken")
    assert response.status_code == 503
    assert "Broken/function.json line 3: Expecting ',' delimiter" in response.text


def test_the_hosts_home_page_and_ping(server: Server) -> None:
    home = httpx.get(f"{server.url}/")
    assert home.status_code == 200 and home.headers["content-type"] == "text/html"
    assert "<title>Your Azure Function App is up and running.</title>" in home.text
    for method in ("GET", "POST"):
        ping = httpx.request(method, f"{server.url}/admin/host/ping")
        assert (ping.status_code, ping.content, ping.headers["cache-control"]) == (200, b"", "no-store,no-cache")


def test_an_exception_is_an_empty_500_and_a_logged_traceback(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/boom")
    assert (response.status_code, response.content) == (500, b"")
    server.wait_for_output("the handler broke")


def test_returning_none_is_a_500(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/nothing")
    assert (response.status_code, response.content) == (500, b"")
    server.wait_for_output("unable to encode outgoing TypedData")


def test_a_timeout_is_an_empty_500(server: Server) -> None:
    started = time.monotonic()
    response = httpx.get(f"{server.url}/api/slow", timeout=10)
    assert (response.status_code, response.content) == (500, b"")
    assert time.monotonic() - started < 5


def test_an_async_handler(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/aio", params={"n": "3"}).text == "async 3"
    assert httpx.get(f"{server.url}/api/aio", params={"n": "4"}).text == "async 4"


def test_a_v1_function_folder(server: Server) -> None:
    got = httpx.get(f"{server.url}/api/legacy", params={"who": "ada"}).json()
    assert got == {"name": "Legacy", "dir": str(server.manifest.parent / "Legacy"), "who": "ada"}


# -- events ----------------------------------------------------------------------------------


def post(server: Server, event: dict[str, Any]) -> None:
    response = httpx.post(f"{server.url}/_faasemu/events", json=event, timeout=10)
    assert response.status_code == 202, response.text


def test_queue_and_event_grid_deliveries(server: Server, project: Path) -> None:
    post(server, {"type": "job.created", "id": "job-ok", "source": "/shop", "subject": "jobs/1",
                  "time": "2024-05-01T12:00:00Z", "data": {"n": 1}})
    grid = wait_for(lambda: [r for r in rows(project, "grid") if r["id"] == "job-ok"], "the grid delivery")[0]
    assert grid["topic"] == "/shop" and grid["subject"] == "jobs/1" and grid["event_type"] == "job.created"
    assert grid["event_time"] == "2024-05-01T12:00:00+00:00" and grid["data"] == {"n": 1}
    job = wait_for(lambda: [r for r in rows(project, "jobs") if r["id"] == "job-ok"], "the queue delivery")[0]
    assert (job["dequeue_count"], job["retry"], job["data"], job["body"]) == (1, 0, {"n": 1}, '{"n":1}')


def test_queue_retries_keep_the_id_and_count_dequeues(server: Server, project: Path) -> None:
    post(server, {"type": "job.retry", "id": "job-twice", "data": {"fail": "twice"}})
    calls = wait_for(lambda: [r for r in rows(project, "jobs") if r["id"] == "job-twice"][2:] and
                     [r for r in rows(project, "jobs") if r["id"] == "job-twice"], "three attempts")
    assert [c["dequeue_count"] for c in calls] == [1, 2, 3]
    assert len({c["pop_receipt"] for c in calls}) == 3 and len({c["invocation_id"] for c in calls}) == 3
    assert {c["retry"] for c in calls} == {0}  # no retry policy: the queue's own redelivery drives attempts


def test_a_poison_message_is_tried_five_times_then_dead_lettered(server: Server, project: Path) -> None:
    post(server, {"type": "job.poison", "id": "job-poison", "data": {"fail": "always"}})

    def dead() -> bool:
        events = httpx.get(f"{server.url}/_faasemu/events", params={"dead": "true"}).json()["events"]
        return any(e["id"] == "job-poison" for e in events)

    wait_for(dead, "the dead letter")
    calls = [r for r in rows(project, "jobs") if r["id"] == "job-poison"]
    assert [c["dequeue_count"] for c in calls] == [1, 2, 3, 4, 5]


# -- the SDK missing, the sample, chaos ---------------------------------------------------------------


def test_a_missing_sdk_answers_503_and_other_functions_keep_serving(tmp_path: Path, run_server) -> None:
    manifest = write_project(tmp_path, {
        "faasemu.yaml": """
            functions:
              az: {handler: function_app.py:hi, runtime: azure, http: {path: /hi}}
              lam: {handler: lam.py:handler, http: {path: /lam}}
            """,
        "function_app.py": "import azure.functions as func\n\ndef hi(req):\n    return 'hi'\n",
        "lam.py": "def handler(event, context):\n    return {'ok': True}\n",
        "shadow/azure/__init__.py": "# an `azure` package without `functions`: as if azure-functions were missing\n",
    })
    server = run_server(manifest, env={"PYTHONPATH": str(tmp_path / "shadow")})
    response = httpx.get(f"{server.url}/api/hi")
    assert response.status_code == 503
    assert "azure-functions" in response.text and "pip install 'faasemu[azure]'" in response.text
    assert httpx.get(f"{server.url}/lam").json() == {"ok": True}


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "azure"
    shutil.copytree(REPO / "sample_functions" / "azure", root, ignore=shutil.ignore_patterns(".faasemu"))
    return root


def test_the_sample_serves(sample: Path, run_server) -> None:
    server = run_server(sample / "faasemu.yaml", "--warm", "--retry-delay", "0.05")
    assert httpx.get(f"{server.url}/api/hello", params={"name": "Ada"}).json() == {"greeting": "Hello, Ada!"}
    assert httpx.post(f"{server.url}/api/hello", json={"name": "Bo"}).json() == {"greeting": "Hello, Bo!"}
    assert httpx.get(f"{server.url}/api/hello").status_code == 400
    assert httpx.get(f"{server.url}/api/greet", params={"name": "Cy"}).text == "Hello, Cy, from Greet."
    post(server, {"type": "order.created", "id": "e1", "data": {"id": "o-1", "sku": "a1", "quantity": 2}})
    wait_for(lambda: httpx.get(f"{server.url}/api/sales/a1").json()["sold"] == 2, "the sale to count")


NAIVE = {
    "faasemu.yaml": """
        state: {schema: schema.sql}
        functions:
          tally: {handler: function_app.py:tally, runtime: azure, events: [order.created], event_source: queue}
        """,
    "schema.sql": "CREATE TABLE sold (sku TEXT PRIMARY KEY, n INTEGER NOT NULL);",
    "function_app.py": """
        import os
        import sqlite3

        import azure.functions as func

        app = func.FunctionApp()


        @app.queue_trigger(arg_name="msg", queue_name="orders", connection="AzureWebJobsStorage")
        def tally(msg: func.QueueMessage) -> None:
            \"\"\"Naive: a redelivered message (same msg.id) adds its quantity again.\"\"\"
            order = msg.get_json()
            with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
                db.execute("INSERT INTO sold VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET n = n + excluded.n",
                           (order["sku"], order["quantity"]))
        """,
    "events.jsonl": '{"type": "order.created", "data": {"sku": "a1", "quantity": 2}}\n'
                    '{"type": "order.created", "data": {"sku": "a1", "quantity": 3}}\n',
}


def test_chaos_passes_deduplicating_handlers_and_fails_a_naive_one(sample: Path, tmp_path: Path) -> None:
    naive = tmp_path / "naive"
    write_project(naive, NAIVE)
    args = ("chaos", "events.jsonl", "--runs", "10", "--seed", "1", "--json", "r.json")
    with ThreadPoolExecutor(2) as pool:  # two independent campaigns: run them side by side
        passing, failing = pool.map(lambda root: run_cli(*args, cwd=root), (sample, naive))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    report = json.loads((sample / "r.json").read_text())
    assert report["functions"]["count-sale"]["idempotent"] is True  # deduplicates on msg.id
    assert report["functions"]["audit"]["idempotent"] is True  # INSERT OR IGNORE on the Event Grid id
    assert failing.returncode == 1, failing.stdout + failing.stderr
    report = json.loads((naive / "r.json").read_text())
    assert report["functions"]["tally"]["idempotent"] is False
