"""The base adapter: what every platform's worker-side half shares, with hooks for what differs.

In the manner of uvicorn's `BaseReload` (its subclasses override only `should_restart`): a
platform's `Adapter` gives its conversions and overrides a few hooks, and inherits the rest.

- the entry-point lookup with its "Found: ..." listing (`entry_point`, `describe_module`),
- the "bind() was not called" guard (`bound`),
- delivering an event as an HTTP request to the function's own `invoke_http` (`deliver`, with the
  hooks `event_request`, `delivered` and `delivery_failed`: the request and the retry rule),
- routes under a prefix (`prefixed_routes`),
- trimming faasemu's frames from a traceback (`handler_frames`, `outside_faasemu`),
- the one way to carry a partial response out of a failed handler (`keep_response`, read back
  by `partial_response`),
- `invoke_raw` and `error_payload` for platforms without a raw invocation, `deliver_batch` for
  platforms without batches.

A platform SDK is imported inside the adapter with `require`, which names what to install.

Standard library only (workers import this). See docs/runtime-contract.md.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes import base
from faasemu.runtimes.base import Delivery, DeliveryFailed, EntryPointError, HttpRequest, HttpResponse, Invocation

_FAASEMU = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NoBatchDelivery(Exception):
    """The function's platform delivers one event per invocation (only Lambda's SQS batches hold several)."""

    def __init__(self, spec: FunctionSpec) -> None:
        super().__init__(f"function {spec.name} (runtime {spec.runtime}) cannot take several events in one "
                         "invocation: only aws-lambda with event_source: sqs delivers batches (batch_size)")


class NoRawInvocation(Exception):
    """The function's platform has no raw invocation (only Lambda's Invoke API has one)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.runtime = spec.runtime
        super().__init__(f"function {spec.name} runs on runtime {spec.runtime}, which has no raw invocation")


def describe_module(module: ModuleType) -> str:
    """The module's file relative to the working directory (the project root in a worker), its
    absolute path when it lies outside, or its dotted name when it has no file."""
    path = getattr(module, "__file__", None)
    if not path:
        return module.__name__
    relative = os.path.relpath(path, os.getcwd())
    return path if relative.startswith("..") else relative


def module_functions(module: ModuleType) -> list[str]:
    """The public callables the module itself defines, sorted: what "Found: ..." lists."""
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and callable(value)
                  and getattr(value, "__module__", None) == module.__name__)


def entry_point(module: ModuleType, name: str, *, why: str = "") -> Callable[..., Any]:
    """`module.name` if it is callable, else an `EntryPointError` naming the file and what was found:
    "app.py has no function 'handler'. Found: main, helper." (as functions-framework says it).
    `why` follows the name: " (Kubeless calls FUNC_HANDLER)"."""
    value = getattr(module, name, None)  # the user's module: a module `__getattr__` may provide it
    if callable(value):
        return value
    where = describe_module(module)
    listing = ", ".join(module_functions(module)) or "no functions"
    if value is None:
        raise EntryPointError(f"{where} has no function {name!r}{why}. Found: {listing}.")
    raise EntryPointError(f"{where}: {name!r} is a {type(value).__name__}, not a function{why}. Found: {listing}.")


def prefixed_routes(prefix: str, name: str) -> tuple[HttpTrigger, HttpTrigger]:
    """The function's route under the platform's prefix (`/.netlify/functions/<name>`, `/function/<name>`)
    and every path below it."""
    base = f"{prefix}/{name}"
    return HttpTrigger(base), HttpTrigger(base + "/{path+}")


def strip_prefix(path: str, prefix: str) -> str | None:
    """The path below `prefix` (at least "/"), or None when the path is not under it."""
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):] or "/"
    return None


