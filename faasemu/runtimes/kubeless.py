"""Kubeless: `handler(event, context)` behind the Python runtime's bottle server, and its triggers.

Reproduces kubeless/runtimes `stable/python/_kubeless.py` (bottle 0.12): the event dict with the
body parsed as JSON only when Content-Type is exactly `application/json`, the context dict, the
handler run in a forked process whose result crosses a pickle (so module state does not survive
a call, and an unpicklable result is lost: a 408), the 408 on timeout, bottle's return-value
casting and HTML error pages, and `extensions.request` as a bottle-like request object. Events
arrive as the Kafka trigger sends them (kubeless `pkg/utils/event_sender.go` GetHTTPReq): a POST
with a NEW random `event-id` on every send, which faasemu derives from the seeded attempt id.
Standard library only; bottle itself is not needed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import pickle
import select
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from faasemu.events.model import data_bytes
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, prefixed_routes, strip_prefix
from faasemu.runtimes.base import Delivery, DeliveryFailed, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.contract import Runtime

HTML = "text/html; charset=UTF-8"
METHODS = ("DELETE", "GET", "PATCH", "POST")  # @app.route('/<:re:.*>', method=[...]); HEAD is served as GET
EVENT_NAMESPACE = "kafkatriggers.kubeless.io"
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 408: "Request Timeout", 500: "Internal Server Error"}


# -- bottle's request object ---------------------------------------------------------------------


class FormsDict(Mapping[str, Any]):
    """bottle's FormsDict: item access gives the LAST value as a latin-1 "native" string (so
    `query.get('name')` of UTF-8 input is mojibake, as there), attribute access re-decodes it as
    UTF-8 and defaults to '' (`query.name`)."""

    def __init__(self, pairs: Any = ()) -> None:
        self.dict: dict[str, list[Any]] = {}
        for key, value in pairs:
            self.append(key, value)

    def __getitem__(self, key: str) -> Any:
        return self.dict[key][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict)

    def __len__(self) -> int:
        return len(self.dict)

    def get(self, key: str, default: Any = None, index: int = -1, type: Callable[[Any], Any] | None = None) -> Any:
        try:
            value = self.dict[key][index]
            return type(value) if type else value
        except Exception:  # bottle's MultiDict.get: any failure gives the default
            return default

    def getall(self, key: str) -> list[Any]:
        return list(self.dict.get(key) or [])

    getlist, getone = getall, get

    def append(self, key: str, value: Any) -> None:
        self.dict.setdefault(key, []).append(value)

    __setitem__ = append

    def replace(self, key: str, value: Any) -> None:
        self.dict[key] = [value]

    def allitems(self) -> Iterator[tuple[str, Any]]:
        return ((k, v) for k, vs in self.dict.items() for v in vs)

    def getunicode(self, name: str, default: Any = None, encoding: str = "utf8") -> Any:
        try:
            value = self[name]
            return value.encode("latin1").decode(encoding) if isinstance(value, str) else value
        except (UnicodeError, KeyError):
            return default

    def decode(self, encoding: str = "utf8") -> FormsDict:
        def fix(s: Any) -> Any:
            return s.encode("latin1").decode(encoding) if isinstance(s, str) else s

        return FormsDict((fix(k), fix(v)) for k, v in self.allitems())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self.getunicode(name, default="")


def parse_qsl_latin1(qs: str) -> list[tuple[str, str]]:
    """bottle's `_parse_qsl`: '+' is a space and escapes decode as latin-1."""
    pairs = [pair.partition("=") for pair in qs.split("&") if pair]
    return [(unquote(k.replace("+", " "), "latin1"), unquote(v.replace("+", " "), "latin1")) for k, _, v in pairs]


