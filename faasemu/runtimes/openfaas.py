"""OpenFaaS: the gateway, the watchdog and the Python templates, reproduced with the standard library.

Three components stand between a client and `handle()` there, and each leaves marks a handler can
see: the gateway (`/function/<name>` stripped from the path, `X-Call-Id` and `X-Start-Time`
added, content type defaulted), the watchdog (of-watchdog for `python3-http` / `python3-flask`:
504 on timeout; the classic watchdog for `python3`: a process per request, stdout and stderr
combined into the body, CGI variables), and the template's own server (Flask in
openfaas/python-flask-template `template/python3-http/index.py` and `python3-flask/index.py`;
`openfaas/templates` `template/python3/index.py`). The handler never imports Flask: it gets the
template's `Event`/`Context` or the body, so Flask's own rules (make_response, jsonify, werkzeug's
error pages) are reproduced here rather than imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import sys
import time
import traceback
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

from faasemu.events.model import data_bytes
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, outside_faasemu, prefixed_routes, strip_prefix
from faasemu.runtimes.base import (
    ASYNC_HTTP_TYPE,
    Delivery,
    DeliveryFailed,
    HttpRequest,
    HttpResponse,
    Invocation,
    request_of,
)
from faasemu.runtimes.contract import Runtime

DEFAULT_TEMPLATE = "python3-http"
HTML = "text/html; charset=utf-8"
# Methods each template's server routes (Flask adds HEAD and OPTIONS itself; the classic watchdog
# answers anything else 405 with an empty body: classic-watchdog handler.go makeRequestHandler).
METHODS = {"python3-http": ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"),
           "python3-flask": ("GET", "POST", "HEAD", "OPTIONS"),
           "python3": ("GET", "PUT", "POST", "PATCH", "DELETE")}
# The OpenFaaS Pro queue-worker's default httpRetryCodes; any other failure status is final.
RETRY_CODES = frozenset({408, 429, 500, 502, 504})


# -- werkzeug's request containers and error pages -----------------------------------------------


class BadRequestKeyError(KeyError):
    """werkzeug raises this for a missing query key: Flask answers it 400, not 500."""

    code, name = 400, "Bad Request"
    description = "The browser (or proxy) sent a request that this server could not understand."


class Headers:
    """`event.headers`: werkzeug's EnvironHeaders. Title-Case names, case-insensitive lookups, repeated
    headers joined with ', ' by the WSGI server, iteration yields (name, value) pairs, and a missing
    name raises a plain KeyError (a 500, unlike a missing query key)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        merged: dict[str, str] = {}
        for name, value in pairs:
            key = "-".join(part.capitalize() for part in name.split("-"))
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self._items = list(merged.items())

    def _find(self, key: str) -> str | None:
        return next((value for name, value in self._items if name.lower() == key.lower()), None)

    def __getitem__(self, key: str) -> str:
        if (value := self._find(key)) is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:
        return _typed(self._find(key), default, type)

    def getlist(self, key: str) -> list[str]:
        return [value] if (value := self._find(key)) is not None else []

    def keys(self) -> list[str]:
        return [name for name, _ in self._items]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) is not None

    def __len__(self) -> int:
        return len(self._items)


def _typed(value: str | None, default: Any, type: Callable[[str], Any] | None) -> Any:
    """werkzeug's `get(key, default, type)`: a failed conversion gives the default."""
    if value is None:
        return default
    try:
        return type(value) if type else value
    except ValueError:
        return default


