"""`faasemu replay EVENTS.jsonl`: deliver a file of events, optionally perturbed by the chaos model.

Without `--target`, deliveries run here, one after another in schedule order, in worker processes
exactly as under `up`, against the project's state file; emitted events and sink calls are recorded
and listed, not delivered onward (docs/verification.md#effects). With `--target URL`, the events are posted to a running
`faasemu up` instead, in the perturbed order, duplicates included.

Progress goes to stderr (a bar on a terminal, a plain line per tenth otherwise), so stdout keeps
only the table. A replay cut short (Ctrl+C, a lost `--target`) still says how far it got: a
second run starts again from the first event, and the user must know what the first one did.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from faasemu.chaos.model import (
    APPLY_CHANGE,
    ChaosOptions,
    DeliveryRef,
    Step,
    apply,
    canonical,
    describe,
    new_seed,
    perturb,
)
from faasemu.delivery.admission import check_events_file
from faasemu.delivery.effects import LocalEffectServer
from faasemu.delivery.policy import INJECTED_ERRORS, Attempts, attempt_id, backoff, decide, runs_handler, source_copy
from faasemu.events.files import is_change, read_events_file
from faasemu.events.model import to_structured
from faasemu.project.capture import ChangeError, parse_change
from faasemu.project.console import plain, rich_console
from faasemu.project.environment import effect_urls, faasemu_env
from faasemu.project.errors import FaasemuError, InputFileError, UsageError
from faasemu.project.failures import WorkerError, format_error
from faasemu.project.manifest import load_manifest
from faasemu.project.spec import FunctionSpec, Manifest
from faasemu.project.state import open_project_state, state_location
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.runtimes.request_ids import invocation_id
from faasemu.workers.pool import FunctionPool, Outcome, Watchdog
from faasemu.workers.process import WorkerProcess


@dataclass(frozen=True)
class ReplayOptions:
    manifest: str
    events_file: str
    target: str | None = None
    chaos: ChaosOptions = ChaosOptions()  # noqa: RUF009 - frozen: one shared default is safe
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


class TargetLost(FaasemuError):
    """`--target` stopped answering part-way: say how many events it had accepted."""

    def __init__(self, target: str, accepted: int, total: int, in_flight: str, reason: object) -> None:
        super().__init__(
            f"--target {target}: lost faasemu up after it accepted {accepted} of {total} events ({reason}). "
            f"Those {accepted} are in its event log and are delivered when it runs again; event '{in_flight}' "
            f"was being posted and may or may not have been stored (`faasemu events` lists what the log holds). "
            f"Replaying the file again posts all {total} again."
        )


class ReplayProgress:
    """How far a replay is, on stderr: a rich bar on a terminal, else a plain line per tenth."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.done = total, what, 0
        self.console = rich_console(sys.stderr)
        self._every = max(1, math.ceil(total / 10))
        self._bar: Progress | None = None
        if self.console.is_terminal and total:
            self._bar = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn(what),
                                 TimeElapsedColumn(), console=self.console, transient=True)
            self._task = self._bar.add_task("replay", total=total)
            self._bar.start()

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
        elif self.done % self._every == 0 or self.done == self.total:
            self.console.print(plain(f"replay: {self.done}/{self.total} {self.what}"))

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _QuietObserver:
    def __init__(self, console: Console) -> None:
        self.console = console

    def worker_output(self, function: str, line: str) -> None:
        self.console.print(Text.assemble((f"{function} |", "dim"), " ", line))

    def load_failed(self, function: str, error: WorkerError) -> None:
        self.console.print(plain(f"{function}: cannot load the handler: {format_error(error)}", "red"))

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
    check_events_file(options.events_file, events, manifest.functions)  # e.g. EventBridge's detail (admission.py)
    seed = options.seed if options.seed is not None else (new_seed() if options.chaos.active else 0)
    console = rich_console()
    changes = [event for event in events if is_change(event)]
    if options.target:
        if changes:
            raise InputFileError(options.events_file, changes[0].get("faasemuline"),
                                 "a table change cannot be posted to --target: `faasemu up` takes events, and "
                                 "the change is a write to the state database. Replay without --target (the "
                                 "change is applied and its triggers' events captured for `up` to deliver)")
        return _post_to_target(options, events, seed, console)
    baseline = canonical(events, manifest.functions)
    _, steps = perturb(baseline, options.chaos, seed) if options.chaos.active else ([], apply(baseline, []))
    # with table changes, the triggers are installed so that what they change is captured (project/state.py)
    state: AbstractContextManager[str] = _open_state(manifest) if changes else state_location(manifest)
    with LocalEffectServer(manifest.queues) as effects, state as location:
        env = faasemu_env(location, *effect_urls(effects.base_url), queues=bool(manifest.queues))
        results: list[StepResult] = []
        progress = ReplayProgress(len(steps), "deliveries")
        interrupted = False
        try:
            asyncio.run(_execute(manifest, events, steps, env, seed, options.retry_delay, console, results, progress))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            progress.stop()
    _print_results(results, console)
    unrouted = sum(1 for e in events if not any(r.event_id == e["id"] for r in baseline))
    dead = sum(1 for r in results if r.status == "dead")
    done = sum(1 for r in results if r.status == "ok")
    made = f"{len(results)} of {len(steps)} deliveries made" if interrupted else f"{len(results)} deliveries"
    console.print(plain(
        f"{len(events)} events, {made}: {done} ok, "
        f"{dead} dead-lettered" + (f", {unrouted} events matched no function" if unrouted else "")
    ))
    for call in effects.log.sink:
        console.print(plain(f"sink     {call.name}  {call.method}  {json.dumps(call.body)}"))
    for event in effects.log.emitted:
        console.print(plain(f"emitted  {json.dumps(event)}  (recorded, not delivered: replay does not cascade)"))
    if changes and manifest.triggers:
        console.print(plain(f"{len(changes)} table changes written: the events their triggers captured wait in the "
                            "state database for `faasemu up` to deliver (replay does not cascade)"))
    if options.chaos.active:
        console.print(plain(f"seed {seed} · reproduce: {reproduce_command(options, seed)}"))
    if interrupted:
        current = steps[len(results)] if len(results) < len(steps) else None
        running = (f"; {current.ref.event_id} -> {current.ref.function} was running and may or may not have "
                   "written its state") if current else ""
        console.print(plain(
            f"interrupted after {len(results)} of {len(steps)} deliveries ({done} ok){running}. "
            f"Their state stays in the state file; replaying the file again starts from the first event.",
            "bold yellow"))
        return 130  # the shell's code for a command ended by SIGINT
    return 1 if dead else 0