class WSGIHeaderDict(Mapping[str, str]):
    """`request.headers`: case-insensitive, keys Title-Cased from the WSGI environ, iteration yields names."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    @staticmethod
    def _ekey(key: str) -> str:
        key = key.replace("-", "_").upper()
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def __getitem__(self, key: str) -> str:
        return self.environ[self._ekey(key)]

    def __iter__(self) -> Iterator[str]:
        for key in self.environ:
            if key[:5] == "HTTP_":
                yield key[5:].replace("_", "-").title()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)


class FileUpload:
    """A multipart file field: `name`, `raw_filename`, `filename` (sanitised as bottle does), `file`, `save()`."""

    def __init__(self, data: bytes, name: str, filename: str, content_type: str) -> None:
        self.file, self.name, self.raw_filename, self.content_type = io.BytesIO(data), name, filename, content_type

    @property
    def filename(self) -> str:
        import re
        import unicodedata

        name = unicodedata.normalize("NFKD", self.raw_filename).encode("ASCII", "ignore").decode("ASCII")
        name = os.path.basename(name.replace("\\", os.path.sep))
        name = re.sub(r"[^a-zA-Z0-9-_.\s]", "", name).strip()
        return re.sub(r"[-\s]+", "-", name).strip(".-")[:255] or "empty"

    def save(self, destination: Any, overwrite: bool = False) -> None:
        if isinstance(destination, str):
            if os.path.isdir(destination):
                destination = os.path.join(destination, self.filename)
            if not overwrite and os.path.exists(destination):
                raise OSError("File exists.")
            with open(destination, "wb") as out:
                out.write(self.file.getvalue())
        else:
            destination.write(self.file.getvalue())


class BottleRequest:
    """`event['extensions']['request']`: the parts of bottle's BaseRequest handlers use, over a WSGI environ."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    path = property(lambda self: "/" + self.environ.get("PATH_INFO", "").lstrip("/"))
    method = property(lambda self: self.environ.get("REQUEST_METHOD", "GET").upper())
    headers = property(lambda self: WSGIHeaderDict(self.environ))
    query_string = property(lambda self: self.environ.get("QUERY_STRING", ""))
    content_type = property(lambda self: self.environ.get("CONTENT_TYPE", "").lower())
    content_length = property(lambda self: int(self.environ.get("CONTENT_LENGTH") or -1))
    script_name = property(lambda self: "/")
    fullpath = property(lambda self: self.path)
    chunked = property(lambda self: False)
    is_xhr = is_ajax = property(lambda self: self.environ.get("HTTP_X_REQUESTED_WITH", "").lower() == "xmlhttprequest")

    def get_header(self, name: str, default: Any = None) -> Any:
        return self.headers.get(name, default)

    @property
    def body(self) -> io.BytesIO:
        body: io.BytesIO = self.environ["bottle.request.body"]
        body.seek(0)
        return body

    @property
    def query(self) -> FormsDict:
        return FormsDict(parse_qsl_latin1(self.query_string))

    GET = query

    @property
    def json(self) -> Any:
        """Parsed only for `application/json` (any case, parameters ignored); None for an empty body."""
        if self.content_type.split(";")[0] != "application/json":
            return None
        data = self.body.read()
        return json.loads(data.decode("utf-8")) if data else None

    @property
    def POST(self) -> FormsDict:
        if not self.content_type.startswith("multipart/"):
            return FormsDict(parse_qsl_latin1(self.body.read().decode("latin1")))
        from email.parser import BytesParser
        from email.policy import HTTP

        head = f"Content-Type: {self.environ.get('CONTENT_TYPE', '')}\r\n\r\n".encode("latin1")
        message = BytesParser(policy=HTTP).parsebytes(head + self.body.read())
        post = FormsDict()
        for part in message.iter_parts() if message.is_multipart() else ():
            name: Any = part.get_param("name", header="content-disposition")
            filename: Any = part.get_param("filename", header="content-disposition")
            data: Any = part.get_payload(decode=True) or b""
            if filename is None:
                post.append(name, data.decode("utf8"))
            else:
                post.append(name, FileUpload(data, name, filename, part.get_content_type()))
        return post

    forms = property(lambda self: FormsDict((k, v) for k, v in self.POST.allitems() if not isinstance(v, FileUpload)))
    files = property(lambda self: FormsDict((k, v) for k, v in self.POST.allitems() if isinstance(v, FileUpload)))
    params = property(lambda self: FormsDict([*self.query.allitems(), *self.forms.allitems()]))

    @property
    def cookies(self) -> FormsDict:
        return FormsDict((c.key, c.value) for c in SimpleCookie(self.environ.get("HTTP_COOKIE", "")).values())

    def get_cookie(self, key: str, default: Any = None) -> Any:
        return self.cookies.get(key) or default

    @property
    def url(self) -> str:
        env = self.environ
        scheme = env.get("HTTP_X_FORWARDED_PROTO") or env.get("wsgi.url_scheme", "http")
        host = env.get("HTTP_X_FORWARDED_HOST") or env.get("HTTP_HOST") or env.get("SERVER_NAME", "127.0.0.1")
        query = env.get("QUERY_STRING")
        return f"{scheme}://{host}{quote(self.fullpath)}" + (f"?{query}" if query else "")

    urlparts = property(lambda self: urlsplit(self.url))

    @property
    def remote_route(self) -> list[str]:
        proxy = self.environ.get("HTTP_X_FORWARDED_FOR")
        if proxy:
            return [ip.strip() for ip in proxy.split(",")]
        return [self.environ["REMOTE_ADDR"]] if self.environ.get("REMOTE_ADDR") else []

    remote_addr = property(lambda self: (self.remote_route or [None])[0])

    def get(self, key: str, default: Any = None) -> Any:
        return self.environ.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __repr__(self) -> str:
        return f"<LocalRequest: {self.method} {self.url}>"