class ImmutableMultiDict(dict[str, str]):
    """`event.query`: werkzeug's ImmutableMultiDict. A dict of first values (what `dict()` and
    `json.dumps` see), `getlist` for all of them, and a missing key is a 400 Bad Request."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        self._lists: dict[str, list[str]] = {}
        for key, value in pairs:
            self._lists.setdefault(key, []).append(value)
            dict.setdefault(self, key, value)

    def __getitem__(self, key: str) -> str:
        if key not in self._lists:
            raise BadRequestKeyError(key)
        return self._lists[key][0]

    def get(self, key: str, default: Any = None, type: Callable[[str], Any] | None = None) -> Any:
        return _typed(dict.get(self, key), default, type)

    def getlist(self, key: str, type: Callable[[str], Any] | None = None) -> list[Any]:
        return [type(v) if type else v for v in self._lists.get(key, [])]

    def items(self, multi: bool = False) -> Any:
        return [(k, v) for k, vs in self._lists.items() for v in vs] if multi else list(dict.items(self))

    def to_dict(self, flat: bool = True) -> dict[str, Any]:
        return dict(dict.items(self)) if flat else {k: list(vs) for k, vs in self._lists.items()}

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"'{type(self).__name__}' objects are immutable")

    # werkzeug's immutable dicts raise on every mutator; their signatures differ from dict's on purpose
    __setitem__ = __delitem__ = setdefault = update = pop = popitem = clear = _immutable  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ImmutableMultiDict({self.items(multi=True)!r})"


def werkzeug_page(code: int, name: str, description: str) -> HttpResponse:
    """werkzeug's HTTPException page, as Flask answers an error (checked against werkzeug 3)."""
    body = f"<!doctype html>\n<html lang=en>\n<title>{code} {name}</title>\n<h1>{name}</h1>\n<p>{description}</p>\n"
    return HttpResponse(code, [("Content-Type", HTML)], body.encode())


def internal_server_error() -> HttpResponse:
    return werkzeug_page(500, "Internal Server Error", "The server encountered an internal error and was unable "
                         "to complete your request. Either the server is overloaded or there is an error in the "
                         "application.")


