"""Vercel: a Python file in `api/`, served as Vercel's Python runtime (vercel-runtime's vc_init.py) serves it.

The entry point is the file's top-level `handler` class (a `BaseHTTPRequestHandler` subclass) or
its `app` / `application` (ASGI or WSGI, told apart as resolver.py's `detect_app_type` does).
There is no event object and no return-value convention: the response is what the handler writes,
so the adapter drives it the way vc_init does (an in-memory request stream for the handler class,
`start_response` for WSGI, an asyncio loop kept across calls for ASGI) and reads what it wrote.

Runs inside workers: standard library only, and `http.server` / `asyncio` are imported in `bind`
when the entry point needs them. The conversions are pure functions, the Adapter is thin.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import re
import sys
import urllib.parse
from types import ModuleType, SimpleNamespace
from typing import Any

from faasemu.events import model as events
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, describe_module
from faasemu.runtimes.base import Delivery, EntryPointError, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime
from faasemu.runtimes.drivers import AsgiExchange, HandlerLoop

REGION = "dev1"  # the region `vercel dev` reports in x-vercel-id
ENTRY_NAMES = ("app", "application")
# Headers that describe one connection or one framing: the gateway frames the body itself.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "upgrade",
               "proxy-connection"}
# Vercel's edge replaces whatever a client sends in these with what it saw (anti-spoofing).
_FORWARDED = {"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip",
              "x-vercel-forwarded-for", "x-vercel-id", "x-vercel-deployment-url"}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\+?\}")
_PATH_SAFE = "/!$&'()*+,;=:@"
_SEGMENT = re.compile(r"\[(\.\.\.)?([A-Za-z_][A-Za-z0-9_]*)\]")  # api/[id].py, api/[...slug].py


# -- routes and environment ---------------------------------------------------------------------


def default_route(handler: str) -> str:
    """The URL Vercel's file-system routing gives a function file.

    `api/users.py` -> `/api/users`; `api/index.py` -> `/api`; `index.py` -> `/`; dynamic segments
    `api/users/[id].py` -> `/api/users/{id}` and `[...slug].py` -> `{slug+}` (a catch-all).
    """
    path = handler.rpartition(":")[0] if handler.count(":") and not handler.endswith(".py") else handler
    path = os.path.normpath(path).replace(os.sep, "/").removesuffix(".py")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if parts and parts[-1] == "index":
        parts.pop()
    route = "/" + "/".join(parts)
    return _SEGMENT.sub(lambda m: "{" + m.group(2) + ("+}" if m.group(1) else "}"), route)


def file_routes(handler: str) -> tuple[str, ...]:
    """Every URL Vercel serves a function file at: its clean route first, then the file's own path
    with its extension, which Vercel answers too (`api/python.py` at `/api/python` and at
    `/api/python.py`, as its own fixtures' probes request it); an index file also at `.../index`.
    A file with dynamic segments is served at its templated route only."""
    clean = default_route(handler)
    path = handler.rpartition(":")[0] if handler.count(":") and not handler.endswith(".py") else handler
    path = "/" + "/".join(p for p in os.path.normpath(path).replace(os.sep, "/").split("/") if p not in ("", "."))
    if _SEGMENT.search(path) or not path.endswith(".py"):
        return (clean,)
    routes = [clean, path]
    if path.endswith("/index.py"):
        routes.insert(1, path.removesuffix(".py"))
    return tuple(dict.fromkeys(routes))


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """Declared `http:` routes win; otherwise the file's own paths, every method (as on Vercel). The
    first is the one events are pushed to."""
    return spec.http or tuple(HttpTrigger(route) for route in file_routes(spec.handler))


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What `vercel dev` sets for a function (system variables; the manifest's `env` goes on top)."""
    return {"VERCEL": "1", "VERCEL_ENV": "development", "VERCEL_REGION": REGION, "TZ": "UTC"}


def vercel_id(request_id: str) -> str:
    """`dev1::abcde-1712345678901-0123456789ab`, the form of x-vercel-id, derived from the request id
    so that a delivery attempt has the same id in every run of a campaign."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()
    return f"{REGION}::{digest[:5]}-{int(digest[5:16], 16) % 10**13:013d}-{digest[16:28]}"


# -- the request as the function sees it --------------------------------------------------------


def request_headers(request: HttpRequest, request_id: str) -> list[tuple[str, str]]:
    """The client's headers plus the ones Vercel's edge sets, which replace any the client sent."""
    host = request.header("host") or request.host
    headers = [(k, v) for k, v in request.headers if k not in _FORWARDED and k != "transfer-encoding"]
    if request.body and request.header("content-length") is None:
        headers.append(("content-length", str(len(request.body))))  # Vercel buffers bodies: never chunked
    return [
        *headers,
        ("x-forwarded-for", request.source_ip), ("x-forwarded-host", host),
        ("x-forwarded-proto", request.scheme), ("x-real-ip", request.source_ip),
        ("x-vercel-deployment-url", host), ("x-vercel-forwarded-for", request.source_ip),
        ("x-vercel-id", vercel_id(request_id)),
    ]


def raw_path(request: HttpRequest) -> str:
    """The path percent-encoded again, as it travelled (the gateway hands it over decoded)."""
    return urllib.parse.quote(request.path, safe=_PATH_SAFE)


def route_query(spec: FunctionSpec, request: HttpRequest) -> str:
    """The query string with the file route's dynamic segments added, as Vercel passes them
    (`api/users/[id].py` at `/api/users/7` sees `?id=7`). Declared `http:` routes add nothing."""
    if spec.http or not request.path_params:
        return request.query
    present = {name for name, _ in urllib.parse.parse_qsl(request.query, keep_blank_values=True)}
    extra = urllib.parse.urlencode([(k, v) for k, v in request.path_params.items() if k not in present])
    return "&".join(part for part in (request.query, extra) if part)


def raw_request(request: HttpRequest, headers: list[tuple[str, str]], query: str) -> bytes:
    """The HTTP/1.1 request bytes the handler class reads from its rfile."""
    target = f"{raw_path(request)}?{query}" if query else raw_path(request)
    lines = [f"{request.method} {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + request.body


def wsgi_environ(request: HttpRequest, headers: list[tuple[str, str]], query: str) -> dict[str, Any]:
    """The environ vc_init builds: PATH_INFO stays percent-encoded, REMOTE_ADDR is x-forwarded-for,
    and every header becomes HTTP_* (content type and length included), all through the
    "WSGI encoding dance" (UTF-8 bytes read as latin-1)."""
    folded = {name: value for name, value in headers}
    environ: dict[str, Any] = {
        "CONTENT_LENGTH": str(len(request.body)), "CONTENT_TYPE": folded.get("content-type", ""),
        "SCRIPT_NAME": "", "PATH_INFO": raw_path(request), "QUERY_STRING": query,
        "REMOTE_ADDR": folded.get("x-forwarded-for", folded.get("x-real-ip")),
        "REQUEST_METHOD": request.method, "SERVER_NAME": folded.get("host", "lambda"),
        "SERVER_PORT": folded.get("x-forwarded-port", "80"), "SERVER_PROTOCOL": "HTTP/1.1",
    }
    environ = {key: value.encode().decode("latin-1") if isinstance(value, str) else value
               for key, value in environ.items()}
    environ.update({
        "wsgi.errors": sys.stderr, "wsgi.input": io.BytesIO(request.body), "wsgi.multiprocess": False,
        "wsgi.multithread": False, "wsgi.run_once": False, "wsgi.url_scheme": folded.get("x-forwarded-proto", "http"),
        "wsgi.version": (1, 0),
    })
    for name, value in headers:
        environ["HTTP_" + name.replace("-", "_").upper()] = value
    return environ


def asgi_scope(request: HttpRequest, headers: list[tuple[str, str]], query: str,
               state: dict[str, Any]) -> dict[str, Any]:
    """The scope Vercel's vendored uvicorn builds. Its proxy-headers middleware trusts the platform
    proxy on 127.0.0.1, so `client` and `scheme` come from x-forwarded-for / x-forwarded-proto."""
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "server": ("127.0.0.1", 3000), "client": (request.source_ip, 0), "scheme": request.scheme,
        "method": request.method, "root_path": "", "path": request.path, "raw_path": raw_path(request).encode(),
        "query_string": query.encode("latin-1", errors="replace"),
        "headers": [(k.encode("latin-1"), v.encode("latin-1", errors="replace")) for k, v in headers],
        "state": dict(state),
    }


# -- the response as the platform reads it ------------------------------------------------------


class NoResponse(Exception):
    """The function closed without writing a complete status line and headers."""


def parse_response(raw: bytes, method: str) -> HttpResponse:
    """What a `BaseHTTPRequestHandler` wrote to its wfile, read by `http.client` as the platform's
    proxy would read the socket: chunked bodies joined, a body cut at its Content-Length."""
    import http.client

    sock = SimpleNamespace(makefile=lambda *args, **kwargs: io.BytesIO(raw))
    response = http.client.HTTPResponse(sock, method=method)  # type: ignore[arg-type]  # a socket stand-in: only makefile()
    try:
        response.begin()
    except (http.client.HTTPException, ValueError) as exc:
        raise NoResponse(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
    try:
        body = response.read()
    except http.client.IncompleteRead as exc:
        body = exc.partial
    return HttpResponse(response.status, list(response.getheaders()), body)


def edge_response(response: HttpResponse, request_id: str) -> HttpResponse:
    """The function's response as Vercel's edge sends it on: framing headers dropped (the body is
    whole), `server: Vercel`, and the request's `x-vercel-id`."""
    headers = [(k, v) for k, v in response.headers if k.lower() not in _HOP_BY_HOP and k.lower() != "server"]
    headers += [("server", "Vercel"), ("x-vercel-id", vercel_id(request_id)), ("x-vercel-cache", "MISS")]
    return HttpResponse(response.status, headers, response.body)


def error_page(status: int, code: str, request_id: str, detail: str = "") -> HttpResponse:
    """Vercel's own error answer, as curl sees it: three paragraphs of text, and x-vercel-error."""
    ident = vercel_id(request_id)
    title = "A server error has occurred" if code == "FUNCTION_INVOCATION_FAILED" else \
        "An error occurred with your deployment"
    text = f"{title}\n\n{code}\n\n{ident}\n"
    if detail:  # faasemu's addition: what went wrong, where Vercel would point to its logs
        text += f"\n{detail}\n"
    headers = [("content-type", "text/plain; charset=utf-8"), ("x-vercel-error", code), ("x-vercel-id", ident),
               ("server", "Vercel"), ("cache-control", "public, max-age=0, must-revalidate")]
    return HttpResponse(status, headers, text.encode())


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """Timeout: 504 FUNCTION_INVOCATION_TIMEOUT. A crashed or out-of-memory function: 500
    FUNCTION_INVOCATION_FAILED. A function that cannot load: 503 with the reason
    (docs/runtime-contract.md#the-supervisor-side-half-runtime)."""
    if kind == "timeout":
        return error_page(504, "FUNCTION_INVOCATION_TIMEOUT", request_id)
    if kind == "unavailable":
        return error_page(503, "FUNCTION_INVOCATION_FAILED", request_id, message)
    return error_page(500, "FUNCTION_INVOCATION_FAILED", request_id)


def uvicorn_error() -> HttpResponse:
    """uvicorn's answer when an ASGI app raised before starting its response."""
    return HttpResponse(500, [("content-type", "text/plain; charset=utf-8")], b"Internal Server Error")


# -- finding the entry point (resolver.py) -------------------------------------------------------


def positional_count(obj: object) -> int | None:
    """Required positional parameters, as resolver.py counts them; None when there is no signature."""
    try:
        parameters = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]  # any object: TypeError if none
    except (ValueError, TypeError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.default is inspect.Parameter.empty and p.kind in kinds)


