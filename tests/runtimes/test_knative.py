"""The Knative conversions, called directly: the scope and messages hypercorn gives func-python,
what it makes of the messages sent back, the broker's request, retry decisions and replies.

Unmarked tests need no SDK. `knative` tests drive func-python's own middleware in-process; `gcf`
tests (Flask and cloudevents 1.x, parliament's environment) drive the older `main(context)` style.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType
from typing import Any

import pytest

from faasemu.events import model as events
from faasemu.events.ingress import IngressError
from faasemu.runtimes import knative
from faasemu.runtimes.base import (
    Delivery,
    DeliveryFailed,
    EntryPointError,
    HttpRequest,
    HttpResponse,
    Invocation,
    MissingSDK,
)
from faasemu.project.spec import FunctionSpec, HttpTrigger

INV = Invocation("req-1", 0.0)
EVENT = {"specversion": "1.0", "id": "e-1", "source": "shop", "type": "order.placed", "subject": "o/1",
         "time": "2024-05-01T12:00:00Z", "tenant": "acme", "datacontenttype": "application/json",
         "data": {"order": "o-1", "note": "café"}}


def spec(**kwargs: Any) -> FunctionSpec:
    return FunctionSpec(**{"name": "fn", "handler": "func.py", "runtime": "knative", **kwargs})


def module(name: str, source: str) -> ModuleType:
    mod = ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), mod.__dict__)
    return mod


# -- platform answers and environment --------------------------------------------------------------


def test_environment_is_what_knative_serving_sets() -> None:
    assert knative.environment(spec(name="orders"), "/root") == {
        "K_SERVICE": "orders", "K_CONFIGURATION": "orders", "K_REVISION": "orders-00001", "PORT": "8080"}


def test_failure_responses_are_the_queue_proxys() -> None:
    timeout = knative.failure_response("timeout", "Task timed out after 1.00 seconds", "r")
    assert (timeout.status, timeout.body, timeout.header("content-type")) == (504, b"request timeout",
                                                                             "text/plain; charset=utf-8")
    for kind in ("crash", "oom"):
        crash = knative.failure_response(kind, "worker exited with code 3", "r")
        assert (crash.status, crash.body) == (502, b"worker exited with code 3\n")
        assert crash.header("x-content-type-options") == "nosniff"
    unavailable = knative.failure_response("unavailable", "MissingSDK: runtime knative needs ...", "r")
    assert unavailable.status == 503 and b"MissingSDK" in unavailable.body


def test_error_response_is_the_response_the_server_had_made() -> None:
    exc = RuntimeError("boom")
    adapter = knative.Adapter(spec())
    assert adapter.error_response(exc, INV) == HttpResponse(500, [("content-length", "0"), ("connection", "close")])
    adapter.keep_response(exc, HttpResponse(500, [("content-type", "text/plain")], b""))  # what invoke_http does
    assert adapter.error_response(exc, INV) == HttpResponse(500, [("content-type", "text/plain")], b"")


# -- the request hypercorn hands to the application ------------------------------------------------


@pytest.mark.parametrize(("route", "path", "seen"), [
    ("/hello", "/hello", "/"),
    ("/hello/{rest+}", "/hello/a/b", "/a/b"),
    ("/orders/{id}", "/orders/5", "/5"),
    ("/users/{id}/posts", "/users/7/posts", "/7/posts"),
    ("/", "/", "/"),
    ("/{path+}", "/x/y", "/x/y"),
    ("", "/", "/"),
])
def test_a_function_sees_the_path_below_its_mount_point(route: str, path: str, seen: str) -> None:
    assert knative.service_path(HttpRequest("GET", path, route=route)) == seen


def test_scope_has_hypercorns_keys_and_values() -> None:
    request = HttpRequest("POST", "/api/a b/é", "x=1&x=2&q=%20", [("content-type", "text/plain"), ("x-r", "1"),
                          ("x-r", "2")], b"hi", route="/api/{rest+}", source_ip="10.0.0.9")
    scope = knative.build_scope(request)
    assert list(scope) == ["type", "http_version", "asgi", "method", "scheme", "path", "raw_path", "query_string",
                           "root_path", "headers", "client", "server", "state", "extensions"]
    assert scope["asgi"] == {"spec_version": "2.1", "version": "3.0"} and scope["http_version"] == "1.1"
    assert (scope["path"], scope["raw_path"]) == ("/a b/é", b"/a%20b/%C3%A9")
    assert scope["query_string"] == b"x=1&x=2&q=%20"
    assert scope["headers"] == [(b"content-type", b"text/plain"), (b"x-r", b"1"), (b"x-r", b"2")]
    assert scope["client"] == ("10.0.0.9", 0) and scope["server"] == ("127.0.0.1", 8080)
    assert scope["state"] == {} and scope["extensions"] == {} and scope["root_path"] == ""


def test_body_arrives_in_64_kib_pieces_then_an_empty_last_message() -> None:
    assert knative.body_messages(b"") == [{"type": "http.request", "body": b"", "more_body": False}]
    messages = knative.body_messages(b"x" * 150_000)
    assert [(len(m["body"]), m["more_body"]) for m in messages] == [(65536, True), (65536, True), (18928, True),
                                                                   (0, False)]


# -- what hypercorn does with the messages sent back ------------------------------------------------


def record(method: str, *messages: dict[str, Any]) -> knative.ResponseRecorder:
    recorder = knative.ResponseRecorder(method)

    async def run() -> None:
        for message in messages:
            await recorder.send(message)

    asyncio.run(run())
    return recorder


START = {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain"),
                                                                   (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]}


def test_recorder_collects_status_headers_and_body_chunks() -> None:
    recorder = record("GET", START, {"type": "http.response.body", "body": b"ab", "more_body": True},
                      {"type": "http.response.body", "body": bytearray(b"c")})
    assert recorder.response() == HttpResponse(201, [("content-type", "text/plain"), ("set-cookie", "a=1"),
                                                     ("set-cookie", "b=2")], b"abc")
    assert recorder.closed.is_set()


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_recorder_drops_bodies_hypercorn_suppresses(method: str, status: int) -> None:
    recorder = record(method, {**START, "status": status}, {"type": "http.response.body", "body": b"x"})
    assert recorder.response().body == b""


@pytest.mark.parametrize(("messages", "error", "text"), [
    ([START, {"type": "http.response.body", "body": "text"}], TypeError, "string argument without an encoding"),
    ([{**START, "headers": [("content-type", "text/plain")]}], TypeError, "string argument without an encoding"),
    ([{**START, "headers": [(b":status", b"200")]}], ValueError, "Pseudo headers are not valid"),
    ([START, START], RuntimeError, "http.response.start given the state ASGIHTTPState.RESPONSE"),
    ([START, {"type": "http.response.body"}, {"type": "http.response.body"}], RuntimeError,
     "http.response.body given the state ASGIHTTPState.CLOSED"),
    ([{"type": "http.response.body", "body": b"x"}], RuntimeError, "given the state ASGIHTTPState.REQUEST"),
    ([{"type": "http.response.push", "path": "/x", "headers": []}], RuntimeError, "http.response.push"),
])
def test_recorder_raises_where_hypercorn_does(messages: list[dict[str, Any]], error: type, text: str) -> None:
    with pytest.raises(error, match=text.replace(".", r"\.")):
        record("GET", *messages)


def test_nothing_sent_is_hypercorns_empty_500() -> None:
    assert knative.ResponseRecorder("GET").response() == HttpResponse(
        500, [("content-length", "0"), ("connection", "close")], b"")


def test_serve_asgi_feeds_the_body_then_waits_for_the_disconnect() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(2):
            received.append(await receive())
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})
        received.append(await receive())  # answered only now that the response is complete

    response, error = asyncio.run(knative.serve_asgi(app, knative.build_scope(HttpRequest("POST", "/")), b"abc"))
    assert (response, error) == (HttpResponse(200, [], b"ok"), None)
    assert received == [{"type": "http.request", "body": b"abc", "more_body": True},
                        {"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]


def test_serve_asgi_returns_the_partial_response_and_the_exception() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise KeyError("late")

    response, error = asyncio.run(knative.serve_asgi(app, knative.build_scope(HttpRequest("GET", "/")), b""))
    assert (response.status, response.body, repr(error)) == (201, b"part", "KeyError('late')")


# -- events: the broker's request, its retries, replies ------------------------------------------------


def test_delivery_is_a_binary_mode_post_with_prefer_reply() -> None:
    request = knative.delivery_request(Delivery(EVENT, 2, "a1"), spec(name="orders"))
    assert (request.method, request.path, request.route) == ("POST", "/", "")
    assert request.host == "orders.default.svc.cluster.local"
    headers = dict(request.headers)
    assert headers["prefer"] == "reply" and headers["host"] == request.host
    assert headers["ce-id"] == "e-1" and headers["ce-type"] == "order.placed" and headers["ce-tenant"] == "acme"
    assert headers["ce-time"] == "2024-05-01T12:00:00Z" and headers["content-type"] == "application/json"
    assert json.loads(request.body) == EVENT["data"] and headers["content-length"] == str(len(request.body))
    assert "ce-datacontenttype" not in headers and "ce-data" not in headers


def test_binary_data_is_sent_as_it_is() -> None:
    raw = bytes(range(256))
    event = {"specversion": "1.0", "id": "b", "source": "s", "type": "t", "datacontenttype": "image/png",
             "data_base64": base64.b64encode(raw).decode()}
    request = knative.delivery_request(Delivery(event), spec())
    assert request.body == raw and request.header("content-type") == "image/png"


@pytest.mark.parametrize(("status", "verdict"), [
    (200, None), (202, None), (204, None), (299, None),
    (400, False), (401, False), (403, False), (405, False), (410, False), (422, False), (301, False), (100, False),
    (404, True), (408, True), (409, True), (429, True), (500, True), (502, True), (503, True), (504, True),
])
def test_status_decides_retries_as_knative_selective_retry(status: int, verdict: bool | None) -> None:
    assert knative.retryable(status) is verdict


def test_reply_in_binary_mode() -> None:
    headers, body = events.to_binary({**EVENT, "id": "r-1", "type": "order.confirmed"})
    reply = knative.reply_event(HttpResponse(200, [(k.title(), v) for k, v in headers], body))
    assert reply is not None
    assert (reply["id"], reply["type"], reply["data"], reply["tenant"]) == ("r-1", "order.confirmed",
                                                                            EVENT["data"], "acme")


def test_reply_in_structured_mode() -> None:
    body = json.dumps({"specversion": "1.0", "id": "r-2", "source": "fn", "type": "t", "data": [1]}).encode()
    reply = knative.reply_event(HttpResponse(200, [("content-type", "application/cloudevents+json; charset=utf-8")],
                                             body))
    assert reply is not None and (reply["id"], reply["data"]) == ("r-2", [1])


@pytest.mark.parametrize("response", [
    HttpResponse(200, [("content-type", "application/json")], b'{"type": "looks.like.one"}'),
    HttpResponse(200, [], b""),
    HttpResponse(202, [("ce-specversion", "1.0"), ("ce-id", "x"), ("ce-type", "t"), ("ce-source", "s")], b""),
])
def test_no_reply(response: HttpResponse) -> None:
    assert knative.reply_event(response) is None


def test_malformed_reply_raises() -> None:
    with pytest.raises(IngressError):
        knative.reply_event(HttpResponse(200, [("ce-specversion", "1.0"), ("ce-id", "x")], b""))


def test_failed_delivery_says_whether_it_is_retried() -> None:
    rejected = knative.failed_delivery("fn", HttpResponse(400, [], b"bad input\n"))
    assert (str(rejected), rejected.retryable) == (
        "fn answered 400 Bad Request: bad input; not retried (Knative dead-letters it at once)", False)
    busy = knative.failed_delivery("fn", HttpResponse(503, [], b""))
    assert (str(busy), busy.retryable) == ("fn answered 503 Service Unavailable; retried", True)


class _Collector(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((self.path, self.headers["content-type"], body))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_publish_posts_the_reply_in_structured_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("FAASEMU_EVENTS_URL", f"http://127.0.0.1:{server.server_port}/_faasemu/events")
        knative.publish(EVENT)
    finally:
        server.shutdown()
        server.server_close()
    assert _Collector.seen == [("/_faasemu/events", "application/cloudevents+json", events.to_structured(EVENT))]


def test_publish_failure_is_a_retried_delivery(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FAASEMU_EVENTS_URL", raising=False)
    knative.publish(EVENT)
    assert "no FAASEMU_EVENTS_URL; reply event e-1 dropped" in capsys.readouterr().err
    with socket_closed_port() as port:
        monkeypatch.setenv("FAASEMU_EVENTS_URL", f"http://127.0.0.1:{port}/_faasemu/events")
        with pytest.raises(DeliveryFailed, match="the broker could not take the reply event") as failed:
            knative.publish(EVENT)
    assert failed.value.retryable


class socket_closed_port:  # noqa: N801
    """A loopback port nobody listens on."""

    def __enter__(self) -> int:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc: object) -> None:
        pass


# -- binding the user's module --------------------------------------------------------------------


def test_watched_passes_attributes_through_and_notes_the_error() -> None:
    class Target:
        def start(self, cfg: Any) -> None:
            pass

        async def handle(self, scope: Any, receive: Any, send: Any) -> None:
            raise OSError("disk")

    watched = knative.Watched(Target())
    assert hasattr(watched, "start") and not hasattr(watched, "alive") and not hasattr(watched, "ready")
    with pytest.raises(OSError):
        asyncio.run(watched.handle({}, None, None))
    assert isinstance(watched.error, OSError)


def test_parliament_context_is_a_mapping_of_what_is_set() -> None:
    context = knative.ParliamentContext("req")
    assert (dict(context), len(context), "cloud_event" in context) == ({"request": "req"}, 1, False)
    context.cloud_event = "ce"
    assert list(context.keys()) == ["request", "cloud_event"] and context["cloud_event"] == "ce"
    with pytest.raises(KeyError):
        knative.ParliamentContext(None)["request"]


def test_a_module_without_an_entry_point_is_named() -> None:
    mod = module("func", "def helper():\n    pass\n")
    with pytest.raises(EntryPointError, match=r"export 'new' .*, 'handle' or 'main'\. Found: helper\."):
        knative.Adapter(spec()).bind(mod)
    with pytest.raises(EntryPointError, match=r"export 'serve'\. Found: helper\."):
        knative.Adapter(spec(handler_attr="serve")).bind(mod)


def test_missing_sdks_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "func_python", None)
    monkeypatch.setitem(sys.modules, "func_python.http", None)
    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(MissingSDK, match=r"'func-python'.*pip install 'faasemu\[knative\]'"):
        knative.Adapter(spec()).bind(module("func", "async def handle(scope, receive, send):\n    pass\n"))
    with pytest.raises(MissingSDK, match="'flask'"):
        knative.Adapter(spec()).bind(module("func", "def main(context):\n    pass\n"))


def test_routes_are_the_triggers() -> None:
    triggers = (HttpTrigger("/a"), HttpTrigger("/b/{x+}", ("GET",)))
    assert knative.http_routes(spec(http=triggers)) == triggers


# -- func-python's own middleware, in-process -----------------------------------------------------------

FUNCTION = '''\
import os
from cloudevents.core.v1.event import CloudEvent

STARTS = []


def new():
    return Function()


class Function:
    def start(self, cfg):
        STARTS.append(cfg.get("KNATIVE_TEST"))

    def stop(self):
        STARTS.append("stopped")

    async def handle(self, scope, receive, send):
        if "event" not in scope:
            if scope["path"] == "/boom":
                raise ZeroDivisionError("http boom")
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-path", scope["path"].encode())]})
            await send({"type": "http.response.body", "body": b"hello"})
            return
        event = scope["event"]
        kind = event.get_data()["kind"]
        reply = CloudEvent(attributes={"type": "reply", "source": "fn", "id": "r-" + event.get_id()},
                           data={"kind": kind})
        if kind == "boom":
            raise ZeroDivisionError("event boom")
        if kind == "binary":
            await send.binary(reply)
        elif kind in ("400", "503"):
            await send.http({"type": "http.response.start", "status": int(kind), "headers": []})
            await send.http({"type": "http.response.body", "body": b"no"})
        elif kind == "invalid":
            await send.http({"type": "http.response.start", "status": 200,
                             "headers": [(b"ce-specversion", b"1.0"), (b"ce-id", b"x")]})
            await send.http({"type": "http.response.body", "body": b""})
        else:
            await send(reply)
'''


def knative_adapter(monkeypatch: pytest.MonkeyPatch, source: str = FUNCTION, **kwargs: Any) -> tuple[
        knative.Adapter, list[dict[str, Any]], ModuleType]:
    monkeypatch.setenv("KNATIVE_TEST", "cfg-value")
    published: list[dict[str, Any]] = []
    adapter = knative.Adapter(spec(**kwargs), publisher=published.append)
    mod = module("func", source)
    adapter.bind(mod)
    return adapter, published, mod


def event(kind: str) -> Delivery:
    return Delivery({**EVENT, "id": f"e-{kind}", "data": {"kind": kind}})


@pytest.mark.knative
def test_func_python_serves_http_and_starts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter, _, mod = knative_adapter(monkeypatch, http=(HttpTrigger("/fn/{rest+}"),))
    response = adapter.invoke_http(HttpRequest("GET", "/fn/x", route="/fn/{rest+}"), INV)
    assert response == HttpResponse(200, [("x-path", "/x")], b"hello")
    health = adapter.invoke_http(HttpRequest("GET", "/fn/health/readiness", route="/fn/{rest+}"), INV)
    assert (health.status, health.body) == (200, b"OK")
    with pytest.raises(ZeroDivisionError, match="http boom") as raised:
        adapter.invoke_http(HttpRequest("GET", "/fn/boom", route="/fn/{rest+}"), INV)
    assert adapter.error_response(raised.value, INV) == HttpResponse(500, [("content-type", "text/plain")], b"")
    assert mod.STARTS == ["cfg-value"]
    adapter._stop(adapter.apps["http"])
    assert mod.STARTS == ["cfg-value", "stopped"]


@pytest.mark.knative
def test_func_python_events_and_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter, published, _ = knative_adapter(monkeypatch, events=("order.*",))
    adapter.deliver(event("structured"), INV)
    adapter.deliver(event("binary"), INV)
    assert [(p["id"], p["type"], p["data"]) for p in published] == [
        ("r-e-structured", "reply", {"kind": "structured"}), ("r-e-binary", "reply", {"kind": "binary"})]
    with pytest.raises(DeliveryFailed) as rejected:
        adapter.deliver(event("400"), INV)
    assert not rejected.value.retryable
    with pytest.raises(DeliveryFailed) as busy:
        adapter.deliver(event("503"), INV)
    assert busy.value.retryable
    with pytest.raises(DeliveryFailed, match="fn answered 500") as crashed:
        adapter.deliver(event("boom"), INV)
    assert crashed.value.retryable and isinstance(crashed.value.__cause__, ZeroDivisionError)
    with pytest.raises(DeliveryFailed, match="invalid CloudEvent") as invalid:
        adapter.deliver(event("invalid"), INV)
    assert not invalid.value.retryable
    assert len(published) == 2


@pytest.mark.knative
def test_a_module_level_handle_and_signature_http(monkeypatch: pytest.MonkeyPatch) -> None:
    source = '''\
import json
SEEN = []


async def handle(scope, receive, send):
    SEEN.append(("event" in scope, dict(scope["headers"]).get(b"ce-id"), (await receive())["body"]))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
'''
    adapter, published, mod = knative_adapter(monkeypatch, source, options={"signature": "http"}, events=("x",))
    adapter.deliver(Delivery(EVENT), INV)
    assert mod.SEEN == [(False, b"e-1", json.dumps(EVENT["data"], ensure_ascii=False, separators=(",", ":")).encode())]
    assert published == []


@pytest.mark.knative
def test_a_failing_start_leaves_the_function_serving(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    source = FUNCTION.replace('STARTS.append(cfg.get("KNATIVE_TEST"))', 'raise KeyError("DATABASE_URL")')
    adapter, _, _ = knative_adapter(monkeypatch, source)
    assert "continuing without Lifespan support" in capsys.readouterr().err
    assert adapter.invoke_http(HttpRequest("GET", "/"), INV).body == b"hello"


# -- parliament's main(context), in its own environment (Flask, cloudevents 1.x) ----------------------

LEGACY = '''\
from cloudevents.http import CloudEvent


def main(context):
    if "cloud_event" in context.keys():
        event = context.cloud_event
        if event.data.get("fail"):
            raise ValueError("cannot")
        return CloudEvent({"type": "legacy.reply", "source": "legacy", "id": "r-" + event["id"]},
                          {"echo": event.data})
    request = context.request
    return {"method": request.method, "args": request.args.to_dict(flat=False),
            "body": request.get_data(as_text=True)}, 201
'''


@pytest.mark.gcf
def test_parliament_main_context(monkeypatch: pytest.MonkeyPatch) -> None:
    adapter, published, _ = knative_adapter(monkeypatch, LEGACY)
    response = adapter.invoke_http(HttpRequest("POST", "/legacy", "a=1&a=2", [("content-type", "text/plain")],
                                               b"hi", route="/legacy"), INV)
    assert response.status == 201
    assert json.loads(response.body) == {"method": "POST", "args": {"a": ["1", "2"]}, "body": "hi"}
    assert adapter.invoke_http(HttpRequest("GET", "/legacy/x", route="/legacy/{p+}"), INV).status == 404
    assert adapter.invoke_http(HttpRequest("GET", "/health/liveness"), INV).body == b"OK"

    adapter.deliver(Delivery(EVENT), INV)
    # cloudevents 1.x writes no content-type for a reply without datacontenttype, so Flask's
    # default labels it: the broker gets the JSON as text/html, as it would from parliament.
    [reply] = published
    assert (reply["id"], reply["type"]) == ("r-e-1", "legacy.reply")
    assert reply["datacontenttype"] == "text/html; charset=utf-8"
    assert json.loads(reply["data"]) == {"echo": EVENT["data"]}
    with pytest.raises(DeliveryFailed, match="fn answered 500 Internal Server Error: Function raised cannot") as failed:
        adapter.deliver(Delivery({**EVENT, "data": {"fail": True}}), INV)
    assert failed.value.retryable and isinstance(failed.value.__cause__, ValueError)
    with pytest.raises(ValueError) as raised:
        adapter.invoke_http(HttpRequest("POST", "/", headers=list(events.to_binary({**EVENT, "data": {"fail": 1}})[0]),
                                        body=b'{"fail": 1}'), INV)
    error = adapter.error_response(raised.value, INV)
    assert (error.status, error.body, error.header("content-type")) == (500, b"Function raised cannot",
                                                                         "text/html; charset=utf-8")

