"""Azure Functions, Python v1 (`main(req)` + function.json) and v2 (`func.FunctionApp` decorators) models.

Two real components are mirrored, as read in their sources: the Functions host (Azure/azure-functions-host:
GrpcMessageConversionExtensions.cs builds the request, HttpBinding.cs and RawScriptResult.cs read the
answer) and the Python worker (Azure/azure-functions-python-worker: functions.py checks the bindings,
dispatcher.py invokes, bindings/context.py and generic.py). Handlers get objects built by the user's own
`azure-functions` library, through its converters (`HttpRequestConverter`, `QueueMessageInConverter`,
`EventGridEventInConverter`), as the worker decodes the host's data. Standard library only at module
level: the SDK is imported by `Adapter`.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import threading
import typing
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from faasemu.events.model import data_bytes, event_time
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, describe_module
from faasemu.runtimes.base import (
    Delivery,
    DeliveryFailed,
    EntryPointError,
    HttpRequest,
    HttpResponse,
    Invocation,
    MissingSDK,
)
from faasemu.runtimes.contract import Runtime
from faasemu.runtimes.drivers import HandlerLoop

TypedData = tuple[str, Any]  # (type, value) as the host's gRPC TypedData: string, bytes, json, http
TRIGGERS = {"httpTrigger": "http", "queueTrigger": "queue", "eventGridTrigger": "eventgrid"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_TEXT_PLAIN = "text/plain; charset=utf-8"
_EMPTY_500 = (500, [("Content-Length", "0")], b"")


# -- the function app: host.json, local.settings.json, routes, environment ----------------------


class ConfigError(ValueError):
    """A function.json (or host.json) the host cannot read. The message names the file and the line."""


def newtonsoft_json(text: str, where: str) -> Any:
    r"""Parse JSON as the host's Newtonsoft reader does: `//` and `/* */` comments, trailing commas
    before `}` or `]`, and single-quoted strings are accepted (the Python worker's own repository
    ships function.json files with trailing commas, which the host reads). Anything else that is not
    JSON raises ConfigError naming `where` and the line.

    >>> newtonsoft_json('{"a": [1, 2,], // note\n}', "f.json")
    {'a': [1, 2]}
    """
    out: list[str] = []
    pending_comma = -1  # the index in `out` of a comma followed so far by blanks and comments only
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "\"'":  # copy a string, re-quoting a single-quoted one
            j, chunk = i + 1, []
            while j < n and text[j] != char:
                step = text[j:j + 2] if text[j] == "\\" else text[j]
                chunk.append('\\"' if step == '"' else "'" if step == "\\'" else step)
                j += len(step)
            out.append(f'"{"".join(chunk)}"' if char == "'" else text[i:j + 1])
            pending_comma, i = -1, j + 1
        elif text.startswith("//", i) or text.startswith("/*", i):  # blanks, keeping lines for messages
            j = text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i + 2)
            j = n if j < 0 else j if text[i + 1] == "/" else j + 2
            out.append("".join(c if c == "\n" else " " for c in text[i:j]))
            i = j
        else:
            if char in "}]" and pending_comma >= 0:  # a trailing comma: Newtonsoft skips it
                out[pending_comma] = " "
            if char == ",":
                pending_comma = len(out)
            elif char not in " \t\r\n":
                pending_comma = -1
            out.append(char)
            i += 1
    try:
        return json.loads("".join(out))
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        at = f" line {line}" if line else ""
        reason = getattr(exc, "msg", str(exc))
        raise ConfigError(f"{where}{at}: {reason} (the Functions host reads it as JSON, with comments and "
                          "trailing commas allowed)") from None


def _read_json(path: str) -> dict[str, Any]:
    """host.json and local.settings.json, read leniently; a missing or unreadable file counts as empty."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            value = newtonsoft_json(file.read(), path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def app_root(spec: FunctionSpec) -> str | None:
    """The function app's folder (where host.json is): beside the handler (v2 function_app.py) or one
    folder up (v1 function folders)."""
    folder = os.path.dirname(spec.handler_file or "")
    for candidate in (folder, os.path.dirname(folder)) if folder else ():
        if os.path.isfile(os.path.join(candidate, "host.json")):
            return candidate
    return None


def host_json(spec: FunctionSpec) -> dict[str, Any]:
    root = app_root(spec)
    return _read_json(os.path.join(root, "host.json")) if root else {}