def wsgi_environ(request: HttpRequest, path: str) -> dict[str, Any]:
    """The environ the runtime's server (cherrypy) builds: repeated headers joined with ', '."""
    host = request.header("host") or request.host
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method, "PATH_INFO": path, "QUERY_STRING": request.query, "SCRIPT_NAME": "",
        "SERVER_NAME": host.rsplit(":", 1)[0], "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.source_ip, "wsgi.url_scheme": request.scheme,
        "bottle.request.body": io.BytesIO(request.body),
    }
    for name, value in request.headers:
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    return environ


# -- bottle's answers ----------------------------------------------------------------------------


def html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;").replace(
        "'", "&#039;")


def error_page(status: int, message: str, url: str) -> HttpResponse:
    """bottle's ERROR_PAGE_TEMPLATE as rendered for an HTTPError (checked against bottle 0.12)."""
    line = html_escape(f"{status} {_REASONS.get(status, 'Unknown')}")
    body = (
        '\n    <!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n    <html>\n        <head>\n'
        f"            <title>Error: {line}</title>\n"
        '            <style type="text/css">\n              html {background-color: #eee; font-family: sans;}\n'
        "              body {background-color: #fff; border: 1px solid #ddd;\n"
        "                    padding: 15px; margin: 15px;}\n"
        "              pre {background-color: #eee; border: 1px solid #ddd; padding: 5px;}\n"
        "            </style>\n        </head>\n        <body>\n"
        f"            <h1>Error: {line}</h1>\n"
        f"            <p>Sorry, the requested URL <tt>{html_escape(repr(url))}</tt>\n"
        f"               caused an error:</p>\n            <pre>{html_escape(message)}</pre>\n"
        "        </body>\n    </html>\n"
    )
    return HttpResponse(status, [("Content-Type", HTML)], body.encode())


def _bottle_kind(obj: Any) -> str | None:
    names = {cls.__name__ for cls in type(obj).__mro__}
    return "error" if "HTTPError" in names else "response" if "HTTPResponse" in names else None


def bottle_response(result: Any, url: str) -> HttpResponse:
    """What bottle makes of the handler's return value: the JSON plugin turns a dict into JSON, then
    `Bottle._cast`: falsy -> empty, str -> UTF-8, bytes as is, a list of str/bytes joined, a file
    read, any other iterable of str/bytes joined, anything else a 500 page."""
    status, headers = 200, [("Content-Type", HTML)]
    kind = _bottle_kind(result)
    if kind == "error":
        return error_page(result.status_code, str(result.body), url)
    if kind == "response":
        status, headers, result = result.status_code, [(str(k), str(v)) for k, v in result.headerlist], result.body
    if isinstance(result, dict):
        headers = [(k, v) for k, v in headers if k.lower() != "content-type"] + [("Content-Type", "application/json")]
        return HttpResponse(status, headers, json.dumps(result).encode())
    if not result:
        return HttpResponse(status, headers, b"")
    if isinstance(result, (tuple, list)) and isinstance(result[0], (bytes, str)):
        result = result[0][0:0].join(result)
    if isinstance(result, str):
        return HttpResponse(status, headers, result.encode("utf-8"))
    if isinstance(result, bytes):
        return HttpResponse(status, headers, result)
    if hasattr(result, "read"):
        return HttpResponse(status, headers, _encode(result.read()))
    try:
        parts = [part for part in iter(result) if part]
    except TypeError:
        return error_page(500, "Unhandled exception", url)
    if parts and not isinstance(parts[0], (bytes, str)):
        return error_page(500, f"Unsupported response type: {type(parts[0])}", url)
    return HttpResponse(status, headers, b"".join(_encode(part) for part in parts))


