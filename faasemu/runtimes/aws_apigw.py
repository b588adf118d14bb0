"""PURE: API Gateway for AWS Lambda: the request events it builds (payload formats 1.0 and 2.0, as REST
APIs, HTTP APIs and Function URLs send them) and how it reads the function's marshalled answer.

Split from aws_lambda.py, which calls these from its Adapter: API Gateway is a component of its own
in front of the runtime (the request path: docs/architecture.md). Pure functions of their inputs;
runs inside workers, so standard library only.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from typing import Any

from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.aws_common import ACCOUNT
from faasemu.runtimes.base import HttpRequest, HttpResponse

JSON_HEADERS = [("content-type", "application/json")]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bodies of these types travel as text; anything else is base64 (see `encode_body`).
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/yaml",
               "application/graphql", "application/x-yaml")


def encode_body(request: HttpRequest) -> tuple[str | None, bool]:
    """The body as API Gateway passes it: (text or base64, isBase64Encoded); None when empty.

    Our rule, after HTTP API and Function URLs: text/*, JSON, XML, JavaScript, YAML and GraphQL
    (and `+json`/`+xml`) bodies pass as text; every other type is base64, including form posts
    (a quirk that breaks `parse_qs(event["body"])` there, so it does here). Without a
    content-type, valid UTF-8 passes as text. Undecodable bytes are always base64.
    """
    if not request.body:
        return None, False
    mime = (request.header("content-type") or "").split(";")[0].strip().lower()
    textual = not mime or mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))
    if textual:
        try:
            return request.body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(request.body).decode("ascii"), True


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(query, keep_blank_values=True)


def _clf_time(ms: int) -> str:
    """`12/Mar/2020:19:03:58 +0000`, with English month names whatever the locale."""
    t = time.gmtime(ms / 1000)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _domain(request: HttpRequest) -> str:
    host = request.header("host") or request.host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # without the port, as API Gateway


def route_key(spec: FunctionSpec, request: HttpRequest) -> str:
    """`GET /orders/{id}`; `ANY /path` when the trigger takes every method; `$default` without a route."""
    if not request.route:
        return "$default"
    trigger = next((t for t in spec.http if t.path == request.route), None)
    method = "ANY" if trigger is not None and not trigger.methods else request.method
    return f"{method} {request.route}"


def build_v2_event(request: HttpRequest, request_id: str, key: str) -> dict[str, Any]:
    """Payload format 2.0 (HTTP API, Function URLs). Repeated headers and query values are
    comma-joined; `cookie` headers move to `cookies`; empty parts are omitted, not null."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        if name == "cookie":
            cookies.extend(part for part in value.split("; ") if part)
        else:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    domain = _domain(request)
    event: dict[str, Any] = {"version": "2.0", "routeKey": key, "rawPath": request.path,
                             "rawQueryString": request.query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query: dict[str, str] = {}
    for name, value in _query_pairs(request.query):
        query[name] = f"{query[name]},{value}" if name in query else value
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT, "apiId": "faasemu", "domainName": domain, "domainPrefix": domain.split(".")[0],
        "http": {"method": request.method, "path": request.path, "protocol": "HTTP/1.1",
                 "sourceIp": request.source_ip, "userAgent": headers.get("user-agent", "")},
        "requestId": request_id, "routeKey": key, "stage": "$default",
        "time": _clf_time(request.time_ms), "timeEpoch": request.time_ms,
    }
    body, is_base64 = encode_body(request)
    if body is not None:
        event["body"] = body
    if request.path_params:
        event["pathParameters"] = dict(request.path_params)
    event["isBase64Encoded"] = is_base64
    return event


def build_v1_event(request: HttpRequest, request_id: str) -> dict[str, Any]:
    """Payload format 1.0 (REST API proxy integration): single- and multi-value maps, null when empty."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value  # the last value wins, as API Gateway documents
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in _query_pairs(request.query):
        query[name] = value
        multi_query.setdefault(name, []).append(value)
    resource = request.route or request.path
    body, is_base64 = encode_body(request)
    return {
        "resource": resource, "path": request.path, "httpMethod": request.method,
        "headers": headers or None, "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None, "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(request.path_params) or None, "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "faasemu", "domainName": _domain(request),
            "domainPrefix": _domain(request).split(".")[0], "extendedRequestId": request_id,
            "httpMethod": request.method, "path": request.path, "protocol": "HTTP/1.1",
            "requestId": request_id, "requestTime": _clf_time(request.time_ms),
            "requestTimeEpoch": request.time_ms, "resourceId": None, "resourcePath": resource, "stage": "$default",
            "identity": {"accessKey": None, "accountId": None, "caller": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "sourceIp": request.source_ip, "user": None,
                         "userAgent": headers.get("user-agent"), "userArn": None},
        },
        "body": body, "isBase64Encoded": is_base64,
    }


# -- HTTP responses (API Gateway reading the marshalled result) ----------------------------------


def gateway_error(status: int, message: str) -> HttpResponse:
    """API Gateway's own error answer (not the function's): 500 for HTTP API, 502 for REST API."""
    # HTTP API's own errors (500) are written `{"message":"..."}`, REST API's (502) `{"message": "..."}`.
    separators = (",", ":") if status == 500 else (", ", ": ")
    return HttpResponse(status, list(JSON_HEADERS), json.dumps({"message": message}, separators=separators).encode())


def _structured(result: dict[str, Any], multi: bool) -> HttpResponse | None:
    """A `statusCode` response, or None when API Gateway would call it malformed."""
    status, body = result.get("statusCode"), result.get("body")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return None
    if body is not None and not isinstance(body, str):
        return None  # "Lambda body contains the wrong type for field body"
    headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
    if multi:  # v1 only: format 2.0 has no multiValueHeaders in its response either
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), _header_value(v)) for v in values
                           if (str(name), _header_value(v)) not in headers)
    else:
        headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or ())
    if not any(name.lower() == "content-type" for name, _ in headers):
        # Neither API sends an empty content-type; both default to JSON, as sam local does too.
        headers.append(("content-type", "application/json"))
    raw = (body or "").encode()
    if result.get("isBase64Encoded") and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            return None
    return HttpResponse(status, headers, raw)


def _header_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def response_v2(payload: bytes) -> HttpResponse:
    """HTTP API format 2.0: a dict with `statusCode` is the response; any other JSON value is a
    200 `application/json` whose body is that JSON text (so a returned str keeps its quotes)."""
    try:
        result = json.loads(payload)
    except ValueError:
        return gateway_error(500, "Internal Server Error")
    if isinstance(result, dict) and "statusCode" in result:
        return _structured(result, multi=False) or gateway_error(500, "Internal Server Error")
    return HttpResponse(200, list(JSON_HEADERS), payload)


def response_v1(payload: bytes) -> HttpResponse:
    """REST API: only a dict with `statusCode` is valid; anything else is API Gateway's own 502."""
    try:
        result = json.loads(payload)
    except ValueError:
        result = None
    if isinstance(result, dict) and "statusCode" in result:
        response = _structured(result, multi=True)
        if response is not None:
            return response
    return gateway_error(502, "Internal server error")
