"""The openfaas runtime: the gateway, watchdog and template rules as pure conversions, and the Adapter
with small handler modules. Expected pages and JSON were taken from Flask 3.1 / werkzeug 3.1."""

from __future__ import annotations

import collections
import datetime
import decimal
import http.server
import json
import os
import sys
import threading
import types
import uuid
from pathlib import Path
from typing import Any

import pytest

import faasemu
from faasemu.runtimes import openfaas as of
from faasemu.runtimes.base import ASYNC_HTTP_TYPE, Delivery, DeliveryFailed, EntryPointError, HttpRequest, Invocation
from faasemu.project.spec import FunctionSpec, HttpTrigger

NOW = 1_700_000_000.0
FLASK_500 = (b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
             b"<p>The server encountered an internal error and was unable to complete your request. Either the server "
             b"is overloaded or there is an error in the application.</p>\n")
FLASK_400 = (b"<!doctype html>\n<html lang=en>\n<title>400 Bad Request</title>\n<h1>Bad Request</h1>\n"
             b"<p>The browser (or proxy) sent a request that this server could not understand.</p>\n")


def make_spec(template: str = "python3-http", **kw: Any) -> FunctionSpec:
    return FunctionSpec(name="echo", handler="function/handler.py:handle", runtime="openfaas",
                        handler_file="/proj/function/handler.py", handler_attr="handle", timeout=30.0,
                        options={"template": template}, **kw)


def module_with(**functions: Any) -> types.ModuleType:
    module = types.ModuleType("handler")
    for name, fn in functions.items():
        fn.__module__ = "handler"
        setattr(module, name, fn)
    return module


def adapter_for(handler: Any, template: str = "python3-http") -> of.Adapter:
    adapter = of.Adapter(make_spec(template), clock=lambda: NOW)
    adapter.bind(module_with(handle=handler))
    return adapter


def inv(request_id: str = "6f1c3a52-0d8e-4b8a-9a43-0c6c7a5f2b11") -> Invocation:
    return Invocation(request_id, NOW + 30)


def request(**kw: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "method": "POST", "path": "/function/echo/a/b", "query": "x=1&x=2&y=%C3%A9", "body": b"hi",
        "headers": [("host", "gw:8080"), ("content-type", "text/plain"), ("x-tag", "one"), ("x-tag", "two")],
        "route": "/function/echo/{path+}", "source_ip": "10.0.0.9", "time_ms": 1_583_348_638_390,
    }
    defaults.update(kw)
    return HttpRequest(**defaults)


# -- routes, paths, environment ------------------------------------------------------------------


def test_routes_are_the_gateways_plus_the_manifests() -> None:
    spec = make_spec(http=(HttpTrigger("/hello", ("GET",)),))
    assert [t.path for t in of.http_routes(spec)] == ["/hello", "/function/echo", "/function/echo/{path+}"]
    assert of.async_routes(spec) == (HttpTrigger("/async-function/echo", ("POST",)),
                                     HttpTrigger("/async-function/echo/{path+}", ("POST",)))


@pytest.mark.parametrize(("path", "seen"), [("/function/echo", "/"), ("/function/echo/", "/"),
                                            ("/function/echo/a/b", "/a/b"), ("/async-function/echo/x", "/x"),
                                            ("/function/echoes", "/function/echoes"), ("/hello", "/hello")])
def test_the_gateway_strips_the_function_prefix(path: str, seen: str) -> None:
    assert of.function_path(make_spec(), request(path=path)) == seen


def test_environment_names_the_watchdog_process_and_a_pod_hostname() -> None:
    env = of.environment(make_spec(), "/proj")
    assert env["fprocess"] == "python index.py" and env["mode"] == "http"
    assert env["HOSTNAME"].startswith("echo-") and env == of.environment(make_spec(), "/proj")
    assert of.environment(make_spec("python3"), "/proj")["fprocess"] == "python3 index.py"