def handler_frames(exc: BaseException, own_file: str) -> list[traceback.FrameSummary]:
    """The exception's frames below the adapter module's last one (`own_file`): the handler's,
    as awslambdaric drops its own bootstrap frames. All of them when the adapter is not on the stack."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [i for i, frame in enumerate(frames) if os.path.abspath(frame.filename) == own_file]
    return frames[ours[-1] + 1:] if ours else list(frames)


def outside_faasemu(exc: BaseException) -> list[traceback.FrameSummary]:
    """The exception's frames that are not faasemu's own, wherever they are on the stack."""
    return [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_FAASEMU + os.sep)]


class BaseAdapter:
    """One function inside its worker. Subclasses implement `bind`, `invoke_http` and
    `error_response`, and either `deliver` or the event-as-HTTP hooks below."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.handler: Callable[..., Any] | None = None
        self.last_log: bytes | None = None  # only Lambda keeps a raw invocation's output
        self._partial: tuple[BaseException, HttpResponse] | None = None

    # -- binding ------------------------------------------------------------------------------------

    default_entry: str | None = None  # hook: what the platform calls when the manifest names nothing
    entry_example = "file.py:function"  # hook: how the error says to name one

    def bind(self, module: ModuleType) -> None:
        """The default: the manifest's `file.py:function` names a callable of the module."""
        self.handler = self.find_handler(module)

    def find_handler(self, module: ModuleType, *, why: str = "") -> Callable[..., Any]:
        name = self.spec.handler_attr or self.default_entry
        if not name:
            raise EntryPointError(f"handler {self.spec.handler!r} names no function: write it as {self.entry_example}")
        return entry_point(module, name, why=why)

    def bound(self) -> Callable[..., Any]:
        """The bound handler, or the error a caller that skipped `bind` deserves."""
        if self.handler is None:
            raise RuntimeError("Adapter.bind() was not called")
        return self.handler

    def require(self, module: str, package: str, extra: str) -> ModuleType:
        """Import a platform SDK's module, or raise `MissingSDK` naming the package to install and the
        extra that brings it: the function then answers 503, and the others keep serving."""
        try:
            return importlib.import_module(module)
        except ImportError:
            raise base.MissingSDK(package, extra, self.spec.runtime) from None

    # -- invocations ----------------------------------------------------------------------------------

    def invoke_http(self, request: HttpRequest, inv: Invocation) -> HttpResponse:
        raise NotImplementedError

    def invoke_raw(self, payload: bytes, inv: Invocation) -> bytes:
        raise NoRawInvocation(self.spec)

    def deliver(self, delivery: Delivery, inv: Invocation) -> None:
        """The event as the platform's HTTP request to the function's own route; an answer the
        platform counts as a failure raises `delivery_failed`."""
        request = self.event_request(delivery, inv)
        response = self.invoke_http(request, inv)
        if not self.delivered(response):
            raise self.delivery_failed(request, response)

    def deliver_batch(self, deliveries: Sequence[Delivery], inv: Invocation,
                      sequences: Sequence[int | None] = ()) -> list[int]:
        """Several events in one invocation: only platforms with batches override this."""
        raise NoBatchDelivery(self.spec)

    def event_request(self, delivery: Delivery, inv: Invocation) -> HttpRequest:
        """Hook: the HTTP request the platform sends for this event."""
        raise NotImplementedError(f"runtime {self.spec.runtime} does not deliver events over HTTP")

    def delivered(self, response: HttpResponse) -> bool:
        """Hook: whether the platform counts the answer as delivered (here: any 2xx)."""
        return 200 <= response.status < 300

    def delivery_failed(self, request: HttpRequest, response: HttpResponse) -> DeliveryFailed:
        """Hook: the failure as the console shows it, marked retryable or not by the platform's rule."""
        snippet = response.body[:200].decode("utf-8", errors="replace")
        return DeliveryFailed(f"{request.method} {request.path} answered {response.status}: {snippet}")

    # -- failures ---------------------------------------------------------------------------------------

    def keep_response(self, error: BaseException, response: HttpResponse) -> None:
        """The handler raised after the platform's server had an answer (a crash middleware's 500,
        what a WSGI app already sent): keep it for `error_response`. The caller then raises `error`
        itself, so the user's traceback stays as it was."""
        self._partial = (error, response)

    def partial_response(self, exc: BaseException) -> HttpResponse | None:
        """The answer kept by `keep_response` for this exception, once."""
        if self._partial is None or self._partial[0] is not exc:
            return None
        response, self._partial = self._partial[1], None
        return response

    def error_response(self, exc: BaseException, inv: Invocation) -> HttpResponse:
        raise NotImplementedError

    def error_payload(self, exc: BaseException, inv: Invocation) -> dict[str, Any] | None:
        """A raw invocation's error document; None on platforms without raw invocation."""
        return None
