"""Effects a handler has outside its state: calls to the effect sink and events it emits.

The sink (`$FAASEMU_SINK_URL/<name>`) stands in for an email, payment or webhook API: it
answers 200 and records (name, method, body). Emitted events are POSTs to `$FAASEMU_EVENTS_URL`.
`EffectLog` is the plain record; `LocalEffectServer` serves both URLs from a thread for commands
that run without `faasemu up` (invoke), using only the standard library so they start fast.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def parse_body(body: bytes) -> Any:
    """The body as JSON when it is JSON, else as text (bytes that are not UTF-8 as latin-1)."""
    try:
        return json.loads(body)
    except ValueError:
        try:
            return body.decode()
        except UnicodeDecodeError:
            return body.decode("latin-1")


@dataclass(frozen=True, slots=True)
class SinkCall:
    name: str
    method: str
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "body": self.body}


@dataclass
class EffectLog:
    """What the handlers of one command or run did to the outside world, in arrival order."""

    sink: list[SinkCall] = field(default_factory=list)
    emitted: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_sink(self, name: str, method: str, body: bytes) -> SinkCall:
        call = SinkCall(name, method, parse_body(body))
        with self.lock:
            self.sink.append(call)
        return call

    def record_emitted(self, body: bytes) -> Any:
        event = parse_body(body)
        with self.lock:
            self.emitted.append(event)
        return event


class LocalEffectServer:
    """The sink and the events URL on 127.0.0.1:<free port>, in a background thread.

    Each lane (a run executing in parallel with others) has its own URLs and log, so parallel runs
    never mix effects: `/<lane>/sink/<name>` and `/<lane>/events`; the default lane is `/sink`.
    """

    def __init__(self) -> None:
        self.logs: dict[str, EffectLog] = {"": EffectLog()}
        logs = self.logs

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: handlers that reuse a session pay one connect

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                lane, rest = "", path
                first, _, remainder = path[1:].partition("/")
                if first in logs and first:
                    lane, rest = first, "/" + remainder
                log = logs[lane]
                if rest.startswith("/sink/") and len(rest) > len("/sink/"):
                    log.record_sink(rest[len("/sink/"):], self.command, body)
                    self._answer(200, {"ok": True})
                elif rest == "/events" and self.command == "POST":
                    log.record_emitted(body)
                    self._answer(202, {"accepted": True})
                else:
                    self._answer(404, {"message": "use $FAASEMU_SINK_URL/<name> or $FAASEMU_EVENTS_URL"})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet: effects are printed by the caller
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="faasemu-effects", daemon=True)

    @property
    def log(self) -> EffectLog:
        return self.logs[""]

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"  # an IPv4 server: the host is a str, whatever typeshed allows

    def add_lane(self, lane: str) -> tuple[str, str]:
        """A lane's own (sink URL, events URL)."""
        self.logs[lane] = EffectLog()
        return f"{self.base_url}/{lane}/sink", f"{self.base_url}/{lane}/events"

    def take(self, lane: str) -> EffectLog:
        """The lane's effects so far, and a fresh log for what follows."""
        log, self.logs[lane] = self.logs[lane], EffectLog()
        return log

    def __enter__(self) -> LocalEffectServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