def test_gateway_headers_add_call_id_start_time_and_forwarding() -> None:
    headers = of.gateway_headers(request(), "call-1")
    assert ("x-call-id", "call-1") in headers and ("x-start-time", "1583348638390000000") in headers
    assert ("x-forwarded-host", "gw:8080") in headers and ("x-forwarded-for", "10.0.0.9") in headers
    kept = of.gateway_headers(request(headers=[("x-call-id", "mine")]), "call-1")
    assert [v for k, v in kept if k == "x-call-id"] == ["mine"]


def test_failure_responses() -> None:
    assert (of.failure_response("timeout", "took too long", "r").status, of.failure_response("timeout", "", "r").body) \
        == (504, b"")
    assert of.failure_response("crash", "exit", "r").status == 500
    unavailable = of.failure_response("unavailable", "SyntaxError: bad (handler.py:3)", "r")
    assert unavailable.status == 503 and b"handler.py:3" in unavailable.body


# -- werkzeug containers -------------------------------------------------------------------------


def test_headers_behave_like_werkzeug_environ_headers() -> None:
    headers = of.Headers([("content-type", "text/plain"), ("x-tag", "one"), ("x-tag", "two"), ("x-a-b", "c")])
    assert list(headers) == [("Content-Type", "text/plain"), ("X-Tag", "one, two"), ("X-A-B", "c")]
    assert dict(headers) == {"Content-Type": "text/plain", "X-Tag": "one, two", "X-A-B": "c"}
    assert headers["x-TAG"] == "one, two" and headers.get("missing", "d") == "d" and "content-type" in headers
    assert headers.get("x-a-b", type=int) is None and len(headers) == 3 and headers.getlist("x-a-b") == ["c"]
    with pytest.raises(KeyError) as caught:
        headers["X-Missing"]
    assert not isinstance(caught.value, of.BadRequestKeyError)  # werkzeug 3: a plain KeyError, so a 500


def test_query_is_an_immutable_multidict_of_first_values() -> None:
    query = of.ImmutableMultiDict([("x", "1"), ("x", "2"), ("y", "")])
    assert query["x"] == "1" and query.get("x", type=int) == 1 and query.getlist("x") == ["1", "2"]
    assert dict(query) == {"x": "1", "y": ""} and json.dumps(query) == '{"x": "1", "y": ""}'
    assert query.to_dict(flat=False) == {"x": ["1", "2"], "y": [""]} and query.items(multi=True)[1] == ("x", "2")
    assert isinstance(query, dict) and repr(query) == "ImmutableMultiDict([('x', '1'), ('x', '2'), ('y', '')])"
    with pytest.raises(of.BadRequestKeyError):
        query["nope"]
    with pytest.raises(TypeError, match="immutable"):
        query["x"] = "3"


# -- Flask's make_response and the template's format_response ------------------------------------


def test_strings_and_bytes_are_html_with_status_200() -> None:
    response = of.flask_response("héllo")
    assert (response.status, response.headers, response.body) == (200, [("Content-Type", of.HTML)], "héllo".encode())
    assert of.flask_response(b"\x00\xff").body == b"\x00\xff"
    assert of.flask_response(x for x in ["a", b"b"]).body == b"ab"


def test_dicts_and_lists_are_jsonified_sorted_compact_ascii_with_a_newline() -> None:
    response = of.flask_response({"b": 1, "a": "é", "d": datetime.datetime(2020, 1, 1), "x": decimal.Decimal("1.5")})
    assert response.header("content-type") == "application/json"
    assert response.body == b'{"a":"\\u00e9","b":1,"d":"Wed, 01 Jan 2020 00:00:00 GMT","x":"1.5"}\n'
    assert of.flask_response([3, {"b": 1, "a": 2}]).body == b'[3,{"a":2,"b":1}]\n'


def test_tuples_add_status_and_headers() -> None:
    assert of.flask_response(("hi", 201)).status == 201
    with_headers = of.flask_response(("hi", {"X-A": "1"}))
    assert with_headers.status == 200 and ("X-A", "1") in with_headers.headers
    full = of.flask_response(("hi", "202 ACCEPTED", [("Content-Type", "text/plain")]))
    assert (full.status, full.headers) == (202, [("Content-Type", "text/plain")])
    assert of.flask_response(({"a": 1}, 400, {"Content-Type": "application/problem+json"})).headers == [
        ("Content-Type", "application/problem+json")]


