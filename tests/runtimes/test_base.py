"""The runtime contract (contract.py, project/platforms.py), the base adapter's hooks (adapter.py)
and the shared drivers (drivers.py), without any platform SDK or worker process."""

from __future__ import annotations

import asyncio
import contextvars
import json
import types
from typing import Any

import pytest

from faasemu.project.errors import UsageError
from faasemu.project.platforms import PLATFORMS, is_background
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import (
    BaseAdapter,
    NoRawInvocation,
    describe_module,
    entry_point,
    handler_frames,
    prefixed_routes,
    strip_prefix,
)
from faasemu.runtimes.base import (
    Delivery,
    DeliveryFailed,
    EntryPointError,
    HttpRequest,
    HttpResponse,
    Invocation,
    MissingSDK,
)
from faasemu.runtimes.contract import Runtime, attempt_request_id, load_runtime, no_routes
from faasemu.runtimes.drivers import AsgiExchange, HandlerLoop, run_wsgi
from faasemu.runtimes.request_ids import attempt_value, invocation_id
from faasemu.server.invoke import data_invocation

INV = Invocation("req-1", 0.0)
EVENT = {"specversion": "1.0", "id": "e-1", "source": "s", "type": "t", "data": {"n": 1}}


def spec(runtime: str = "aws-lambda", name: str = "fn", handler: str = "app.py:handler", **kwargs: Any) -> FunctionSpec:
    attr = handler.rpartition(":")[2] if ":" in handler else None
    return FunctionSpec(name=name, handler=handler, runtime=runtime, handler_file="app.py", handler_module=None,
                        handler_attr=attr, **kwargs)


def user_module(**members: Any) -> types.ModuleType:
    module = types.ModuleType("users_app")
    module.__file__ = None  # no file: the dotted name describes it
    for name, value in members.items():
        if callable(value) and hasattr(value, "__module__"):
            value.__module__ = "users_app"
        setattr(module, name, value)
    return module


# -- the contract --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_every_platform_module_gives_its_runtime_and_agrees_with_the_table(name: str) -> None:
    runtime = load_runtime(name)
    assert isinstance(runtime, Runtime) and runtime.name == name and runtime.info is PLATFORMS[name]
    assert issubclass(runtime.adapter, BaseAdapter)  # type: ignore[arg-type]  # a class, typed as its constructor


def test_a_hook_the_table_does_not_declare_is_refused() -> None:
    def routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
        return (HttpTrigger("/x"),)

    with pytest.raises(TypeError, match="async_routes=False, but the module gives the hook"):
        Runtime("gcf", BaseAdapter, lambda s, r: {}, no_routes, lambda k, m, r: HttpResponse(), async_routes=routes)


def test_only_lambda_has_raw_invocation() -> None:
    assert [n for n, info in PLATFORMS.items() if info.capabilities.raw_invocation] == ["aws-lambda"]


def test_the_default_request_id_is_the_per_attempt_value() -> None:
    fn = spec("kubeless")
    assert attempt_request_id(fn, 7, EVENT, 0, 2) == attempt_value(7, "fn", "e-1", 2)
    assert invocation_id(load_runtime("kubeless"), fn, 7, EVENT, 0, 2) == attempt_value(7, "fn", "e-1", 2)


def test_netlify_background_functions_are_named_so() -> None:
    assert is_background("netlify", "report-background") and not is_background("netlify", "report")
    assert not is_background("aws-lambda", "report-background")


@pytest.mark.parametrize(("runtime", "meaning"), [("aws-lambda", "raw"), ("kubeless", "event"), ("gcf", "event")])
def test_invoke_data_alone_means_what_the_platform_has(runtime: str, meaning: str) -> None:
    assert data_invocation(spec(runtime)) == meaning


def test_invoke_data_alone_on_a_runtime_without_raw_invocation_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as error:
        data_invocation(spec("netlify", name="hello"))
    assert error.value.exit_code == 2
    message = str(error.value)
    assert "function hello runs on runtime netlify, which has no raw invocation" in message
    assert "--event TYPE" in message and "--http METHOD PATH" in message


# -- the base adapter ------------------------------------------------------------------------------


