"""The dashboard of `faasemu up` (issue 14): the page under `/_faasemu/` and the JSON/SSE APIs it reads.

The page is package data (faasemu/server/ui/), served as is: no build step, no CDN, works offline.
State-changing APIs (redrive, send) are POSTs under `/_faasemu/`, so the gateway's host check and
its cross-site rule (a JSON content type, a local Origin) apply to them before they get here.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from faasemu.server.dashboard_data import campaign_json, events_page

if TYPE_CHECKING:
    from faasemu.server.gateway import Gateway

PREFIX = "/_faasemu"
STATIC = {"index.html": "text/html; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "app.js": "text/javascript; charset=utf-8"}
BACKLOG = 500  # lines a page opened late still sees
MAX_PAGE = 500
IDLE = 1.0  # seconds without a line before a live stream ends (LiveFeed.stream says why)
RETRY_MS = 200


class LiveFeed:
    """The console's invocations, notices, outputs and errors, fanned out to every open stream."""

    def __init__(self) -> None:
        self.backlog: deque[dict[str, Any]] = deque(maxlen=BACKLOG)
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self.next_id = 0
        self.cold_starts: dict[str, int] = {}  # per function, counted from the invocation lines since start

    def __call__(self, fields: dict[str, Any]) -> None:
        self.next_id += 1
        if fields.get("event") == "invocation" and fields.get("cold_ms") is not None:
            name = str(fields.get("function"))
            self.cold_starts[name] = self.cold_starts.get(name, 0) + 1
        item = {"id": self.next_id, **fields}
        self.backlog.append(item)
        for queue in list(self.listeners):
            if queue.qsize() < 10_000:  # a stalled tab must not grow memory without bound
                queue.put_nowait(item)

    async def stream(self, request: Request) -> AsyncIterator[bytes]:
        """Lines after the client's Last-Event-ID, then new ones until IDLE seconds pass without any.

        Ending when idle (the browser reconnects in RETRY_MS with Last-Event-ID, and misses nothing)
        keeps `up`'s Ctrl+C prompt: uvicorn waits for open responses before it stops, and nothing
        tells an app that it is stopping.
        """
        last = request.headers.get("last-event-id", "")
        after = int(last) if last.isdigit() and int(last) <= self.next_id else 0  # larger: an earlier `up`
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.add(queue)
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            for item in list(self.backlog):
                if item["id"] > after:
                    yield _sse(item)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), IDLE)
                except TimeoutError:
                    return
                if item["id"] > after:
                    yield _sse(item)
        finally:
            self.listeners.discard(queue)


def _sse(item: dict[str, Any]) -> bytes:
    return f"id: {item['id']}\ndata: {json.dumps(item, default=str)}\n\n".encode()


class Dashboard:
    """The routes of the dashboard, mounted by Gateway.admin_routes unless `up --no-ui`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.feed = LiveFeed()
        observers = getattr(gateway.supervisor.console, "observers", None)  # a stand-in console may have none
        if observers is not None:
            observers.append(self.feed)

    def routes(self) -> list[Route]:
        return [
            Route(f"{PREFIX}/", self.page, methods=["GET"]),
            Route(f"{PREFIX}/ui/{{name}}", self.static, methods=["GET"]),
            Route(f"{PREFIX}/api/functions", self.functions, methods=["GET"]),
            Route(f"{PREFIX}/api/live", self.live, methods=["GET"]),
            Route(f"{PREFIX}/api/events", self.events, methods=["GET"]),
            Route(f"{PREFIX}/api/redrive", self.redrive, methods=["POST"]),
            Route(f"{PREFIX}/api/campaign", self.campaign, methods=["GET"]),
        ]

    async def page(self, request: Request) -> Response:
        return _static("index.html")

    async def static(self, request: Request) -> Response:
        return _static(request.path_params["name"])

    async def functions(self, request: Request) -> Response:
        supervisor = self.gateway.supervisor
        subscriptions = sorted({t for pool in supervisor.pools.values() for t in pool.spec.events})
        rows = [{**row, "cold_starts": self.feed.cold_starts.get(row["name"], 0)} for row in supervisor.status()]
        return JSONResponse({"functions": rows, "event_types": subscriptions})

    async def live(self, request: Request) -> Response:
        return StreamingResponse(self.feed.stream(request), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def events(self, request: Request) -> Response:
        """GET /_faasemu/api/events?before=SEQ&limit=N&dead=1: one page, newest first."""
        query = request.query_params
        try:
            before = int(query["before"]) if query.get("before") else None
            limit = min(int(query.get("limit", "50")), MAX_PAGE)
        except ValueError:
            return JSONResponse({"message": "before= and limit= take whole numbers (limit at most "
                                 f"{MAX_PAGE})"}, status_code=400)
        dead = query.get("dead") in ("1", "true")
        return JSONResponse(events_page(self.gateway.bus.log.db, before, limit, dead))

    async def redrive(self, request: Request) -> Response:
        """POST /_faasemu/api/redrive {"event": ID or null}: `faasemu events --redrive`, then wake the bus."""
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return JSONResponse({"message": f"the body is not JSON: {exc}; send {{\"event\": ID}}"}, status_code=400)
        event_id = body.get("event") if isinstance(body, dict) else None
        if event_id is not None and not isinstance(event_id, str):
            return JSONResponse({"message": "\"event\" takes an event id (a string) or null for every dead letter"},
                                status_code=400)
        redriven = self.gateway.bus.log.redrive(event_id)
        queued = self.gateway.bus.requeue_open()
        which = f" (event {event_id})" if event_id else ""
        self.gateway.supervisor.console.notice(f"bus  {redriven} dead letter(s) redriven from the dashboard{which}")
        return JSONResponse({"redriven": redriven, "queued": queued})

    async def campaign(self, request: Request) -> Response:
        return JSONResponse(campaign_json(self.gateway.supervisor.manifest.root))


def _static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        return JSONResponse({"message": f"no dashboard file '{name}'; the files are {', '.join(STATIC)}"},
                            status_code=404)
    body = resources.files("faasemu.server").joinpath("ui", name).read_bytes()
    return Response(body, media_type=kind, headers={
        "cache-control": "no-cache", "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"})