async def _execute(
    manifest: Manifest, events: list[dict[str, Any]], steps: list[Step], env: dict[str, str], seed: int,
    retry_delay: float, console: Console, results: list[StepResult], progress: ReplayProgress,
) -> None:
    """Run the steps in order, appending each finished one to `results` (the caller's list, so what
    was done survives a Ctrl+C that cancels this coroutine). Consecutive steps to a function that
    takes SQS batches go to it together, up to its batch_size (docs/delivery.md#batches-sqs)."""
    observer = _QuietObserver(console)
    watch = Watchdog()
    pools: dict[str, FunctionPool] = {}
    attempts = Attempts()  # numbered per (event id, function), as by the bus (delivery/policy.py)
    run = _Run(events, seed, retry_delay, attempts)
    try:
        position = 0
        while position < len(steps):
            ref = steps[position].ref
            if ref.function == APPLY_CHANGE:  # a table change: written as an outside client would, in file order
                results.append(apply_table_change(manifest, steps[position], events[ref.event_index], env))
                progress.advance()
                position += 1
                continue
            spec = manifest.function(ref.function)
            assert spec is not None
            pool = pools.get(ref.function) or pools.setdefault(
                ref.function, FunctionPool(spec, manifest.root, env, observer, watch))
            if steps[position].together and position + 1 < len(steps):  # --overlap: with its copy, on two workers
                done = await run.overlap(pool, steps[position], steps[position + 1])
                position += 2
                for result in done:
                    results.append(result)
                    progress.advance()
                continue
            group = _batch_of(steps, position, events, spec) if pool.adapter_module.delivers_batches(spec) else []
            if group:
                done = await run.batch(pool, group)
                position += len(group)
            else:
                done = [await run.step(pool, steps[position])]
                position += 1
            for result in done:
                results.append(result)
                progress.advance()
    finally:
        for pool in pools.values():
            await pool.close()
        watch.stop()


@contextmanager
def _open_state(manifest: Manifest) -> Iterator[str]:
    with open_project_state(manifest) as state:
        yield state.location


def apply_table_change(manifest: Manifest, step: Step, event: dict[str, Any], env: dict[str, str]) -> StepResult:
    """An events file's change, applied to the project's state; what its triggers capture stays in the
    database's event table, which `faasemu up` delivers (replay does not cascade)."""
    from faasemu.project import capture_postgres, capture_sqlite

    result = StepResult(step, event)
    kind = manifest.state.kind
    if kind not in ("sqlite", "postgres"):
        raise InputFileError(str(event.get("faasemufile")), event.get("faasemuline"),
                             f"a table change needs a database: state.sqlite or state.postgres in {manifest.path}")
    module: Any = capture_postgres if kind == "postgres" else capture_sqlite
    started = time.perf_counter()
    try:
        touched = module.apply_change(env["FAASEMU_STATE"], parse_change({"change": event["faasemuchange"]}))
    except ChangeError as exc:
        result.status, result.error = "refused", str(exc)
    else:
        result.error = f"{touched} row{'s' if touched != 1 else ''} written"
    result.ms = (time.perf_counter() - started) * 1000
    return result


