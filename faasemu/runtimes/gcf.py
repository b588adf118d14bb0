"""Google Cloud Functions (Cloud Run functions): the Functions Framework's Flask app, run in the worker.

On the platform a function is served by Google's `functions-framework`: a Flask app whose routes
call `fn(request)`, `fn(cloud_event)` or `fn(data, context)` by signature type, with a 500 error
handler that adds `X-Google-Status: crash`. faasemu builds the same app from the user's installed
Flask (the SDK is imported inside the Adapter only) and calls it through WSGI with an environ made
from the neutral request, so Flask itself does routing, `make_response`, `abort()` pages and HEAD.
Events reach it as the platform sends them: an HTTP POST, a binary-mode CloudEvent for `http` and
`cloudevent` functions, the legacy `{"context", "data"}` JSON for `event` functions. `typed` functions
(`@functions_framework.typed`) get their input class built `from_dict` of the JSON body. Functions
decorated with `@functions_framework.aio.http` / `.aio.cloud_event`, and every function when
`FUNCTION_USE_ASGI` is set (`functions-framework --asgi`), are served as functions-framework's ASGI
mode serves them: a Starlette app whose routes give the function a Starlette `Request`, run here
as uvicorn would run it. The handler file is loaded as functions-framework loads it: a module named
after the file that is a package over its own folder, so `main.py` may use relative imports.

Checked against GoogleCloudPlatform/functions-framework-python 3.10 (`__init__.py`: create_app,
_configure_app, crash_handler, the view wrappers, `errorhandler`; `_function_registry.py`:
load_function_module; `_typed_event.py`; `aio/__init__.py`; `execution_id.py`; `event_conversion.py`),
uvicorn's httptools protocol (the ASGI scope and what it makes of the messages sent back) and Google's
docs on timeouts (2nd gen / Cloud Run: 504).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import dataclasses
import hashlib
import inspect
import io
import json
import os
import sys
import types
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

from faasemu.events import model as events
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes import google_sources
from faasemu.runtimes.adapter import BaseAdapter, describe_module
from faasemu.runtimes.aws_common import order_value
from faasemu.runtimes.base import Delivery, DeliveryFailed, EntryPointError, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime
from faasemu.runtimes.drivers import AsgiExchange, HandlerLoop, run_wsgi

SIGNATURES = ("http", "cloudevent", "event", "typed")
# What click reads as true in FUNCTION_USE_ASGI, the variable behind `functions-framework --asgi`.
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_ASGI_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]  # aio's http routes
CRASH_HEADER = "X-Google-Status"  # functions-framework's _FUNCTION_STATUS_HEADER_FIELD
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Cloud Run's answer when a request outlives the function's timeout (2nd gen; 1st gen said 408).
TIMEOUT_BODY = b"upstream request timeout"
# What Cloud Run answers when the instance died under a request (exit, crash, memory limit).
UNAVAILABLE_BODY = "Service Unavailable"
# Bodies a WSGI environ carries as CONTENT_TYPE / CONTENT_LENGTH rather than HTTP_*.
_CGI_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
_PATH_SAFE = "/%:@!$&'()*+,;=~"


# -- configuration (pure) ------------------------------------------------------------------------


def default_signature(spec: FunctionSpec) -> str:
    """The manifest's `signature`, else `http` for an HTTP trigger and `cloudevent` for events only."""
    configured = spec.options.get("signature")
    if configured:
        return configured
    return "cloudevent" if spec.events and not spec.http else "http"