# -- Flask's return-value rules ------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """Flask's DefaultJSONProvider: dates as HTTP dates, Decimal and UUID as str, dataclasses as dicts."""
    import dataclasses
    import datetime
    import decimal
    from email.utils import format_datetime

    if isinstance(obj, datetime.date):
        if not isinstance(obj, datetime.datetime):
            obj = datetime.datetime.combine(obj, datetime.time())
        return format_datetime((obj if obj.tzinfo else obj.replace(tzinfo=datetime.UTC)).astimezone(datetime.UTC),
                               usegmt=True)
    if isinstance(obj, (decimal.Decimal, uuid.UUID)) or hasattr(obj, "__html__"):
        return str(obj.__html__()) if hasattr(obj, "__html__") else str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def jsonify(value: Any) -> HttpResponse:
    """`flask.jsonify`: sorted keys, compact, ASCII-only, a trailing newline."""
    text = json.dumps(value, default=_json_default, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return HttpResponse(200, [("Content-Type", "application/json")], f"{text}\n".encode())


def _encode(part: Any) -> bytes:
    return part.encode() if isinstance(part, str) else bytes(part)


def _add_headers(response: HttpResponse, headers: Any, replace: bool) -> None:
    for name, value in headers.items() if isinstance(headers, (dict, Headers)) else headers:
        if replace:
            response.headers = [(k, v) for k, v in response.headers if k.lower() != str(name).lower()]
        response.headers.append((str(name), str(value)))


def flask_response(rv: Any, view: str = "call_handler") -> HttpResponse:
    """Flask's `make_response`: str/bytes or an iterator of them (HTML), dict/list (JSON), a werkzeug
    Response, or a tuple adding a status and/or headers. Anything else raises Flask's TypeError (a 500)."""
    status = headers = None
    if isinstance(rv, tuple):
        if len(rv) not in (2, 3):
            raise TypeError("The view function did not return a valid response tuple. The tuple must have the "
                            "form (body, status, headers), (body, status), or (body, headers).")
        rv, status, headers = rv if len(rv) == 3 else (rv[0], None, rv[1]) if isinstance(
            rv[1], (Headers, dict, tuple, list)) else (rv[0], rv[1], None)
    if rv is None:
        raise TypeError(f"The view function for {view!r} did not return a valid response. The function "
                        "either returned None or ended without a return statement.")
    if isinstance(rv, (str, bytes, bytearray, Iterator)):  # headers given here replace the defaults
        response = HttpResponse(200, [], b"".join(map(_encode, rv)) if isinstance(rv, Iterator) else _encode(rv))
        _add_headers(response, headers or [], replace=False)
        if not response.header("content-type"):
            response.headers.append(("Content-Type", HTML))
        headers = None
    elif isinstance(rv, HttpResponse):
        response = HttpResponse(rv.status, list(rv.headers), rv.body)
    elif isinstance(rv, (dict, list)):
        response = jsonify(rv)
    elif hasattr(rv, "status_code") and hasattr(rv, "get_data"):  # a werkzeug/flask Response
        response = HttpResponse(rv.status_code, [(str(k), str(v)) for k, v in rv.headers.items()], rv.get_data())
    else:
        raise TypeError("The view function did not return a valid response. The return type must be a string, "
                        "dict, list, tuple with headers or status, Response instance, or WSGI callable, but it "
                        f"was a {type(rv).__name__}.")
    if status is not None:  # "201 CREATED" or 201
        response.status = int(str(status).split()[0]) if isinstance(status, (str, bytes)) else int(status)
    if headers:
        _add_headers(response, headers, replace=True)
    return response


def format_response(resp: Any) -> Any:
    """python3-http's index.py `format_response`: exactly a dict is statusCode/body/headers, and a
    body that is not exactly a dict goes through `str()` (so bytes become "b'...'" there too)."""
    if resp is None:
        return ("", 200)
    if type(resp) is not dict:
        return resp
    body = resp.get("body", "")
    body = jsonify(body) if type(body) is dict else str(body)
    headers = resp.get("headers", [])
    return (body, resp.get("statusCode", 200), list(headers.items()) if type(headers) is dict else headers)


# -- gateway and watchdog ------------------------------------------------------------------------


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What the template's Dockerfile and Kubernetes set: the watchdog's settings and the pod's HOSTNAME."""
    import hashlib

    digest = hashlib.sha256(spec.name.encode()).hexdigest()
    env = {"HOSTNAME": f"{spec.name}-{digest[:10]}-{digest[10:15]}"}
    if spec.options.get("template", DEFAULT_TEMPLATE) == "python3":
        env["fprocess"] = "python3 index.py"
    else:
        env.update({"fprocess": "python index.py", "mode": "http", "upstream_url": "http://127.0.0.1:5000"})
    return env


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """The gateway's `/function/<name>` and everything below it, plus any `http:` paths of the manifest
    (as a FunctionIngress or custom domain would map them)."""
    return (*spec.http, *prefixed_routes("/function", spec.name))


def async_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """`POST /async-function/<name>`: 202 with X-Call-Id now, the queue-worker's call later."""
    return (HttpTrigger(f"/async-function/{spec.name}", ("POST",)),
            HttpTrigger(f"/async-function/{spec.name}/{{path+}}", ("POST",)))


def function_path(spec: FunctionSpec, request: HttpRequest) -> str:
    """The path the function sees: the gateway strips `/function/<name>` (and the async prefix)."""
    for prefix in (f"/function/{spec.name}", f"/async-function/{spec.name}"):
        below = strip_prefix(request.path, prefix)
        if below is not None:
            return below
    return request.path


def gateway_headers(request: HttpRequest, call_id: str) -> list[tuple[str, str]]:
    """The request headers as the function receives them through the gateway (MakeCallIDMiddleware keeps
    a caller's X-Call-Id; buildProxyRequest adds X-Forwarded-Host/-For when absent)."""
    headers = list(request.headers)
    names = {name for name, _ in headers}
    if "x-call-id" not in names:
        headers.append(("x-call-id", call_id))
    headers.append(("x-start-time", str(request.time_ms * 1_000_000)))
    if "x-forwarded-host" not in names:
        headers.append(("x-forwarded-host", request.header("host") or request.host))
    if "x-forwarded-for" not in names:
        headers.append(("x-forwarded-for", request.source_ip))
    return headers


def connector_call_id(attempt_id: str) -> str:
    """The X-Call-Id the gateway gives a connector's call: a new random UUID on every call there
    (MakeCallIDMiddleware), here a UUID derived from the seeded attempt id, so that a campaign reproduces
    and every attempt, duplicate or retry, gets a new one (as Kubeless' per-send `event-id`)."""
    import hashlib

    text = hashlib.sha256(f"openfaas-call\0{attempt_id}".encode()).hexdigest()[:32]
    return str(uuid.UUID(hex=text, version=4))


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """of-watchdog answers an exec_timeout 504 and a dead upstream process 500, both with empty bodies
    (executor/http_runner.go); a function that cannot start answers 503 here, naming the error."""
    if kind == "timeout":
        return HttpResponse(504, [("X-Call-Id", request_id)], b"")
    if kind == "unavailable":
        return HttpResponse(503, [("Content-Type", "text/plain; charset=utf-8")], f"{message}\n".encode())
    return HttpResponse(500, [("X-Call-Id", request_id)], b"")


class ExitStatus(Exception):
    """`sys.exit(n)` in a classic-watchdog function: the process ends with that status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit status {code}")
        self.code = code


class _Tee(io.TextIOBase):
    """stdout and stderr combined into the response (the classic watchdog's combine_output, on by
    default), and still shown on faasemu's console."""

    def __init__(self, buffer: io.StringIO, stream: Any) -> None:
        self.into, self.stream = buffer, stream

    def write(self, text: str) -> int:
        self.into.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def cgi_environment(request: HttpRequest, path: str, headers: list[tuple[str, str]]) -> dict[str, str]:
    """The classic watchdog's cgi_headers (on by default): `Http_<Header>` with the first value, and
    Http_Method, Http_ContentLength, Http_Content_Length, Http_Query, Http_Path, Http_Host."""
    env: dict[str, str] = {}
    for name, value in headers:
        key = "Http_" + "_".join(part.capitalize() for part in name.split("-"))
        env.setdefault(key, value)
    env["Http_Method"] = request.method
    env["Http_ContentLength"] = env["Http_Content_Length"] = str(len(request.body))
    if request.query:
        env["Http_Query"] = request.query
    env["Http_Path"] = path
    env["Http_Host"] = request.header("host") or request.host
    return env


def user_traceback(exc: BaseException) -> str:
    """The traceback Python prints to stderr, without faasemu's own frames."""
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(outside_faasemu(exc))]
    return "".join(lines + traceback.format_exception_only(type(exc), exc))