def _batch_of(steps: list[Step], start: int, events: list[dict[str, Any]], spec: FunctionSpec) -> list[Step]:
    """The consecutive steps from `start` that go to `spec` in one invocation: up to its batch_size,
    each of another event (a batch holds one record per message id), none an injected --fail (its
    handler never runs: it goes alone). Empty when the step at `start` cannot be batched."""
    group: list[Step] = []
    ids: set[str] = set()
    for step in steps[start:]:
        event_id = events[step.ref.event_index]["id"]
        if (len(group) == spec.batch_size or step.ref.function != spec.name or step.inject == "fail"
                or event_id in ids):
            break
        group.append(step)
        ids.add(event_id)
    return group


@dataclass
class _Run:
    """What every delivery of one replay shares: the events, the seed, the backoff and the numbering."""

    events: list[dict[str, Any]]
    seed: int
    retry_delay: float
    attempts: Attempts

    async def overlap(self, pool: FunctionPool, step: Step, copy: Step) -> list[StepResult]:
        """A delivery and its copy started together, each on a loaded worker of its own, the second lent
        beyond `concurrency` as a platform scales out (the same as `up --overlap`, delivery/bus.py)."""
        async with pool.pair(pool.spec.timeout) as (first, second):
            return list(await asyncio.gather(self.step(pool, step, first), self.step(pool, copy, second)))

    async def step(self, pool: FunctionPool, step: Step, worker: WorkerProcess | None = None) -> StepResult:
        """One delivery, one event per invocation: attempt, `decide`, backoff, until it is not `retry`.
        `worker`: held for its first attempt (`overlap`)."""
        ref, spec = step.ref, pool.spec
        event = self.events[ref.event_index]
        result = StepResult(step, event)
        started = time.perf_counter()
        failures = 0
        inject = step.inject  # an injected failure hits the step's first attempt only
        while True:
            attempt = self.attempts.next(event["id"], ref.function)
            result.attempts.append(attempt)
            outcome = None
            if runs_handler(inject):
                request_id = attempt_id(self.seed, ref.function, event["id"], attempt)
                rid = invocation_id(pool.adapter_module, spec, self.seed, event, source_copy(step), attempt)
                outcome = await pool.call({
                    "op": "event", "delivery": Delivery(event, attempt, request_id).to_wire(),
                    "inv": Invocation(rid, 0.0, attempt).to_wire(),
                }, worker=worker)
                worker = None  # handed back by the call: a retry takes any worker
            ok = outcome is not None and outcome.ok
            retryable = outcome is None or outcome.error is None or outcome.error.retryable
            decision = decide(inject=inject, ok=ok, failed_before=failures, retries=spec.retries,
                              retryable=retryable)
            result.status = decision.label  # `retry` is overwritten by the next attempt's
            if inject is not None:  # fail* or lost*: the schedule's redelivery step follows
                failure = "" if ok or outcome is None else f"; {_describe(outcome)}"
                result.error = INJECTED_ERRORS[inject] + failure
                break
            assert outcome is not None  # without an injection the handler ran
            result.error = "" if ok else _describe(outcome)
            if decision.verdict != "retry":
                break
            failures += 1
            await asyncio.sleep(backoff(self.retry_delay, failures))
        result.ms = (time.perf_counter() - started) * 1000
        return result

    async def batch(self, pool: FunctionPool, group: list[Step]) -> list[StepResult]:
        """Several deliveries in one invocation (the worker's `records` operation), each record then
        decided on its own: the records to retry go again together after the backoff, until none is
        left to retry. A failed invocation fails every record; a batchItemFailures answer the ones it
        names. Every record still pending has failed as often as the others, so one backoff fits all."""
        spec = pool.spec
        results = [StepResult(step, self.events[step.ref.event_index]) for step in group]
        injects = [step.inject for step in group]  # an injected failure hits the step's first attempt only
        pending = list(range(len(group)))
        failures = 0
        started = time.perf_counter()
        while pending:
            records, numbers = [], []
            for index in pending:
                event, step = results[index].event, group[index]
                attempt = self.attempts.next(event["id"], spec.name)
                results[index].attempts.append(attempt)
                numbers.append(attempt)
                records.append({"delivery": Delivery(event, attempt, attempt_id(self.seed, spec.name, event["id"],
                                                                                 attempt)).to_wire(),
                                "seq": step.ref.event_index + 1})
            first = group[pending[0]]
            rid = invocation_id(pool.adapter_module, spec, self.seed, results[pending[0]].event, source_copy(first),
                                numbers[0])
            outcome = await pool.call({"op": "records", "records": records,
                                       "inv": Invocation(rid, 0.0, numbers[0]).to_wire()})
            failed = set(outcome.reply.get("failed") or ()) if outcome.ok else set(range(len(pending)))
            retryable = outcome.error is None or outcome.error.retryable
            again = []
            for offset, index in enumerate(pending):
                ok, inject, result = offset not in failed, injects[index], results[index]
                decision = decide(inject=inject, ok=ok, failed_before=failures, retries=spec.retries,
                                  retryable=retryable)
                result.status = decision.label
                why = "" if ok else _describe(outcome) if not outcome.ok else "reported failed in batchItemFailures"
                if inject is not None:  # lost*: the schedule's redelivery step follows
                    result.error = INJECTED_ERRORS[inject] + (f"; {why}" if why else "")
                    continue
                result.error = why if len(pending) == 1 or not why else f"batch of {len(pending)}: {why}"
                if decision.verdict == "retry":
                    again.append(index)
            injects = [None] * len(group)
            pending = again
            if pending:
                failures += 1
                await asyncio.sleep(backoff(self.retry_delay, failures))
        ms = (time.perf_counter() - started) * 1000
        for result in results:
            result.ms = ms
        return results


