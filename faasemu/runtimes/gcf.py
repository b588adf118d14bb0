"""Google Cloud Functions (Cloud Run functions): the Functions Framework's Flask app, run in the worker.

On the platform a function is served by Google's `functions-framework`: a Flask app whose routes
call `fn(request)`, `fn(cloud_event)` or `fn(data, context)` by signature type, with a 500 error
handler that adds `X-Google-Status: crash`. faasemu builds the same app from the user's installed
Flask (the SDK is imported inside the Adapter only) and calls it through WSGI with an environ made
from the neutral request, so Flask itself does routing, `make_response`, `abort()` pages and HEAD.
Events reach it as the platform sends them: an HTTP POST, a binary-mode CloudEvent for `http` and
`cloudevent` functions, the legacy `{"context", "data"}` JSON for `event` functions.

Checked against GoogleCloudPlatform/functions-framework-python 3.10 (`__init__.py`: create_app,
_configure_app, crash_handler, the three view wrappers; `_function_registry.py`; `execution_id.py`;
`event_conversion.py`) and Google's docs on timeouts (2nd gen / Cloud Run: 504).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import types
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from faasemu import events
from faasemu.runtimes.base import (
    Delivery,
    DeliveryFailed,
    EntryPointError,
    HttpRequest,
    HttpResponse,
    Invocation,
    MissingSDK,
)
from faasemu.spec import FunctionSpec, HttpTrigger

# What a campaign's spare workers import ahead of time (SPEC §6 lets them hold the SDKs).
PRELOAD = ("flask", "werkzeug", "cloudevents.http")  # not functions_framework: its presence tells whether user code imported it

SIGNATURES = ("http", "cloudevent", "event")
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


def run_wsgi(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> HttpResponse:
    """Call a WSGI app as a server would; the whole body is collected (streams are not streamed)."""
    started: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started["status"], started["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return HttpResponse(status_of(started["status"]), [(str(k), str(v)) for k, v in started["headers"]],
                        b"".join(chunks))


# -- the function ----------------------------------------------------------------------------------


def _describe(module: types.ModuleType) -> str:
    path = getattr(module, "__file__", None) or module.__name__
    relative = os.path.relpath(path, os.getcwd()) if os.path.isabs(path) else path
    return path if relative.startswith("..") else relative


def find_function(module: types.ModuleType, target: str) -> Callable[..., Any]:
    """The target, with functions-framework's rules: it must exist and be a plain function."""
    where = _describe(module)
    if not hasattr(module, target):
        found = ", ".join(f"'{name}'" for name in dir(module) if isinstance(getattr(module, name), types.FunctionType))
        raise EntryPointError(f"File {where} is expected to contain a function named '{target}'. "
                              f"Found: {found or 'no functions'} instead")
    function = getattr(module, target)
    if not isinstance(function, types.FunctionType):
        raise EntryPointError(f"The function defined in file {where} as '{target}' needs to be of type function. "
                              f"Got: invalid type {type(function)}")
    return function


def resolve_signature(target: str, configured: str) -> str:
    """Decorator first (`@functions_framework.http` / `.cloud_event` record the function's name in
    `_function_registry.REGISTRY_MAP`), then the manifest, as get_func_signature_type orders them.

    The registry is read only if the user's code imported functions_framework already.
    """
    registry = sys.modules.get("functions_framework._function_registry")
    if registry is None:
        return configured
    if target in getattr(registry, "ASGI_FUNCTIONS", ()):
        raise EntryPointError(f"'{target}' is decorated with @functions_framework.aio, which faasemu's gcf "
                              "runtime does not run yet; use @functions_framework.http or .cloud_event")
    registered = getattr(registry, "REGISTRY_MAP", {}).get(target, "")
    if registered and registered not in SIGNATURES:
        raise EntryPointError(f"'{target}' has the {registered!r} signature (@functions_framework.{registered}), "
                              f"which faasemu's gcf runtime does not run; it runs {', '.join(SIGNATURES)}")
    return registered or configured


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


class Adapter:
    """One function's Flask app, configured as functions-framework's `create_app` configures it."""

    def __init__(self, spec: FunctionSpec) -> None:
        try:
            import flask
        except ImportError:
            raise MissingSDK("flask", "gcf", "gcf") from None
        self.spec = spec
        self.flask = flask
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
        # functions-framework imports the user's module inside an app context: `current_app` works there.
        self._import_context: Any = self.app.app_context()
        self._import_context.push()
        self.function: Callable[..., Any] | None = None

    def bind(self, module: types.ModuleType) -> None:
        if self._import_context is not None:
            self._import_context.pop()
            self._import_context = None
        target = self.spec.handler_attr
        if not target:
            raise EntryPointError(f"handler {self.spec.handler!r} names no function: write it as main.py:function")
        self.function = find_function(module, target)
        self.signature = resolve_signature(target, self.signature)
        os.environ["FUNCTION_SIGNATURE_TYPE"] = self.signature
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
            try:
                import cloudevents.http  # noqa: F401  (the 1.x SDK functions-framework pins; 2.x lacks it)
            except ImportError:
                raise MissingSDK("cloudevents<2", "gcf", "gcf") from None
            view = self._cloud_event_view
        else:
            try:
                import functions_framework.event_conversion  # noqa: F401
            except ImportError:
                raise MissingSDK("functions-framework", "gcf", "gcf") from None
            view = self._event_view
            rules.add(Rule("/", endpoint="get", methods=["GET"]))  # a GET / answers empty
            app.view_functions["get"] = lambda: ""
        rules.add(Rule("/", defaults={"path": ""}, endpoint="run", methods=["POST"]))
        rules.add(Rule("/<path:path>", endpoint="run", methods=["POST"]))
        app.view_functions["run"] = view

    def _http_view(self, path: str) -> Any:
        return self._call(self.flask.request._get_current_object())  # type: ignore[attr-defined]

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
        if self.function is None:
            raise RuntimeError("Adapter.bind() was not called")
        return self.function(*args)

    # -- the runtime interface -------------------------------------------------------------------

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        try:
            return run_wsgi(self.app.wsgi_app, wsgi_environ(request, execution_id(inv.request_id)))
        except Exception as exc:
            # The console shows the user's frames, not Flask's dispatch above them.
            raise exc.with_traceback(user_traceback(exc, self.function))

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """POST the event as the platform would; a non-2xx answer is a failed delivery (retried if
        the function has retries on). A handler's exception propagates as the failure itself."""
        binary = self.signature != "event" or _google_event_type(delivery.event.get("type"))
        request = event_request(delivery, self.signature, inv.request_id, binary)
        response = self.invoke_http(request, inv)
        if not 200 <= response.status < 300:
            text = response.body.decode("utf-8", "replace").strip()
            raise DeliveryFailed(f"the function answered {response.status}: {text[:500]}")

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """Flask's answer to an unhandled exception: InternalServerError through crash_handler."""
        from werkzeug.exceptions import InternalServerError

        error = InternalServerError(original_exception=exc)
        with self.app.app_context():
            response = self.app.make_response(crash_handler(error))
        return HttpResponse(response.status_code, [(str(k), str(v)) for k, v in response.headers.items()],
                            response.get_data())


def _google_event_type(event_type: Any) -> bool:
    """Whether functions-framework turns this CloudEvent type into a legacy (data, context) pair."""
    try:
        from functions_framework import event_conversion
    except ImportError:
        return False
    return event_type in getattr(event_conversion, "_CE_TO_BACKGROUND_TYPE", {})

