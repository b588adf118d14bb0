"""Effects a handler has outside its state: calls to the effect sink and events it emits.

The sink (`$FAASEMU_SINK_URL/<name>`) stands in for an email, payment or webhook API: it
answers 200 and records (name, method, body). It honours `Idempotency-Key` the way Stripe's API
does (docs/verification.md#idempotency-keys), so the usual fix for a handler that charges twice can be tested.
Emitted events are POSTs to `$FAASEMU_EVENTS_URL`. `EffectLog` is the plain record and holds the
one rule for keys, so `up` (server/gateway.py) and `LocalEffectServer` answer alike;
`LocalEffectServer` serves both URLs from a thread for commands that run without `faasemu up`
(invoke, replay, the campaign's lanes), using only the standard library so they start fast. It also
counts the sink's side of a delivery's steps for the crash probe (`arm`, docs/verification.md#steps-at-the-sink),
and serves the SQS stand-in (`<prefix>/sqs`, delivery/sqs_api.py): each message sent there is recorded
as an emitted event, exactly as a POST to the events URL is (docs/delivery.md#sqs-sends-become-events).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from faasemu.delivery.sqs_api import JSON_TYPE as SQS_JSON_TYPE
from faasemu.delivery.sqs_api import SqsApi
from faasemu.project.stepcounter import StepCounter

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255  # Stripe's limit
SHUTDOWN_POLL = 0.05  # seconds between the effect server's checks for a shutdown


def parse_body(body: bytes) -> Any:
    """The body as JSON when it is JSON, else as text (bytes that are not UTF-8 as latin-1)."""
    try:
        return json.loads(body)
    except ValueError:
        try:
            return body.decode()
        except UnicodeDecodeError:
            return body.decode("latin-1")


def _same_parameters(body: Any) -> str:
    """What two uses of one key must agree on: the parsed body, so whitespace and key order do not
    matter (Stripe compares the request's parameters, not its bytes); `true` is not `1`."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SinkCall:
    name: str
    method: str
    body: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "body": self.body}


@dataclass(frozen=True, slots=True)
class SinkRefusal:
    """A sink call refused for its Idempotency-Key (400 or 409): a call was made, but no effect."""

    call: SinkCall
    key: str
    status: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {**self.call.to_json(), "key": self.key, "status": self.status, "message": self.message}


@dataclass(frozen=True, slots=True)
class SinkAnswer:
    """What the sink answers one call: `replayed` when it is a stored answer to an earlier call;
    `note` says why in a console line when it is not an ordinary new effect."""

    call: SinkCall
    status: int
    payload: dict[str, Any]
    replayed: bool = False
    note: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {REPLAYED_HEADER: "true"} if self.replayed else {}


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A keyed call between "key seen" and "answer stored" (`EffectLog.begin_sink`)."""

    call: SinkCall
    key: str | None


@dataclass
class _Keyed:
    parameters: str  # _same_parameters of the first use
    answer: SinkAnswer | None = None  # None while the first use is in flight


def _error(kind: str, message: str) -> dict[str, Any]:
    """Stripe's error shape."""
    return {"error": {"type": kind, "message": message}}


