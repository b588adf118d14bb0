"""The HTTP face of `faasemu up`: function routes, and faasemu's own endpoints under `/_faasemu/`.

The function hot path and the event ingress are raw ASGI: Starlette's Request/Response cost about
half of a trivial invocation and a quarter of an ingress request, and these paths are all faasemu
adds between a client and a worker or the bus. The other admin endpoints, which are rare, use Starlette.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from faasemu import __version__
from faasemu.delivery.admission import refusal
from faasemu.delivery.bus import Bus, ingress_answer
from faasemu.delivery.effects import EffectLog
from faasemu.delivery.eventlog import events_json
from faasemu.delivery.sqs_api import JSON_TYPE as SQS_JSON_TYPE
from faasemu.delivery.sqs_api import SqsApi, SqsError, error_answer
from faasemu.events.ingress import IngressError, parse_ingress
from faasemu.events.model import normalize, utc_now
from faasemu.project.hosts import HostGuard
from faasemu.runtimes.base import ASYNC_HTTP_TYPE, HttpRequest, HttpResponse
from faasemu.server.dashboard import Dashboard
from faasemu.server.lambda_api import PREFIXES as LAMBDA_API_PREFIXES
from faasemu.server.lambda_api import LambdaApi
from faasemu.server.router import MethodNotAllowed
from faasemu.server.supervisor import Supervisor

MAX_BODY = 6 * 1024 * 1024  # the Lambda payload limit (docs/architecture.md#an-http-request)
ADMIN_PREFIXES = ("/_faasemu/", *LAMBDA_API_PREFIXES)
INGRESS = "/_faasemu/events"  # POST: the event ingress (GET lists events, through Starlette)

Scope = dict[str, Any]


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Any, limit: int = MAX_BODY) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_response(send: Any, response: HttpResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    # RFC 9110: no Content-Length on a 1xx or 204 (ASP.NET and werkzeug send none on a 204 No Content)
    if response.status >= 200 and response.status != 204 and not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps(payload, indent=None).encode()
    return HttpResponse(status, [("content-type", "application/json"), *(headers or [])], body)


class Gateway:
    """The ASGI application of `faasemu up`."""

    def __init__(self, supervisor: Supervisor, bus: Bus, hosts: HostGuard | None = None, ui: bool = True) -> None:
        self.supervisor = supervisor
        self.bus = bus
        self.hosts = hosts if hosts is not None else HostGuard("127.0.0.1")
        self.refused_hosts: set[str] = set()  # each refused Host is logged once
        self._shut_down = False
        self.effects = EffectLog()
        self.sqs_api = SqsApi({}, "")  # its queues are the manifest's at each request (a reload may change them)
        self.dashboard = Dashboard(self) if ui else None  # faasemu/server/dashboard.py; off with `up --no-ui`
        self.admin = Starlette(routes=self.admin_routes())

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_faasemu/health", self.health, methods=["GET"]),
            Route("/_faasemu/functions", self.functions, methods=["GET"]),
            Route("/_faasemu/events", self.list_events, methods=["GET"]),
            Route("/_faasemu/bus/wake", self.wake, methods=["POST"]),
            Route("/_faasemu/sink", self.list_sink, methods=["GET"]),
            Route("/_faasemu/sink/{name:path}", self.sink, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/_faasemu/sqs", self.sqs, methods=["POST"]),
            Route("/_faasemu/sqs/{rest:path}", self.sqs, methods=["POST"]),
            *LambdaApi(self).routes(),  # faasemu/server/lambda_api.py: Invoke, ListFunctions, GetFunction ...
            *(self.dashboard.routes() if self.dashboard is not None else []),
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        # Every request, function routes included, passes the DNS-rebinding guard: a dict lookup.
        for name, value in scope["headers"]:
            if name == b"host":
                if not self.hosts.allows_host(value):
                    await self.refuse_host(scope, send, value.decode("latin-1"))
                    return
                break
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIXES):
            refused = self.hosts.cross_site_problem(scope["method"], path, scope["headers"])
            if refused is not None:
                await send_response(send, _refusal(path, *refused))
                return
            if path == INGRESS and scope["method"] == "POST":  # the bus's hot path, raw ASGI as invoke's
                await send_response(send, await self.ingress(scope, receive))
                return
            await self.admin(scope, receive, send)
            return
        await self.invoke(scope, receive, send)

    async def refuse_host(self, scope: Scope, send: Any, host: str) -> None:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
        message = (f"Host '{host}' is not served: faasemu up answers only {self.hosts.shown} (a guard against DNS "
                   f"rebinding); to serve this name, run faasemu up --allow-host {name or host} or add it to "
                   "allow_hosts: in the manifest")
        if host not in self.refused_hosts and len(self.refused_hosts) < 32:
            self.refused_hosts.add(host)
            self.supervisor.console.warning(f"refused {scope['method']} {scope['path']}: {message}")
        await send_response(send, _refusal(scope["path"], 403, message))

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.supervisor.start()
                reopened = self.bus.start()
                if reopened:
                    self.supervisor.console.notice(
                        f"bus  {reopened} deliveries left open by an earlier run are queued again")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Here, not only in up.serve's `finally`: after a SIGTERM uvicorn re-raises the signal
                # as its serve() returns, so that `finally` never runs and the workers would be left
                # unreaped. serve() calls shutdown() too, for when uvicorn skips this message.
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def shutdown(self) -> None:
        """Stop delivering, then stop the workers: once, whichever caller comes first."""
        if self._shut_down:
            return
        self._shut_down = True
        await self.bus.close()
        await self.supervisor.close()

    async def invoke(self, scope: Scope, receive: Any, send: Any) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        router = self.supervisor.router
        try:
            match = router.match(method, path)
        except MethodNotAllowed as exc:
            await send_response(send, json_response(
                405, {"message": f"Method {method} not allowed on {path}", "allowed": exc.allowed},
                [("allow", ", ".join(exc.allowed))]))
            return
        if match is None:
            await send_response(send, json_response(
                404, {"message": f"No function is served on {method} {path}", "routes": router.describe()}))
            return
        if match.route.response is not None:  # the platform's host answers it itself (Azure's GET /, ping)
            await send_response(send, match.route.response)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]  # ASGI: lower-case
        declared = next((v for k, v in headers if k == "content-length"), None)
        try:
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
                raise BodyTooLarge()
            body = await read_body(receive)
        except BodyTooLarge:
            await send_response(send, json_response(
                413, {"message": f"Request body is larger than the {MAX_BODY // (1024 * 1024)} MB payload limit"}))
            return
        client = scope.get("client") or ("127.0.0.1", 0)
        host = next((v for k, v in headers if k == "host"), "127.0.0.1")
        request = HttpRequest(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            route=match.route.path,
            path_params=match.params,
            source_ip=client[0],
            scheme=scope.get("scheme", "http"),
            host=host,
            time_ms=int(time.time() * 1000),
        )
        if match.route.mode == "async":
            await send_response(send, await self.accept_async(match.route.function, request))
            return
        response, _ = await self.supervisor.invoke_http(match.route.function, request)
        await send_response(send, response)

    async def accept_async(self, name: str, request: HttpRequest) -> HttpResponse:
        """An async route (OpenFaaS /async-function, Netlify -background): 202 now, delivery later."""
        call_id = str(uuid.uuid4())
        data = {**request.to_wire(), "body_base64": base64.b64encode(request.body).decode()}
        event = {"specversion": "1.0", "id": call_id, "source": f"faasemu/http/{name}", "type": ASYNC_HTTP_TYPE,
                 "time": _now(), "datacontenttype": "application/json", "data": data}
        await self.bus.publish([event], "async-http", target=name)
        self.supervisor.console.invocation(name, f"{request.method} {request.path}", 202, 0.0,
                                           note=f"accepted; delivered through the bus as {call_id}")
        return HttpResponse(202, [("x-call-id", call_id), ("content-length", "0")], b"")

    # -- admin -----------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "functions": len(self.supervisor.pools)})

    async def functions(self, request: Request) -> Response:
        return JSONResponse({"functions": self.supervisor.status()})

    async def _body(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            return None
        try:
            return await read_body(request.receive)
        except BodyTooLarge:
            return None

    async def ingress(self, scope: Scope, receive: Any) -> HttpResponse:
        """POST /_faasemu/events: structured, batch, binary or plain JSON; 202 once durably stored.
        Raw ASGI (Starlette's Request and JSONResponse were a quarter of an ingress request)."""
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # ASGI: lower-case names; the first of a repeated one wins
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        declared = headers.get("content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
                raise BodyTooLarge()
            body = await read_body(receive)
        except BodyTooLarge:
            return json_response(413, {"message": "body larger than 6 MB; nothing was stored"})
        try:
            events = parse_ingress(headers.get("content-type"), headers, body)
        except IngressError as exc:
            return json_response(exc.status, {"message": exc.message + "; nothing was stored"})
        functions = [pool.spec for pool in self.supervisor.pools.values()]
        refused = next(filter(None, (refusal(event, functions) for event in events)), None)  # admission.py
        if refused:
            return json_response(400, {"message": refused + "; nothing was stored"})
        accepted = await self.bus.publish(events, "ingress")
        return json_response(202, ingress_answer(accepted))

    async def list_events(self, request: Request) -> Response:
        dead = request.query_params.get("dead") in ("1", "true")
        limit = int(request.query_params.get("limit", "50"))
        return JSONResponse({"events": events_json(self.bus.log.recent(limit, dead))})

    async def wake(self, request: Request) -> Response:
        """Called by `faasemu events --redrive`: pick up deliveries made pending outside this process."""
        queued = self.bus.requeue_open()
        return JSONResponse({"queued": queued})

    async def sink(self, request: Request) -> Response:
        """The effect sink: stands in for an email, payment or webhook API; answers 200 and records.
        Honours Idempotency-Key as Stripe does, by the rule in EffectLog (docs/verification.md#idempotency-keys)."""
        body = await self._body(request) or b""
        answer = self.effects.call_sink(request.path_params["name"], request.method, body,
                                        request.headers.get("idempotency-key"))
        call = answer.call
        note = f"{answer.note}  {_short(call.body)}" if answer.note else _short(call.body)
        self.supervisor.console.invocation("sink", f"{call.method} {call.name}", answer.status, 0.0, note=note)
        return JSONResponse(answer.payload, status_code=answer.status, headers=answer.headers)

    async def sqs(self, request: Request) -> Response:
        """The SQS stand-in (delivery/sqs_api.py): each message sent is published as the event its queue
        names, as a POST to the events URL would be (docs/delivery.md#sqs-sends-become-events)."""
        body = await self._body(request)
        api = self.sqs_api
        api.queues = dict(self.supervisor.manifest.queues)
        api.endpoint = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}/_faasemu/sqs"
        if body is None:
            answer = error_answer(SqsError("InvalidParameterValue", "InvalidParameterValue",
                                           "the request is larger than 6 MB; nothing was sent"))
        else:
            answer = api.handle(request.headers.get("x-amz-target"), request.headers.get("content-type"), body)
        if answer.events:
            now = utc_now()
            events = [normalize(event, default_id=message_id, default_time=now)
                      for event, message_id in zip(answer.events, answer.message_ids)]
            functions = [pool.spec for pool in self.supervisor.pools.values()]
            refused = next(filter(None, (refusal(event, functions) for event in events)), None)  # admission.py
            if refused:
                answer = error_answer(SqsError("InvalidMessageContents", "InvalidMessageContents",
                                               refused + "; nothing was sent"))
            else:
                await self.bus.publish(events, "sqs")
                for event in events:
                    self.supervisor.console.invocation("sqs", f"SendMessage {event['sqsqueue']}", 200, 0.0,
                                                       note=f"-> {event['type']}  {_short(event.get('data'))}")
        return Response(json.dumps(answer.payload), status_code=answer.status, headers=answer.headers,
                        media_type=SQS_JSON_TYPE)

    async def list_sink(self, request: Request) -> Response:
        effects = self.effects
        return JSONResponse({"calls": [call.to_json() for call in list(effects.sink)],
                             "replayed": [call.to_json() for call in list(effects.replayed)],
                             "errors": [error.to_json() for error in list(effects.errors)]})


def _refusal(path: str, status: int, message: str) -> HttpResponse:
    """A refused request; on the Lambda API in its error shape, so boto3 and the AWS CLI show the message."""
    if path.startswith(LAMBDA_API_PREFIXES):
        kind = "UnsupportedMediaTypeException" if status == 415 else "AccessDeniedException"
        return json_response(status, {"Type": "User", "message": message}, [("x-amzn-errortype", kind)])
    return json_response(status, {"message": message})


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