def route_prefix(spec: FunctionSpec) -> str:
    """host.json `extensions.http.routePrefix`: `api` when absent; it may be empty."""
    prefix = ((host_json(spec).get("extensions") or {}).get("http") or {}).get("routePrefix", "api")
    return prefix.strip("/") if isinstance(prefix, str) else "api"


def azure_path(path: str, prefix: str) -> str:
    """`/orders/{id}` -> `/api/orders/{id}`. A manifest path already under the prefix is kept as written."""
    if not prefix or path == f"/{prefix}" or path.startswith(f"/{prefix}/"):
        return path
    return f"/{prefix}{path}" if path != "/" else f"/{prefix}"


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    prefix = route_prefix(spec)
    return tuple(HttpTrigger(azure_path(t.path, prefix), t.methods) for t in spec.http)


# The host's home page is a 150 KB page with an embedded font; this is its title, which is what
# health checks and people look for (azure-functions-host: src/WebJobs.Script.WebHost/Home.html).
HOMEPAGE = (b"<!DOCTYPE html>\n<html>\n<head>\n    <title>Your Azure Function App is up and running.</title>\n"
            b"</head>\n<body>\n    <h1>Your Functions 4.0 app is up and running</h1>\n"
            b"    <p>Azure Functions is an event-based serverless compute experience to accelerate your "
            b"development. (Served by faasemu.)</p>\n</body>\n</html>\n")


def _setting(spec: FunctionSpec, name: str) -> str:
    """An app setting as the host reads it: the environment `func start` builds from local.settings.json."""
    if name in spec.env:
        return spec.env[name]
    root = app_root(spec) or os.path.dirname(spec.handler_file or "")
    values = _read_json(os.path.join(root, "local.settings.json")).get("Values") if root else None
    return str(values.get(name, "")) if isinstance(values, dict) else ""


def host_routes(spec: FunctionSpec) -> tuple[tuple[HttpTrigger, HttpResponse], ...]:
    """What the Functions host itself answers, beside the functions (the gateway serves these only when
    no function's route takes the request):

    - `/`: HomepageMiddleware's page, 200 `text/html`, or 204 when `AzureWebJobsDisableHomepage` is
      true (any method: it answers whenever no function ran for the path `/`);
    - `GET`/`POST /admin/host/ping`: HostController.Ping, an empty 200 that must not be cached.
    """
    if _setting(spec, "AzureWebJobsDisableHomepage").lower() == "true":
        home = HttpResponse(204, [], b"")
    else:
        home = HttpResponse(200, [("Content-Type", "text/html")], HOMEPAGE)
    ping = HttpResponse(200, [("Cache-Control", "no-store,no-cache"), ("Pragma", "no-cache"),
                              ("Content-Length", "0")], b"")
    return (HttpTrigger("/", ()), home), (HttpTrigger("/admin/host/ping", ("GET", "POST")), ping)


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """The host's variables for the Python worker, over `Values` of local.settings.json (as `func start` loads them)."""
    import sys

    values = _read_json(os.path.join(root, "local.settings.json")).get("Values") or {}
    env = {str(k): str(v) for k, v in values.items() if isinstance(v, (str, int, float, bool))}
    env.update({
        "FUNCTIONS_WORKER_RUNTIME": "python", "FUNCTIONS_EXTENSION_VERSION": "~4",
        "FUNCTIONS_WORKER_RUNTIME_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
        "AzureWebJobsScriptRoot": root, "WEBSITE_SITE_NAME": os.path.basename(root.rstrip(os.sep)) or "faasemu",
        "AZURE_FUNCTIONS_ENVIRONMENT": "Development",  # as `func start` sets it; Azure itself says Production
        "TZ": "UTC",  # Azure's Linux workers run on UTC
    })
    return env


# -- the context (azure_functions_worker/bindings/context.py, retrycontext.py) ------------------


@dataclass
class RetryContext:
    retry_count: int
    max_retry_count: int
    rpc_exception: Any = None


class TraceContext:
    """The worker's TraceContext: the W3C `traceparent` and `tracestate` of the invocation, under the
    library's snake_case names and under the worker's older ones (`Traceparent`, `Tracestate`,
    `Attributes`), which the worker's own test functions and many apps still use."""

    def __init__(self, trace_parent: str, trace_state: str = "", attributes: dict[str, str] | None = None) -> None:
        self.__trace_parent, self.__trace_state = trace_parent, trace_state
        self.__attributes = dict(attributes or {})

    trace_parent = Traceparent = property(lambda self: self.__trace_parent)
    trace_state = Tracestate = property(lambda self: self.__trace_state)
    attributes = Attributes = property(lambda self: self.__attributes)


