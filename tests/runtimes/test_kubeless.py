"""The kubeless runtime: bottle's request object, return-value casting and error pages, the Kafka
trigger's request, and the Adapter running handlers in forked processes. Expected pages were
rendered by bottle 0.12, the version the Python runtime image installs."""

from __future__ import annotations

import json
import re
import types
from typing import Any

import pytest

from faasemu.runtimes import kubeless as kl
from faasemu.runtimes.base import Delivery, DeliveryFailed, EntryPointError, HttpRequest, Invocation
from faasemu.project.spec import FunctionSpec, HttpTrigger

NOW = 1_700_000_000.0
PAGE_408 = (
    b'\n    <!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n    <html>\n        <head>\n'
    b"            <title>Error: 408 Request Timeout</title>\n"
    b'            <style type="text/css">\n              html {background-color: #eee; font-family: sans;}\n'
    b"              body {background-color: #fff; border: 1px solid #ddd;\n                    padding: 15px; "
    b"margin: 15px;}\n              pre {background-color: #eee; border: 1px solid #ddd; padding: 5px;}\n"
    b"            </style>\n        </head>\n        <body>\n            <h1>Error: 408 Request Timeout</h1>\n"
    b"            <p>Sorry, the requested URL <tt>&#039;http://127.0.0.1/x?m=408&#039;</tt>\n"
    b"               caused an error:</p>\n            <pre>Timeout while processing the function</pre>\n"
    b"        </body>\n    </html>\n"
)


class HTTPResponse(Exception):  # what `import bottle` gives a handler, by name
    def __init__(self, body: Any = "", status: int = 200, headers: dict[str, str] | None = None) -> None:
        super().__init__(body)
        self.body, self.status_code = body, status
        self.headerlist = [("Content-Type", "text/html; charset=UTF-8"), *(headers or {}).items()]


class HTTPError(HTTPResponse):
    pass


def make_spec(timeout: float = 180.0, **kw: Any) -> FunctionSpec:
    return FunctionSpec(name="orders", handler="fn/orders.py:handler", runtime="kubeless",
                        handler_file="/proj/fn/orders.py", handler_attr="handler", timeout=timeout, **kw)


def adapter_for(handler: Any, timeout: float = 180.0) -> kl.Adapter:
    module = types.ModuleType("orders")
    handler.__module__ = "orders"
    module.handler = handler  # type: ignore[attr-defined]
    adapter = kl.Adapter(make_spec(timeout), clock=lambda: NOW)
    adapter.bind(module)
    return adapter


def inv() -> Invocation:
    return Invocation("rid", NOW + 180)


def request(**kw: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "method": "POST", "path": "/kubeless/orders/p", "query": "a=1&a=2&n=%C3%A9", "body": b'{"id": 7}',
        "headers": [("host", "svc:8080"), ("content-type", "application/json"), ("x-tag", "one"), ("x-tag", "two")],
        "route": "/kubeless/orders/{path+}", "source_ip": "10.0.0.9",
    }
    defaults.update(kw)
    return HttpRequest(**defaults)


def run(adapter: kl.Adapter, req: HttpRequest) -> Any:
    try:
        return adapter.invoke_http(req, inv())
    except Exception as exc:
        return adapter.error_response(exc, inv())


# -- pure parts ----------------------------------------------------------------------------------


def test_routes_and_the_path_the_function_sees() -> None:
    spec = make_spec(http=(HttpTrigger("/orders", ("POST",)),))
    assert [t.path for t in kl.http_routes(spec)] == ["/orders", "/kubeless/orders", "/kubeless/orders/{path+}"]
    assert kl.function_path(spec, request(path="/kubeless/orders")) == "/"
    assert kl.function_path(spec, request(path="/kubeless/orders/a/b")) == "/a/b"
    assert kl.function_path(spec, request(path="/orders")) == "/orders"


def test_environment_is_the_controllers() -> None:
    env = kl.environment(make_spec(timeout=2.5, memory=256), "/proj")
    assert env == {"FUNC_HANDLER": "handler", "MOD_NAME": "orders", "FUNC_TIMEOUT": "2.5",
                   "FUNC_RUNTIME": kl.runtime_id(), "FUNC_MEMORY_LIMIT": "256Mi", "FUNC_PORT": "8080"}
    assert kl.environment(make_spec(), "/proj")["FUNC_TIMEOUT"] == "180"


def test_forms_dict_gives_last_values_latin1_by_item_and_utf8_by_attribute() -> None:
    query = kl.FormsDict(kl.parse_qsl_latin1("a=1&a=2&n=%C3%A9&s=x+y&flag"))
    assert query["a"] == "2" and query.get("a", index=0) == "1" and query.getall("a") == ["1", "2"]
    assert query.get("n") == "Ã©" and query.n == "é" and query.missing == "" and query.flag == ""
    assert query.get("s") == "x y" and query.get("a", type=int) == 2 and query.get("n", type=int) is None
    assert dict(query.items()) == {"a": "2", "n": "Ã©", "s": "x y", "flag": ""} and query.decode()["n"] == "é"