@pytest.mark.parametrize(("value", "message"), [
    (None, "did not return a valid response. The function either returned None"),
    (5, "but it was a int"),
    (("a", "b", "c", "d"), "valid response tuple"),
])
def test_invalid_return_values_raise_flasks_type_error(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        of.flask_response(value)


def test_format_response_follows_the_python3_http_template() -> None:
    assert of.format_response(None) == ("", 200)
    body, status, headers = of.format_response({"statusCode": 201, "body": "made", "headers": {"X-A": "1"}})
    assert (body, status, headers) == ("made", 201, [("X-A", "1")])
    assert of.format_response({"body": ["a"]})[0] == "['a']"  # str() of a non-dict body
    assert of.format_response({"body": b"raw"})[0] == "b'raw'"
    assert of.format_response({}) == ("", 200, [])
    assert of.format_response("plain") == "plain"
    ordered = collections.OrderedDict(statusCode=201, body="x")  # not exactly a dict: Flask JSON-encodes it whole
    assert of.flask_response(of.format_response(ordered)).body == b'{"body":"x","statusCode":201}\n'
    jsonified = of.flask_response(of.format_response({"statusCode": 202, "body": {"z": 1, "a": [1]}}))
    assert (jsonified.status, jsonified.header("content-type"), jsonified.body) == (
        202, "application/json", b'{"a":[1],"z":1}\n')


# -- the adapter: python3-http -------------------------------------------------------------------


def test_handle_gets_the_templates_event_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "echo-abc-123")
    seen: dict[str, Any] = {}

    def handle(event: Any, context: Any) -> Any:
        seen.update(body=event.body, method=event.method, path=event.path, query=event.query,
                    headers=dict(event.headers), hostname=context.hostname)
        return {"statusCode": 201, "body": {"ok": True}, "headers": {"X-Custom": "yes"}}

    response = adapter_for(handle).invoke_http(request(), inv())
    assert seen["body"] == b"hi" and seen["method"] == "POST" and seen["path"] == "/a/b"
    assert seen["query"].getlist("x") == ["1", "2"] and seen["query"]["y"] == "é"
    assert seen["headers"]["X-Tag"] == "one, two" and seen["headers"]["X-Call-Id"] == inv().request_id
    assert seen["headers"]["X-Forwarded-For"] == "10.0.0.9" and seen["hostname"] == "echo-abc-123"
    assert response.status == 201 and response.body == b'{"ok":true}\n'
    assert response.header("x-custom") == "yes" and response.header("content-type") == "application/json"
    assert response.header("x-call-id") == inv().request_id and response.header("x-start-time") == "1583348638390000000"
    assert float(response.header("x-duration-seconds") or "x") >= 0


def test_none_is_an_empty_200_and_the_gateway_keeps_a_callers_call_id() -> None:
    response = adapter_for(lambda event, context: None).invoke_http(request(headers=[("x-call-id", "c-1")]), inv())
    assert (response.status, response.body, response.header("content-type")) == (200, b"", of.HTML)
    assert response.header("x-call-id") is None  # the caller already has it


def test_errors_answer_flasks_pages() -> None:
    def handle(event: Any, context: Any) -> Any:
        return event.query[event.body.decode()]

    adapter = adapter_for(handle)
    for key, page, status in (("missing", FLASK_400, 400), ("x", None, 200)):
        try:
            response = adapter.invoke_http(request(body=key.encode()), inv())
        except Exception as exc:
            response = adapter.error_response(exc, inv())
        assert response.status == status and (page is None or response.body == page)
    error = adapter.error_response(ValueError("boom"), inv())
    assert (error.status, error.body, error.header("content-type")) == (500, FLASK_500, of.HTML)


