"""Netlify Functions: `handler(event, context)` with the Lambda-compatible event `netlify dev` builds.

Netlify runs only JavaScript, TypeScript and Go; faasemu emulates its routing and its event and
response contract (netlify/cli: src/lib/functions/server.ts builds the event, synchronous.ts reads
the response, background.ts answers 202) for Python handlers written to that contract.

A function named `*-background` answers 202 at once and runs later through the bus, retried after
a failure as Netlify retries background functions. Standard library only (runs inside workers);
the Lambda context object is reused from the aws_lambda module.
"""

from __future__ import annotations

import base64
import hashlib
import html
import inspect
import json
import os
import time
import traceback
import urllib.parse
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from faasemu.events import model as events
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.adapter import BaseAdapter, handler_frames, prefixed_routes
from faasemu.runtimes.aws_lambda import LambdaContext
from faasemu.runtimes.base import (
    ASYNC_HTTP_TYPE,
    Delivery,
    HttpRequest,
    HttpResponse,
    Invocation,
    request_of,
)
from faasemu.runtimes.contract import Runtime
from faasemu.runtimes.drivers import HandlerLoop

Clock = Callable[[], float]
PREFIX = "/.netlify/functions"
ACCOUNT_ID = "faasemu-account"
SITE_ID = "faasemu-site"  # netlify dev's stand-in for an unlinked site is a fixed id too
_THIS_FILE = os.path.abspath(__file__)
# utils.ts `shouldBase64Encode`: these, text/*, +json and +xml pass as text; anything else (and a
# request without a content-type) is base64. "Equivalent to netlify/proxy request.go", it says.
_TEXT_TYPES = {"application/csp-report", "application/graphql", "application/json", "application/javascript",
               "application/x-www-form-urlencoded", "application/x-ndjson", "application/xml"}
# Node's http parser keeps only the first of these when a request repeats them (IncomingMessage).
_SINGLE = {"age", "authorization", "content-length", "content-type", "etag", "expires", "from", "host",
           "if-modified-since", "if-unmodified-since", "last-modified", "location", "max-forwards",
           "proxy-authorization", "referer", "retry-after", "server", "user-agent"}
_PATH_SAFE = "/!$&'()*+,;=:@"


def _json(value: Any) -> str:
    """JSON.stringify's spacing."""
    return json.dumps(value, separators=(",", ":"))