class Echo(BaseAdapter):
    """A platform made of hooks only: events are POSTs to /hook, 200 only counts."""

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        response: HttpResponse = self.bound()(request)  # the test's handlers return responses
        return response

    def event_request(self, delivery: Delivery, inv: Invocation) -> HttpRequest:
        return HttpRequest("POST", "/hook", body=str(delivery.event["data"]).encode())

    def delivered(self, response: HttpResponse) -> bool:
        return response.status == 200


def test_bind_finds_the_named_function() -> None:
    def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, body=request.body)

    adapter = Echo(spec(handler="app.py:handler"))
    adapter.bind(user_module(handler=handler))
    assert adapter.invoke_http(HttpRequest("GET", "/", body=b"hi"), INV).body == b"hi"


def test_a_missing_entry_point_names_the_module_and_what_was_found() -> None:
    def main() -> None: ...

    def helper() -> None: ...

    module = user_module(main=main, helper=helper, _private=main, TABLE={})
    with pytest.raises(EntryPointError, match=r"^users_app has no function 'handler'\. Found: helper, main\.$"):
        entry_point(module, "handler")
    with pytest.raises(EntryPointError, match=r"'TABLE' is a dict, not a function \(why\)\. Found: helper, main\."):
        entry_point(module, "TABLE", why=" (why)")
    with pytest.raises(EntryPointError, match="Found: no functions"):
        entry_point(user_module(), "handler")


def test_a_handler_that_names_no_function_says_how_to_name_one() -> None:
    class Netlifyish(Echo):
        entry_example = "file.py:handler"

    with pytest.raises(EntryPointError, match=r"names no function: write it as file\.py:handler"):
        Netlifyish(spec(handler="app.py")).bind(user_module())


def test_the_default_entry_is_used_when_the_manifest_names_none() -> None:
    class Templated(Echo):
        default_entry = "handle"

    def handle(request: HttpRequest) -> HttpResponse:
        return HttpResponse(204)

    adapter = Templated(spec(handler="app.py"))
    adapter.bind(user_module(handle=handle))
    assert adapter.invoke_http(HttpRequest("GET", "/"), INV).status == 204


def test_calling_before_bind_says_so() -> None:
    with pytest.raises(RuntimeError, match=r"Adapter.bind\(\) was not called"):
        Echo(spec()).invoke_http(HttpRequest("GET", "/"), INV)