# -- the adapter ---------------------------------------------------------------------------------


class Adapter(BaseAdapter):
    """One function behind the gateway: `handle(event, context)` (python3-http) or `handle(req)`."""

    def __init__(self, spec: FunctionSpec, clock: Callable[[], float] = time.time) -> None:
        super().__init__(spec)
        self.clock = clock
        self.template = spec.options.get("template", DEFAULT_TEMPLATE)
        self.module: ModuleType | None = None
        self._fresh = True  # the classic watchdog forks a new process per request
        self._call: dict[str, Any] = {}  # the call in progress, for error_response

    default_entry = "handle"  # the templates' `handler.handle`

    def bind(self, module: ModuleType) -> None:
        name = self.spec.handler_attr or self.default_entry
        self.module = module
        self.handler = self.find_handler(module, why=f" (the {self.template} template calls handler.{name})")

    def _handler(self) -> Callable[..., Any]:
        handler = self.bound()
        if (self.module is not None and self.template == "python3" and not self._fresh
                and sys.modules.get(self.module.__name__) is self.module):
            self.bind(importlib.reload(self.module))  # module state does not survive between calls there
            handler = self.bound()
        self._fresh = False
        return handler

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        started = time.perf_counter()
        if not request.time_ms:
            request.time_ms = int(self.clock() * 1000)
        call_id = request.header("x-call-id") or inv.request_id
        headers = gateway_headers(request, call_id)
        self._call = {"call_id": call_id, "start": str(request.time_ms * 1_000_000), "started": started,
                      "request": request, "generated": request.header("x-call-id") is None}
        response = self._template(request, function_path(self.spec, request), headers)
        return self._through_gateway(response, request)

    def _template(self, request: HttpRequest, path: str, headers: list[tuple[str, str]]) -> HttpResponse:
        allowed = ("Allow", ", ".join(sorted(METHODS[self.template])))
        if request.method not in METHODS[self.template]:
            if self.template == "python3":
                return HttpResponse(405, [], b"")
            page = werkzeug_page(405, "Method Not Allowed", "The method is not allowed for the requested URL.")
            return HttpResponse(405, [*page.headers, allowed], page.body)
        if request.method == "OPTIONS":  # Flask's automatic OPTIONS answer
            return HttpResponse(200, [("Content-Type", HTML), allowed])
        if self.template == "python3":
            return self._classic(request, path, headers)
        handler = self._handler()
        if self.template == "python3-http":
            event = Event(request, path, headers)
            response = flask_response(format_response(handler(event, Context())))
        elif self.template == "python3-flask":
            raw = os.getenv("RAW_BODY", "false")
            as_bytes = (len(raw) > 0 and raw.lower() == "true") or raw == "1"  # the template's is_true()
            body = request.body if as_bytes else request.body.decode("utf-8", "replace")
            response = flask_response(handler(body), view="main_route")
        if request.method == "HEAD":
            # Flask runs the view for HEAD and werkzeug sets the GET body's Content-Length; waitress sends
            # the headers without the body, and the watchdog and the gateway proxy them as they are.
            if response.header("content-length") is None:
                response.headers.append(("Content-Length", str(len(response.body))))
            response.body = b""
        return response

    def _classic(self, request: HttpRequest, path: str, headers: list[tuple[str, str]]) -> HttpResponse:
        """templates/python3: `ret = handle(stdin text)`, `print(ret)` unless None, in a fresh process."""
        output = io.StringIO()
        cgi = cgi_environment(request, path, headers)
        saved_env = {key: os.environ.get(key) for key in cgi}
        saved_streams = sys.stdout, sys.stderr
        os.environ.update(cgi)
        sys.stdout, sys.stderr = _Tee(output, sys.stdout), _Tee(output, sys.stderr)
        try:
            ret = self._handler()(request.body.decode("utf-8", "surrogateescape"))  # stdin in Python's UTF-8 mode
            if ret is not None:
                print(ret)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if code:
                failed = ExitStatus(code)
                self.keep_response(failed, self._exit_page(failed, output.getvalue()))
                raise failed from None
        except Exception as exc:
            self.keep_response(exc, self._exit_page(exc, output.getvalue()))
            raise
        finally:
            sys.stdout, sys.stderr = saved_streams
            for key, value in saved_env.items():
                if value is None:
                    del os.environ[key]
                else:
                    os.environ[key] = value
        response = HttpResponse(200, [], output.getvalue().encode("utf-8", "surrogateescape"))
        if request.header("content-type"):  # the classic watchdog echoes the caller's content type
            response.headers.append(("Content-Type", request.header("content-type") or ""))
        return response

    @staticmethod
    def _exit_page(exc: BaseException, output: str) -> HttpResponse:
        """The classic watchdog's 500: `exit status N` and the process's combined output, traceback included."""
        text = output if isinstance(exc, ExitStatus) else output + user_traceback(exc)
        status = exc.code if isinstance(exc, ExitStatus) else 1
        return HttpResponse(500, [], f"exit status {status}\n{text}".encode("utf-8", "surrogateescape"))

    def _through_gateway(self, response: HttpResponse, request: HttpRequest | None) -> HttpResponse:
        """The watchdog's X-Duration-Seconds, the gateway's X-Call-Id / X-Start-Time and its content type
        (the function's, else the request's, else text/plain: gateway getContentType)."""
        call = self._call
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
        content_type = response.header("content-type") or (request.header("content-type") if request else None)
        headers.append(("Content-Type", content_type or "text/plain"))
        headers.append(("X-Duration-Seconds", f"{time.perf_counter() - call.get('started', time.perf_counter()):f}"))
        if call.get("generated"):
            headers.append(("X-Call-Id", call["call_id"]))
        if call.get("start"):
            headers.append(("X-Start-Time", call["start"]))
        return HttpResponse(response.status, headers, response.body)

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """What the template answers when `handle` raised: Flask's 500 page (400 for a missing query
        key, or the page of a werkzeug HTTPException the handler raised); the classic watchdog's 500
        with `exit status N` and the process's combined output, traceback included."""
        request = self._call.get("request")
        kept = self.partial_response(exc)
        if kept is not None:
            response = kept
        elif self.template == "python3":
            response = self._exit_page(exc, "")
        elif isinstance(code := getattr(exc, "code", None), int) and any(
                cls.__name__ in ("HTTPException", "BadRequestKeyError") for cls in type(exc).__mro__):
            response = werkzeug_page(code, getattr(exc, "name", "Error"), getattr(exc, "description", ""))
        else:
            response = internal_server_error()
        return self._through_gateway(response, request)

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """An async invocation (the queue-worker POSTs the queued request, its X-Call-Id kept) or an
        event (a connector POSTs the data through the gateway, X-Topic = type, a new X-Call-Id per
        call); a failure status raises DeliveryFailed."""
        event = delivery.event
        if event.get("type") == ASYNC_HTTP_TYPE:
            # The queued request carries the call id the gateway answered 202 with; the queue-worker
            # replays it on every attempt, so retries keep it.
            request = dataclasses.replace(request_of(delivery), method="POST")  # the queue-worker always POSTs
            if request.header("x-call-id") is None:
                request.headers.append(("x-call-id", event["id"]))
        else:
            # A connector calls the gateway synchronously for each message it receives: the gateway
            # gives every call a new X-Call-Id, so a redelivered message does not keep one.
            call = connector_call_id(delivery.attempt_id or f"{event['id']}/{delivery.attempt}")
            headers = [("x-topic", event["type"]), ("x-call-id", call)]
            if event.get("datacontenttype"):
                headers.insert(0, ("content-type", event["datacontenttype"]))
            request = HttpRequest("POST", "/", "", headers, data_bytes(event), time_ms=int(self.clock() * 1000))
        call_id = request.header("x-call-id") or event["id"]
        try:
            response = self.invoke_http(request, inv)
        except Exception as exc:
            self._callback(request, self.error_response(exc, inv), call_id)
            raise
        self._callback(request, response, call_id)
        if not 200 <= response.status < 300:
            raise DeliveryFailed(f"the function answered {response.status}", retryable=response.status in RETRY_CODES)

    def _callback(self, request: HttpRequest, response: HttpResponse, call_id: str) -> None:
        """The queue-worker POSTs the result to X-Callback-Url with X-Function-Status and X-Call-Id."""
        url = request.header("x-callback-url")
        if not url:
            return
        headers = {k: v for k, v in response.headers}
        headers.update({"X-Function-Status": str(response.status), "X-Function-Name": self.spec.name,
                        "X-Call-Id": call_id})
        try:
            with urllib.request.urlopen(urllib.request.Request(url, response.body, headers, method="POST"), timeout=10):
                pass
        except Exception as exc:  # the queue-worker logs a failed callback and carries on
            print(f"error posting result to URL {url} {exc}", file=sys.stderr)


class Event:
    """python3-http's `Event`: body (bytes), headers, method, query, path, as index.py builds it."""

    def __init__(self, request: HttpRequest, path: str, headers: list[tuple[str, str]]) -> None:
        self.body = request.body
        self.headers = Headers(headers)
        self.method = request.method
        self.query = ImmutableMultiDict(urllib.parse.parse_qsl(request.query, keep_blank_values=True,
                                                               errors="replace"))
        self.path = path


class Context:
    """python3-http's `Context`: only the hostname (the pod's name)."""

    def __init__(self) -> None:
        self.hostname = os.getenv("HOSTNAME", "localhost")


RUNTIME = Runtime("openfaas", Adapter, environment, http_routes, failure_response, async_routes=async_routes)