def test_methods_outside_the_template_answer_405_and_options_and_head_are_automatic() -> None:
    calls = []
    adapter = adapter_for(lambda event, context: calls.append(event.method) or "body")
    put = adapter_for(lambda body: "x", "python3-flask").invoke_http(request(method="PUT"), inv())
    assert put.status == 405 and b"Method Not Allowed" in put.body and put.header("allow")
    assert adapter.invoke_http(request(method="OPTIONS"), inv()).status == 200
    head = adapter.invoke_http(request(method="HEAD"), inv())
    assert head.status == 200 and head.body == b"" and calls == ["HEAD"]


def test_head_answers_the_content_length_of_the_get_body() -> None:
    """werkzeug sets Content-Length from the body the view returned; waitress then drops the body only."""
    adapter = adapter_for(lambda event, context: {"body": {"size": "large"}})
    get = adapter.invoke_http(request(method="GET"), inv())
    head = adapter.invoke_http(request(method="HEAD"), inv())
    assert (head.status, head.body, head.header("content-type")) == (200, b"", "application/json")
    assert head.header("content-length") == str(len(get.body)) == "17"
    flask = adapter_for(lambda body: "café", "python3-flask").invoke_http(request(method="HEAD"), inv())
    assert flask.header("content-length") == "5" and flask.body == b""


def test_bind_names_the_missing_handle() -> None:
    adapter = of.Adapter(make_spec())
    with pytest.raises(EntryPointError, match="no function 'handle'.*Found: helper"):
        adapter.bind(module_with(helper=lambda: None))


# -- python3-flask and the classic python3 template ----------------------------------------------