class Context:
    """The worker's Context: a plain class (not a `func.Context` subclass) with read-only properties."""

    def __init__(self, func_name: str, func_dir: str, invocation_id: str,
                 trace_context: TraceContext, retry_context: RetryContext) -> None:
        self.__func_name, self.__func_dir, self.__invocation_id = func_name, func_dir, invocation_id
        self.__trace_context, self.__retry_context = trace_context, retry_context
        self.__thread_local_storage = threading.local()
        self.__thread_local_storage.invocation_id = invocation_id

    invocation_id = property(lambda self: self.__invocation_id)
    function_name = property(lambda self: self.__func_name)
    function_directory = property(lambda self: self.__func_dir)
    trace_context = property(lambda self: self.__trace_context)
    retry_context = property(lambda self: self.__retry_context)
    thread_local_storage = property(lambda self: self.__thread_local_storage)


class Out:
    """What the worker passes for an output binding parameter (`func.Out[T]`)."""

    def __init__(self) -> None:
        self.__value: Any = None

    def set(self, val: Any) -> None:
        self.__value = val

    def get(self) -> Any:
        return self.__value


def invocation_id(request_id: str) -> str:
    """The host's invocation ids are GUIDs: HTTP calls have one already; a delivery's derives from its attempt id."""
    if _UUID.match(request_id):
        return request_id
    import hashlib

    text = hashlib.sha256(request_id.encode()).hexdigest()[:32]
    text = text[:12] + "4" + text[13:16] + "89ab"[int(text[16], 16) % 4] + text[17:]
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")


def trace_context(iid: str, traceparent: str | None = None, tracestate: str = "") -> TraceContext:
    """The invocation's W3C trace context. ASP.NET continues a caller's valid `traceparent` (same trace
    id and flags, a new span for the invocation) and keeps its `tracestate`; otherwise the trace starts
    here, its ids derived from the invocation id."""
    span = iid.replace("-", "")[16:]
    found = _TRACEPARENT.match((traceparent or "").strip().lower())
    if found and found.group(1) != "0" * 32 and found.group(2) != "0" * 16:
        return TraceContext(f"00-{found.group(1)}-{span}-{found.group(3)}", tracestate)
    return TraceContext(f"00-{iid.replace('-', '')}-{span}-00")


def build_context(plan: Plan, inv: Invocation, attempt: int = 1, request: HttpRequest | None = None) -> Context:
    """`retry_context` is the host's: (0, 0) unless a retry policy drives the attempts, as queue and
    Event Grid redeliveries do not (their count is `dequeue_count`, or nothing)."""
    iid = invocation_id(inv.request_id)
    retry = RetryContext(attempt - 1, plan.max_retry) if plan.max_retry else RetryContext(0, 0)
    headers = request.header if request is not None else (lambda name, default=None: default)
    trace = trace_context(iid, headers("traceparent"), headers("tracestate", "") or "")
    return Context(plan.name, plan.directory, iid, trace, retry)


# -- the worker's binding checks (azure_functions_worker/functions.py) -----------------------------


@dataclass(frozen=True)
class Plan:
    """The worker's FunctionInfo: which parameter gets what, and how the result is read."""

    name: str
    directory: str
    trigger: str
    trigger_type: str
    generic: bool = False  # a str/bytes annotation: the worker's GenericBinding passes the raw value
    outputs: tuple[str, ...] = ()
    http_out: str | None = None
    has_return: bool = False
    requires_context: bool = False
    is_async: bool = False
    max_retry: int = 0

    @property
    def kind(self) -> str:
        return TRIGGERS.get(self.trigger_type, self.trigger_type)


class FunctionLoadError(EntryPointError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"cannot load the {name} function: {message}")


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an unresolvable annotation counts as absent
        return {}