def test_the_request_object() -> None:
    req = kl.BottleRequest(kl.wsgi_environ(request(headers=[
        ("host", "svc:8080"), ("content-type", "application/x-www-form-urlencoded"), ("x-tag", "one"),
        ("x-tag", "two"), ("cookie", "s=1; theme=dark"), ("x-forwarded-for", "1.2.3.4, 10.0.0.1")],
        body=b"k=v&k=w"), "/p"))
    assert (req.method, req.path, req.query_string, req.content_length) == ("POST", "/p", "a=1&a=2&n=%C3%A9", -1)
    assert req.url == "http://svc:8080/p?a=1&a=2&n=%C3%A9" and req.remote_addr == "1.2.3.4"
    assert req.get_header("X-TAG") == "one, two" and req.headers["content-type"].startswith("application/x-www")
    assert "Cookie" in list(req.headers) and req.get_cookie("theme") == "dark" and req.cookies.s == "1"
    assert req.forms.getall("k") == ["v", "w"] and req.params["k"] == "w" and req.json is None
    assert req.body.read() == b"k=v&k=w" and req.body.read() == b"k=v&k=w"  # each access seeks to 0


def test_multipart_fields_and_files() -> None:
    body = (b'--XX\r\nContent-Disposition: form-data; name="category"\r\n\r\nbooks\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="upload"; filename="../my r\xc3\xa9sum\xc3\xa9.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n")
    req = kl.BottleRequest(kl.wsgi_environ(request(
        headers=[("content-type", "multipart/form-data; boundary=XX")], body=body), "/"))
    upload = req.files.get("upload")
    assert req.forms.get("category") == "books"
    assert (upload.filename, upload.file.read(), upload.content_type) == ("my-resume.txt", b"hello", "text/plain")


def test_json_is_parsed_for_application_json_only() -> None:
    assert kl.BottleRequest(kl.wsgi_environ(request(), "/")).json == {"id": 7}
    charset = request(headers=[("content-type", "Application/JSON; charset=utf-8")])
    assert kl.BottleRequest(kl.wsgi_environ(charset, "/")).json == {"id": 7}
    assert kl.BottleRequest(kl.wsgi_environ(request(body=b""), "/")).json is None


def test_error_page_is_bottles() -> None:
    page = kl.error_page(408, "Timeout while processing the function", "http://127.0.0.1/x?m=408")
    assert (page.status, page.headers, page.body) == (408, [("Content-Type", kl.HTML)], PAGE_408)


@pytest.mark.parametrize(("value", "status", "body", "content_type"), [
    ({"b": 1, "a": "é"}, 200, b'{"b": 1, "a": "\\u00e9"}', "application/json"),
    ({}, 200, b"{}", "application/json"),
    ("héllo", 200, "héllo".encode(), kl.HTML),
    (b"\xff\x00", 200, b"\xff\x00", kl.HTML),
    (["a", "b"], 200, b"ab", kl.HTML),
    (None, 200, b"", kl.HTML),
    (0, 200, b"", kl.HTML),
    (5, 500, b"<pre>Unhandled exception</pre>", kl.HTML),
    ([1, 2], 500, b"<pre>Unsupported response type: &lt;class &#039;int&#039;&gt;</pre>", kl.HTML),
    (HTTPResponse("made", 201, {"X-A": "1"}), 201, b"made", kl.HTML),
    (HTTPResponse({"a": 1}, 202), 202, b'{"a": 1}', "application/json"),
    (HTTPError("nope", 404), 404, b"<pre>nope</pre>", kl.HTML),
])
def test_return_values_are_cast_as_bottle_does(value: Any, status: int, body: bytes, content_type: str) -> None:
    response = kl.bottle_response(value, "http://svc/")
    assert response.status == status and response.header("content-type") == content_type
    assert body in response.body if status >= 400 else response.body == body


def test_event_ids_are_new_per_attempt_and_reproducible() -> None:
    first, again, second = kl.event_id("a" * 16), kl.event_id("a" * 16), kl.event_id("b" * 16)
    assert first == again != second and re.fullmatch(r"[A-Za-z0-9_-]{15}", first)


def test_go_time_and_is_json() -> None:
    assert kl.go_time("2009-11-10T23:00:00Z") == "2009-11-10 23:00:00 +0000 UTC"
    assert kl.go_time("2024-05-01T12:00:00.250+02:00") == "2024-05-01 10:00:00.25 +0000 UTC"
    assert kl.is_json_object(b'{"a": 1}') and kl.is_json_object(b"null")
    assert not kl.is_json_object(b"[1, 2]") and not kl.is_json_object(b'"text"') and not kl.is_json_object(b"x")


def test_the_trigger_request() -> None:
    event = {"id": "evt-1", "type": "order.created", "time": "2024-05-01T12:00:00Z", "data": {"id": 7}}
    req = kl.trigger_request(Delivery(event, 2, "0123456789abcdef"))
    assert (req.method, req.path, req.body) == ("POST", "/", b'{"id":7}')
    assert req.header("event-id") == kl.event_id("0123456789abcdef") and req.header("event-type") == "application/json"
    assert req.header("event-namespace") == "kafkatriggers.kubeless.io"
    assert req.header("event-time") == "2024-05-01 12:00:00 +0000 UTC"
    array = kl.trigger_request(Delivery({**event, "data": [1]}, 1, "x"))
    assert array.header("content-type") == "application/x-www-form-urlencoded"


# -- the adapter ---------------------------------------------------------------------------------


def test_the_event_and_context_a_handler_gets() -> None:
    def handler(event: dict[str, Any], context: dict[str, Any]) -> Any:
        req = event["extensions"]["request"]
        return {"data": event["data"], "id": event["event-id"], "type": event["event-type"], "ctx": context,
                "path": req.path, "a": req.query.get("a"), "tag": req.get_header("x-tag")}

    result = json.loads(adapter_for(handler).invoke_http(request(), inv()).body)
    assert result == {"data": {"id": 7}, "id": None, "type": None, "path": "/p", "a": "2", "tag": "one, two",
                      "ctx": {"function-name": "handler", "timeout": 180.0, "runtime": None, "memory-limit": None}}
    raw = adapter_for(lambda event, context: event["data"]).invoke_http(
        request(headers=[("content-type", "application/json; charset=utf-8")]), inv())
    assert raw.body == b'{"id": 7}'  # only an exact "application/json" is parsed: here the data is bytes


def test_methods_head_and_healthz() -> None:
    adapter = adapter_for(lambda event, context: "body")
    put = adapter.invoke_http(request(method="PUT"), inv())
    assert put.status == 405 and put.header("allow") == "DELETE,GET,PATCH,POST" and b"Method not allowed." in put.body
    head = adapter.invoke_http(request(method="HEAD"), inv())
    assert (head.status, head.body) == (200, b"")
    assert adapter.invoke_http(request(method="GET", path="/kubeless/orders/healthz"), inv()).body == b"OK"


def test_an_exception_is_bottles_500_page_naming_the_url() -> None:
    def handler(event: Any, context: Any) -> Any:
        raise ValueError("no such order")

    response = run(adapter_for(handler), request())
    assert response.status == 500 and b"<pre>Internal Server Error</pre>" in response.body
    assert b"&#039;http://svc:8080/p?a=1&amp;a=2&amp;n=%C3%A9&#039;" in response.body
    raised = run(adapter_for(lambda event, context: (_ for _ in ()).throw(HTTPError("gone", 410))), request())
    assert raised.status == 410 and b"<pre>gone</pre>" in raised.body
    invalid = run(adapter_for(lambda event, context: "never"), request(body=b"{not json"))
    assert invalid.status == 500


COUNTER: list[int] = []


def test_each_call_runs_in_a_fresh_fork_so_module_state_does_not_persist() -> None:
    def handler(event: Any, context: Any) -> Any:
        COUNTER.append(1)
        return str(len(COUNTER))

    adapter = adapter_for(handler)
    assert [adapter.invoke_http(request(), inv()).body for _ in range(3)] == [b"1", b"1", b"1"]
    assert COUNTER == []


@pytest.mark.parametrize("kind", ["generator", "lambda", "exit"])
def test_a_call_that_sends_no_result_back_answers_408(kind: str, capfd: pytest.CaptureFixture[str]) -> None:
    def handler(event: Any, context: Any) -> Any:
        if kind == "exit":
            raise SystemExit(1)
        return (x for x in "ab") if kind == "generator" else (lambda: 1)

    response = adapter_for(handler).invoke_http(request(), inv())
    assert response.status == 408 and b"Timeout while processing the function" in response.body
    assert "answers 408" in capfd.readouterr().err


def test_a_slow_handler_is_cut_at_its_timeout_with_408() -> None:
    import time

    started = time.monotonic()
    response = adapter_for(lambda event, context: time.sleep(5), timeout=0.3).invoke_http(request(), inv())
    assert response.status == 408 and time.monotonic() - started < 1


def test_deliver_fails_on_anything_but_200() -> None:
    event = {"id": "evt-1", "type": "order.created", "time": "2024-05-01T12:00:00Z", "data": {"id": 7}}
    seen: list[Any] = []
    adapter_for(lambda e, c: seen.append(e) or "").deliver(Delivery(event, 1, "abc"), inv())
    with pytest.raises(DeliveryFailed, match="201"):
        adapter_for(lambda e, c: HTTPResponse("made", 201)).deliver(Delivery(event, 1, "abc"), inv())


def test_bind_and_failure_responses() -> None:
    with pytest.raises(EntryPointError, match="no function 'handler'"):
        kl.Adapter(make_spec()).bind(types.ModuleType("orders"))
    assert kl.failure_response("timeout", "", "r").status == 408
    assert kl.failure_response("unavailable", "ImportError: x", "r").status == 503
    assert kl.failure_response("crash", "exit 1", "r").status == 502