def app_kind(obj: object, where: str) -> tuple[str, Any]:
    """("asgi" | "wsgi", the callable): an `.asgi` attribute, an async callable of three parameters,
    or any callable of two; otherwise Vercel's own message."""
    asgi = getattr(obj, "asgi", None)
    if asgi is not None and callable(asgi):
        return "asgi", asgi
    is_async = inspect.iscoroutinefunction(obj)
    if not is_async and callable(obj):
        is_async = inspect.iscoroutinefunction(obj.__call__)
    count = positional_count(obj)
    if is_async and count == 3:
        return "asgi", obj
    if count == 2:
        return "wsgi", obj
    raise EntryPointError(f"Could not determine the application interface for '{where}'\nExpected either:\n"
                          "  - an ASGI app: async callable(scope, receive, send)\n"
                          "  - a WSGI app: callable(environ, start_response)")


def find_entry(module: ModuleType, name: str | None, where: str) -> tuple[str, str, Any]:
    """(kind, variable, object) with kind "handler", "asgi" or "wsgi".

    Without a configured name, the first top-level `app`, `application`, or `handler` class (any
    case) in definition order, as Vercel's build finds it; a `def handler(request)` is not one.
    """
    from http.server import BaseHTTPRequestHandler

    def is_handler(var: str, value: Any) -> bool:
        return var.lower() == "handler" and isinstance(value, type) and issubclass(value, BaseHTTPRequestHandler)

    if name is not None and not hasattr(module, name):
        raise EntryPointError(f"Configured application '{name}' missing in module '{where}'")
    for var, value in [(name, getattr(module, name))] if name is not None else list(vars(module).items()):
        if is_handler(var, value):
            return "handler", var, value
        if name is not None or var in ENTRY_NAMES:
            kind, app = app_kind(value, f"{where}:{var}")
            return kind, var, app
    hint = ""
    plain = getattr(module, "handler", None)
    if plain is not None:
        hint = (f" ('handler' is a {type(plain).__name__}: Vercel's Python runtime needs "
                "`class handler(BaseHTTPRequestHandler)` with do_GET/do_POST methods, or a WSGI/ASGI `app`)")
    raise EntryPointError(f'Could not find a top-level "app", "application", or "handler" in "{where}".{hint}')