def plan_function(func: Callable[..., Any], name: str, directory: str, bindings: list[dict[str, Any]],
                  check: Callable[[str, str, Any], bool] | None = None, max_retry: int = 0) -> Plan:
    """Check `func` against its bindings with the worker's rules and messages. `check(binding type,
    'in'|'out', annotation)` asks the SDK's converter whether an annotation fits (None: no check)."""
    params, hints = dict(inspect.signature(func).parameters), type_hints(func)
    bound = {b["name"]: b for b in bindings if b["name"] != "$return"}
    returns = [b for b in bindings if b["name"] == "$return"]
    if any(b["direction"] == "inout" for b in bindings):
        raise FunctionLoadError(name, '"inout" bindings are not supported')
    requires_context = "context" in params and "context" not in bound  # by name only, as in the worker
    if requires_context:
        params.pop("context")
        anno = hints.get("context")
        if "context" in hints and (not isinstance(anno, type) or anno.__name__ != "Context"):
            raise FunctionLoadError(name, f'the "context" parameter is expected to be of type '
                                          f"azure.functions.Context, got {anno!r}")
    if set(params) - set(bound):
        raise FunctionLoadError(name, "the following parameters are declared in Python but not in "
                                      f"function.json: {set(params) - set(bound)!r}")
    if set(bound) - set(params):
        raise FunctionLoadError(name, "the following parameters are declared in function.json but not "
                                      f"in Python: {set(bound) - set(params)!r}")
    triggers = [b for b in bindings if b["type"].endswith("Trigger")]
    if len(triggers) != 1:
        raise FunctionLoadError(name, "a function must have exactly one trigger binding")
    trigger = triggers[0]
    inputs = [n for n, b in bound.items() if b["direction"] == "in" and b is not trigger]
    if inputs:
        raise FunctionLoadError(name, f"input bindings {inputs!r} are not emulated by faasemu "
                                      "(it passes the trigger, output bindings and context)")
    anno, generic = hints.get(trigger["name"]), False
    if trigger["name"] in hints:
        if not isinstance(anno, type):
            raise FunctionLoadError(name, f"binding {trigger['name']} has invalid non-type annotation {anno!r}")
        generic = anno in (str, bytes)
        if check and not generic and not check(trigger["type"], "in", anno):
            raise FunctionLoadError(name, f'type of {trigger["name"]} binding in function.json "{trigger["type"]}" '
                                          f'does not match its Python annotation "{anno.__name__}"')
    if returns and check and "return" in hints:
        anno = hints["return"]
        if not isinstance(anno, type):
            raise FunctionLoadError(name, f"has invalid non-type return annotation {anno!r}")
        if not check(returns[0]["type"], "out", anno):
            raise FunctionLoadError(name, f'Python return annotation "{anno.__name__}" does not match '
                                          f'binding type "{returns[0]["type"]}"')
    http_out = next((b["name"] for b in bindings if b["type"] == "http" and b["direction"] == "out"), None)
    outputs = tuple(n for n, b in bound.items() if b["direction"] == "out")
    return Plan(name, directory, trigger["name"], trigger["type"], generic, outputs, http_out, bool(returns),
                requires_context, inspect.iscoroutinefunction(func), max_retry)


# -- HTTP: the host's RpcHttp in, its reading of the answer out -------------------------------------