def _jwt_part(claims: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(_json(claims).encode()).decode().rstrip("=")


# netlify dev gives every Bearer-authenticated call the same emulated identity token, whose claims
# say where it comes from; this one carries the same claims (its signature is a placeholder).
_EMULATED_IDENTITY_TOKEN = ".".join((_jwt_part({"alg": "HS256", "typ": "JWT"}), _jwt_part(
    {"source": "netlify dev", "testData": "NETLIFY_DEV_LOCALLY_EMULATED_IDENTITY"}), "faasemu"))
# geolocation mode "mock": a fixed place
_MOCK_GEO = {"city": "San Francisco", "country": {"code": "US", "name": "United States"},
             "subdivision": {"code": "CA", "name": "California"}, "longitude": 0, "latitude": 0, "timezone": "UTC"}


# -- routes and environment ---------------------------------------------------------------------


def is_background(spec: FunctionSpec) -> bool:
    return spec.name.endswith("-background")


def routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """`/.netlify/functions/<name>` and every path below it, plus declared `http:` paths (what a
    redirect or a v2 `config.path` would add)."""
    return (*prefixed_routes(PREFIX, spec.name), *spec.http)


def http_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    return () if is_background(spec) else routes(spec)


def async_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    """Background functions: 202 at once (background.ts), the request delivered through the bus."""
    return routes(spec) if is_background(spec) else ()


def environment(spec: FunctionSpec, root: str) -> dict[str, str]:
    """What `netlify dev` sets for functions; the manifest's `env` goes on top."""
    return {"NETLIFY": "true", "NETLIFY_DEV": "true", "CONTEXT": "dev", "SITE_ID": SITE_ID,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name}


def request_id_header(value: str) -> str:
    """An `x-nf-request-id` (a 26-character ULID on Netlify) derived from `value`."""
    return "01" + hashlib.sha256(value.encode()).hexdigest()[:24].upper()


# -- the event (server.ts) ------------------------------------------------------------------------


def should_base64(content_type: str | None) -> bool:
    if not content_type:
        return True
    mime = content_type.split(";")[0].lower()
    return not (mime.startswith("text/") or mime.endswith(("+json", "+xml")) or mime in _TEXT_TYPES)


def node_headers(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Headers as Node's `request.headers` folds repeats, each wrapped in a list as server.ts does:
    `set-cookie` keeps every value, `cookie` joins with "; ", the single-valued ones keep the first,
    every other repeat joins with ", ". So `multiValueHeaders` rarely holds more than one value."""
    folded: dict[str, list[str]] = {}
    for name, value in pairs:
        name = name.lower()
        if name not in folded:
            folded[name] = [value]
        elif name == "set-cookie":
            folded[name].append(value)
        elif name == "cookie":
            folded[name] = [f"{folded[name][0]}; {value}"]
        elif name not in _SINGLE:
            folded[name] = [f"{folded[name][0]}, {value}"]
    return folded


def build_event(request: HttpRequest, nf_request_id: str) -> dict[str, Any]:
    """The event netlify dev's functions server hands a v1 function.

    Quirks kept: `isBase64Encoded` follows the content type even without a body (so a plain GET says
    true); `body` is None (JavaScript's undefined) unless the request declares a length or a
    transfer encoding; single values are the multi-values joined with ", "; `rawQuery` keeps its "?".
    """
    multi = node_headers(request.headers)
    for name, value in (("client-ip", request.source_ip), ("x-nf-client-connection-ip", request.source_ip),
                        ("x-nf-account-id", ACCOUNT_ID), ("x-nf-site-id", SITE_ID),
                        ("x-nf-request-id", nf_request_id)):
        multi[name] = [value]
    multi["x-nf-geo"] = [base64.b64encode(_json(_MOCK_GEO).encode()).decode()]
    is_base64 = should_base64(request.header("content-type"))
    body = None
    if request.header("transfer-encoding") is not None or (request.header("content-length") or "x").isdigit():
        body = base64.b64encode(request.body).decode() if is_base64 else request.body.decode("utf-8", "replace")
    query: dict[str, list[str]] = {}
    for name, value in urllib.parse.parse_qsl(request.query, keep_blank_values=True):
        query.setdefault(name, []).append(value)
    path = urllib.parse.quote(request.path, safe=_PATH_SAFE)
    raw_query = f"?{request.query}" if request.query else ""
    host = request.header("host") or "localhost"
    return {
        "path": path, "httpMethod": request.method,
        "queryStringParameters": {k: ", ".join(v) for k, v in query.items()},
        "multiValueQueryStringParameters": query,
        "headers": {k: ", ".join(v) for k, v in multi.items()}, "multiValueHeaders": multi,
        "body": body, "isBase64Encoded": is_base64,
        "rawUrl": f"{request.scheme}://{host}{path}{raw_query}", "rawQuery": raw_query,
    }


def client_context(headers: dict[str, str]) -> Any:
    """server.ts `buildClientContext`: a `Bearer` JWT gives `identity` (netlify dev's emulated one),
    `user` (the token's claims, not verified) and `custom.netlify`; anything else gives nothing."""
    parts = headers.get("authorization", "").split(" ")
    if len(parts) != 2 or parts[0] != "Bearer":
        return None
    try:
        claims = parts[1].split(".")[1]
        user = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    except (IndexError, ValueError):
        return None  # a bearer token that is not a JWT is not meant for Netlify Identity
    identity = {"url": "https://netlify-dev-locally-emulated-identity.netlify.com/.netlify/identity",
                "token": _EMULATED_IDENTITY_TOKEN}
    netlify = base64.b64encode(_json({"identity": identity, "user": user}).encode()).decode()
    return SimpleNamespace(identity=identity, user=user, custom={"netlify": netlify})


# -- the response (synchronous.ts) ----------------------------------------------------------------


class InvalidResponse(Exception):
    """The handler returned something netlify dev refuses; the message is netlify dev's own."""


def _inspect(value: Any) -> str:
    """Roughly what Node's util.inspect prints for a JSON-like value."""
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if value is None:
        return "null"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _falsy(value: Any) -> bool:
    """JavaScript falsiness: None, False, 0, NaN and "" (an empty list or dict is truthy)."""
    if value is None or value is False or value == "":
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (value == 0 or value != value)


def status_of(value: Any) -> int | None:
    """`Number(statusCode)` when it is a truthy number (so "201" passes and 0 does not)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number and number == number and number.is_integer() else None


def response_of(result: Any) -> HttpResponse:
    """A handler's return value as netlify dev answers it. No default content type is added: the
    handler's headers are all there is. `multiValueHeaders` replace same-named `headers`."""
    if result is None:
        raise InvalidResponse("lambda response was undefined. check your function code again")
    if not isinstance(result, dict) or status_of(result.get("statusCode")) is None:
        given = result.get("statusCode", ...) if isinstance(result, dict) else ...
        shown = "undefined" if given is ... else _inspect(given)
        raise InvalidResponse(f"Your function response must have a numerical statusCode. You gave: {shown}")
    status = status_of(result["statusCode"]) or 500
    if not 100 <= status <= 999:
        raise InvalidResponse(f"Invalid status code: {status}")
    body = result.get("body")
    if not _falsy(body) and not isinstance(body, str):
        raise InvalidResponse(f"Your function response must have a string or a stream body. You gave: {_inspect(body)}")
    headers: dict[str, tuple[str, list[str]]] = {}  # Node's setHeader: same name, any case, replaced
    for field in ("headers", "multiValueHeaders"):
        for name, value in (result.get(field) or {}).items():
            values = value if isinstance(value, list) else [value]
            headers[str(name).lower()] = (str(name), [_header(v) for v in values])
    raw = b""
    if isinstance(body, str) and not _falsy(body):  # a string by the check above
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return HttpResponse(status, [(name, value) for name, values in headers.values() for value in values], raw)


def _header(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def stack_trace(exc: BaseException) -> list[str]:
    """The handler's frames (those below this module's last one), one formatted frame a line."""
    return [line.rstrip("\n") for line in traceback.format_list(handler_frames(exc, _THIS_FILE))]


def error_response_for(error: str | tuple[str, str, list[str]], accepts_html: bool) -> HttpResponse:
    """synchronous.ts `handleErr`: a 500 whose body is `Type: message` and the stack, as plain text
    without a content type; or, for a browser (Accept: text/html), an HTML page around the JSON error."""
    if isinstance(error, str):
        text = error
    elif accepts_html:
        text = json.dumps({"errorType": error[0], "errorMessage": error[1], "trace": error[2]})
    else:
        text = f"{error[0]}: {error[1]}\n " + "\n".join(error[2])
    if accepts_html:
        page = (f"<!DOCTYPE html><html><head><title>Function error</title></head><body>"
                f"<h1>Function error</h1><pre>{html.escape(text)}</pre></body></html>")
        return HttpResponse(500, [("content-type", "text/html")], page.encode())
    return HttpResponse(500, [], text.encode())


def failure_response(kind: str, message: str, request_id: str) -> HttpResponse:
    """A timeout is lambda-local's TimeoutError, answered as any error (500); a function that
    cannot load answers 503 with the reason (docs/runtime-contract.md#the-supervisor-side-half-runtime)."""
    if kind == "unavailable":
        return HttpResponse(503, [("content-type", "text/plain; charset=utf-8")], message.encode())
    error_type = {"timeout": "TimeoutError", "oom": "Runtime.OutOfMemory"}.get(kind, "Runtime.ExitError")
    return error_response_for((error_type, message, []), accepts_html=False)


# -- events -----------------------------------------------------------------------------------------


def event_request(delivery: Delivery, spec: FunctionSpec) -> HttpRequest:
    """An event for a Netlify function, as a webhook would send it: a POST of the data to
    `/.netlify/functions/<name>`, the CloudEvent's attributes in binary mode (`ce-id` is the
    stable id a handler can deduplicate on)."""
    headers, body = events.to_binary(delivery.event)
    return HttpRequest("POST", f"{PREFIX}/{spec.name}", "",
                       [("host", "localhost"), ("content-length", str(len(body))), *headers], body,
                       route=f"{PREFIX}/{spec.name}", host="localhost")


# -- the adapter --------------------------------------------------------------------------------


class Adapter(BaseAdapter):
    """netlify dev's functions server for one function: event in, `handler(event, context)`, answer."""

    entry_example = "file.py:handler"

    def __init__(self, spec: FunctionSpec, clock: Clock = time.time) -> None:
        super().__init__(spec)
        self.clock = clock
        self.loop = HandlerLoop()
        self.accepts_html = False

    def _call(self, event: dict[str, Any], inv: Invocation, context: Any = None) -> Any:
        handler = self.bound()
        lambda_context = LambdaContext(self.spec, inv, self.clock)
        lambda_context.client_context = context
        result = handler(event, lambda_context)
        if inspect.iscoroutine(result):  # an `async def handler`, as Netlify's own handlers are
            result = self.loop.run(result)
        return result

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        self.accepts_html = "text/html" in (request.header("accept") or "")
        event = build_event(request, request_id_header(inv.request_id))
        return response_of(self._call(event, inv, client_context(event["headers"])))

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """A background function's request runs and its return value is ignored: only an exception
        (or a timeout) fails it. An event to any other function is a webhook POST: an answer other
        than 2xx fails the delivery."""
        if delivery.event.get("type") == ASYNC_HTTP_TYPE:
            request = request_of(delivery)
            # The retried event is the same request: its x-nf-request-id does not change.
            self._call(build_event(request, request_id_header(str(delivery.event["id"]))), inv)
            return
        request = event_request(delivery, self.spec)
        event = build_event(request, request_id_header(inv.request_id))
        result = self._call(event, inv)
        if is_background(self.spec):
            return
        response = response_of(result)
        if not self.delivered(response):
            raise self.delivery_failed(request, response)

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        if isinstance(exc, InvalidResponse):
            return error_response_for(str(exc), self.accepts_html)
        return error_response_for((type(exc).__name__, str(exc), stack_trace(exc)), self.accepts_html)


RUNTIME = Runtime("netlify", Adapter, environment, http_routes, failure_response, async_routes=async_routes)
