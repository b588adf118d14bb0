"""Knative Functions: func-python's ASGI middleware (`new()` or `handle`), and parliament's `main(context)`.

A Knative function is a whole service: func-python (knative-extensions/func-python
`src/func_python/http.py`, `cloudevent.py`) wraps the user's object in an ASGI application served
by hypercorn. The worker runs func-python's own `ASGIApplication` classes on an asyncio loop of
its own, and this module plays hypercorn's part (the scope, the `receive` messages, and what it
does with the messages sent back, after `hypercorn/protocol/http_stream.py`). Events come as a
Knative Broker delivers them: a binary-mode CloudEvent POST, whose status decides retries and
whose CloudEvent response (a reply) is published back to the bus. Standard library only at
module level; func-python, cloudevents and flask are imported inside the adapter.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import traceback
import urllib.parse
from collections.abc import Iterator, Mapping
from types import ModuleType, SimpleNamespace
from typing import Any

from faasemu.events import ingress
from faasemu.events import model as events
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, describe_module, module_functions
from faasemu.runtimes.base import Delivery, DeliveryFailed, EntryPointError, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime
from faasemu.runtimes.drivers import HandlerLoop

# The handler is imported as func's scaffolding says (`from function import new` in the project folder):
# the "package" import style of project/platforms.py and workers/importer.py.
NAME = "knative"
CHUNK = 65536  # hypercorn reads the socket 64 KiB at a time: a body reaches the app in such pieces
# knative/eventing pkg/kncloudevents SelectiveRetry retries these and every 5xx; any other
# non-2xx answer fails the delivery at once (data-plane spec: 400 and "other 4xx" are not retried).
RETRIED = frozenset({404, 408, 409, 429})
_TEXT = "text/plain; charset=utf-8"
ENTRY_POINTS = "'new' (returning an object with async handle), 'handle' or 'main'"


# -- what the platform sets and answers by itself ------------------------------------------------


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What Knative Serving sets in every revision's container (the first revision of a service)."""
    return {"K_SERVICE": spec.name, "K_CONFIGURATION": spec.name, "K_REVISION": f"{spec.name}-00001",
            "PORT": "8080"}


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    return spec.http


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """Knative's queue-proxy answers: a timeout is 504 `request timeout` (serving pkg/http/handler
    timeout.go, as sharedmain/handlers.go sets it up); a container that died answers the reverse
    proxy's 502 with the error text (knative.dev/pkg network/error_handler.go uses http.Error)."""
    if kind == "timeout":
        return HttpResponse(504, [("content-type", _TEXT)], b"request timeout")
    status = 503 if kind == "unavailable" else 502
    return HttpResponse(status, [("content-type", _TEXT), ("x-content-type-options", "nosniff")],
                        f"{message}\n".encode())


def error_response(exc: BaseException, inv: Invocation) -> HttpResponse:
    """hypercorn's own answer when the handler raised before the server had produced one."""
    return HttpResponse(500, [("content-length", "0"), ("connection", "close")], b"")


# -- the request as hypercorn gives it to the ASGI application ----------------------------------


def mount_point(route: str) -> str:
    """Where a function's service is mounted: the literal part of its trigger before any parameter.

    >>> mount_point("/orders/{id}"), mount_point("/hello"), mount_point("/{path+}")
    ('/orders', '/hello', '')
    """
    return route.split("{", 1)[0].rstrip("/")


def service_path(request: HttpRequest) -> str:
    """The path the function's own service sees: a Knative function owns its host, so the part of
    the gateway path below the trigger's mount point (`/orders/5` on `/orders/{id}` is `/5`)."""
    prefix = mount_point(request.route)
    path = request.path
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix):]
    return path or "/"


def build_scope(request: HttpRequest) -> dict[str, Any]:
    """The HTTP/1.1 scope hypercorn builds (same keys and order). `server` is the container port
    the queue-proxy connects to; the gateway decoded the path, so `raw_path` is it quoted again."""
    path = service_path(request)
    return {
        "type": "http", "http_version": "1.1", "asgi": {"spec_version": "2.1", "version": "3.0"},
        "method": request.method, "scheme": request.scheme, "path": path,
        "raw_path": urllib.parse.quote(path, safe="/:@!$&'()*+,;=~").encode("ascii"),
        "query_string": request.query.encode("latin-1"), "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
        "client": (request.source_ip, 0), "server": ("127.0.0.1", 8080), "state": {}, "extensions": {},
    }