def test_python3_flask_passes_the_body_as_text_or_raw(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    adapter = adapter_for(lambda body: seen.append(body) or ("made", 201), "python3-flask")
    assert adapter.invoke_http(request(body=b"caf\xc3\xa9 \xff"), inv()).status == 201
    monkeypatch.setenv("RAW_BODY", "true")
    adapter.invoke_http(request(body=b"\xff"), inv())
    assert seen == ["café \ufffd", b"\xff"]


def test_classic_python3_prints_the_result_and_combines_stdout_and_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def handle(req: str) -> Any:
        print("log line")
        print("warn", file=sys.stderr)
        return {"got": req, "method": os.environ["Http_Method"], "tag": os.environ["Http_X_Tag"],
                "query": os.environ["Http_Query"], "path": os.environ["Http_Path"]}

    response = adapter_for(handle, "python3").invoke_http(request(), inv())
    expected = {"got": "hi", "method": "POST", "tag": "one", "query": "x=1&x=2&y=%C3%A9", "path": "/a/b"}
    assert response.body == f"log line\nwarn\n{expected}\n".encode()
    assert response.header("content-type") == "text/plain"  # the caller's, echoed by the watchdog
    assert "Http_Method" not in os.environ and "log line" in capsys.readouterr().out


def test_classic_python3_errors_and_exits() -> None:
    def handle(req: str) -> Any:
        print("before")
        if req == "exit0":
            sys.exit(0)
        if req == "exit3":
            sys.exit(3)
        raise ValueError("bad input")

    adapter = adapter_for(handle, "python3")
    assert adapter.invoke_http(request(body=b"exit0"), inv()).body == b"before\n"
    for body, first in ((b"exit3", "exit status 3\nbefore\n"), (b"x", "exit status 1\nbefore\nTraceback")):
        with pytest.raises(Exception) as caught:
            adapter.invoke_http(request(body=body), inv())
        response = adapter.error_response(caught.value, inv())
        assert response.status == 500 and response.body.decode().startswith(first)
    # The watchdog's traceback shows the user's frames only: none from faasemu's own package folder. (Not
    # the word "faasemu": a checkout made by `git clone` is a folder named faasemu, and this file is in it.)
    assert response.body.decode().endswith("ValueError: bad input\n")
    assert f'File "{os.path.dirname(faasemu.__file__)}{os.sep}' not in response.body.decode()
    assert __file__ in response.body.decode()  # the user's frame (this test's handler) is there
    assert adapter_for(handle, "python3").invoke_http(request(method="HEAD"), inv()).status == 405


def test_classic_python3_runs_each_request_in_a_fresh_module(tmp_path: Path) -> None:
    import importlib

    (tmp_path / "counter_fn.py").write_text("CALLS = []\n\ndef handle(req):\n    CALLS.append(req)\n    return len(CALLS)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        adapter = of.Adapter(make_spec("python3"))
        adapter.bind(importlib.import_module("counter_fn"))
        assert [adapter.invoke_http(request(), inv()).body for _ in range(3)] == [b"1\n"] * 3
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("counter_fn", None)


# -- events and async invocations ----------------------------------------------------------------


def test_an_event_is_a_post_of_its_data_with_call_id_and_topic() -> None:
    seen: list[Any] = []
    adapter = adapter_for(lambda event, context: seen.append((event.method, event.path, event.body,
                                                              dict(event.headers))))
    event = {"specversion": "1.0", "id": "evt-1", "source": "shop", "type": "order.created",
             "datacontenttype": "application/json", "data": {"id": 7}}
    adapter.deliver(Delivery(event, 2, "a1b2"), inv("a1b2"))
    method, path, body, headers = seen[0]
    assert (method, path, body) == ("POST", "/", b'{"id":7}')
    assert headers["X-Topic"] == "order.created" and headers["Content-Type"] == "application/json"
    assert headers["X-Call-Id"] == of.connector_call_id("a1b2")


def test_a_connectors_call_gets_a_new_call_id_per_attempt_derived_from_the_attempt_id() -> None:
    """The gateway assigns a connector's every call a new UUID: a handler deduplicating on X-Call-Id
    sees a redelivered message as new there, and so it does here (reproducibly)."""
    seen: list[str] = []
    adapter = adapter_for(lambda event, context: seen.append(event.headers["X-Call-Id"]))
    event = {"specversion": "1.0", "id": "evt-1", "source": "shop", "type": "order.created", "data": {"id": 7}}
    for attempt, attempt_id in ((1, "aaaa"), (2, "bbbb"), (1, "aaaa")):
        adapter.deliver(Delivery(event, attempt, attempt_id), inv(attempt_id))
    first, second, again = seen
    assert first != second and first == again and "evt-1" not in seen
    assert str(uuid.UUID(first)) == first and uuid.UUID(first).version == 4


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (429, True), (400, False), (503, False)])
def test_failure_statuses_fail_the_delivery(status: int, retryable: bool) -> None:
    adapter = adapter_for(lambda event, context: {"statusCode": status})
    event = {"id": "e", "type": "t", "data": None}
    with pytest.raises(DeliveryFailed) as caught:
        adapter.deliver(Delivery(event, 1, "x"), inv("x"))
    assert caught.value.retryable is retryable


def test_an_async_request_is_replayed_as_a_post_with_its_call_id_and_its_result_called_back() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    seen: list[Any] = []
    adapter = adapter_for(lambda event, context: seen.append((event.method, event.path, event.query.get("q"),
                                                              event.headers.get("X-Call-Id"))) or ("done", 201))
    original = request(method="PUT", path="/async-function/echo/jobs", query="q=1", route="/async-function/echo/{path+}",
                       headers=[("x-callback-url", f"http://127.0.0.1:{server.server_port}/cb")])
    data = {**original.to_wire(), "body_base64": "aGk="}
    event = {"specversion": "1.0", "id": "call-9", "type": ASYNC_HTTP_TYPE, "source": "faasemu/http/echo", "data": data}
    adapter.deliver(Delivery(event, 1, "x"), inv("x"))
    thread.join(5)
    server.server_close()
    assert seen == [("POST", "/jobs", "1", "call-9")]  # the queue-worker always POSTs
    headers, body = received[0]
    assert body == b"done" and headers["X-Function-Status"] == "201" and headers["X-Call-Id"] == "call-9"
    assert headers["X-Function-Name"] == "echo"