def _encode(part: Any) -> bytes:
    return part.encode("utf-8") if isinstance(part, str) else bytes(part)


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """A timeout is the runtime's 408 page (without the URL, which is not known here); a runtime that
    died or cannot start is what a Kubernetes service without a ready pod answers: 502/503 text."""
    if kind == "timeout":
        return error_page(408, "Timeout while processing the function", "")
    status = 503 if kind == "unavailable" else 502
    return HttpResponse(status, [("Content-Type", "text/plain; charset=utf-8")], f"{message}\n".encode())


# -- environment, routes, events -----------------------------------------------------------------


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What the Kubeless controller sets on the runtime container (kubelessutil.go EnsureFuncDeployment)."""
    module = os.path.splitext(os.path.basename(spec.handler_file or ""))[0] or (spec.handler_module or "")
    return {"FUNC_HANDLER": spec.handler_attr or "", "MOD_NAME": module.rpartition(".")[2],
            "FUNC_TIMEOUT": _seconds(spec.timeout), "FUNC_RUNTIME": runtime_id(),
            "FUNC_MEMORY_LIMIT": f"{spec.memory}Mi", "FUNC_PORT": "8080"}


def runtime_id() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """`http:` paths (an HTTP trigger's Ingress, path passed through), plus `/kubeless/<name>` standing
    for the function's own Service, whose prefix is stripped as a `kubectl proxy` call would."""
    return (*spec.http, *prefixed_routes("/kubeless", spec.name))


def function_path(spec: FunctionSpec, request: HttpRequest) -> str:
    return strip_prefix(request.path, f"/kubeless/{spec.name}") or request.path


def event_id(attempt_id: str) -> str:
    """A new id per send, as GetRandString(11) makes it (11 random bytes, base64url without padding);
    here derived from the seeded attempt id, so a campaign reproduces."""
    return base64.urlsafe_b64encode(hashlib.sha256(attempt_id.encode()).digest()[:11]).decode().rstrip("=")


def go_time(iso: str) -> str:
    """Go's `time.Time.String()` in UTC: `2009-11-10 23:00:00.5 +0000 UTC` (fraction trimmed)."""
    when = datetime.fromisoformat(iso).astimezone(UTC)
    fraction = f".{when.microsecond:06d}".rstrip("0").rstrip(".")
    return when.strftime("%Y-%m-%d %H:%M:%S") + fraction + " +0000 UTC"


def is_json_object(body: bytes) -> bool:
    """event_sender.go IsJSON: unmarshals into a map, so only an object (or null) counts as JSON."""
    try:
        return isinstance(json.loads(body), (dict, type(None)))
    except ValueError:
        return False


def trigger_request(delivery: Delivery, clock: Callable[[], float] = time.time) -> HttpRequest:
    """The Kafka trigger's POST to the function's service for one send of the event."""
    event = delivery.event
    body = data_bytes(event)
    media = "application/json" if is_json_object(body) else "application/x-www-form-urlencoded"
    attempt_id = delivery.attempt_id or f"{event['id']}/{delivery.attempt}"
    headers = [("content-type", media), ("event-id", event_id(attempt_id)),
               ("event-time", go_time(event["time"])), ("event-namespace", EVENT_NAMESPACE), ("event-type", media)]
    return HttpRequest("POST", "/", "", headers, body, time_ms=int(clock() * 1000))


# -- the adapter ---------------------------------------------------------------------------------


class Adapter(BaseAdapter):
    """The runtime's bottle route for one function: build event and context, run, cast the result."""

    def __init__(self, spec: FunctionSpec, clock: Callable[[], float] = time.time) -> None:
        super().__init__(spec)
        self.clock = clock
        self.url = ""

    def bind(self, module: ModuleType) -> None:
        self.handler = self.find_handler(module, why=" (Kubeless calls FUNC_HANDLER)")

    def context(self) -> dict[str, Any]:
        """function_context: the name is the Python function's `__name__`, the timeout a float."""
        return {"function-name": getattr(self.handler, "__name__", self.spec.handler_attr),
                "timeout": float(os.getenv("FUNC_TIMEOUT", self.spec.timeout)),
                "runtime": os.getenv("FUNC_RUNTIME"), "memory-limit": os.getenv("FUNC_MEMORY_LIMIT")}

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        path = function_path(self.spec, request)
        req = BottleRequest(wsgi_environ(request, path))
        self.url = req.url
        method = "GET" if request.method == "HEAD" else request.method
        if method == "GET" and path == "/healthz":  # the runtime's own liveness route
            return HttpResponse(200, [("Content-Type", HTML)], b"OK")
        if method not in METHODS:
            page = error_page(405, "Method not allowed.", self.url)
            page.headers.insert(0, ("Allow", ",".join(METHODS)))
            return page
        data: Any = req.body.read()
        if req.get_header("content-type") == "application/json":  # exact match: a charset makes it raw bytes
            data = req.json
        event = {"data": data, "event-id": req.get_header("event-id"), "event-type": req.get_header("event-type"),
                 "event-time": req.get_header("event-time"), "event-namespace": req.get_header("event-namespace"),
                 "extensions": {"request": req}}
        outcome, result = self._run(event)
        if outcome == "exception":
            raise result
        response = bottle_response(result, self.url) if outcome == "ok" else error_page(
            408, "Timeout while processing the function", self.url)
        if request.method == "HEAD":
            response.body = b""
        return response

    def _run(self, event: dict[str, Any]) -> tuple[str, Any]:
        """funcWrap in a child process: ("ok", result), ("exception", exc) or ("lost", None) when no
        result came back (timeout, exit, unpicklable), which the runtime answers 408."""
        self.bound()
        if not hasattr(os, "fork"):
            return self._call(event)
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # Python 3.12 warns about fork in threaded processes
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: run, send the pickled result, and leave without cleanup
            os.close(read_end)
            signal.alarm(math.ceil(self.spec.timeout) + 1)  # never outlive an abandoned call
            try:
                payload = pickle.dumps(self._call(event))
            except BaseException:
                traceback.print_exc()
                payload = b""
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        os.close(write_end)
        return self._collect(pid, read_end)

    def _call(self, event: dict[str, Any]) -> tuple[str, Any]:
        try:
            return "ok", self.bound()(event, self.context())
        except Exception as exc:  # funcWrap catches Exception only: SystemExit ends the process
            exc.add_note("".join(traceback.format_exception(exc)).rstrip())
            if _bottle_kind(exc):
                return "ok", exc
            return "exception", exc

    def _collect(self, pid: int, fd: int) -> tuple[str, Any]:
        # Answer just before the supervisor's own deadline, as the runtime's q.get(timeout=...) does.
        deadline = time.monotonic() + self.spec.timeout - min(0.5, self.spec.timeout * 0.1)
        chunks = []
        try:
            while chunk := (os.read(fd, 1 << 16) if select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]
                            else None):
                chunks.append(chunk)
        finally:
            os.close(fd)
        if chunk is None:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if chunk is None:
            print(f"Timeout after {self.spec.timeout:g} s: the runtime answers 408", file=sys.stderr)
            return "lost", None
        if not chunks:
            print("The function's process ended without a result (it exited, or its result cannot be pickled): "
                  "Kubeless waits for the timeout and answers 408", file=sys.stderr)
            return "lost", None
        return pickle.loads(b"".join(chunks))

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """The runtime re-raises the handler's exception; bottle answers 500 with its error page."""
        return error_page(500, "Internal Server Error", self.url)

    def event_request(self, delivery: Delivery, inv: Invocation) -> HttpRequest:
        return trigger_request(delivery, self.clock)

    def delivered(self, response: HttpResponse) -> bool:
        return response.status == 200  # SendMessage: anything but 200 is an error

    def delivery_failed(self, request: HttpRequest, response: HttpResponse) -> DeliveryFailed:
        return DeliveryFailed(f"Error: received error code {response.status}")


RUNTIME = Runtime("kubeless", Adapter, environment, http_routes, failure_response)