def event_request(delivery: Delivery, route: str) -> HttpRequest:
    """An event as Vercel Queues pushes it to a consumer: a POST to the function's route with the
    CloudEvent in binary mode (`ce-*` headers, the data as the body). A templated route gets the
    event id in each of its parameters."""
    headers, body = events.to_binary(delivery.event)
    event_id = str(delivery.event.get("id", ""))
    params = {found.group(1): event_id for found in _PARAM.finditer(route)}
    path = _PARAM.sub(lambda _: event_id, route)
    return HttpRequest("POST", path, "", [("host", "localhost"), ("content-length", str(len(body))), *headers],
                       body, route=route, path_params=params, host="localhost")


# -- the adapter --------------------------------------------------------------------------------


def _drive(cls: type) -> type:
    """The user's handler class reading from and writing to memory instead of a socket."""

    class Driven(cls):
        def setup(self) -> None:
            raw, self.wfile = self.request
            self.connection = None
            self.rfile = io.BytesIO(raw)

        def finish(self) -> None:  # the written bytes are read after the call
            pass

    Driven.__name__, Driven.__qualname__, Driven.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    return Driven


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class Adapter(BaseAdapter):
    """vc_init for one function: the entry point found once, then driven once per request."""

    def __init__(self, spec: FunctionSpec) -> None:
        super().__init__(spec)
        self.kind = ""
        self.app: Any = None
        self.runner: HandlerLoop | None = None  # one loop for the worker's life, as vc_init keeps
        self.state: dict[str, Any] = {}
        self.lifespan: Any = None  # the lifespan task and its two queues, as uvicorn keeps them
        self.lifespan_queues: tuple[Any, Any] = (None, None)
        self.lifespan_started = False
        self.partial: HttpResponse | None = None  # what the function has sent so far (if it raises: all it sent)
        self.server = SimpleNamespace(server_address=("127.0.0.1", 3000), server_name="localhost", server_port=3000)

    def bind(self, module: ModuleType) -> None:
        self.kind, _, entry = find_entry(module, self.spec.handler_attr, describe_module(module))
        if self.kind == "handler":
            self.app = _drive(entry)
            return
        self.app = entry
        if self.kind == "asgi":
            import atexit

            self.runner = HandlerLoop(shared_context=True)  # an asyncio.Runner's one context, as vc_init's
            failed = self.runner.run(self._lifespan_startup())
            if failed is not None:
                self.close()
                raise RuntimeError(f"ASGI lifespan startup failed: {failed}")
            atexit.register(self.close)

    # -- HTTP ------------------------------------------------------------------------------------

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        self.partial = None
        query = route_query(self.spec, request)
        headers = request_headers(request, inv.request_id)
        try:
            if self.kind == "handler":
                response = self._run_handler(request, headers, query)
            elif self.kind == "wsgi":
                response = self._run_wsgi(request, headers, query)
            else:
                assert self.runner is not None  # bind() made it for an ASGI app
                scope = asgi_scope(request, headers, query, self.state)
                response = self.runner.run(self._run_asgi(scope, request.body))
        except BaseException as exc:
            if self.partial is not None:  # what was already sent stays sent
                self.keep_response(exc, self.partial)
            raise
        return edge_response(response, inv.request_id)

    def _run_handler(self, request: HttpRequest, headers: list[tuple[str, str]], query: str) -> HttpResponse:
        out = io.BytesIO()
        raw = raw_request(request, headers, query)
        try:
            self.app((raw, out), ("127.0.0.1", 0), self.server)
        except BaseException:
            try:  # the status line and headers were flushed before it raised: the client got them
                self.partial = parse_response(out.getvalue(), request.method)
            except NoResponse:
                pass
            raise
        if not out.getvalue():
            raise NoResponse(f"{self.app.__name__}.do_{request.method} returned without writing a response "
                             "(call send_response() and end_headers())")
        return parse_response(out.getvalue(), request.method)

    def _run_wsgi(self, request: HttpRequest, headers: list[tuple[str, str]], query: str) -> HttpResponse:
        def write(data: bytes) -> None:
            if self.partial is None:  # on Vercel these bytes would reach the proxy before any status line
                raise NoResponse("the WSGI app sent a body before calling start_response()")
            self.partial.body += data if isinstance(data, bytes) else memoryview(data).tobytes()

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # vc_init keeps only the code (the reason phrase is the standard one) and sends the
            # headers at once: from here on, the status is committed.
            if self.partial is None:
                code = int(str(status).split(" ", 1)[0])
                self.partial = HttpResponse(code, [(str(k), str(v)) for k, v in response_headers])
            return write

        result = self.app(wsgi_environ(request, headers, query), start_response)
        try:
            for data in result:
                if data:
                    write(data)
        finally:
            if hasattr(result, "close"):
                result.close()
        if self.partial is None:
            raise NoResponse("the WSGI app returned without calling start_response()")
        return self.partial

    async def _run_asgi(self, scope: dict[str, Any], body: bytes) -> HttpResponse:
        exchange = AsgiExchange(scope, body)  # uvicorn's checks, with its messages
        try:
            await exchange.run(self.app)
        finally:
            self.partial = exchange.response
        if self.partial is None:
            print("ERROR:    ASGI callable returned without starting response.", file=sys.stderr)
            return uvicorn_error()
        return self.partial

    async def _lifespan_startup(self) -> str | None:
        """uvicorn's `lifespan="auto"`: an app that raises or returns has no lifespan support; one that
        answers `lifespan.startup.failed` does not start. The task stays suspended afterwards."""
        import asyncio

        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.lifespan_queues = (inbox, outbox)
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}

        async def main() -> None:
            try:
                await self.app(scope, inbox.get, outbox.put)
            except BaseException:  # "ASGI 'lifespan' protocol appears unsupported."
                pass

        await inbox.put({"type": "lifespan.startup"})
        self.lifespan = asyncio.ensure_future(main())
        answer = asyncio.ensure_future(outbox.get())
        finished, _ = await asyncio.wait({answer, self.lifespan}, return_when=asyncio.FIRST_COMPLETED)
        if answer not in finished:
            answer.cancel()
            return None
        message = answer.result()
        if message.get("type") == "lifespan.startup.failed":
            return str(message.get("message") or "(no message)")
        self.lifespan_started = message.get("type") == "lifespan.startup.complete"
        return None

    def close(self) -> None:
        """At exit, as vc_init does: `lifespan.shutdown` (up to 10 s for the answer), then the loop closes."""
        import asyncio

        if self.runner is None:
            return
        inbox, outbox = self.lifespan_queues

        async def shutdown() -> None:
            await inbox.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(outbox.get(), 10)

        if self.lifespan_started:
            try:
                self.runner.run(shutdown())
            except BaseException:
                pass
        self.runner.close()
        self.runner = None

    # -- events and errors -------------------------------------------------------------------------

    def event_request(self, delivery: Delivery, inv: Invocation) -> HttpRequest:
        """A push to the function's route; a non-2xx answer is a failed delivery, redelivered."""
        return event_request(delivery, http_routes(self.spec)[0].path)

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """The handler raised. What was already sent stays sent; before that, an ASGI app gets
        uvicorn's 500, a handler class or WSGI app Vercel's FUNCTION_INVOCATION_FAILED."""
        if isinstance(exc, NoResponse):
            return error_page(502, "NO_RESPONSE_FROM_FUNCTION", inv.request_id)
        sent = self.partial_response(exc)
        if sent is not None:
            return edge_response(sent, inv.request_id)
        if self.kind == "asgi":
            return edge_response(uvicorn_error(), inv.request_id)
        return error_page(500, "FUNCTION_INVOCATION_FAILED", inv.request_id)


RUNTIME = Runtime("vercel", Adapter, environment, http_routes, failure_response)
