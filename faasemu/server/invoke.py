"""`faasemu invoke FN`: one invocation, no server, the result on stdout.

The handler runs in a worker exactly as under `up` (same environment, same isolation), with the
effect sink and events URL served by this command for its duration. Logs, the handler's output
and tracebacks go to stderr, so stdout holds only the result and can be piped.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faasemu.delivery.effects import LocalEffectServer
from faasemu.delivery.policy import attempt_id
from faasemu.delivery.webhooks import webhook_request
from faasemu.project.capture import change_event, manual_change
from faasemu.project.console import Console
from faasemu.project.environment import effect_urls, faasemu_env
from faasemu.project.errors import InputFileError, UsageError
from faasemu.project.failures import WorkerError
from faasemu.project.manifest import load_manifest
from faasemu.project.platforms import PLATFORMS
from faasemu.project.spec import FunctionSpec, Manifest, TriggerSpec
from faasemu.project.state import open_project_state
from faasemu.runtimes.base import Delivery, HttpRequest, HttpResponse, Invocation
from faasemu.runtimes.request_ids import invocation_id
from faasemu.server.router import MethodNotAllowed, Router
from faasemu.workers.pool import FunctionPool, Outcome, Watchdog


@dataclass(frozen=True)
class InvokeOptions:
    manifest: str
    function: str
    data: str | None = None
    event_type: str | None = None
    http: tuple[str, str] | None = None
    trigger: str | None = None  # --trigger NAME: Hasura's payload of that trigger, POSTed as its webhook gets it
    op: str | None = None  # --op: the trigger payload's op, when --data's rows do not say it


class _StderrObserver:
    def __init__(self, console: Console) -> None:
        self.console = console

    def worker_output(self, function: str, line: str) -> None:
        self.console.file.write(line + "\n")

    def load_failed(self, function: str, error: WorkerError) -> None:
        pass  # reported once, with the outcome

    def load_recovered(self, function: str, ms: float) -> None:
        pass


def find_function(manifest: Manifest, name: str, given_path: str) -> FunctionSpec:
    spec = manifest.function(name)
    if spec is not None:
        return spec
    names = [f.name for f in manifest.functions]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; functions: {', '.join(names)}"
    raise UsageError(f"{given_path} has no function '{name}'{hint}")


def find_trigger(manifest: Manifest, name: str) -> TriggerSpec:
    for trigger in manifest.triggers:
        if trigger.name == name:
            return trigger
    names = ", ".join(t.name for t in manifest.triggers) or "none (add a triggers: section)"
    raise UsageError(f"--trigger {name}: {os.path.basename(manifest.path)} has no such trigger; triggers: {names}")


def read_data(data: str | None) -> tuple[bytes, str]:
    """The --data bytes and where they came from (for error messages)."""
    if data is None:
        return b"", "--data"
    if data.startswith("@"):
        path = data[1:]
        try:
            with open(path, "rb") as file:
                return file.read(), path
        except OSError as exc:
            raise UsageError(f"--data {data}: cannot read {path}: {exc.strerror}") from None
    return data.encode(), "--data"


def parse_json(raw: bytes, origin: str) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        reason = f"not valid JSON ({getattr(exc, 'msg', exc)} at column {getattr(exc, 'colno', '?')})"
        if origin == "--data":
            raise UsageError(f"--data: {reason}") from None
        raise InputFileError(origin, line, reason) from None


def data_invocation(spec: FunctionSpec) -> str:
    """What `--data` alone means for the function's platform: "raw" (the raw event, as `sam local
    invoke -e`) or "event" (a CloudEvent's data); a UsageError (exit 2) where it has neither."""
    meaning = PLATFORMS[spec.runtime].capabilities.data_invocation
    if meaning is None:
        raise UsageError(f"function {spec.name} runs on runtime {spec.runtime}, which has no raw invocation to pass "
                         "--data to; use --event TYPE to deliver the data as an event, or --http METHOD PATH to send "
                         "it as a request's body")
    return meaning


def run_invoke(options: InvokeOptions) -> int:
    manifest = load_manifest(options.manifest)
    spec = find_function(manifest, options.function, options.manifest)
    if sum(bool(x) for x in (options.http, options.event_type, options.trigger)) > 1:
        raise UsageError("choose one of --http, --event and --trigger")
    if options.op and not options.trigger:
        raise UsageError("--op goes with --trigger NAME (the op of a trigger's payload)")
    trigger = find_trigger(manifest, options.trigger) if options.trigger else None
    if not options.http and not options.event_type and trigger is None:
        data_invocation(spec)  # before any worker starts: a usage error costs nothing
    raw, origin = read_data(options.data)
    change = None
    if trigger is not None:
        change = manual_change(trigger, parse_json(raw, origin) or {}, options.op, datetime.now(UTC),
                               kind=manifest.state.kind)
    console = Console(file=sys.stderr)
    with LocalEffectServer(manifest.queues) as effects, open_project_state(manifest) as state:
        env = faasemu_env(state.location, *effect_urls(effects.base_url), queues=bool(manifest.queues))
        # attached: the handler's output goes straight to stderr and breakpoint() gets the terminal
        pool = FunctionPool(spec, manifest.root, env, _StderrObserver(console), Watchdog(), attached=True)
        if trigger is not None and change is not None:
            event = change_event(change, spec.name)
            request = webhook_request(spec, trigger, event, 1, int(time.time() * 1000))
            inv = Invocation(str(uuid.uuid4()), 0.0)
            message = ({"op": "http", "req": request.to_wire(), "inv": inv.to_wire()}, request.body)
            code = asyncio.run(_run(pool, message, console, "http"))
        elif options.http:
            code = asyncio.run(_run(pool, _http(pool, spec, options.http, raw), console, "http"))
        elif options.event_type or data_invocation(spec) == "event":
            data = parse_json(raw, origin)
            message = _event(pool, spec, options.event_type or "faasemu.invoke", data)
            code = asyncio.run(_run(pool, message, console, "event"))
        else:
            parse_json(raw, origin)  # a bad file is a usage error (exit 2), not a handler failure
            inv = Invocation(str(uuid.uuid4()), 0.0)
            code = asyncio.run(_run(pool, ({"op": "raw", "inv": inv.to_wire()}, raw or b"{}"), console, "raw"))
    for call in effects.log.sink:
        console.file.write(f"sink  {call.name}  {call.method}  {json.dumps(call.body)}\n")
    for event in effects.log.emitted:
        console.file.write(f"emitted  {json.dumps(event)}\n")
    return code


def _http(pool: FunctionPool, spec: FunctionSpec, http: tuple[str, str], body: bytes) -> tuple[dict[str, Any], bytes]:
    method, target = http[0].upper(), http[1]
    path, _, query = target.partition("?")
    router = Router.build([(spec, pool.adapter_module.http_routes(spec))])
    routes = "; ".join(router.describe()) or "none"
    try:
        match = router.match(method, path)
    except MethodNotAllowed:
        match = None
    if match is None:
        raise UsageError(f"--http {method} {target}: {spec.name} has no HTTP trigger for it (routes: {routes})")
    headers = [("host", "127.0.0.1"), ("user-agent", "faasemu-invoke")]
    if body:
        headers.append(("content-type", "application/json"))
    request = HttpRequest(method, path, query, headers, body, match.route.path, match.params,
                          time_ms=int(time.time() * 1000))
    inv = Invocation(str(uuid.uuid4()), 0.0)
    return {"op": "http", "req": request.to_wire(), "inv": inv.to_wire()}, body


def _event(pool: FunctionPool, spec: FunctionSpec, event_type: str, data: Any) -> tuple[dict[str, Any], bytes]:
    event_id = f"invoke-{uuid.uuid4().hex[:12]}"
    event = {
        "specversion": "1.0", "id": event_id, "source": "faasemu", "type": event_type,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "datacontenttype": "application/json",
        "data": data,
    }
    # attempt 1 of the event under seed 0: the id the bus and `replay` give that attempt (delivery/policy.py)
    delivery = Delivery(event, 1, attempt_id(0, spec.name, event_id, 1))
    inv = Invocation(invocation_id(pool.adapter_module, spec, 0, event, 0, 1), 0.0)
    return {"op": "event", "delivery": delivery.to_wire(), "inv": inv.to_wire()}, b""


async def _run(pool: FunctionPool, message: tuple[dict[str, Any], bytes], console: Console, mode: str) -> int:
    header, body = message
    try:
        outcome = await pool.call(header, body)
    finally:
        await pool.close()
    return _print(pool, outcome, header, console, mode)


def _print(pool: FunctionPool, outcome: Outcome, header: dict[str, Any], console: Console, mode: str) -> int:
    spec = pool.spec
    request_id = header["inv"]["request_id"]
    out = sys.stdout.buffer
    if outcome.error:
        console.error(spec.name, outcome.error)
    elif outcome.kind != "ok":
        console.error(spec.name, WorkerError(outcome.kind, outcome.message))
    cold = f", cold start {outcome.cold_ms:.0f} ms" if outcome.cold_ms is not None else ""
    if mode == "http":
        if "res" in outcome.reply:
            response = HttpResponse.from_wire(outcome.reply["res"], outcome.body)
        else:
            response = pool.adapter_module.failure_response(outcome.kind, outcome.message, request_id)
        console.file.write(f"HTTP {response.status}\n")
        for key, value in response.headers:
            console.file.write(f"{key}: {value}\n")
        out.write(response.body)
    elif mode == "raw":
        if outcome.kind == "ok":
            out.write(outcome.body)
        else:
            payload = outcome.reply.get("payload") or _failure_payload(pool, outcome, request_id)
            out.write(json.dumps(payload).encode())
    else:
        out.write(json.dumps({"delivered": outcome.ok, "event": header["delivery"]["event"]["id"]}).encode())
    out.write(b"\n")
    out.flush()
    console.file.write(f"{spec.name}: {outcome.kind} in {outcome.ms:.1f} ms{cold}\n")
    return 0 if outcome.ok else 1


def _failure_payload(pool: FunctionPool, outcome: Outcome, request_id: str) -> dict[str, Any]:
    if outcome.kind == "error" and outcome.error:
        return {"errorMessage": outcome.error.message, "errorType": outcome.error.type}
    return pool.adapter_module.failure_payload(outcome.kind, outcome.message, request_id)