def body_messages(body: bytes) -> list[dict[str, Any]]:
    """`http.request` messages as hypercorn sends them: each chunk with more_body, then an empty last one."""
    chunks = [{"type": "http.request", "body": body[i:i + CHUNK], "more_body": True}
              for i in range(0, len(body), CHUNK)]
    return [*chunks, {"type": "http.request", "body": b"", "more_body": False}]


class ResponseRecorder:
    """hypercorn's `HTTPStream.app_send` for HTTP/1.1: the same checks, errors and body rules,
    collecting the response instead of writing it to a socket."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.state = "REQUEST"
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.closed = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.state == "REQUEST":
            headers = []
            for name, value in message.get("headers", []):
                if name[0] == b":"[0]:
                    raise ValueError("Pseudo headers are not valid")
                headers.append((bytes(name).strip(), bytes(value).strip()))  # a str raises TypeError, as there
            self.status = int(message["status"])
            self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
            self.state = "RESPONSE"
        elif kind == "http.response.body" and self.state == "RESPONSE":
            suppressed = self.method == "HEAD" or 100 <= self.status < 200 or self.status in (204, 304)
            if not suppressed and message.get("body", b"") != b"":
                self.body += bytes(message.get("body", b""))  # a str body raises TypeError, as there
            if not message.get("more_body", False):
                self.state = "CLOSED"
                self.closed.set()
        else:
            raise RuntimeError(f"Unexpected message type, {kind} given the state ASGIHTTPState.{self.state}")

    def response(self) -> HttpResponse:
        """What the client got. Nothing sent: hypercorn's 500. A response the application broke off
        (an exception after it started) is cut short there; here it ends where the handler stopped."""
        if self.state == "REQUEST":
            return HttpResponse(500, [("content-length", "0"), ("connection", "close")], b"")
        return HttpResponse(self.status, self.headers, bytes(self.body))


async def serve_asgi(app: Any, scope: dict[str, Any], body: bytes) -> tuple[HttpResponse, BaseException | None]:
    """One request through an ASGI application, as hypercorn runs it; returns the response and the
    exception that escaped the application (hypercorn logs it as "Error in ASGI Framework")."""
    recorder = ResponseRecorder(scope["method"])
    pending = body_messages(body)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await recorder.closed.wait()  # hypercorn answers further reads only when the stream closes
        return {"type": "http.disconnect"}

    try:
        await app(scope, receive, recorder.send)
    except Exception as exc:
        return recorder.response(), exc
    return recorder.response(), None


# -- events: what a Knative Broker sends, and what it makes of the answer -------------------------


def delivery_request(delivery: Delivery, spec: FunctionSpec) -> HttpRequest:
    """The broker's POST to the subscriber: binary mode, `Prefer: reply` (brokers MUST send it),
    Go's HTTP client headers, to the service root."""
    ce_headers, body = events.to_binary(delivery.event)
    host = f"{spec.name}.default.svc.cluster.local"  # the subscriber's address: <service>.<namespace>
    headers = [("host", host), ("user-agent", "Go-http-client/1.1"), ("content-length", str(len(body))),
               *ce_headers, ("prefer", "reply"), ("accept-encoding", "gzip")]
    return HttpRequest("POST", "/", "", headers, body, host=host)


def retryable(status: int) -> bool | None:
    """None when the delivery succeeded (2xx), else whether the broker retries it."""
    if 200 <= status < 300:
        return None
    return status in RETRIED or status >= 500


def reply_event(response: HttpResponse) -> dict[str, Any] | None:
    """The CloudEvent in a delivery's response, which the broker publishes, or None.

    Binary (`ce-specversion`) or structured mode, in a 2xx other than 202 (the data-plane spec:
    "Responses with a 202 response code MUST NOT be processed as reply events"). A malformed
    event raises `ingress.IngressError`.
    """
    if retryable(response.status) is not None or response.status == 202:
        return None
    headers = {name.lower(): value for name, value in response.headers}
    content_type = headers.get("content-type")
    if events.media_type(content_type) != ingress.STRUCTURED and "ce-specversion" not in headers:
        return None
    return ingress.parse_ingress(content_type, headers, response.body)[0]