def http_data(request: HttpRequest) -> TypedData:
    """GrpcMessageConversionExtensions.ToRpcHttp with the Python worker's capabilities: repeated headers
    and query values joined with ',' (ASP.NET's StringValues), query keys with an empty value dropped,
    the body as raw bytes (RawHttpBodyBytes)."""
    headers: dict[str, str] = {}
    for name, value in request.headers:
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    query: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(request.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    url = f"{request.scheme}://{request.header('host') or request.host}"
    url += urllib.parse.quote(request.path, safe="/:@!$&'()*+,;=-._~") + (f"?{request.query}" if request.query else "")
    return ("http", {
        "method": ("string", request.method), "url": ("string", url),
        "headers": {k: ("string", v) for k, v in headers.items()},
        "query": {k: ("string", ",".join(v)) for k, v in query.items() if ",".join(v)},
        "params": {k: ("string", v) for k, v in request.path_params.items()},
        "body": ("bytes", request.body),
    })


def _dotnet_text(value: Any, indent: int | None = None) -> str:
    """A JSON value as the host's Newtonsoft `ToString()` prints it: `True`, `1` for 1.0, nothing for null."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=indent, ensure_ascii=False, separators=None if indent else (",", ":"))
    return str(value)


def string_result(text: str) -> HttpResponse:
    """HttpBinding.CreateResult for a returned `str`, which the host first tries as JSON.

    Plain text is a 200 `text/plain`. JSON with a `body` key is a response object (`statusCode` or
    `status`, `headers`, `body`); any other JSON is re-printed by Newtonsoft (objects indented),
    still `text/plain`. A blank string or `null` is an empty body.
    """
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError:
        return HttpResponse(200, [("Content-Type", _TEXT_PLAIN)], text.encode("utf-8"))
    keys = {k.lower(): k for k in value} if isinstance(value, dict) else {}
    if not isinstance(value, dict) or "body" not in keys:
        return HttpResponse(200, [("Content-Type", _TEXT_PLAIN)], _dotnet_text(value, 2).encode("utf-8"))
    raw: Any = value.get(keys.get("statuscode", ""), value.get(keys.get("status", "")))
    numeric = isinstance(raw, str) and raw.strip().lstrip("-").isdigit()
    status = int(raw) if numeric or (isinstance(raw, int) and not isinstance(raw, bool)) else 200
    headers: list[tuple[str, str]] = []
    content_type = _TEXT_PLAIN
    given = value.get(keys.get("headers", ""))
    for name, header in given.items() if isinstance(given, dict) else ():
        text = _dotnet_text(header)
        if name.lower() == "content-type":  # a string body goes through a text formatter: it adds the charset
            content_type = text if "charset=" in text.lower() else f"{text}; charset=utf-8"
        elif name.lower() not in {n.lower() for n, _ in headers}:
            headers.append((name, text))
    return HttpResponse(status, [("Content-Type", content_type), *headers],
                        _dotnet_text(value[keys["body"]]).encode("utf-8"))


def cookie_expires(morsel: Any) -> datetime | None:
    """The worker's parse_cookie_attr_expires: dateutil's parser, as the worker uses it (a wrong weekday
    is ignored, so the host writes the right one); without dateutil, the forms cookies use (RFC 1123,
    RFC 850, asctime, `12-Jan-2017`, ISO 8601). A value neither reads is the worker's error: a 500."""
    text = morsel["expires"]
    if not text:
        return None
    try:
        from dateutil import parser
    except ImportError:
        parsed = _cookie_date(text)
    else:
        try:
            parsed = parser.parse(text)
        except (ValueError, OverflowError):
            parsed = None
    if parsed is None:
        raise ValueError(f"Can not parse value {text} of expires in the cookie due to invalid format.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # the worker's clock is UTC


def _cookie_date(text: str) -> datetime | None:
    from email.utils import parsedate_to_datetime

    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        pass
    try:  # "Thu, 12-Jan-2017 13:55:08 GMT" and "Thursday, 12-Jan-17 ..." read as RFC 1123 once unhyphenated
        return parsedate_to_datetime(re.sub(r"(\d{1,2})-([A-Za-z]{3})-(\d{2,4})", r"\1 \2 \3", text))
    except (TypeError, ValueError, IndexError):
        return None


def cookie_header(name: str, morsel: Any) -> str:
    """The Set-Cookie the host writes for the worker's RpcHttpCookie (ASP.NET Core's SetCookieHeaderValue):
    lower-case attributes in its order; `expires` re-printed in RFC 1123 form from the parsed date (whole
    seconds, in GMT); `domain` and `path` always sent, empty when the cookie has none (the worker sends
    the morsel's '' and ASP.NET writes any non-null value); `max-age` as whole seconds."""
    parts = [f"{urllib.parse.quote(name, safe='')}={urllib.parse.quote(morsel.value, safe='')}"]
    expires = cookie_expires(morsel)
    if expires is not None:
        from email.utils import formatdate

        parts.append(f"expires={formatdate(int(expires.timestamp()), usegmt=True)}")
    if morsel["max-age"] != "":
        try:
            max_age = float(morsel["max-age"])
        except (TypeError, ValueError):
            raise TypeError(f"Cannot parse value {morsel['max-age']} of 'cookie.maxAge' to float.") from None
        parts.append(f"max-age={int(max_age)}")
    parts += [f"domain={morsel['domain']}", f"path={morsel['path']}"]
    parts += ["secure"] if morsel["secure"] else []
    if str(morsel["samesite"]).lower() in ("lax", "strict", "none"):
        parts.append(f"samesite={str(morsel['samesite']).lower()}")
    return "; ".join(parts + (["httponly"] if morsel["httponly"] else []))


def http_response(status: str, headers: dict[str, str], cookies: list[Any] | None, body: bytes) -> HttpResponse:
    """RawScriptResult for the worker's http datum: content-type set, later duplicates dropped, cookies appended."""
    out: list[tuple[str, str]] = []
    for name, value in headers.items():
        if name.lower() == "content-type":
            out.insert(0, ("Content-Type", value))
        elif name.lower() not in {n.lower() for n, _ in out}:
            out.append((name, value))
    for cookie in cookies or ():
        out.extend(("Set-Cookie", cookie_header(name, morsel)) for name, morsel in cookie.items())
    return HttpResponse(int(status), out, body)


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """A timeout, a worker exit or an out-of-memory kill fails the invocation: the host answers an empty 500."""
    if kind == "unavailable":
        return HttpResponse(503, [("Content-Type", _TEXT_PLAIN)], message.encode("utf-8"))
    return HttpResponse(*_EMPTY_500)


def error_response(exc: BaseException, inv: Invocation) -> HttpResponse:
    """An unhandled exception: an empty 500; the traceback goes to the log only."""
    return HttpResponse(*_EMPTY_500)


# -- events: what the queue and Event Grid triggers hand the worker ----------------------------------


def _data_value(event: dict[str, Any]) -> Any:
    """The data as a JSON value: base64 data decoded, then parsed as JSON when it is, else text."""
    if "data_base64" not in event:
        return event.get("data")
    text = data_bytes(event).decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def queue_data(delivery: Delivery, now: float) -> tuple[TypedData, dict[str, TypedData]]:
    """The message and trigger metadata of a storage queue trigger. `Id` is the event id on every
    attempt, `DequeueCount` counts attempts from 1 and `PopReceipt` is new on each (seeded)."""
    import base64
    import hashlib

    event = delivery.event
    raw = data_bytes(event)
    try:
        body: TypedData = ("string", raw.decode("utf-8"))
    except UnicodeDecodeError:
        body = ("bytes", raw)
    inserted = event_time(event)
    per_attempt = delivery.attempt_id or f"{event['id']}/{delivery.attempt}"
    visible = datetime.fromtimestamp(now, UTC) + timedelta(minutes=10)  # the trigger's visibility timeout
    return body, {  # DateTimeOffset and long values travel as JSON, as the host serialises them
        "Id": ("string", event["id"]),
        "DequeueCount": ("json", str(delivery.attempt)),
        "InsertionTime": ("json", json.dumps(inserted.isoformat())),
        "ExpirationTime": ("json", json.dumps((inserted + timedelta(days=7)).isoformat())),
        "NextVisibleTime": ("json", json.dumps(visible.isoformat(timespec="seconds"))),
        "PopReceipt": ("string", base64.b64encode(hashlib.sha256(per_attempt.encode()).digest()[:20]).decode()),
        "QueueTrigger": body if body[0] == "string" else ("string", ""),
    }


def event_grid_data(event: dict[str, Any], cloud_events: bool = False) -> TypedData:
    """An Event Grid trigger's event in the Event Grid schema (topic <- source, eventType <- type, as
    Event Grid maps CloudEvents), or in the CloudEvents schema when the handler takes `func.CloudEvent`."""
    if cloud_events:
        return ("json", json.dumps({**{k: v for k, v in event.items() if k != "data_base64"},
                                    "data": _data_value(event)}))
    return ("json", json.dumps({
        "id": event["id"], "topic": event.get("source", ""), "subject": event.get("subject", ""),
        "eventType": event.get("type"), "eventTime": event.get("time"), "data": _data_value(event),
        "dataVersion": event.get("dataschema", ""), "metadataVersion": "1",
    }))


# -- the adapter ---------------------------------------------------------------------------------


def function_json(folder: str) -> dict[str, Any]:
    """A v1 function's function.json, read as the host reads it; {} when there is none. A file the host
    cannot read fails the function's load (naming the file and line): its bindings are never guessed."""
    path = os.path.join(folder, "function.json")
    try:
        with open(path, encoding="utf-8-sig") as file:
            text = file.read()
    except FileNotFoundError:
        return {}
    where = os.path.relpath(path)
    try:
        config = newtonsoft_json(text, where)
    except ConfigError as exc:
        raise EntryPointError(str(exc)) from None
    if not isinstance(config, dict):
        raise EntryPointError(f"{where}: expected a JSON object with \"bindings\", found {type(config).__name__}")
    return config


class Adapter(BaseAdapter):
    """The worker for one function: find it behind its decorator, decode the trigger, call, read the answer."""

    def __init__(self, spec: FunctionSpec, clock: Callable[[], float] | None = None) -> None:
        super().__init__(spec)
        try:
            import azure.functions as func
            from azure.functions import meta
            from azure.functions.decorators.function_app import Function, FunctionBuilder
        except ImportError:
            raise MissingSDK("azure-functions", "azure", "azure") from None
        import logging
        import time

        # The worker sets the root logger to INFO and ships records to the host's log, so the
        # templates' `logging.info(...)` lines show; here they go to stderr, hence the console.
        if not logging.getLogger().handlers:
            logging.getLogger().addHandler(logging.StreamHandler())
        logging.getLogger().setLevel(logging.INFO)
        self.spec, self.func, self.meta, self.clock = spec, func, meta, clock or time.time
        self.function_types = (Function, FunctionBuilder)
        self.registry = meta.get_binding_registry()
        self.handler: Callable[..., Any] | None = None
        self.plan: Plan | None = None
        self.cloud_events = False
        self.loop = HandlerLoop()  # one loop for the worker's life, as the real host keeps

    # -- finding the function --------------------------------------------------------------------

    def bind(self, module: ModuleType) -> None:
        """`file.py:fn` names a decorated function (v2), an app or blueprint (its function named like the
        manifest's, or its only one), or a plain function (v1, with function.json when one is beside it)."""
        func, (function_type, builder_type), spec = self.func, self.function_types, self.spec
        where = describe_module(module)
        target = getattr(module, spec.handler_attr or "", None)
        if isinstance(target, builder_type):
            target = target.build()
        elif isinstance(target, (func.FunctionRegister, func.Blueprint)):
            target = self._pick(target, where)
        if isinstance(target, function_type):
            policy = target.get_setting("retry_policy")
            handler = target.get_user_function()
            folder = os.path.dirname(os.path.abspath(module.__file__ or "."))  # the app's root
            plan = plan_function(handler, target.get_function_name(), folder,
                                 [self._binding(b) for b in target.get_bindings()], self._check,
                                 int(getattr(policy, "max_retry_count", 0) or 0))
        elif callable(target):
            handler, plan = target, self._plan_v1(target, module)
        else:
            found = sorted(n for n, v in vars(module).items() if not n.startswith("_") and (
                isinstance(v, (builder_type, func.FunctionRegister, func.Blueprint))
                or (callable(v) and getattr(v, "__module__", None) == module.__name__)))
            listing = ", ".join(found) or "nothing"
            raise EntryPointError(f"{where} has no function {spec.handler_attr!r}. Found: {listing}.")
        self._check_triggers(plan, where)
        self.handler, self.plan = handler, plan
        anno = type_hints(handler).get(plan.trigger) if plan.kind == "eventgrid" else None
        self.cloud_events = isinstance(anno, type) and issubclass(anno, getattr(func, "CloudEvent", ()))

    @staticmethod
    def _binding(binding: Any) -> dict[str, Any]:
        return {"name": binding.name, "type": binding.type,
                "direction": {0: "in", 1: "out", 2: "inout"}.get(binding.direction, "in")}

    def _pick(self, app: Any, where: str) -> Any:
        if isinstance(app, self.func.FunctionRegister):
            functions = app.get_functions()  # validates, as the worker's indexing does
        else:
            functions = [builder.build() for builder in app._function_builders]
        wanted = {self.spec.name, self.spec.name.replace("-", "_")}
        chosen = [f for f in functions if f.get_function_name() in wanted]
        chosen = chosen or (functions if len(functions) == 1 else [])
        if not chosen:
            names = ", ".join(f.get_function_name() for f in functions) or "no functions"
            raise EntryPointError(f"{where}: {self.spec.handler_attr!r} holds {names}; name one of them in the "
                                  "manifest (function_app.py:name), or give the faasemu function its name")
        return chosen[0]

    def _plan_v1(self, handler: Callable[..., Any], module: ModuleType) -> Plan:
        folder = os.path.dirname(os.path.abspath(module.__file__ or "."))
        config = function_json(folder)
        if config.get("bindings"):  # the function is named after its folder, as the host does
            bindings = [{**b, "direction": str(b.get("direction", "in")).lower()} for b in config["bindings"]]
            retry = config.get("retry") or host_json(self.spec).get("retry") or {}
            return plan_function(handler, os.path.basename(folder), folder, bindings, self._check,
                                 int(retry.get("maxRetryCount", 0) or 0))
        # No function.json: the first parameter other than `context` is the trigger, its kind from the
        # manifest, else from a `func.QueueMessage` annotation, else Event Grid.
        names = [n for n in inspect.signature(handler).parameters if n != "context"]
        anno = type_hints(handler).get(names[0]) if names else None
        queue = isinstance(anno, type) and issubclass(anno, self.func.QueueMessage)
        kind = "http" if self.spec.http else self.spec.options.get("event_source", "queue" if queue else "eventgrid")
        trigger = {"http": "httpTrigger", "queue": "queueTrigger"}.get(kind, "eventGridTrigger")
        bindings = [{"name": names[0] if names else "req", "type": trigger, "direction": "in"}]
        if kind == "http":
            bindings.append({"name": "$return", "type": "http", "direction": "out"})
        return plan_function(handler, self.spec.name, folder, bindings, self._check)

    def _check(self, binding: str, direction: str, pytype: Any) -> bool:
        converter = self.registry.get(binding)
        if converter is None:
            return True
        test = converter.check_input_type_annotation if direction == "in" else converter.check_output_type_annotation
        return bool(test(pytype))

    def _check_triggers(self, plan: Plan, where: str) -> None:
        """One trigger per function on Azure: HTTP serves only an httpTrigger, events only queue/Event Grid."""
        spec, source = self.spec, self.spec.options.get("event_source")
        problem = ""
        if spec.http and plan.kind != "http":
            problem = ": only an httpTrigger serves HTTP"
        elif spec.events and plan.kind not in ("queue", "eventgrid"):
            problem = ": faasemu delivers events to queue and Event Grid triggers only"
        elif spec.events and source and source != plan.kind:
            problem = f" but the manifest says event_source: {source}"
        if problem:
            raise EntryPointError(f"{where}: the trigger of {plan.name} is {plan.trigger_type}{problem}")

    # -- invoking --------------------------------------------------------------------------------

    def _datum(self, data: TypedData) -> Any:
        kind, value = data
        if kind == "http":
            value = {k: self._datum(v) if isinstance(v, tuple) else {n: self._datum(d) for n, d in v.items()}
                     for k, v in value.items()}
        return self.meta.Datum(value, kind)

    def _decode(self, data: TypedData, metadata: dict[str, TypedData]) -> Any:
        assert self.plan is not None
        if self.plan.generic:
            if data[0] not in ("string", "bytes", "json"):
                raise ValueError(f'unexpected type of data received for the "generic" binding : {data[0]!r}')
            return data[1]
        converter = self.registry.get(self.plan.trigger_type)
        try:
            trigger_metadata = {k: self._datum(v) for k, v in metadata.items()}
            return converter.decode(self._datum(data), trigger_metadata=trigger_metadata)
        except NotImplementedError:
            raise TypeError(f"unable to decode incoming TypedData: unsupported combination of TypedData field "
                            f"{data[0]!r} and expected binding type {converter}") from None

    def _call(self, value: Any, inv: Invocation, attempt: int = 1,
              request: HttpRequest | None = None) -> tuple[Any, dict[str, Out]]:
        plan, handler = self.plan, self.handler
        if plan is None or handler is None:
            raise RuntimeError("Adapter.bind() was not called")
        outs = {name: Out() for name in plan.outputs}
        kwargs: dict[str, Any] = {plan.trigger: value, **outs}
        if plan.requires_context:
            kwargs["context"] = build_context(plan, inv, attempt, request)
        if plan.is_async:
            result = self.loop.run(handler(**kwargs))
        else:
            result = handler(**kwargs)
        if result is not None and not plan.has_return:
            raise RuntimeError(f"function {plan.name!r} without a $return binding returned a non-None value")
        return result, outs

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        assert self.plan is not None
        result, outs = self._call(self._decode(http_data(request), {}), inv, request=request)
        out = self.plan.http_out
        value = result if out == "$return" else outs[out].get() if out else None
        if value is None and out != "$return":
            # No http output binding, or one left unset: the worker sends no response and the host
            # answers 204 No Content (Functions 2.x and later; 1.x answered an empty 200).
            return HttpResponse(204, [], b"")
        converter = self.registry.get("http")
        try:
            datum = converter.encode(value, expected_type=None)
        except NotImplementedError:
            raise TypeError(f'unable to encode outgoing TypedData: unsupported type "{converter}" for '
                            f'Python type "{type(value).__name__}"') from None
        if datum.type == "string":
            return string_result(datum.value)
        parts = datum.value
        headers = {name: d.value for name, d in parts["headers"].items()}
        return http_response(parts["status_code"].value, headers, parts.get("cookies"), parts["body"].value or b"")

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        assert self.plan is not None
        if self.plan.kind == "queue":
            data, metadata = queue_data(delivery, self.clock())
        elif self.plan.kind == "eventgrid":
            data, metadata = event_grid_data(delivery.event, self.cloud_events), {}
        else:
            raise DeliveryFailed(f"the trigger of {self.plan.name} is {self.plan.trigger_type}: events reach queue and "
                                 "Event Grid triggers only", retryable=False)
        self._call(self._decode(data, metadata), inv, delivery.attempt)

    error_response = staticmethod(error_response)


RUNTIME = Runtime("azure", Adapter, environment, http_routes, failure_response, host_routes=host_routes)