def test_describe_module_is_relative_inside_the_working_directory(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("m")
    module.__file__ = str(tmp_path / "api" / "m.py")
    assert describe_module(module) == "api/m.py".replace("/", __import__("os").sep)
    module.__file__ = "/elsewhere/m.py"
    assert describe_module(module) == "/elsewhere/m.py"


def test_deliver_posts_the_event_to_invoke_http_and_applies_the_retry_rule() -> None:
    seen: list[HttpRequest] = []

    def handler(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(200 if b"ok" in request.body else 202, body=b"later")

    adapter = Echo(spec())
    adapter.bind(user_module(handler=handler))
    adapter.deliver(Delivery({**EVENT, "data": "ok"}), INV)
    assert (seen[0].method, seen[0].path, seen[0].body) == ("POST", "/hook", b"ok")
    with pytest.raises(DeliveryFailed, match=r"^POST /hook answered 202: later$") as failed:
        adapter.deliver(Delivery({**EVENT, "data": "no"}), INV)
    assert failed.value.retryable


def test_a_platform_without_event_requests_says_so() -> None:
    class HttpOnly(BaseAdapter):
        pass

    with pytest.raises(NotImplementedError, match="runtime vercel does not deliver events over HTTP"):
        HttpOnly(spec("vercel")).deliver(Delivery(EVENT), INV)


def test_no_raw_invocation_names_the_runtime() -> None:
    adapter = Echo(spec("kubeless", name="resize"))
    with pytest.raises(NoRawInvocation, match="function resize runs on runtime kubeless, which has no raw invocation"):
        adapter.invoke_raw(b"{}", INV)
    assert adapter.error_payload(ValueError(), INV) is None and adapter.last_log is None


def test_require_imports_an_sdk_or_names_the_package_and_the_extra() -> None:
    assert Echo(spec()).require("json", "json", "x") is json
    with pytest.raises(MissingSDK, match=r"runtime gcf needs the package 'nope-sdk', which is not installed: "
                                         r"pip install 'faasemu\[gcf\]'"):
        Echo(spec("gcf")).require("faasemu_no_such_module", "nope-sdk", "gcf")


def test_a_kept_response_answers_for_that_exception_once() -> None:
    adapter = Echo(spec())
    error, other = ValueError("boom"), ValueError("other")
    sent = HttpResponse(500, [("x", "1")], b"partial")
    adapter.keep_response(error, sent)
    assert adapter.partial_response(other) is None
    assert adapter.partial_response(error) is sent
    assert adapter.partial_response(error) is None


def test_routes_under_a_prefix_and_the_path_below_it() -> None:
    own = (HttpTrigger("/function/echo"), HttpTrigger("/function/echo/{path+}"))
    assert prefixed_routes("/function", "echo") == own
    assert strip_prefix("/function/echo", "/function/echo") == "/"
    assert strip_prefix("/function/echo/a/b", "/function/echo") == "/a/b"
    assert strip_prefix("/function/echoes", "/function/echo") is None


def test_handler_frames_start_below_the_adapters_last_frame() -> None:
    def users_code() -> None:
        raise ValueError("in the handler")

    def adapter_frame() -> None:
        users_code()

    try:
        adapter_frame()
    except ValueError as exc:
        frames = handler_frames(exc, __file__)
        assert [f.name for f in handler_frames(exc, "/not/on/the/stack.py")][-2:] == ["adapter_frame", "users_code"]
    assert frames == []  # every frame is this file's: nothing below its last one


# -- the drivers ------------------------------------------------------------------------------------


def test_run_wsgi_collects_status_headers_and_body_and_closes() -> None:
    closed: list[bool] = []

    class Body(list[bytes]):  # a WSGI iterable with close()
        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("201 Created", [("X-A", "1")])
        return Body([b"a", b"b"])

    assert run_wsgi(app, {}) == HttpResponse(201, [("X-A", "1")], b"ab")
    assert closed == [True]


def scope(method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/", "headers": []}


def exchange(app: Any, method: str = "GET", **options: Any) -> tuple[AsgiExchange, BaseException | None]:
    async def main() -> tuple[AsgiExchange, BaseException | None]:
        call = AsgiExchange(scope(method), b"body", **options)
        try:
            await call.run(app)
        except Exception as exc:
            return call, exc
        return call, None

    return asyncio.run(main())


def test_asgi_exchange_feeds_the_body_then_waits_for_the_disconnect() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Name", b"v")]})
        await send({"type": "http.response.body", "body": b"done"})
        received.append(await receive())

    call, error = exchange(app, lower_names=True)
    assert error is None and received == [{"type": "http.request", "body": b"body", "more_body": False},
                                          {"type": "http.disconnect"}]
    assert call.response == HttpResponse(200, [("x-name", "v")], b"done")


def test_asgi_exchange_keeps_what_was_sent_when_the_app_raises() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("cut off")

    call, error = exchange(app)
    assert isinstance(error, ValueError) and call.response == HttpResponse(200, [], b"part")


def test_asgi_exchange_checks_messages_as_uvicorn_does() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    call, error = exchange(app)
    assert str(error) == "Expected ASGI message 'http.response.start', but got 'http.response.body'."
    assert call.response is None


def test_asgi_exchange_drops_a_head_body_only_when_asked() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    assert exchange(app, "HEAD", head_body=False)[0].response == HttpResponse(200, [], b"")
    assert exchange(app, "HEAD")[0].response == HttpResponse(200, [], b"x")


def test_handler_loop_is_one_loop_for_the_workers_life() -> None:
    loop = HandlerLoop()

    async def which() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    try:
        assert not loop.started
        first = loop.run(which())
        assert loop.run(which()) is first and loop.started
    finally:
        loop.close()
    assert not loop.started


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


@pytest.mark.parametrize(("shared", "seen"), [(False, "unset"), (True, "set")])
def test_handler_loop_context_is_fresh_per_run_unless_shared(shared: bool, seen: str) -> None:
    loop = HandlerLoop(shared_context=shared)

    async def set_it() -> None:
        VAR.set("set")

    async def read_it() -> str:
        return VAR.get()

    try:
        loop.run(set_it())
        assert loop.run(read_it()) == seen
    finally:
        loop.close()

