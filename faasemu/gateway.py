"""The HTTP face of `faasemu up`: function routes, and faasemu's own endpoints under `/_faasemu/`.

The function hot path is a raw ASGI callable: Starlette's Request/Response cost about half of a
trivial invocation, and this path is all faasemu adds between the client and the worker. The
admin endpoints, which are rare, use Starlette.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from faasemu import __version__
from faasemu.routing import MethodNotAllowed
from faasemu.runtimes.base import HttpRequest, HttpResponse
from faasemu.supervisor import Supervisor

MAX_BODY = 6 * 1024 * 1024  # the Lambda payload limit; SPEC §4
ADMIN_PREFIXES = ("/_faasemu/", "/2015-03-31/")

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
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    body = json.dumps(payload, indent=None).encode()
    return HttpResponse(status, [("content-type", "application/json"), *(headers or [])], body)


class Gateway:
    """The ASGI application of `faasemu up`."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.admin = Starlette(routes=self.admin_routes())

    def admin_routes(self) -> list[Route]:
        return [
            Route("/_faasemu/health", self.health, methods=["GET"]),
            Route("/_faasemu/functions", self.functions, methods=["GET"]),
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIXES):
            await self.admin(scope, receive, send)
            return
        await self.invoke(scope, receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.supervisor.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.supervisor.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

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
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
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
        response, _ = await self.supervisor.invoke_http(match.route.function, request)
        await send_response(send, response)

    # -- admin -----------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "functions": len(self.supervisor.pools)})

    async def functions(self, request: Request) -> Response:
        return JSONResponse({"functions": self.supervisor.status()})