@dataclass
class EffectLog:
    """What the handlers of one command or run did to the outside world, in arrival order.

    `sink` holds the effects (a replayed call is not one), `replayed` the calls answered from an
    earlier call's Idempotency-Key, `errors` the calls refused for their key, and `steps` the sink's
    side of the numbered steps while its lane is armed (`LocalEffectServer.arm`). Keys are scoped per
    sink name and per log: per lane and run in the campaign, per `up`.
    """

    sink: list[SinkCall] = field(default_factory=list)
    emitted: list[Any] = field(default_factory=list)
    replayed: list[SinkCall] = field(default_factory=list)
    errors: list[SinkRefusal] = field(default_factory=list)
    steps: list[tuple[int, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _keys: dict[tuple[str, str], _Keyed] = field(default_factory=dict, repr=False)

    def record_sink(self, name: str, method: str, body: bytes) -> SinkCall:
        """A call without a key: always a new effect."""
        return self.call_sink(name, method, body).call

    def call_sink(self, name: str, method: str, body: bytes, key: str | None = None) -> SinkAnswer:
        """One call to sink `name`, with the value of its Idempotency-Key header if it had one."""
        started = self.begin_sink(name, method, body, key)
        return started if isinstance(started, SinkAnswer) else self.finish_sink(started)

    def begin_sink(self, name: str, method: str, body: bytes, key: str | None = None) -> SinkAnswer | PendingCall:
        """The first half of a call: a final answer (replayed or refused) or a call now in flight.

        A key's in-flight mark lasts until `finish_sink`, so a second call with it meanwhile answers
        409, as Stripe's does; a threaded server can really receive the two at once.
        """
        call = SinkCall(name, method, parse_body(body))
        key = key.strip() if key is not None else None
        if not key:  # absent, or an empty header: an ordinary call
            return PendingCall(call, None)
        if len(key) > MAX_KEY_LENGTH:
            message = (f"the {IDEMPOTENCY_HEADER} header of this call to sink {name} is {len(key)} characters long; "
                       f"keys for idempotent requests can be no longer than {MAX_KEY_LENGTH} characters")
            return self._refuse(call, key, 400, "invalid_request_error", message, "refused: Idempotency-Key too long")
        parameters = _same_parameters([method, call.body])
        with self.lock:
            keyed = self._keys.get((name, key))
            if keyed is None:
                self._keys[(name, key)] = _Keyed(parameters)
                return PendingCall(call, key)
            if keyed.parameters != parameters:
                note = f"refused: Idempotency-Key {key!r} was first used with other parameters"
                status, message = 400, (
                    "Keys for idempotent requests can only be used with the same parameters they were first "
                    f"used with. Try using a key other than '{key}' if you meant to execute a different request "
                    f"(sink {name}: a key is compared with the method and the parsed body of its first use)."
                )
            elif keyed.answer is None:
                note = f"refused: Idempotency-Key {key!r} is in use by a call in progress"
                status, message = 409, (
                    f"There is currently another request in progress using this Idempotency-Key ('{key}' on sink "
                    f"{name}; that probably means you submitted twice, and the other request is still going "
                    "through). Please try again later."
                )
            else:
                self.replayed.append(call)
                first = keyed.answer
                return SinkAnswer(call, first.status, first.payload, replayed=True, note="replayed (Idempotency-Key)")
        return self._refuse(call, key, status, "idempotency_error", message, note)

    def finish_sink(self, pending: PendingCall) -> SinkAnswer:
        """The second half: the effect is recorded and, for a keyed call, its answer stored."""
        with self.lock:
            self.sink.append(pending.call)
            answer = SinkAnswer(pending.call, 200, {"ok": True, "id": f"call_{len(self.sink)}"})
            if pending.key is not None:
                self._keys[(pending.call.name, pending.key)].answer = answer
        return answer

    def _refuse(self, call: SinkCall, key: str, status: int, kind: str, message: str, note: str) -> SinkAnswer:
        with self.lock:
            self.errors.append(SinkRefusal(call, key, status, message))
        return SinkAnswer(call, status, _error(kind, message), note=note)

    def record_emitted(self, body: bytes) -> Any:
        event = parse_body(body)
        with self.lock:
            self.emitted.append(event)
        return event


def emitted_type(event: Any, ce_type: str | None = None) -> str:
    """The type a step names for an emitted event: a structured event's `type`, the first of a batch,
    a binary event's `ce-type` header, else ""."""
    first = event[0] if isinstance(event, list) and event else event
    if isinstance(first, dict) and isinstance(first.get("type"), str):
        return str(first["type"])
    return ce_type or ""


@dataclass
class _Armed:
    """A lane whose sink calls and emits are steps of the delivery under test."""

    counter: StepCounter
    pid: int
    crash_after: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.counter.close()


class LocalEffectServer:
    """The sink and the events URL on 127.0.0.1:<free port>, in a background thread.

    Each lane (a run executing in parallel with others) has its own URLs and log, so parallel runs
    never mix effects: `/<lane>/sink/<name>`, `/<lane>/events` and `/<lane>/sqs`; the default lane is
    `/sink`. `queues` is the manifest's (queue name -> event type) for the SQS stand-in.
    """

    def __init__(self, queues: dict[str, str] | None = None) -> None:
        self.logs: dict[str, EffectLog] = {"": EffectLog()}
        self.armed: dict[str, _Armed] = {}
        self.queues = dict(queues or {})
        self.sqs: dict[str, SqsApi] = {}
        logs, server = self.logs, self

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
                    name = rest[len("/sink/"):]
                    answer = log.call_sink(name, self.command, body, self.headers.get(IDEMPOTENCY_HEADER))
                    if server.step(lane, log, "sink", name):  # a call was made, replayed or refused alike
                        self._answer(answer.status, answer.payload, answer.headers)
                    else:
                        self.close_connection = True  # crashed after this step: no answer, ever
                elif rest == "/events" and self.command == "POST":
                    event = log.record_emitted(body)
                    if server.step(lane, log, "emit", emitted_type(event, self.headers.get("ce-type"))):
                        self._answer(202, {"accepted": True})
                    else:
                        self.close_connection = True
                elif (rest == "/sqs" or rest.startswith("/sqs/")) and self.command == "POST":
                    sqs = server.sqs_api(lane).handle(self.headers.get("x-amz-target"),
                                                      self.headers.get("content-type"), body)
                    for sent in sqs.events:  # each message is one emit, one step
                        log.record_emitted(json.dumps(sent).encode())
                        if not server.step(lane, log, "emit", str(sent["type"])):
                            self.close_connection = True  # crashed after this step: no answer, ever
                            return
                    self._answer(sqs.status, sqs.payload, sqs.headers, SQS_JSON_TYPE)
                else:
                    self._answer(404, {"message": "use $FAASEMU_SINK_URL/<name>, $FAASEMU_EVENTS_URL or "
                                                  "$AWS_ENDPOINT_URL_SQS"})

            def _answer(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None,
                        content_type: str = "application/json") -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # quiet: effects are printed by the caller
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # polled every 50 ms, not socketserver's 0.5 s: shutdown() waits for the next poll, and every
        # `invoke`, `replay` and campaign ends with one
        self.thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,),
                                       name="faasemu-effects", daemon=True)

    @property
    def log(self) -> EffectLog:
        return self.logs[""]

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"  # an IPv4 server: the host is a str, whatever typeshed allows

    def sqs_api(self, lane: str) -> SqsApi:
        """The lane's SQS stand-in (its own FIFO sequence numbers, its own queue URLs)."""
        api = self.sqs.get(lane)
        if api is None:
            prefix = f"{self.base_url}/{lane}" if lane else self.base_url
            api = self.sqs.setdefault(lane, SqsApi(self.queues, f"{prefix}/sqs"))
        return api

    def add_lane(self, lane: str) -> tuple[str, str]:
        """A lane's own (sink URL, events URL)."""
        self.logs[lane] = EffectLog()
        return f"{self.base_url}/{lane}/sink", f"{self.base_url}/{lane}/events"

    def take(self, lane: str) -> EffectLog:
        """The lane's effects so far (its steps included), and a fresh log for what follows: keys start
        unused again. An armed lane stays armed across `take`; only `disarm` stops the counting."""
        log, self.logs[lane] = self.logs[lane], EffectLog()
        return log

    def arm(self, lane: str, counter_path: str, pid: int, crash_after: int | None = None) -> None:
        """From now on, count each sink call and emit on `lane` as a step in the counter file at
        `counter_path` (shared with the worker, which counts its commits: project/stepcounter.py), and
        append it to the lane log's `steps`. The effect is recorded first; when the step is number
        `crash_after`, worker `pid` is killed (SIGKILL) and the call is not answered, so the handler
        cannot go on after it (docs/verification.md#steps-at-the-sink). Arming again replaces the settings."""
        previous = self.armed.get(lane)
        self.armed[lane] = _Armed(StepCounter(counter_path), pid, crash_after)
        if previous is not None:
            previous.close()

    def disarm(self, lane: str) -> None:
        """Stop counting the lane's steps (the runner calls it after each traced or crashed item)."""
        armed = self.armed.pop(lane, None)
        if armed is not None:
            armed.close()

    def step(self, lane: str, log: EffectLog, kind: str, name: str) -> bool:
        """Count one step of an armed lane; False when it is the step to crash after (no answer)."""
        armed = self.armed.get(lane)
        if armed is None:
            return True
        with armed.lock:
            if armed.closed:  # disarmed meanwhile
                return True
            n = armed.counter.bump()
            with log.lock:
                log.steps.append((n, kind, name))
        if n != armed.crash_after:
            return True
        try:
            os.killpg(armed.pid, signal.SIGKILL)  # workers lead their own group: a forked child goes too
        except ProcessLookupError:
            try:
                os.kill(armed.pid, signal.SIGKILL)  # a process that leads no group
            except ProcessLookupError:
                pass
        return False

    def __enter__(self) -> LocalEffectServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        for lane in list(self.armed):
            self.disarm(lane)