def _describe(outcome: Outcome) -> str:
    if outcome.error:
        return format_error(outcome.error)
    return outcome.message or outcome.kind


def _print_results(results: list[StepResult], console: Console) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "event", "type", "function", "attempts", "status", "duration", "chaos", "error"):
        table.add_column(column, overflow="fold")
    styles = {"ok": "green", "dead": "red", "fail*": "yellow", "lost*": "yellow"}
    for number, result in enumerate(results, 1):
        table.add_row(
            str(number), plain(result.event["id"]), plain(result.event["type"]), plain(result.step.ref.function),
            ",".join(map(str, result.attempts)), plain(result.status, styles.get(result.status, "white")),
            f"{result.ms:.1f} ms", plain(describe(result.step)), plain(result.error),
        )
    console.print(table)


def _post_to_target(options: ReplayOptions, events: list[dict[str, Any]], seed: int, console: Console) -> int:
    """Post the events, in the perturbed order, to a running `faasemu up` (which routes and retries)."""
    if options.chaos.fail or options.chaos.lost_ack or options.chaos.overlap:
        raise UsageError("--fail, --lost-ack and --overlap need local delivery: run `faasemu up --fail P "
                         "--lost-ack P --overlap P` for live ones, or replay without --target")
    refs = [DeliveryRef(e["id"], "*", i, i) for i, e in enumerate(events)]
    _, steps = perturb(refs, options.chaos, seed) if options.chaos.active else ([], apply(refs, []))
    assert options.target is not None  # run_replay calls this only with --target
    url = options.target.rstrip("/") + "/_faasemu/events"
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "event", "type", "status", "delivered to", "chaos"):
        table.add_column(column)
    failed = accepted = 0
    progress = ReplayProgress(len(steps), f"events posted to {options.target}")
    try:
        for number, step in enumerate(steps, 1):
            event = events[step.ref.event_index]
            request = urllib.request.Request(url, data=to_structured(event), method="POST",
                                             headers={"content-type": "application/cloudevents+json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    answer = json.loads(response.read() or b"{}")
                    status = str(response.status)
                accepted += 1
            except urllib.error.HTTPError as exc:
                answer, status = {}, f"{exc.code} {exc.read().decode(errors='replace')[:200]}"
                failed += 1
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
                # HTTPException: the server died while answering (IncompleteRead), a lost target too
                reason = getattr(exc, "reason", None) or exc
                if number == 1:
                    raise UsageError(f"--target {options.target}: cannot reach faasemu up ({reason}); "
                                     "no event was posted") from None
                progress.stop()
                console.print(table)
                # Exit 2, not 1: 1 tells CI that handlers misbehaved, and a lost server says nothing about them.
                raise TargetLost(str(options.target), accepted, len(steps), event["id"], reason) from None
            functions = ", ".join((answer.get("deliveries") or {}).get(event["id"], [])) or "-"
            table.add_row(str(number), plain(event["id"]), plain(event["type"]), plain(status), plain(functions),
                          plain(describe(step)))
            progress.advance()
    except KeyboardInterrupt:
        progress.stop()
        console.print(table)
        console.print(plain(f"interrupted: {accepted} of {len(steps)} events were accepted by {url}; replaying "
                            "the file again posts all of them again", "bold yellow"))
        return 130  # the shell's code for a command ended by SIGINT
    progress.stop()
    console.print(table)
    console.print(plain(f"{len(steps)} events posted to {url}" + (f", {failed} refused" if failed else "")
                        + "; `faasemu events` shows their deliveries"))
    if options.chaos.active:
        console.print(plain(f"seed {seed} · reproduce: {reproduce_command(options, seed)}"))
    return 1 if failed else 0
