"""`faasemu replay EVENTS.jsonl`: deliver a file of events, optionally perturbed by the chaos model.

Without `--target`, deliveries run here, one after another in schedule order, in worker processes
exactly as under `up`, against the project's state file; emitted events and sink calls are recorded
and listed, not delivered onward (SPEC §6). With `--target URL`, the events are posted to a running
`faasemu up` instead, in the perturbed order, duplicates included.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from faasemu.bus import attempt_id, backoff
from faasemu.chaos import ChaosOptions, DeliveryRef, Step, apply, canonical, describe, new_seed, perturb
from faasemu.effects import LocalEffectServer
from faasemu.console import rich_console
from faasemu.errors import UsageError
from faasemu.events import read_events_file, to_structured
from faasemu.manifest import load_manifest
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.spec import Manifest
from faasemu.state import ensure_project_state
from faasemu.workers.pool import FunctionPool, Watchdog


@dataclass(frozen=True)
class ReplayOptions:
    manifest: str
    events_file: str
    target: str | None = None
    chaos: ChaosOptions = ChaosOptions()
    seed: int | None = None
    retry_delay: float = 0.5


@dataclass
class StepResult:
    step: Step
    event: dict[str, Any]
    attempts: list[int] = field(default_factory=list)
    status: str = "ok"  # ok | dead | fail* (injected, redelivered later) | lost* (ran, ack lost)
    ms: float = 0.0
    error: str = ""


class _QuietObserver:
    def __init__(self, console: Console) -> None:
        self.console = console

    def worker_output(self, function: str, line: str) -> None:
        self.console.print(f"[dim]{function} |[/] {line}", markup=True, highlight=False)

    def load_failed(self, function: str, error: dict[str, Any]) -> None:
        self.console.print(f"[red]{function}: cannot load the handler: {error.get('type')}: {error.get('message')}"
                           f" ({error.get('where', '')})[/]")

    def load_recovered(self, function: str, ms: float) -> None:
        pass


def reproduce_command(options: ReplayOptions, seed: int) -> str:
    parts = ["faasemu", "replay", options.events_file]
    if options.manifest != "faasemu.yaml":
        parts += ["-f", options.manifest]
    if options.target:
        parts += ["--target", options.target]
    return shlex.join([*parts, *options.chaos.flags(), "--seed", str(seed)])


def run_replay(options: ReplayOptions) -> int:
    manifest = load_manifest(options.manifest)
    events = read_events_file(options.events_file)
    seed = options.seed if options.seed is not None else (new_seed() if options.chaos.active else 0)
    console = rich_console()
    if options.target:
        return _post_to_target(options, events, seed, console)
    baseline = canonical(events, manifest.functions)
    _, steps = perturb(baseline, options.chaos, seed) if options.chaos.active else ([], apply(baseline, []))
    with LocalEffectServer() as effects:
        env = {
            "FAASEMU_STATE": ensure_project_state(manifest),
            "FAASEMU_SINK_URL": f"{effects.base_url}/sink",
            "FAASEMU_EVENTS_URL": f"{effects.base_url}/events",
        }
        results = asyncio.run(_execute(manifest, events, steps, env, seed, options.retry_delay, console))
    _print_results(results, console)
    unrouted = sum(1 for e in events if not any(r.event_id == e["id"] for r in baseline))
    dead = sum(1 for r in results if r.status == "dead")
    console.print(
        f"{len(events)} events, {len(results)} deliveries: {sum(1 for r in results if r.status == 'ok')} ok, "
        f"{dead} dead-lettered" + (f", {unrouted} events matched no function" if unrouted else "")
    )
    for call in effects.log.sink:
        console.print(f"sink     {call.name}  {call.method}  {json.dumps(call.body)}")
    for event in effects.log.emitted:
        console.print(f"emitted  {json.dumps(event)}  (recorded, not delivered: replay does not cascade)")
    if options.chaos.active:
        console.print(f"seed {seed} · reproduce: {reproduce_command(options, seed)}")
    return 1 if dead else 0


async def _execute(
    manifest: Manifest, events: list[dict[str, Any]], steps: list[Step], env: dict[str, str], seed: int,
    retry_delay: float, console: Console,
) -> list[StepResult]:
    observer = _QuietObserver(console)
    watch = Watchdog()
    pools: dict[str, FunctionPool] = {}
    attempts: dict[tuple[str, str], int] = {}
    results = []
    try:
        for step in steps:
            ref = step.ref
            spec = manifest.function(ref.function)
            assert spec is not None
            pool = pools.get(ref.function) or pools.setdefault(
                ref.function, FunctionPool(spec, manifest.root, env, observer, watch))
            event = events[ref.event_index]
            result = StepResult(step, event)
            started = time.perf_counter()
            failures = 0
            while True:
                key = (event["id"], ref.function)
                attempts[key] = attempt = attempts.get(key, 0) + 1
                result.attempts.append(attempt)
                if step.inject == "fail" and len(result.attempts) == 1:
                    result.status, result.error = "fail*", "injected: failed before the handler ran"
                    break
                request_id = attempt_id(seed, ref.function, event["id"], attempt)
                outcome = await pool.call({
                    "op": "event", "delivery": Delivery(event, attempt, request_id).to_wire(),
                    "inv": Invocation(request_id, 0.0, attempt).to_wire(),
                })
                if step.inject == "lost-ack":
                    result.status = "lost*"
                    result.error = "injected: ack lost" + ("" if outcome.ok else f"; {_describe(outcome)}")
                    break
                if outcome.ok:
                    result.status, result.error = "ok", ""
                    break
                failures += 1
                result.error = _describe(outcome)
                if failures > spec.retries:
                    result.status = "dead"
                    break
                await asyncio.sleep(backoff(retry_delay, failures))
            result.ms = (time.perf_counter() - started) * 1000
            results.append(result)
    finally:
        for pool in pools.values():
            await pool.close()
        watch.stop()
    return results


def _describe(outcome: Any) -> str:
    if outcome.error:
        where = f" ({outcome.error['where']})" if outcome.error.get("where") else ""
        return f"{outcome.error.get('type')}: {outcome.error.get('message')}{where}"
    return outcome.message or outcome.kind


def _print_results(results: list[StepResult], console: Console) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "event", "type", "function", "attempts", "status", "duration", "chaos", "error"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "dead": "red", "fail*": "yellow", "lost*": "yellow"}
    for number, result in enumerate(results, 1):
        table.add_row(
            str(number), result.event["id"], result.event["type"], result.step.ref.function,
            ",".join(map(str, result.attempts)), f"[{styles.get(result.status, 'white')}]{result.status}[/]",
            f"{result.ms:.1f} ms", describe(result.step), result.error,
        )
    console.print(table)


def _post_to_target(options: ReplayOptions, events: list[dict[str, Any]], seed: int, console: Console) -> int:
    """Post the events, in the perturbed order, to a running `faasemu up` (which routes and retries)."""
    if options.chaos.fail or options.chaos.lost_ack:
        raise UsageError("--fail and --lost-ack need local delivery: run `faasemu up --fail P --lost-ack P` for "
                         "live failures, or replay without --target")
    refs = [DeliveryRef(e["id"], "*", i, i) for i, e in enumerate(events)]
    _, steps = perturb(refs, options.chaos, seed) if options.chaos.active else ([], apply(refs, []))
    url = options.target.rstrip("/") + "/_faasemu/events"  # type: ignore[union-attr]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "event", "type", "status", "delivered to", "chaos"):
        table.add_column(column)
    failed = 0
    for number, step in enumerate(steps, 1):
        event = events[step.ref.event_index]
        request = urllib.request.Request(url, data=to_structured(event), method="POST",
                                         headers={"content-type": "application/cloudevents+json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read() or b"{}")
                status = str(response.status)
        except urllib.error.HTTPError as exc:
            answer, status = {}, f"{exc.code} {exc.read().decode(errors='replace')[:200]}"
            failed += 1
        except (urllib.error.URLError, OSError) as exc:
            raise UsageError(f"--target {options.target}: cannot reach faasemu up ({exc})") from None
        functions = ", ".join((answer.get("deliveries") or {}).get(event["id"], [])) or "-"
        table.add_row(str(number), event["id"], event["type"], status, functions, describe(step))
    console.print(table)
    console.print(f"{len(steps)} events posted to {url}" + (f", {failed} refused" if failed else "")
                  + "; `faasemu events` shows their deliveries")
    if options.chaos.active:
        console.print(f"seed {seed} · reproduce: {reproduce_command(options, seed)}")
    return 1 if failed else 0
