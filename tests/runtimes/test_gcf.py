"""The gcf runtime's conversions, called directly.

Pure functions (environ, events, ids, failure answers) need no SDK and carry no marker. The
Adapter tests build the real Flask app in-process and carry `gcf` (functions-framework installed).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from faasemu.runtimes import gcf
from faasemu.runtimes.base import (
    Delivery,
    DeliveryFailed,
    EntryPointError,
    HttpRequest,
    Invocation,
    MissingSDK,
)
from faasemu.project.spec import FunctionSpec, HttpTrigger

INV = Invocation("req-1", 0.0)


def spec(name: str = "fn", attr: str | None = "handler", path: str = "/srv/app/main.py", **kw: Any) -> FunctionSpec:
    return FunctionSpec(name=name, handler=f"main.py:{attr}", runtime="gcf", handler_file=path, handler_attr=attr,
                        timeout=60.0, retries=0, memory=256, **kw)


EVENT = {"specversion": "1.0", "id": "ev-1", "source": "//shop/orders", "type": "order.created",
         "subject": "orders/7", "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json",
         "data": {"order": 7}}


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "expected"), [
    ({"http": (HttpTrigger("/a"),)}, "http"),
    ({"events": ("order.*",)}, "cloudevent"),
    ({"events": ("order.*",), "http": (HttpTrigger("/a"),)}, "http"),
    ({}, "http"),
    ({"events": ("order.*",), "options": {"signature": "event"}}, "event"),
    ({"http": (HttpTrigger("/a"),), "options": {"signature": "cloudevent"}}, "cloudevent"),
])
def test_default_signature_follows_the_manifest_then_the_trigger(kw: dict[str, Any], expected: str) -> None:
    assert gcf.default_signature(spec(**kw)) == expected


def test_environment_is_what_cloud_run_functions_set() -> None:
    env = gcf.environment(spec(name="orders", attr="create", events=("order.*",)), "/srv/app")
    assert env == {"FUNCTION_TARGET": "create", "FUNCTION_SIGNATURE_TYPE": "cloudevent", "K_SERVICE": "orders",
                   "K_REVISION": gcf.revision(spec(name="orders")), "K_CONFIGURATION": "orders", "PORT": "8080"}


def test_revision_has_cloud_runs_form_and_is_stable() -> None:
    value = gcf.revision(spec(name="orders"))
    name, number, suffix = value.rsplit("-", 2)
    assert (name, number) == ("orders", "00001")
    assert len(suffix) == 3 and suffix.isalpha() and suffix.islower()
    assert gcf.revision(spec(name="orders")) == value != gcf.revision(spec(name="billing"))


def test_execution_ids_are_twelve_alphanumerics_derived_from_the_request_id() -> None:
    one = gcf.execution_id("a")
    assert len(one) == 12 and one.isalnum() and one.isascii()
    assert gcf.execution_id("a") == one != gcf.execution_id("b")


def test_routes_are_the_manifests_triggers() -> None:
    triggers = (HttpTrigger("/a", ("GET",)), HttpTrigger("/b/{id}"))
    assert gcf.http_routes(spec(http=triggers)) == triggers


# -- failure answers -------------------------------------------------------------------------------


def test_a_timeout_is_cloud_runs_504() -> None:
    response = gcf.failure_response("timeout", "Task timed out after 1.00 seconds", "r")
    assert (response.status, response.body) == (504, b"upstream request timeout")
    assert response.header("content-type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("kind", ["crash", "oom", "unavailable"])
def test_a_dead_or_unloadable_instance_is_503_with_the_reason(kind: str) -> None:
    response = gcf.failure_response(kind, "MissingSDK: pip install 'faasemu[gcf]'", "r")
    assert response.status == 503
    assert response.body.startswith(b"Service Unavailable\n\n")
    assert b"pip install 'faasemu[gcf]'" in response.body


# -- the WSGI environ ------------------------------------------------------------------------------


def test_environ_carries_the_request_as_gunicorn_would() -> None:
    request = HttpRequest("POST", "/caf\u00e9/x", "a=1&a=2", [
        ("host", "example.test:9000"), ("content-type", "application/json"), ("x-many", "1"), ("x-many", "2"),
        ("x_under", "dropped"),
    ], b'{"k": 1}', source_ip="10.0.0.9")
    environ = gcf.wsgi_environ(request, "EXEC12345678")
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/caf\u00e9/x".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "a=1&a=2"
    assert environ["RAW_URI"] == "/caf%C3%A9/x?a=1&a=2"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.test", "9000")
    assert environ["HTTP_HOST"] == "example.test:9000"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "8"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_X_MANY"] == "1,2"
    assert "HTTP_X_UNDER" not in environ  # gunicorn drops names with an underscore
    assert environ["HTTP_FUNCTION_EXECUTION_ID"] == "EXEC12345678"
    assert environ["REMOTE_ADDR"] == "10.0.0.9"
    assert environ["wsgi.input"].read() == b'{"k": 1}'
    assert environ["wsgi.input_terminated"] is True


def test_environ_keeps_a_client_execution_id_and_omits_length_without_a_body() -> None:
    request = HttpRequest("GET", "/", headers=[("function-execution-id", "mine")], host="127.0.0.1")
    environ = gcf.wsgi_environ(request, "generated")
    assert environ["HTTP_FUNCTION_EXECUTION_ID"] == "mine"
    assert "CONTENT_LENGTH" not in environ
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "80")


def test_run_wsgi_collects_status_headers_and_body_and_closes() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"one,"
            yield b"two"

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Body:
        start_response("201 CREATED", [("Content-Type", "text/csv"), ("X-A", "1")])
        return Body()

    response = gcf.run_wsgi(app, gcf.wsgi_environ(HttpRequest("GET", "/"), "x"))
    assert (response.status, response.body) == (201, b"one,two")
    assert response.headers == [("Content-Type", "text/csv"), ("X-A", "1")]
    assert closed == [True]


# -- events as the platform POSTs them -------------------------------------------------------------


def test_legacy_event_is_the_first_gen_json() -> None:
    assert gcf.legacy_event(EVENT) == {
        "context": {"eventId": "ev-1", "timestamp": "2024-05-01T12:00:00Z", "eventType": "order.created",
                    "resource": "//shop/orders/orders/7"},
        "data": {"order": 7},
    }
    binary = {**EVENT, "data_base64": "AAE="}
    del binary["data"], binary["subject"]
    legacy = gcf.legacy_event(binary)
    assert legacy["data"] == "AAE=" and legacy["context"]["resource"] == "//shop/orders"


def test_event_request_is_a_binary_mode_post_for_cloudevent_and_http_functions() -> None:
    request = gcf.event_request(Delivery(EVENT, 2, "att"), "cloudevent", "req-9")
    assert (request.method, request.path) == ("POST", "/")
    assert request.header("ce-id") == "ev-1"
    assert request.header("ce-type") == "order.created"
    assert request.header("ce-subject") == "orders/7"
    assert request.header("content-type") == "application/json"
    assert json.loads(request.body) == {"order": 7}
    assert request.header("content-length") == str(len(request.body))
    assert request.header("function-execution-id") == gcf.execution_id("req-9")


def test_event_request_for_legacy_functions_is_the_legacy_json_unless_binary() -> None:
    request = gcf.event_request(Delivery(EVENT), "event", "r")
    assert request.header("content-type") == "application/json"
    assert request.header("ce-id") is None
    assert json.loads(request.body) == gcf.legacy_event(EVENT)
    assert gcf.event_request(Delivery(EVENT), "event", "r", binary=True).header("ce-id") == "ev-1"


def test_execution_ids_differ_per_attempt_but_event_ids_do_not() -> None:
    first = gcf.event_request(Delivery(EVENT, 1, "a1"), "cloudevent", "attempt-1")
    second = gcf.event_request(Delivery(EVENT, 2, "a2"), "cloudevent", "attempt-2")
    assert first.header("ce-id") == second.header("ce-id") == "ev-1"
    assert first.header("function-execution-id") != second.header("function-execution-id")


def test_status_of_reads_the_status_line() -> None:
    assert gcf.status_of("404 NOT FOUND") == 404


# -- ASGI mode: the scope and the messages, as uvicorn ------------------------------------------------


def test_asgi_scope_is_uvicorns_with_an_execution_id() -> None:
    request = HttpRequest("POST", "/caf\u00e9/x", "a=1", [("host", "h:1"), ("X-Many", "1"), ("x-many", "2")], b"{}",
                          source_ip="10.0.0.9")
    scope = gcf.asgi_scope(request, "EXEC12345678")
    assert (scope["type"], scope["method"], scope["path"], scope["query_string"]) == (
        "http", "POST", "/caf\u00e9/x", b"a=1")
    assert scope["raw_path"] == b"/caf%C3%A9/x"
    assert scope["headers"] == [(b"host", b"h:1"), (b"x-many", b"1"), (b"x-many", b"2"),
                                (b"function-execution-id", b"EXEC12345678")]
    assert scope["client"] == ("10.0.0.9", 0) and scope["root_path"] == ""
    mine = gcf.asgi_scope(HttpRequest("GET", "/", headers=[("function-execution-id", "mine")]), "generated")
    assert mine["headers"] == [(b"function-execution-id", b"mine")]


def _asgi(app: Callable[..., Any], request: HttpRequest) -> Any:
    import asyncio

    return asyncio.run(gcf.run_asgi(app, gcf.asgi_scope(request, "x"), request.body))


def test_run_asgi_collects_the_response_and_drops_a_head_body() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 201, "headers": [(b"X-Custom", b"1")]})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
        received.append(await receive())

    response = _asgi(app, HttpRequest("PUT", "/", body=b"in"))
    assert (response.status, response.headers, response.body) == (201, [("x-custom", "1")], b"one,two")
    assert received == [{"type": "http.request", "body": b"in", "more_body": False}, {"type": "http.disconnect"}]
    assert _asgi(app, HttpRequest("HEAD", "/")).body == b""


def test_run_asgi_answers_uvicorns_500_when_the_app_fails_before_answering() -> None:
    async def raises(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("broken")

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    for app in (raises, silent):
        response = _asgi(app, HttpRequest("GET", "/"))
        assert (response.status, response.body) == (500, b"Internal Server Error")
        assert response.header("content-type") == "text/plain; charset=utf-8"


# -- finding the function ---------------------------------------------------------------------------


def module_of(source: str, name: str = "main") -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"/srv/app/{name}.py"
    exec(textwrap.dedent(source), module.__dict__)
    return module


def test_a_missing_target_names_the_file_and_what_was_found() -> None:
    module = module_of("def helo(request): pass\ndef main(request): pass\nVALUE = 1\n")
    with pytest.raises(EntryPointError, match=r"expected to contain a function named 'hello'. "
                                              r"Found: 'helo', 'main' instead"):
        gcf.find_function(module, "hello")


def test_a_target_that_is_not_a_plain_function_is_refused() -> None:
    module = module_of("class Handler:\n    def __call__(self, request): pass\nhello = Handler()\n")
    with pytest.raises(EntryPointError, match="needs to be of type function"):
        gcf.find_function(module, "hello")


def test_the_decorator_registry_wins_when_the_user_imported_functions_framework(
        monkeypatch: pytest.MonkeyPatch) -> None:
    registry = types.ModuleType("functions_framework._function_registry")
    registry.REGISTRY_MAP = {"on_event": "cloudevent", "typed_fn": "typed", "async_fn": "http",  # type: ignore
                             "future_fn": "streaming"}
    registry.ASGI_FUNCTIONS = {"async_fn"}  # type: ignore[attr-defined]
    registry.INPUT_TYPE_MAP = {"typed_fn": dict}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "functions_framework._function_registry", registry)
    assert gcf.resolve_signature("on_event", "http") == "cloudevent"
    assert gcf.resolve_signature("plain", "event") == "event"
    assert gcf.resolve_signature("typed_fn", "http") == "typed"
    assert gcf.input_type("typed_fn") is dict and gcf.input_type("plain") is None
    assert gcf.resolve_signature("async_fn", "cloudevent") == "http"
    with pytest.raises(EntryPointError, match="'streaming' signature"):
        gcf.resolve_signature("future_fn", "http")


def test_asgi_mode_is_for_aio_functions_and_function_use_asgi(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = types.ModuleType("functions_framework._function_registry")
    registry.ASGI_FUNCTIONS = {"async_fn"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "functions_framework._function_registry", registry)
    assert gcf.uses_asgi("async_fn", {}) is True
    assert gcf.uses_asgi("plain", {}) is False
    for value in ("true", "1", "Yes", "on"):  # what click reads as true for `--asgi`'s variable
        assert gcf.uses_asgi("plain", {"FUNCTION_USE_ASGI": value}) is True
    assert gcf.uses_asgi("plain", {"FUNCTION_USE_ASGI": "false"}) is False
    monkeypatch.delitem(sys.modules, "functions_framework._function_registry")
    assert gcf.uses_asgi("async_fn", {}) is False


def test_without_functions_framework_imported_the_manifest_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "functions_framework._function_registry", raising=False)
    assert gcf.resolve_signature("anything", "event") == "event"


def test_user_traceback_starts_at_the_users_function() -> None:
    def user(x: int) -> int:
        raise ValueError(x)

    def framework() -> None:
        user(1)

    try:
        framework()
    except ValueError as exc:
        tb = gcf.user_traceback(exc, user)
        assert tb is not None and tb.tb_frame.f_code is user.__code__
        assert gcf.user_traceback(exc, None) is exc.__traceback__


def test_without_flask_the_adapter_names_the_package_and_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # `import flask` raises ImportError
    with pytest.raises(MissingSDK, match=r"'flask'.*pip install 'faasemu\[gcf\]'"):
        gcf.Adapter(spec())


# -- the Adapter with the real Flask app (functions-framework installed) -----------------------------


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """load(source, target, **spec) -> (adapter, module), in the worker's order: Adapter, import, bind."""
    import functions_framework
    from functions_framework import _function_registry

    monkeypatch.setattr(_function_registry, "REGISTRY_MAP", {})  # decorators in these tests stay here
    monkeypatch.setattr(_function_registry, "ASGI_FUNCTIONS", set())
    monkeypatch.setattr(_function_registry, "INPUT_TYPE_MAP", {})
    monkeypatch.setattr(functions_framework, "errorhandler", functions_framework.errorhandler)
    monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", "unset")
    monkeypatch.delenv("FUNCTION_USE_ASGI", raising=False)
    counter = iter(range(1000))

    def make(source: str, target: str, **kw: Any) -> tuple[gcf.Adapter, types.ModuleType]:
        name = f"gcf_case_{next(counter)}"
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        adapter = gcf.Adapter(spec(attr=target, path=str(path), **kw))
        module_spec = importlib.util.spec_from_file_location(name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        made.append(adapter)
        adapter.bind(module)
        return adapter, module

    made: list[gcf.Adapter] = []
    yield make
    for adapter in made:  # ASGI mode runs on an event loop of the adapter's own (the worker's, in a worker)
        if adapter.loop is not None:
            adapter.loop.close()


def get(path: str, query: str = "", headers: list[tuple[str, str]] | None = None, body: bytes = b"",
        method: str = "GET") -> HttpRequest:
    return HttpRequest(method, path, query, [("host", "127.0.0.1:8080"), *(headers or [])], body)


@pytest.mark.gcf
def test_an_http_function_gets_a_flask_request(load: Callable[..., Any]) -> None:
    adapter, _ = load("""
        import flask

        def handler(request):
            assert isinstance(request, flask.Request) and request is flask.request._get_current_object()
            return {"args": request.args.to_dict(flat=False), "json": request.get_json(), "path": request.path,
                    "id": request.headers["Function-Execution-Id"]}
    """, "handler")
    response = adapter.invoke_http(get("/orders/7", "a=1&a=2", [("content-type", "application/json")], b'{"n": 1}',
                                       "POST"), INV)
    assert response.status == 200 and response.header("content-type") == "application/json"
    assert json.loads(response.body) == {"args": {"a": ["1", "2"]}, "json": {"n": 1}, "path": "/orders/7",
                                         "id": gcf.execution_id("req-1")}


@pytest.mark.gcf
@pytest.mark.parametrize(("returned", "status", "content_type", "body"), [
    ("'text'", 200, "text/html; charset=utf-8", b"text"),
    ("b'\\x00\\xff'", 200, "text/html; charset=utf-8", b"\x00\xff"),
    ("{'a': 1}", 200, "application/json", b'{"a":1}\n'),
    ("[1, 2]", 200, "application/json", b"[1,2]\n"),
    ("('gone', 410)", 410, "text/html; charset=utf-8", b"gone"),
    ("('made', 201, {'Content-Type': 'text/plain'})", 201, "text/plain", b"made"),
    ("flask.Response('r', 202, mimetype='text/csv')", 202, "text/csv; charset=utf-8", b"r"),
])
def test_return_values_go_through_flasks_make_response(load: Callable[..., Any], returned: str, status: int,
                                                       content_type: str, body: bytes) -> None:
    adapter, _ = load(f"import flask\n\ndef handler(request):\n    return {returned}\n", "handler")
    response = adapter.invoke_http(get("/"), INV)
    assert (response.status, response.header("content-type"), response.body) == (status, content_type, body)


@pytest.mark.gcf
def test_a_raising_handler_propagates_and_the_error_answer_is_the_crash(load: Callable[..., Any]) -> None:
    adapter, _ = load("def handler(request):\n    raise KeyError('gone')\n", "handler")
    with pytest.raises(KeyError) as caught:
        adapter.invoke_http(get("/"), INV)
    frames = list(_frames(caught.value.__traceback__))
    assert "flask" not in " ".join(f.tb_frame.f_code.co_filename for f in frames[1:])
    response = adapter.error_response(caught.value, INV)
    assert response.status == 500
    assert response.header("x-google-status") == "crash"
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.body.startswith(b"500 Internal Server Error: The server encountered an internal error")


def _frames(tb: types.TracebackType | None) -> Iterator[types.TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


@pytest.mark.gcf
def test_abort_gives_werkzeugs_page_and_abort_500_the_crash(load: Callable[..., Any]) -> None:
    adapter, _ = load("""
        import flask

        def handler(request):
            flask.abort(int(request.args["code"]))
    """, "handler")
    forbidden = adapter.invoke_http(get("/", "code=403"), INV)
    assert forbidden.status == 403 and b"<title>403 Forbidden</title>" in forbidden.body
    crashed = adapter.invoke_http(get("/", "code=500"), INV)
    assert crashed.status == 500 and crashed.header("x-google-status") == "crash"


@pytest.mark.gcf
def test_favicon_and_robots_never_reach_an_http_function(load: Callable[..., Any]) -> None:
    adapter, module = load("calls = []\n\ndef handler(request):\n    calls.append(request.path)\n    return 'hi'\n",
                           "handler")
    assert adapter.invoke_http(get("/favicon.ico"), INV).status == 404
    assert adapter.invoke_http(get("/robots.txt"), INV).status == 404
    assert adapter.invoke_http(get("/deep/path/"), INV).body == b"hi"
    assert module.calls == ["/deep/path/"]


@pytest.mark.gcf
def test_the_module_is_imported_inside_an_app_context(load: Callable[..., Any]) -> None:
    adapter, module = load("import flask\n\nAPP = flask.current_app.name\n\ndef handler(request):\n    return APP\n",
                           "handler")
    assert module.APP == "handler"
    assert adapter.invoke_http(get("/"), INV).body == b"handler"


@pytest.mark.gcf
def test_decorators_set_the_signature_and_the_environment(load: Callable[..., Any]) -> None:
    import os

    adapter, _ = load("""
        import functions_framework

        @functions_framework.cloud_event
        def handler(cloud_event):
            pass
    """, "handler", http=(HttpTrigger("/x"),))
    assert adapter.signature == "cloudevent"
    assert os.environ["FUNCTION_SIGNATURE_TYPE"] == "cloudevent"
    refused = adapter.invoke_http(get("/x"), INV)
    assert refused.status == 405 and refused.header("allow") == "POST"


@pytest.mark.gcf
def test_a_cloudevent_function_gets_the_sdk_cloudevent(load: Callable[..., Any]) -> None:
    adapter, module = load("""
        got = []

        def handler(cloud_event):
            got.append(cloud_event)
            return "ignored"
    """, "handler", events=("order.*",))
    adapter.deliver(Delivery({**EVENT, "ext": "x"}, 1, "a"), INV)
    (event,) = module.got
    from cloudevents.http import CloudEvent

    assert isinstance(event, CloudEvent)
    assert (event["id"], event["type"], event["source"], event["subject"], event["ext"]) == (
        "ev-1", "order.created", "//shop/orders", "orders/7", "x")
    assert event.data == {"order": 7}


@pytest.mark.gcf
def test_a_cloudevent_function_raising_fails_the_delivery_with_its_own_exception(load: Callable[..., Any]) -> None:
    adapter, _ = load("def handler(cloud_event):\n    raise RuntimeError('no')\n", "handler", events=("o.*",))
    with pytest.raises(RuntimeError, match="no"):
        adapter.deliver(Delivery(EVENT), INV)


@pytest.mark.gcf
def test_a_legacy_function_gets_data_and_a_context(load: Callable[..., Any]) -> None:
    adapter, module = load("""
        got = []

        def handler(data, context):
            got.append((data, context))
    """, "handler", events=("order.*",), options={"signature": "event"})
    adapter.deliver(Delivery(EVENT), INV)
    ((data, context),) = module.got
    assert data == {"order": 7}
    assert (context.event_id, context.timestamp, context.event_type, context.resource) == (
        "ev-1", "2024-05-01T12:00:00Z", "order.created", "//shop/orders/orders/7")
    assert adapter.invoke_http(get("/"), INV).status == 200  # GET / answers empty, as functions-framework does


@pytest.mark.gcf
def test_an_http_function_answering_an_event_with_an_error_status_fails_the_delivery(
        load: Callable[..., Any]) -> None:
    adapter, module = load("""
        seen = []

        def handler(request):
            seen.append((request.headers["ce-id"], request.get_json()))
            return "not now", 503
    """, "handler", events=("order.*",), options={"signature": "http"})
    with pytest.raises(DeliveryFailed, match="503: not now") as failed:
        adapter.deliver(Delivery(EVENT), INV)
    assert failed.value.retryable is True
    assert module.seen == [("ev-1", {"order": 7})]


@pytest.mark.gcf
def test_a_cloudevent_signature_without_cloudevents_names_it(load: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cloudevents.http", None)
    with pytest.raises(MissingSDK, match="'cloudevents<2'"):
        load("def handler(cloud_event):\n    pass\n", "handler", events=("o.*",))


@pytest.mark.gcf
def test_a_manifest_without_a_function_name_is_refused(load: Callable[..., Any]) -> None:
    with pytest.raises(EntryPointError, match="names no function"):
        load("def handler(request):\n    pass\n", None)


@pytest.mark.gcf
def test_bodies_and_forms_arrive_intact(load: Callable[..., Any]) -> None:
    adapter, _ = load("""
        import base64

        def handler(request):
            return {"data": base64.b64encode(request.get_data()).decode(), "form": request.form.to_dict(flat=False)}
    """, "handler")
    binary = adapter.invoke_http(get("/", headers=[("content-type", "application/octet-stream")],
                                     body=bytes(range(256)), method="PUT"), INV)
    assert json.loads(binary.body)["data"] == base64.b64encode(bytes(range(256))).decode()
    form = adapter.invoke_http(get("/", headers=[("content-type", "application/x-www-form-urlencoded")],
                                   body=b"a=1&a=2&b=caf%C3%A9", method="POST"), INV)
    assert json.loads(form.body)["form"] == {"a": ["1", "2"], "b": ["caf\u00e9"]}


@pytest.mark.gcf
def test_errorhandler_registers_a_flask_error_handler(load: Callable[..., Any]) -> None:
    adapter, _ = load("""
        import functions_framework

        @functions_framework.errorhandler(ZeroDivisionError)
        def teapot(error):
            return f"teapot: {error}", 418

        def handler(request):
            return str(1 / int(request.args["d"]))
    """, "handler")
    handled = adapter.invoke_http(get("/", "d=0"), INV)
    assert (handled.status, handled.body) == (418, b"teapot: division by zero")
    assert adapter.invoke_http(get("/", "d=2"), INV).body == b"0.5"
    with pytest.raises(ValueError):  # an exception no handler takes is still the function's crash
        adapter.invoke_http(get("/", "d=x"), INV)


TYPED_SOURCE = """
    import functions_framework

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        @classmethod
        def from_dict(cls, obj):
            return cls(int(obj["x"]), int(obj["y"]))

        def to_dict(self):
            return {"x": self.x, "y": self.y}

    @functions_framework.typed(Point)
    def handler(point):
        if point.x < 0:
            raise ValueError("negative x")
        return Point(point.y, point.x)

    @functions_framework.typed
    def annotated(point: Point):
        return {"sum": point.x + point.y}

    @functions_framework.typed(Point)
    def opaque(point):
        return object.__new__(type("Opaque", (), {}))
"""


@pytest.mark.gcf
def test_a_typed_function_gets_its_input_class_and_answers_its_to_dict(load: Callable[..., Any]) -> None:
    adapter, _ = load(TYPED_SOURCE, "handler")
    assert adapter.signature == "typed"
    swapped = adapter.invoke_http(get("/any/path", body=b'{"x": 1, "y": 2}', method="POST",
                                      headers=[("content-type", "application/json")]), INV)
    assert (swapped.status, json.loads(swapped.body)) == (200, {"x": 2, "y": 1})
    assert adapter.invoke_http(get("/"), INV).status == 405  # POST only, as functions-framework routes it
    with pytest.raises(ValueError, match="negative x") as failed:  # the user's error, for the console
        adapter.invoke_http(get("/", body=b'{"x": -1, "y": 2}', method="POST",
                                headers=[("content-type", "application/json")]), INV)
    crash = adapter.error_response(failed.value, INV)
    assert crash.status == 500 and crash.header("x-google-status") == "crash"


@pytest.mark.gcf
@pytest.mark.parametrize(("target", "error"), [("annotated", None), ("opaque", AttributeError)])
def test_typed_results_builtins_as_they_are_and_to_dict_required(load: Callable[..., Any], target: str,
                                                                 error: type[Exception] | None) -> None:
    adapter, _ = load(TYPED_SOURCE, target)
    request = get("/", body=b'{"x": 1, "y": 2}', method="POST", headers=[("content-type", "application/json")])
    if error is None:
        assert json.loads(adapter.invoke_http(request, INV).body) == {"sum": 3}
    else:
        with pytest.raises(error, match="to_dict"):
            adapter.invoke_http(request, INV)


@pytest.mark.gcf
def test_typed_without_an_input_type_is_refused_at_load(load: Callable[..., Any]) -> None:
    with pytest.raises(EntryPointError, match="'typed' signature but no input type"):
        load("def handler(x):\n    return x\n", "handler", options={"signature": "typed"})


AIO_SOURCE = """
    import functions_framework.aio
    from starlette.responses import PlainTextResponse

    got = []

    @functions_framework.aio.http
    async def handler(request):
        if request.url.path == "/boom":
            raise LookupError("aio boom")
        body = await request.body()
        return {"class": type(request).__name__, "body": body.decode(), "path": request.url.path,
                "execution_id": request.headers["function-execution-id"]}

    @functions_framework.aio.http
    def sync_handler(request):
        return PlainTextResponse("sync", status_code=201)

    @functions_framework.aio.cloud_event
    async def on_event(cloud_event):
        got.append((cloud_event["id"], cloud_event.data))
"""


@pytest.mark.gcf
def test_an_aio_http_function_gets_a_starlette_request(load: Callable[..., Any]) -> None:
    adapter, _ = load(AIO_SOURCE, "handler")
    response = adapter.invoke_http(get("/a/b", body=b"in", method="PATCH"), INV)
    assert response.status == 200 and response.header("content-type") == "application/json"
    assert json.loads(response.body) == {"class": "Request", "body": "in", "path": "/a/b",
                                         "execution_id": gcf.execution_id("req-1")}
    assert adapter.invoke_http(get("/favicon.ico"), INV).status == 404
    with pytest.raises(LookupError, match="aio boom") as failed:
        adapter.invoke_http(get("/boom"), INV)
    crash = adapter.error_response(failed.value, INV)
    assert (crash.status, crash.body, crash.header("x-google-status")) == (500, b"Internal Server Error", "crash")


@pytest.mark.gcf
def test_a_sync_aio_function_runs_off_the_loop_and_may_return_a_response(load: Callable[..., Any]) -> None:
    adapter, _ = load(AIO_SOURCE, "sync_handler")
    response = adapter.invoke_http(get("/"), INV)
    assert (response.status, response.body) == (201, b"sync")


@pytest.mark.gcf
def test_an_aio_cloud_event_function_is_delivered_to(load: Callable[..., Any]) -> None:
    adapter, module = load(AIO_SOURCE, "on_event", events=("order.*",))
    adapter.deliver(Delivery(EVENT), INV)
    assert module.got == [("ev-1", {"order": 7})]
    refused = adapter.invoke_http(get("/", body=b"{}", method="POST", headers=[("content-type", "application/json")]),
                                  INV)
    assert refused.status == 400 and b"Got CloudEvent exception" in refused.body


@pytest.mark.gcf
@pytest.mark.parametrize(("signature", "message"), [
    ("event", "ASGI server does not support legacy background events"),
    ("typed", "ASGI server does not support typed events"),
])
def test_asgi_mode_refuses_what_functions_framework_refuses(load: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
                                                            signature: str, message: str) -> None:
    monkeypatch.setenv("FUNCTION_USE_ASGI", "true")
    source = TYPED_SOURCE if signature == "typed" else "def handler(data, context):\n    pass\n"
    with pytest.raises(EntryPointError, match=message):
        load(source, "handler", options={"signature": signature})