def publish(event: dict[str, Any]) -> None:
    """Hand a reply event to the bus, which routes it like any other (structured mode, so the
    chaos effect log sees its type, source and data)."""
    import urllib.error
    import urllib.request

    url = os.environ.get("FAASEMU_EVENTS_URL")
    if not url:
        print(f"knative: no FAASEMU_EVENTS_URL; reply event {event.get('id')} dropped", file=sys.stderr)
        return
    request = urllib.request.Request(url, events.to_structured(event), {"content-type": ingress.STRUCTURED})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryFailed(f"the broker could not take the reply event: {exc}") from exc


def failed_delivery(name: str, response: HttpResponse) -> DeliveryFailed:
    """The delivery's failure as the console and `faasemu events` show it, marked as Knative retries it."""
    from http import HTTPStatus

    again = bool(retryable(response.status))
    try:
        answered = f"{response.status} {HTTPStatus(response.status).phrase}"
    except ValueError:
        answered = str(response.status)
    text = response.body[:300].decode("utf-8", "replace").strip()
    note = "retried" if again else "not retried (Knative dead-letters it at once)"
    return DeliveryFailed(f"{name} answered {answered}" + (f": {text}" if text else "") + f"; {note}", retryable=again)


# -- the handler styles ----------------------------------------------------------------------------


class Watched:
    """The user's function as func-python sees it (`hasattr` answers as for the object itself),
    noting the exception its `handle` raised: func-python swallows it into a 500, and the console
    should still show the traceback."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self.error: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._target.handle(scope, receive, send)
        except Exception as exc:
            self.error = exc
            raise


def parliament_app(module: ModuleType, record: SimpleNamespace) -> Any:
    """The Flask app parliament (boson-project/parliament `parliament/server.py`, the runtime of
    func's older Python templates; reproduced, as few still have it) serves `main(context)` with:
    `/` for GET and POST, the health paths, a CloudEvent in `context.cloud_event` when the POST
    holds one, a returned CloudEvent sent in binary mode, an exception answered `Function raised ...`, 500."""
    import flask

    try:
        from cloudevents import http as ce_http  # cloudevents < 2, what parliament imports
    except ImportError:
        from cloudevents.v1 import http as ce_http  # the same API in 2.x

    app = flask.Flask("parliament.server")

    def invoke(context: ParliamentContext) -> Any:
        try:
            resp = module.main(context)
            if isinstance(resp, ce_http.CloudEvent):
                headers, body = _quietly(ce_http.to_binary, resp)
                return body, headers
            return resp
        except Exception as err:
            record.error = err
            return f"Function raised {err}", 500

    @app.route("/", methods=["POST"])
    def handle_post() -> Any:
        context = ParliamentContext(flask.request)
        try:
            context.cloud_event = _quietly(ce_http.from_http, flask.request.headers, flask.request.get_data())
        except Exception:
            app.logger.warning("No CloudEvent available")
        return invoke(context)

    @app.route("/", methods=["GET"])
    def handle_get() -> Any:
        return invoke(ParliamentContext(flask.request))

    app.add_url_rule("/health/liveness", "liveness", lambda: "OK")
    app.add_url_rule("/health/readiness", "readiness", lambda: "OK")
    return app


def _quietly(function: Any, *args: Any) -> Any:
    """cloudevents 1.6+ deprecates the API parliament calls: its warnings are not the user's."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return function(*args)


class ParliamentContext(Mapping[str, Any]):
    """parliament's `Context`: attributes, and a Mapping of the ones set (`'request' in context.keys()`)."""

    # the platform's order: iteration and repr follow it, not sorted
    __slots__ = ("request", "cloud_event")  # noqa: RUF023

    def __init__(self, request: Any) -> None:
        self.request = request
        self.cloud_event: Any = None

    def _set(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__slots__ if getattr(self, key) is not None}

    def __getitem__(self, item: str) -> Any:
        return self._set()[item]

    def __iter__(self) -> Iterator[str]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())