def revision(spec: FunctionSpec) -> str:
    """`K_REVISION` in Cloud Run's form `<service>-<5 digits>-<3 letters>`, stable per function."""
    digest = hashlib.sha256(spec.name.encode()).digest()
    return f"{spec.name}-00001-" + "".join("abcdefghijklmnopqrstuvwxyz"[b % 26] for b in digest[:3])


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What Cloud Run functions set (the manifest's `env` goes on top in the pool).

    FUNCTION_SIGNATURE_TYPE is the configured one; as functions-framework does, the worker
    rewrites it once a decorator has said otherwise (`_function_registry.get_func_signature_type`).
    """
    return {
        "FUNCTION_TARGET": spec.handler_attr or "",
        "FUNCTION_SIGNATURE_TYPE": default_signature(spec),
        "K_SERVICE": spec.name,
        "K_REVISION": revision(spec),
        "K_CONFIGURATION": spec.name,
        "PORT": "8080",
    }


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    return spec.http


def execution_id(request_id: str) -> str:
    """A 12-character [0-9A-Za-z] id like functions-framework's, derived from the request id."""
    number = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:12], "big")
    chars = []
    for _ in range(12):
        number, index = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[index])
    return "".join(chars)


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """Cloud Run's answers when the instance, not the function, failed.

    timeout: 504 "upstream request timeout" (functions/docs/configuring/timeout: 2nd gen returns
    504 at once). An instance that exited, crashed or passed its memory limit under a request, or
    one that could not start (a load error, a missing SDK): 503, here with the reason appended.
    """
    plain = [("content-type", "text/plain; charset=utf-8")]
    if kind == "timeout":
        return HttpResponse(504, plain, TIMEOUT_BODY)
    return HttpResponse(503, plain, f"{UNAVAILABLE_BODY}\n\n{message}\n".encode())


# -- requests (pure) -----------------------------------------------------------------------------


def wsgi_environ(request: HttpRequest, exec_id: str) -> dict[str, Any]:
    """The WSGI environ gunicorn would hand the Flask app for this request.

    PATH_INFO is the decoded path as latin-1 text (PEP 3333); repeated headers are comma-joined and
    names with an underscore are dropped (gunicorn's default `header_map = "drop"`);
    `Function-Execution-Id` is added when the client sent none, as functions-framework's
    WsgiMiddleware does. The body is whole, so the input is marked terminated (chunked uploads).
    """
    host = request.header("host") or request.host
    server, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": request.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": request.query,
        "RAW_URI": urllib.parse.quote(request.path, safe=_PATH_SAFE) + (f"?{request.query}" if request.query else ""),
        "SERVER_NAME": server or request.host,
        "SERVER_PORT": port or ("443" if request.scheme == "https" else "80"),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.source_ip,
        "REMOTE_PORT": "0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers:
        if "_" in name:
            continue
        key = _CGI_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ and key.startswith("HTTP_") else value
    if request.body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    environ.setdefault("HTTP_FUNCTION_EXECUTION_ID", exec_id)
    return environ


