"""The neutral shapes that cross the process boundary, and the errors a runtime raises.

The supervisor speaks only these: a `HttpRequest` in, a `HttpResponse` out, a `Delivery` of one
event attempt. Each runtime module turns them into what its platform gives a handler and back;
what such a module provides is the contract in `contract.py` (docs/runtime-contract.md), and what
every adapter shares is `adapter.BaseAdapter`. Standard library only (workers import this).

An async route's request (OpenFaaS `/async-function/<name>`, Netlify `-background` functions)
reaches the adapter through `deliver()`: the Delivery's event has type `faasemu.http.request` and
its data is `HttpRequest.to_wire()` plus `body_base64`; `request_of(delivery)` rebuilds it.

Platform SDKs (flask, cloudevents, azure-functions ...) are imported only inside the adapter, with
`BaseAdapter.require`, never at module level; a missing one raises `MissingSDK`: the function then
answers 503 naming the package and the extra to install, and every other function keeps serving.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

FAILURE_KINDS: tuple[str, ...] = ("timeout", "crash", "oom", "unavailable")


@dataclass(slots=True)
class HttpRequest:
    """An HTTP request as the gateway received it.

    `headers` keeps order and repeats, names lower-cased. `query` is the raw query string
    without '?'. `route` is the matched trigger path (`/orders/{id}`) and `path_params` its values.
    """

    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    route: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    source_ip: str = "127.0.0.1"
    scheme: str = "http"
    host: str = "127.0.0.1"
    time_ms: int = 0

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def to_wire(self) -> dict[str, Any]:
        """Everything but the body, which travels as raw bytes beside the JSON header."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "route": self.route,
            "path_params": self.path_params,
            "source_ip": self.source_ip,
            "scheme": self.scheme,
            "host": self.host,
            "time_ms": self.time_ms,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any], body: bytes) -> HttpRequest:
        return cls(
            method=data["method"],
            path=data["path"],
            query=data.get("query", ""),
            headers=[(k, v) for k, v in data.get("headers", ())],
            body=body,
            route=data.get("route", ""),
            path_params=data.get("path_params") or {},
            source_ip=data.get("source_ip", "127.0.0.1"),
            scheme=data.get("scheme", "http"),
            host=data.get("host", "127.0.0.1"),
            time_ms=data.get("time_ms", 0),
        )


@dataclass(slots=True)
class HttpResponse:
    """What goes back to the HTTP client. Header names keep their case; repeats are allowed."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers}

    @classmethod
    def from_wire(cls, data: dict[str, Any], body: bytes) -> HttpResponse:
        return cls(status=data["status"], headers=[(k, v) for k, v in data.get("headers", ())], body=body)


@dataclass(slots=True)
class Invocation:
    """Per-call facts a context object is built from.

    `request_id` is random for HTTP calls, and for event deliveries a pure function of (seed,
    function, event id, attempt) so campaigns reproduce, or of the runtime's own rule
    (`runtimes/request_ids.py`: Lambda's async retries keep theirs). `deadline` is the epoch time in
    seconds at which the supervisor kills the call (what `get_remaining_time_in_millis` counts to).
    """

    request_id: str
    deadline: float
    attempt: int = 1
    client_context: str = ""  # Lambda's Invoke API `X-Amz-Client-Context` (base64 JSON), when the caller sent one

    def to_wire(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "deadline": self.deadline, "attempt": self.attempt,
                "client_context": self.client_context}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Invocation:
        return cls(request_id=data["request_id"], deadline=data["deadline"], attempt=data.get("attempt", 1),
                   client_context=data.get("client_context", ""))


@dataclass(slots=True)
class Delivery:
    """One attempt at delivering one event to one function.

    `event` is the CloudEvent as a dict of its attributes (specversion, id, source, type, time,
    datacontenttype, optional subject and extensions) plus `data` (a JSON value) or `data_base64`.
    `attempt` counts from 1 and `attempt_id` is the seeded per-attempt value (SQS receiptHandle,
    Kubeless event-id ...), never derived from the schedule position.
    """

    event: dict[str, Any]
    attempt: int = 1
    attempt_id: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.event, "attempt": self.attempt, "attempt_id": self.attempt_id}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Delivery:
        return cls(event=data["event"], attempt=data.get("attempt", 1), attempt_id=data.get("attempt_id", ""))


def new_request_id() -> str:
    """A random version-4 UUID string, as Lambda's request ids are (cheaper than `uuid.uuid4()`)."""
    value = int.from_bytes(os.urandom(16), "big")
    value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


ASYNC_HTTP_TYPE = "faasemu.http.request"


def request_of(delivery: Delivery) -> HttpRequest:
    """The HTTP request an async route accepted, as delivered through the bus."""
    import base64

    data = dict(delivery.event["data"])
    body = base64.b64decode(data.pop("body_base64", "") or "")
    return HttpRequest.from_wire(data, body)


class MissingSDK(Exception):
    """A platform SDK the handler's signature needs is not installed. Names what to install."""

    def __init__(self, package: str, extra: str, runtime: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"runtime {runtime} needs the package '{package}', which is not installed: pip install 'faasemu[{extra}]'"
        )


class EntryPointError(Exception):
    """The handler's module lacks the entry point. The message names the file and what was found."""


class DeliveryFailed(Exception):
    """An event delivery did not succeed by the platform's rules (a non-2xx answer, say).

    `retryable=False` when the platform would not retry it (Knative: 400, 401, 403 and other 4xx):
    the bus then dead-letters it at once instead of spending the function's `retries`.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