def run_wsgi(app: Any, request: HttpRequest) -> HttpResponse:
    """One request through parliament's Flask app (werkzeug builds the WSGI environ)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    builder = EnvironBuilder(path=service_path(request), base_url=f"{request.scheme}://{request.host}",
                             query_string=request.query, method=request.method, headers=request.headers,
                             data=request.body, environ_base={"REMOTE_ADDR": request.source_ip})
    try:
        app_iter, status, headers = run_wsgi_app(app, builder.get_environ(), buffered=True)
    finally:
        builder.close()
    body = b"".join(app_iter)
    return HttpResponse(int(status.split()[0]), list(headers.items()), body)


# -- the adapter ------------------------------------------------------------------------------------


class Adapter(BaseAdapter):
    """func-python's server for one function instance (or parliament's, for `main(context)`)."""

    def __init__(self, spec: FunctionSpec, publisher: Any = publish) -> None:
        super().__init__(spec)
        self.publish = publisher
        signature = spec.options.get("signature")
        self.kinds = {"http": signature or "http", "event": signature or "cloudevent"}
        self.style = ""
        self.watched: Watched | None = None
        self.apps: dict[str, Any] = {}
        self.record = SimpleNamespace(error=None)
        self.loop: HandlerLoop | None = None

    def bind(self, module: ModuleType) -> None:
        """The knative/func scaffolding imports `new`, else `handle`; parliament calls `main`."""
        name = self.spec.handler_attr or next((a for a in ("new", "handle", "main") if hasattr(module, a)), None)
        target = getattr(module, name, None) if name else None
        if not callable(target):
            where = describe_module(module)
            names = module_functions(module)
            wanted = f"'{name}'" if self.spec.handler_attr else ENTRY_POINTS
            raise EntryPointError(f"{where} is expected to export {wanted}. Found: {', '.join(names) or 'nothing'}.")
        if name == "main":
            self.require("flask", "flask", "knative-parliament")
            self.style = "parliament"
            self.apps["wsgi"] = parliament_app(module, self.record)
            return
        func_http = self.require("func_python.http", "func-python", NAME)
        self.style = "asgi"
        # func_python.http.serve: `new` is a constructor; anything else is a plain `handle`
        instance = target() if name == "new" else func_http.DefaultFunction(target)
        self.watched = Watched(instance)
        self.loop = HandlerLoop()
        first = self.app(self.kinds["event"] if self.spec.events and not self.spec.http else self.kinds["http"])
        try:  # the lifespan startup: start(os.environ.copy()) once, before any request
            self.loop.run(first.on_start())
        except Exception:  # hypercorn serves on without lifespan support
            print("ASGI Framework Lifespan error, continuing without Lifespan support", file=sys.stderr)
            traceback.print_exc()
        atexit.register(self._stop, first)

    def app(self, kind: str) -> Any:
        """func-python's `http` or `cloudevent` middleware around the one instance."""
        if kind not in self.apps:
            import logging

            middleware = self.require(f"func_python.{kind}", "func-python", NAME)
            logging.disable(logging.INFO if self.apps else logging.NOTSET)  # its startup notices: once
            try:
                self.apps[kind] = middleware.ASGIApplication(self.watched)
            finally:
                logging.disable(logging.NOTSET)
        return self.apps[kind]

    def _stop(self, app: Any) -> None:
        """The lifespan shutdown, when the worker exits: func-python calls `stop()`."""
        try:
            if self.loop is not None:  # registered only once bind() made the loop
                self.loop.run(app.on_stop())
        except Exception:
            traceback.print_exc()

    def exchange(self, request: HttpRequest, trigger: str) -> tuple[HttpResponse, BaseException | None]:
        """The response, and the handler's exception if it raised (or the one that broke the server)."""
        self.record.error = None
        if self.style == "parliament":
            response = run_wsgi(self.apps["wsgi"], request)
            return response, self.record.error
        if self.watched is None or self.loop is None:
            raise RuntimeError("Adapter.bind() was not called")
        self.watched.error = None
        app = self.app(self.kinds[trigger])
        response, crashed = self.loop.run(serve_asgi(app, build_scope(request), request.body))
        return response, self.watched.error or crashed

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        response, error = self.exchange(request, "http")
        if error is not None:
            self.keep_response(error, response)  # error_response answers it
            raise error
        return response

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        response, error = self.exchange(delivery_request(delivery, self.spec), "event")
        if retryable(response.status) is not None:
            raise failed_delivery(self.spec.name, response) from error
        if error is not None:  # the response was complete: the broker counts it; hypercorn logs it
            print("Error in ASGI Framework", file=sys.stderr)
            traceback.print_exception(error)
        try:
            reply = reply_event(response)
        except ingress.IngressError as exc:
            raise DeliveryFailed(f"{self.spec.name} replied with an invalid CloudEvent: {exc.message}",
                                 retryable=False) from error
        if reply is not None:
            self.publish(reply)

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """The response the server had produced when the handler raised (see `invoke_http`)."""
        return self.partial_response(exc) or error_response(exc, inv)


RUNTIME = Runtime("knative", Adapter, environment, http_routes, failure_response)
