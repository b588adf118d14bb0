"""The runtime contract: what a platform module gives faasemu, typed (docs/runtime-contract.md).

Two halves. `Runtime` is the pure, supervisor-side half (routes, environment, failure answers,
the optional rules), one per platform module, built at its end as `RUNTIME = Runtime(...)`. The
optional hooks have explicit defaults here, so callers call them and never probe a module with
`hasattr`/`getattr`. `Adapter` is the worker-side half, built inside the worker: it binds the
user's entry point and answers invocations (`faasemu/runtimes/adapter.py` is its base class).

What a platform can do beyond the common calls is data in `faasemu/project/platforms.py`
(`Capabilities`); `Runtime.__post_init__` checks that a module's hooks agree with that table.
Standard library only: workers import this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from faasemu.project.platforms import PLATFORMS, Capabilities, PlatformInfo
from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.base import Delivery, HttpRequest, HttpResponse, Invocation

HostRoute = tuple[HttpTrigger, HttpResponse]


class Adapter(Protocol):
    """One function inside its worker. `faasemu.runtimes.adapter.BaseAdapter` implements the
    parts every platform shares; a platform module's `Adapter` subclasses it."""

    spec: FunctionSpec
    last_log: bytes | None  # the last raw invocation's output, for Lambda's `LogType: Tail` (else None)

    def bind(self, module: ModuleType) -> None:
        """Pick the entry point from the user's imported module, or raise `EntryPointError`."""

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse: ...

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """Deliver one event attempt; return on success, raise (`DeliveryFailed` ...) on failure."""

    def deliver_batch(self, deliveries: Sequence[Delivery], inv: Invocation,
                      sequences: Sequence[int | None] = ()) -> list[int]:
        """Deliver several event attempts in ONE invocation (Lambda's SQS batches; `sequences` are their
        positions in the log or file). Returns the positions of the records that failed (empty: all
        succeeded); raises when the whole batch failed. `BaseAdapter` raises `NoBatchDelivery`."""
        ...

    def invoke_raw(self, payload: bytes, inv: Invocation) -> bytes:
        """Lambda's Invoke API call. Raises `NoRawInvocation` where the platform has none."""
        ...

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        """The platform's HTTP answer when the handler raised `exc`."""
        ...

    def error_payload(self, exc: BaseException, inv: Invocation) -> dict[str, Any] | None:
        """The platform's raw-invocation error document (Lambda's errorMessage/errorType), or None."""
        ...


def no_routes(spec: FunctionSpec) -> tuple[HttpTrigger, ...]:
    return ()


def no_host_routes(spec: FunctionSpec) -> tuple[HostRoute, ...]:
    return ()


def refuses_nothing(spec: FunctionSpec, event: dict[str, Any]) -> str | None:
    return None


def attempt_request_id(spec: FunctionSpec, seed: int, event: dict[str, Any], copy: int, attempt: int) -> str:
    """The default request id of an event delivery: the per-attempt value (docs/delivery.md#ids)."""
    from faasemu.runtimes.request_ids import attempt_value

    return attempt_value(seed, spec.name, str(event["id"]), attempt)


def no_batches(spec: FunctionSpec) -> bool:
    return False


def plain_failure_payload(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """A raw invocation's answer when the supervisor stopped it, on a platform without its own form."""
    return {"errorType": kind, "errorMessage": message}


@dataclass(frozen=True, slots=True)
class Runtime:
    """The supervisor-side half of a platform module. Every field is a plain function of the spec.

    - `environment(spec, root)`: the variables the platform sets, before the manifest's `env`.
    - `http_routes(spec)`: the routes the function is served on.
    - `failure_response(kind, message, request_id)`: the answer when the supervisor had to stop the
      invocation (`kind`: timeout, crash, oom, unavailable).
    - `async_routes(spec)`: routes answered 202 at once, their request delivered later through the bus.
    - `host_routes(spec)`: paths the platform's host answers itself with a fixed response.
    - `refuse_event(spec, event)`: why the platform would refuse the event before any function saw it.
    - `request_id(spec, seed, event, copy, attempt)`: an event delivery's request id.
    - `failure_payload(kind, message, request_id)`: a raw invocation's answer when it was stopped.
    - `delivers_batches(spec)`: whether the function's events go to it as batches, several in one
      invocation through the adapter's `deliver_batch` (Lambda's SQS event source mapping;
      docs/delivery.md#batches-sqs). False: one event per invocation, through `deliver`.
    """

    name: str
    adapter: Callable[[FunctionSpec], Adapter]
    environment: Callable[[FunctionSpec, str], dict[str, str]]
    http_routes: Callable[[FunctionSpec], tuple[HttpTrigger, ...]]
    failure_response: Callable[[str, str, str], HttpResponse]
    async_routes: Callable[[FunctionSpec], tuple[HttpTrigger, ...]] = no_routes
    host_routes: Callable[[FunctionSpec], tuple[HostRoute, ...]] = no_host_routes
    refuse_event: Callable[[FunctionSpec, dict[str, Any]], str | None] = refuses_nothing
    request_id: Callable[[FunctionSpec, int, dict[str, Any], int, int], str] = attempt_request_id
    failure_payload: Callable[[str, str, str], dict[str, Any]] = plain_failure_payload
    delivers_batches: Callable[[FunctionSpec], bool] = no_batches

    def __post_init__(self) -> None:
        caps = self.capabilities
        declared = {"async_routes": (caps.async_routes, self.async_routes is not no_routes),
                    "host_routes": (caps.host_routes, self.host_routes is not no_host_routes),
                    "refuses_events": (caps.refuses_events, self.refuse_event is not refuses_nothing),
                    "own_request_ids": (caps.own_request_ids, self.request_id is not attempt_request_id)}
        for capability, (in_table, has_hook) in declared.items():
            if in_table != has_hook:
                raise TypeError(f"runtime {self.name}: project/platforms.py says {capability}={in_table}, "
                                f"but the module {'gives' if has_hook else 'lacks'} the hook")

    @property
    def info(self) -> PlatformInfo:
        return PLATFORMS[self.name]

    @property
    def capabilities(self) -> Capabilities:
        return PLATFORMS[self.name].capabilities


def load_runtime(runtime: str) -> Runtime:
    """The platform module's `RUNTIME`. Runtime modules import only the standard library at module level.
    Kept once found: the ingress and the campaign runner ask it for every event."""
    contract = _LOADED.get(runtime)
    if contract is None:
        import importlib

        module = importlib.import_module(PLATFORMS[runtime].module)
        contract = _LOADED[runtime] = module.RUNTIME
    return contract


_LOADED: dict[str, Runtime] = {}