def legacy_event(event: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent as a 1st-gen background event: `{"context": {...}, "data": ...}`.

    `resource` is the source, with `/subject` when there is one (the shape event_conversion gives
    Google's own sources). Binary data travels as base64 text, as in legacy Pub/Sub payloads.
    """
    resource = str(event.get("source", ""))
    if event.get("subject"):
        resource = f"{resource}/{event['subject']}"
    data = event["data_base64"] if "data_base64" in event else event.get("data")
    return {
        "context": {"eventId": event["id"], "timestamp": event.get("time", ""), "eventType": event["type"],
                    "resource": resource},
        "data": data,
    }


def event_request(delivery: Delivery, signature: str, request_id: str, binary: bool | None = None) -> HttpRequest:
    """The POST that delivers one event: a binary-mode CloudEvent (Eventarc), or for `event`
    functions the legacy JSON (unless `binary`: Google event types functions-framework converts)."""
    if binary is None:
        binary = signature != "event"
    if binary:
        headers, body = events.to_binary(delivery.event)
    else:
        body = events.to_structured(legacy_event(delivery.event))
        headers = [("content-type", "application/json")]
    headers = [("host", "127.0.0.1:8080"), *headers, ("content-length", str(len(body))),
               ("function-execution-id", execution_id(request_id))]
    return HttpRequest("POST", "/", headers=headers, body=body)


def status_of(status_line: str) -> int:
    """`"201 CREATED"` -> 201."""
    return int(status_line.split(" ", 1)[0])


def asgi_scope(request: HttpRequest, exec_id: str) -> dict[str, Any]:
    """The HTTP scope uvicorn's httptools protocol builds (what functions-framework's ASGI mode runs on).

    Header names are lower-cased bytes in arrival order; `Function-Execution-Id` is appended when the
    client sent none, as functions-framework's AsgiMiddleware does. `server` is the container's port.
    """
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers]
    if not any(name == b"function-execution-id" for name, _ in headers):
        headers.append((b"function-execution-id", exec_id.encode("latin-1")))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "server": ("127.0.0.1", 8080), "client": (request.source_ip, 0), "scheme": request.scheme,
        "root_path": "", "headers": headers, "state": {}, "method": request.method, "path": request.path,
        "raw_path": urllib.parse.quote(request.path, safe=_PATH_SAFE).encode("ascii"),
        "query_string": request.query.encode("latin-1"),
    }


def _uvicorn_500() -> HttpResponse:
    """uvicorn's own answer when the application raised or ended before it started a response."""
    return HttpResponse(500, [("content-type", "text/plain; charset=utf-8"), ("content-length", "21"),
                              ("connection", "close")], b"Internal Server Error")


async def run_asgi(app: Callable[..., Any], scope: dict[str, Any], body: bytes) -> HttpResponse:
    """Call an ASGI app as uvicorn would (drivers.AsgiExchange): names lower-cased, no body for HEAD.
    After the response started, uvicorn cuts it off when the app raises; here it ends where it stopped."""
    exchange = AsgiExchange(scope, body, lower_names=True, head_body=False)
    try:
        await exchange.run(app)
    except Exception:
        pass
    return exchange.response or _uvicorn_500()


# -- the function ----------------------------------------------------------------------------------


def find_function(module: types.ModuleType, target: str) -> Callable[..., Any]:
    """The target, with functions-framework's rules: it must exist and be a plain function."""
    where = describe_module(module)
    if not hasattr(module, target):
        found = ", ".join(f"'{name}'" for name in dir(module) if isinstance(getattr(module, name), types.FunctionType))
        raise EntryPointError(f"File {where} is expected to contain a function named '{target}'. "
                              f"Found: {found or 'no functions'} instead")
    function = getattr(module, target)
    if not isinstance(function, types.FunctionType):
        raise EntryPointError(f"The function defined in file {where} as '{target}' needs to be of type function. "
                              f"Got: invalid type {type(function)}")
    return function


def _registry() -> types.ModuleType | None:
    """functions-framework's decorator registry, if it is imported (it is whenever it is installed)."""
    return sys.modules.get("functions_framework._function_registry")


def resolve_signature(target: str, configured: str) -> str:
    """Decorator first (`@functions_framework.http`, `.cloud_event`, `.typed` and the `aio` ones record the
    function's name in `_function_registry.REGISTRY_MAP`), then the manifest, as get_func_signature_type
    orders them."""
    registry = _registry()
    if registry is None:
        return configured
    registered = getattr(registry, "REGISTRY_MAP", {}).get(target, "")
    if registered and registered not in SIGNATURES:
        raise EntryPointError(f"'{target}' has the {registered!r} signature (@functions_framework.{registered}), "
                              f"which faasemu's gcf runtime does not run; it runs {', '.join(SIGNATURES)}")
    return registered or configured


def uses_asgi(target: str, environ: Any = os.environ) -> bool:
    """Whether functions-framework would serve the target in its ASGI mode: it is decorated with
    `@functions_framework.aio.*` (create_app hands those to create_asgi_app_from_module), or the
    function's environment sets FUNCTION_USE_ASGI (the `--asgi` flag's variable)."""
    registry = _registry()
    if registry is not None and target in getattr(registry, "ASGI_FUNCTIONS", ()):
        return True
    return str(environ.get("FUNCTION_USE_ASGI", "")).strip().lower() in _TRUE


def input_type(target: str) -> Any:
    """The class a typed function takes (`@typed(T)` or the first parameter's annotation)."""
    registry = _registry()
    return getattr(registry, "INPUT_TYPE_MAP", {}).get(target) if registry is not None else None


def user_traceback(exc: BaseException, function: Callable[..., Any] | None) -> types.TracebackType | None:
    """The exception's traceback from the user's function down; whole when that frame is absent."""
    code = getattr(function, "__code__", None)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    return tb or exc.__traceback__


def crash_handler(error: Exception) -> tuple[str, int, dict[str, str]]:
    """functions-framework's 500 handler: the error's text (not an HTML page), marked as a crash."""
    return str(error), 500, {CRASH_HEADER: "crash"}


class Adapter(BaseAdapter):
    """One function's Flask app, configured as functions-framework's `create_app` configures it."""

    def __init__(self, spec: FunctionSpec) -> None:
        super().__init__(spec)
        flask = self.require("flask", "flask", "gcf")
        self.flask: Any = flask
        self.signature = default_signature(spec)
        source_dir = os.path.dirname(spec.handler_file) if spec.handler_file else os.getcwd()
        # Named after the target, templates beside the source, as create_app does; root_path is the
        # source folder (the platform's cwd), so a `static/` folder there is served as it is there.
        self.app = flask.Flask(spec.handler_attr or spec.name, template_folder=os.path.join(source_dir, "templates"),
                               root_path=source_dir)
        self.app.register_error_handler(500, crash_handler)
        # A handler's exception leaves the app, so the worker reports its traceback; `error_response`
        # then gives the answer Flask's handle_exception + crash_handler would have given.
        self.app.config["PROPAGATE_EXCEPTIONS"] = True
        try:
            import functions_framework
        except ImportError:  # plain `fn(request)` functions need only Flask
            pass
        else:
            # create_app points `functions_framework.errorhandler` (until then a do-nothing placeholder)
            # at the app's own before it imports the user's module, so `@functions_framework.errorhandler(E)`
            # registers a Flask error handler: a handled exception is that handler's answer, not a crash.
            functions_framework.errorhandler = self.app.errorhandler
        # functions-framework imports the user's module inside an app context: `current_app` works there.
        self._import_context: Any = self.app.app_context()
        self._import_context.push()
        self.input_type: Any = None
        self.asgi: Any = None  # the Starlette app, in ASGI mode
        self.loop: HandlerLoop | None = None  # ASGI mode only
        self._asgi_error: BaseException | None = None

    def bind(self, module: types.ModuleType) -> None:
        if self._import_context is not None:
            self._import_context.pop()
            self._import_context = None
        target = self.spec.handler_attr
        if not target:
            raise EntryPointError(f"handler {self.spec.handler!r} names no function: write it as main.py:function")
        self.handler = find_function(module, target)
        self.signature = resolve_signature(target, self.signature)
        os.environ["FUNCTION_SIGNATURE_TYPE"] = self.signature
        if uses_asgi(target):
            self._configure_asgi()
            return
        if self.signature == "typed":
            self.input_type = input_type(target)
            if self.input_type is None:
                raise EntryPointError(f"'{target}' has the 'typed' signature but no input type: decorate it with "
                                      "@functions_framework.typed(InputType), or annotate its parameter")
        if inspect.iscoroutinefunction(self.handler):
            # functions-framework's Flask server calls it and gets a coroutine back: an http function answers
            # 500, an event function answers OK without having run. Said once, so the user knows why.
            print(f"gcf: '{target}' in {describe_module(module)} is an async def, which functions-framework's Flask "
                  "server does not await: decorate it with @functions_framework.aio.http or "
                  "@functions_framework.aio.cloud_event, or set FUNCTION_USE_ASGI: 'true' in its env "
                  "(functions-framework --asgi)", file=sys.stderr)
        self._configure()

    # -- the app's routes, per signature (functions-framework's _configure_app) ------------------

    def _configure(self) -> None:
        from werkzeug.routing import Rule

        app, rules = self.app, self.app.url_map
        if self.signature == "http":
            rules.add(Rule("/", defaults={"path": ""}, endpoint="run"))
            rules.add(Rule("/robots.txt", endpoint="error"))  # never reach the function there
            rules.add(Rule("/favicon.ico", endpoint="error"))
            rules.add(Rule("/<path:path>", endpoint="run"))
            app.view_functions["run"] = self._http_view
            app.view_functions["error"] = lambda: self.flask.abort(404, description="Not Found")
            return
        if self.signature == "cloudevent":
            self.require("cloudevents.http", "cloudevents<2", "gcf")  # the 1.x SDK functions-framework pins
            view = self._cloud_event_view
        elif self.signature == "typed":
            view = self._typed_view
        else:
            self.require("functions_framework.event_conversion", "functions-framework", "gcf")
            view = self._event_view
            rules.add(Rule("/", endpoint="get", methods=["GET"]))  # a GET / answers empty
            app.view_functions["get"] = lambda: ""
        rules.add(Rule("/", defaults={"path": ""}, endpoint="run", methods=["POST"]))
        rules.add(Rule("/<path:path>", endpoint="run", methods=["POST"]))
        app.view_functions["run"] = view

    def _http_view(self, path: str) -> Any:
        return self._call(self.flask.request._get_current_object())

    def _cloud_event_view(self, path: str) -> str:
        import cloudevents.exceptions as ce_errors
        from cloudevents.http import from_http

        request = self.flask.request
        try:
            event = from_http(request.headers, request.get_data())
        except (ce_errors.MissingRequiredFields, ce_errors.InvalidRequiredFields) as exc:
            event = self._background_to_cloud_event(exc)
        self._call(event)
        return "OK"

    def _background_to_cloud_event(self, error: Exception) -> Any:
        """Not a CloudEvent: functions-framework tries the legacy event format before a 400."""
        request = self.flask.request
        try:
            from functions_framework.event_conversion import background_event_to_cloud_event
            from functions_framework.exceptions import EventConversionException
        except ImportError:
            self.flask.abort(400, description=f"Function was defined with FUNCTION_SIGNATURE_TYPE=cloudevent but "
                                              f"parsing CloudEvent failed: {error!r}")
        try:
            return background_event_to_cloud_event(request)
        except EventConversionException as exc:
            self.flask.abort(400, description=(
                "Function was defined with FUNCTION_SIGNATURE_TYPE=cloudevent but parsing CloudEvent failed and "
                f"converting from background event to CloudEvent also failed.\nGot HTTP headers: {request.headers}\n"
                f"Got data: {request.get_data()}\nGot CloudEvent exception: {error!r}\n"
                f"Got background event conversion exception: {exc!r}"))

    def _typed_view(self, path: str) -> Any:
        """The JSON body through `InputType.from_dict`, the result through `to_dict` (builtins as they are);
        anything that fails, the user's error included, is functions-framework's FunctionsFrameworkException."""
        from functions_framework.exceptions import FunctionsFrameworkException

        try:
            value = self.input_type.from_dict(self.flask.request.get_json())
            result = self._call(value)
            if result is None:
                return "", 200
            if result.__class__.__module__ == "builtins":
                return result
            if not callable(getattr(result, "to_dict", None)):
                raise AttributeError(f"The type {type(result)} does not have the required method called  'to_dict'.")
            return json.dumps(result.to_dict())
        except Exception as exc:
            wrapped = FunctionsFrameworkException("Function execution failed with the error")
            wrapped.faasemu_cause = exc  # what the console shows (invoke_http)
            raise wrapped from exc

    def _event_view(self, path: str) -> str:
        """`fn(data, context)`: a convertible Google CloudEvent, a binary one, or the legacy JSON."""
        from cloudevents.sdk.converters import is_binary
        from functions_framework import event_conversion
        from functions_framework.background_event import BackgroundEvent
        from google.cloud.functions.context import Context

        request = self.flask.request
        with warnings.catch_warnings():  # event_conversion calls cloudevents' deprecated is_binary
            warnings.simplefilter("ignore", DeprecationWarning)
            convertible = event_conversion.is_convertable_cloud_event(request)
        if convertible:
            data, context = event_conversion.cloud_event_to_background_event(request)
        elif is_binary(request.headers):
            data = request.get_data()
            headers = request.headers
            context = Context(eventId=headers.get("ce-eventId"), timestamp=headers.get("ce-timestamp"),
                              eventType=headers.get("ce-eventType"), resource=headers.get("ce-resource"))
        else:
            marshalled = event_conversion.marshal_background_event_data(request)
            if not marshalled:
                self.flask.abort(400)
            event = BackgroundEvent(**marshalled)
            data, context = event.data, Context(**event.context)
        self._call(data, context)
        return "OK"

    def _call(self, *args: Any) -> Any:
        return self.bound()(*args)

    # -- ASGI mode (functions-framework's aio: _create_asgi_app_with_function) ---------------------

    def _configure_asgi(self) -> None:
        """A Starlette app with aio's routes and wrappers. Its crash answer is aio's
        ExceptionHandlerMiddleware's; the exception is kept for the worker to report (the console shows
        the traceback, as functions-framework logs it)."""
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        if self.signature == "typed":
            raise EntryPointError("ASGI server does not support typed events (signature type: 'typed'). ")
        if self.signature == "event":
            raise EntryPointError("ASGI server does not support legacy background events (signature type: "
                                  "'event'). Use 'cloudevent' signature type instead.")
        if self.signature == "http":
            routes = [Route("/", self._asgi_http, methods=_ASGI_METHODS),
                      Route("/robots.txt", _asgi_not_found, methods=["GET"]),
                      Route("/favicon.ico", _asgi_not_found, methods=["GET"]),
                      Route("/{path:path}", self._asgi_http, methods=_ASGI_METHODS)]
        else:
            self.require("cloudevents.http", "cloudevents<2", "gcf")
            routes = [Route("/{path:path}", self._asgi_cloud_event, methods=["POST"]),
                      Route("/", self._asgi_cloud_event, methods=["POST"])]
        self.asgi = Starlette(routes=routes, middleware=[Middleware(_CrashAnswer)])
        self.loop = HandlerLoop()
        atexit.register(self.loop.close)

    async def _asgi_run(self, argument: Any) -> Any:
        """The function itself: awaited when it is a coroutine function, else on a thread of the loop's
        executor with the context copied, as aio does."""
        from starlette.exceptions import HTTPException

        function = self.bound()
        try:
            if inspect.iscoroutinefunction(function):
                return await function(argument)
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(None, context.run, function, argument)
        except HTTPException:  # Starlette answers it, as Flask answers abort(): not a crash
            raise
        except Exception as exc:
            self._asgi_error = exc
            raise

    async def _asgi_http(self, request: Any) -> Any:
        """aio's http wrapper: str -> Response, dict -> JSONResponse, (content, status), None -> 500."""
        from starlette.exceptions import HTTPException
        from starlette.responses import JSONResponse, Response

        result = await self._asgi_run(request)
        if isinstance(result, str):
            return Response(result)
        if isinstance(result, dict):
            return JSONResponse(result)
        if isinstance(result, tuple) and len(result) == 2:
            content, status_code = result
            if isinstance(content, dict):
                return JSONResponse(content, status_code=status_code)
            return Response(content, status_code=status_code)
        if result is None:
            raise HTTPException(status_code=500, detail="No response returned")
        return result

    async def _asgi_cloud_event(self, request: Any) -> Any:
        """aio's cloudevent wrapper: the SDK's CloudEvent from the request, or a 400 naming why not."""
        from cloudevents.http import from_http
        from starlette.exceptions import HTTPException
        from starlette.responses import Response

        data = await request.body()
        try:
            event = from_http(request.headers, data)
        except Exception as exc:
            raise HTTPException(400, detail=f"Bad Request: Got CloudEvent exception: {exc!r}") from None
        await self._asgi_run(event)
        return Response("OK")

    # -- the runtime interface -------------------------------------------------------------------

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        if self.asgi is not None and self.loop is not None:
            self._asgi_error = None
            scope = asgi_scope(request, execution_id(inv.request_id))
            response = self.loop.run(run_asgi(self.asgi, scope, request.body))
            error, self._asgi_error = self._asgi_error, None
            if error is not None:  # answered by the crash middleware; the worker reports the exception
                self.keep_response(error, response)  # what error_response answers
                raise error.with_traceback(user_traceback(error, self.handler))
            return response
        try:
            return run_wsgi(self.app.wsgi_app, wsgi_environ(request, execution_id(inv.request_id)))
        except Exception as exc:
            # The console shows the user's error and frames, not Flask's dispatch above them (nor the
            # FunctionsFrameworkException a typed function's error is wrapped in: the answer is the same).
            error = getattr(exc, "faasemu_cause", exc)
            if error is exc:
                raise exc.with_traceback(user_traceback(exc, self.handler))  # noqa: B904 (the same exception)
            raise error.with_traceback(user_traceback(error, self.handler)) from error.__cause__

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """POST the event as the platform would; a non-2xx answer is a failed delivery (retried if
        the function has retries on). A handler's exception propagates as the failure itself."""
        delivery = dataclasses.replace(delivery, event=source_event(self.spec, delivery.event))
        binary = self.signature != "event" or _google_event_type(delivery.event.get("type"))
        request = event_request(delivery, self.signature, inv.request_id, binary)
        response = self.invoke_http(request, inv)
        if not 200 <= response.status < 300:
            text = response.body.decode("utf-8", "replace").strip()
            raise DeliveryFailed(f"the function answered {response.status}: {text[:500]}")

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """Flask's answer to an unhandled exception: InternalServerError through crash_handler (in ASGI
        mode, the answer the app gave)."""
        answered = self.partial_response(exc)
        if answered is not None:
            return answered
        from werkzeug.exceptions import InternalServerError

        error = InternalServerError(original_exception=exc)
        with self.app.app_context():
            response = self.app.make_response(crash_handler(error))
        return HttpResponse(response.status_code, [(str(k), str(v)) for k, v in response.headers.items()],
                            response.get_data())


class _CrashAnswer:
    """aio's ExceptionHandlerMiddleware: an exception from the function is a plain-text 500 marked as a
    crash (`X-Google-Status: crash`). It does not log here: the worker reports the exception instead."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 500,
                        "headers": [[b"content-type", b"text/plain"], [CRASH_HEADER.encode(), b"crash"]]})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})


async def _asgi_not_found(request: Any) -> Any:
    from starlette.exceptions import HTTPException

    raise HTTPException(status_code=404, detail="Not Found")


def source_event(spec: FunctionSpec, event: dict[str, Any]) -> dict[str, Any]:
    """The CloudEvent the function's `event_source` (pubsub, storage) sends for `event`; else `event` itself."""
    source = spec.options.get("event_source")
    if source == "pubsub":
        value = order_value(event, spec.order_key) if spec.order_key else None
        key = None if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return google_sources.pubsub_event(event, spec.name, key)
    if source == "storage":
        return google_sources.storage_event(event)
    return event


def _google_event_type(event_type: Any) -> bool:
    """Whether functions-framework turns this CloudEvent type into a legacy (data, context) pair."""
    try:
        from functions_framework import event_conversion
    except ImportError:
        return False
    return event_type in getattr(event_conversion, "_CE_TO_BACKGROUND_TYPE", {})


RUNTIME = Runtime("gcf", Adapter, environment, http_routes, failure_response)
