"""Shared drivers: run a WSGI or ASGI application, or a handler's coroutine, as a platform's server would.

gcf, vercel, kubeless, knative and openfaas serve users' web applications; each used to drive
them its own way. Here is one WSGI call, one ASGI HTTP exchange (uvicorn's checks and messages)
and one event loop per worker (`HandlerLoop`). asyncio is imported only when a loop is needed, so
a worker whose handler is synchronous never pays for it. See docs/runtime-contract.md.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from faasemu.runtimes.base import HttpResponse

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")


class HandlerLoop:
    """The one event loop a worker runs its handler's coroutines on, kept for the worker's life as
    the platforms' own servers keep theirs: made on first use. An adapter whose platform shuts the
    app down at exit (a lifespan shutdown, func-python's `stop()`) runs that on it before `close()`.

    Each `run` gets a fresh copy of the current context (as `loop.run_until_complete` of a new task
    does); `shared_context=True` keeps one context across runs instead, as `asyncio.Runner` does
    (Vercel's vc_init: what the lifespan startup sets, requests see).
    """

    def __init__(self, *, shared_context: bool = False) -> None:
        self.shared_context = shared_context
        self._runner: asyncio.Runner | None = None

    @property
    def started(self) -> bool:
        return self._runner is not None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            import asyncio

            self._runner = asyncio.Runner()
            self._runner.get_loop()  # made now, and set as the thread's loop: handlers may ask for it
            # Closed when the adapter is dropped (tests make many), but not at exit: atexit hooks that
            # shut the app down (a lifespan shutdown, func-python's stop()) still need it then.
            weakref.finalize(self, self._runner.close).atexit = False
        context = None if self.shared_context else contextvars.copy_context()
        return self._runner.run(coroutine, context=context)

    def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.close()


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
        close = getattr(result, "close", None)  # PEP 3333: the server calls the iterable's close() if it has one
        if close is not None:
            close()
    return HttpResponse(int(str(started["status"]).split(" ", 1)[0]),
                        [(str(k), str(v)) for k, v in started["headers"]], b"".join(chunks))


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class AsgiExchange:
    """One ASGI HTTP request and its response, checked as uvicorn checks them.

    The request body comes in one `http.request` message; a further `receive()` waits until the
    response is complete and then answers `http.disconnect`. `response` is what the app has sent so
    far, so a caller whose app raised part-way still has it. `lower_names`: header names come back
    lower-cased (as uvicorn writes them); `head_body=False`: a HEAD response keeps no body.
    """

    def __init__(self, scope: dict[str, Any], body: bytes, *, lower_names: bool = False,
                 head_body: bool = True) -> None:
        import asyncio

        self.scope = scope
        self.response: HttpResponse | None = None
        self.complete = asyncio.Event()
        self._pending = [{"type": "http.request", "body": body, "more_body": False}]
        self._lower = lower_names
        self._keep_body = head_body or scope.get("method") != "HEAD"

    async def receive(self) -> dict[str, Any]:
        if self._pending:
            return self._pending.pop()
        await self.complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if self.response is None:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            headers = [(_text(k), _text(v)) for k, v in message.get("headers", ())]
            if self._lower:
                headers = [(k.lower(), v) for k, v in headers]
            self.response = HttpResponse(int(message["status"]), headers)
        elif not self.complete.is_set():
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            if self._keep_body:
                self.response.body += bytes(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete.set()
        else:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")

    async def run(self, app: Callable[..., Awaitable[None]]) -> HttpResponse | None:
        """Run the app on this exchange; the response it started (None when it started none)."""
        await app(self.scope, self.receive, self.send)
        return self.response
