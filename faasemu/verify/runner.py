"""Executing schedules for the campaign: the only I/O in `verify/`.

A *lane* is one slot that runs one candidate at a time: its own state file (on a RAM filesystem
when there is one, reset by copying a template), its own effect-sink URLs, and fresh worker
processes per run, so user modules are imported after the run's FAASEMU_* variables are set.
Lanes run in parallel, one per core. Workers are pre-started while the lane is busy (holding
faasemu's code only, never a user module), and each run ships whole stretches of its schedule,
consecutive deliveries to one function, in a single message.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faasemu.chaos.model import DeliveryRef, Step, apply
from faasemu.delivery.effects import EffectLog, LocalEffectServer
from faasemu.delivery.policy import Attempts, Decision, attempt_id, decide, source_copy
from faasemu.events.ingress import IngressError, parse_ingress
from faasemu.project.environment import faasemu_env, handler_environment
from faasemu.project.failures import WorkerError
from faasemu.project.paths import ProjectPaths
from faasemu.project.spec import FunctionSpec, Manifest
from faasemu.runtimes.contract import load_runtime
from faasemu.runtimes.request_ids import invocation_id
from faasemu.verify.model import Candidate, Effects, EmittedEffect, RunResult, SinkEffect, Snapshot
from faasemu.verify.stores import folder as dir_state
from faasemu.verify.stores import hooks as hook_state
from faasemu.verify.stores import sqlite as sqlite_state
from faasemu.workers.pool import Watchdog
from faasemu.workers.process import LoadFailed, WorkerDied, WorkerProcess, WorkerTimeout

LOAD_TIMEOUT = 30.0


def ram_folder() -> str | None:
    """A RAM filesystem for lanes: a commit costs ~0.4 ms there against ~2 ms on disk."""
    candidate = "/dev/shm"
    return candidate if os.path.isdir(candidate) and os.access(candidate, os.W_OK) else None


@dataclass
class Lane:
    id: str
    folder: str
    state_path: str
    sink_url: str
    events_url: str
    spares: list[WorkerProcess] = field(default_factory=list)
    topping_up: asyncio.Task[None] | None = None


@dataclass
class LoadProblem:
    """A function whose handler cannot load: every delivery to it is `unavailable`."""

    function: str
    error: WorkerError


class Runner:
    """Runs candidates (schedules) against fresh state and returns their snapshots and effects."""

    def __init__(
        self, manifest: Manifest, events: Sequence[dict[str, Any]], refs: Sequence[DeliveryRef], seed: int,
        *, lanes: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.events = events
        self.refs = list(refs)
        self.seed = seed
        self.lane_count = max(1, lanes or os.cpu_count() or 1)
        self.specs: dict[str, FunctionSpec] = {spec.name: spec for spec in manifest.functions}
        self.used_functions = sorted({ref.function for ref in self.refs})
        self.effects = LocalEffectServer()
        self.watchdog = Watchdog()
        self.lanes: list[Lane] = []
        self.base = ""
        self.template = ""
        self.load_problems: dict[str, LoadProblem] = {}
        self.runs = 0
        self.deliveries = 0
        self.output: list[str] = []
        self._free: asyncio.Queue[Lane] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.effects.__enter__()
        self.base = tempfile.mkdtemp(prefix="faasemu-chaos-", dir=ram_folder() or self._disk_folder())
        state = self.manifest.state
        if state.kind == "sqlite":
            self.template = os.path.join(self.base, "template.db")
            sqlite_state.build_template(self.template, state.schema, self.manifest.path)
        self._free = asyncio.Queue()
        for number in range(self.lane_count):
            folder = os.path.join(self.base, f"lane-{number}")
            os.makedirs(folder)
            state_path = os.path.join(folder, "state" if state.kind == "dir" else "state.db")
            sink, events = self.effects.add_lane(f"lane{number}")
            lane = Lane(f"lane{number}", folder, state_path, sink, events)
            self.lanes.append(lane)
            self._free.put_nowait(lane)
            self._top_up(lane)

    async def __aenter__(self) -> Runner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _disk_folder(self) -> str:
        return ProjectPaths(self.manifest.root).chaos_folder()  # in .faasemu/, made 0700: the user's alone

    async def close(self) -> None:
        for lane in self.lanes:
            if lane.topping_up is not None:
                lane.topping_up.cancel()
            await asyncio.gather(*(w.terminate() for w in lane.spares), return_exceptions=True)
            lane.spares.clear()
        self.watchdog.stop()
        self.effects.__exit__(None, None, None)
        shutil.rmtree(self.base, ignore_errors=True)

    def discard(self) -> None:
        """Remove the lanes' folders and kill leftover workers (after an interrupted campaign)."""
        for lane in self.lanes:
            for worker in lane.spares:
                worker.kill("shutdown")
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)

    def _top_up(self, lane: Lane) -> None:
        """Pre-start generic workers for the lane's next run while this one executes."""
        if lane.topping_up is not None and not lane.topping_up.done():
            return

        runtimes = sorted({self.specs[name].runtime for name in self.used_functions})

        async def spawn() -> None:
            while len(lane.spares) < len(self.used_functions):
                worker = await WorkerProcess.spawn(self.manifest.root, self.output.append)
                await worker.preload(runtimes)
                lane.spares.append(worker)

        lane.topping_up = asyncio.get_running_loop().create_task(spawn())

    # -- running ---------------------------------------------------------------------------------

    async def run_many(self, candidates: Sequence[Candidate]) -> list[RunResult]:
        """Run candidates in parallel lanes; results in the candidates' order."""
        assert self._free is not None
        results: list[RunResult | None] = [None] * len(candidates)

        async def one(index: int, candidate: Candidate) -> None:
            assert self._free is not None
            lane = await self._free.get()
            try:
                results[index] = await self.run(lane, candidate)
            finally:
                self._free.put_nowait(lane)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(candidates)))
        return [r for r in results if r is not None]

    def steps_of(self, candidate: Candidate) -> list[Step]:
        kept = self.refs if candidate.deliveries is None else [self.refs[i] for i in sorted(candidate.deliveries)]
        return apply(kept, candidate.perturbations)

    async def run(self, lane: Lane, candidate: Candidate, *, trace: bool = False) -> RunResult:
        """One run on one lane. With `trace`, one delivery per message and a snapshot after each:
        what each delivery touched (rows by key, sinks, emitted types), for the probes."""
        steps = self.steps_of(candidate)
        self._reset(lane)
        self.effects.take(lane.id)
        workers: dict[str, WorkerProcess] = {}
        attempts = Attempts()  # numbered per (event id, function) as by `up` and `replay` (delivery/policy.py)
        outcomes: list[str] = []
        touched: list[frozenset[str]] = []
        previous = self._snapshot(lane) if trace else None
        previous_effects = Effects()
        index = 0
        try:
            while index < len(steps):
                step = steps[index]
                name = step.ref.function
                event = self.events[step.ref.event_index]
                if step.inject == "fail" or name in self.load_problems:
                    if step.inject == "fail":  # fails before the handler runs, but is an attempt all the same
                        attempts.next(event["id"], name)
                    outcomes.append("fail*" if step.inject == "fail" else "unavailable")
                    index += 1
                else:
                    end = index + 1
                    if not trace:
                        while end < len(steps) and steps[end].ref.function == name and steps[end].inject != "fail":
                            end += 1
                    await self._ship(lane, workers, name, steps[index:end], attempts, outcomes)
                    index = end
                if trace:
                    current = self._snapshot(lane)
                    effects = self._effects(self.effects.logs[lane.id])
                    touched.append(frozenset(changed_keys(previous, current)) | effect_keys(previous_effects, effects))
                    previous, previous_effects = current, effects
                    while len(touched) < len(outcomes):
                        touched.append(frozenset())
        finally:
            await asyncio.gather(*(w.terminate() for w in workers.values()), return_exceptions=True)
            self._top_up(lane)
        self.runs += 1
        self.deliveries += len(steps)
        snapshot = self._snapshot(lane)
        return RunResult(snapshot, self._effects(self.effects.take(lane.id)), tuple(outcomes), tuple(touched))

    async def _ship(
        self, lane: Lane, workers: dict[str, WorkerProcess], name: str, steps: Sequence[Step],
        attempts: Attempts, outcomes: list[str],
    ) -> None:
        """Deliver consecutive steps of one function, as few messages as the outcomes allow.

        The runner numbers and identifies each attempt (the policy's `Attempts` and `attempt_id`)
        and ships the steps in one batch; the worker stops after the first failure, and the policy
        decides what follows it: a retry (shipped again with the rest), a dead letter, or, after a
        lost ack, nothing now (the schedule's redelivery step follows). A worker that dies or times
        out is a failure too, and a fresh worker (a cold start, as after a platform's crash) takes over.
        """
        spec = self.specs[name]
        module = load_runtime(spec.runtime)
        position, failed = 0, 0  # the next step to deliver, and its handler failures so far
        while position < len(steps):
            worker = workers.get(name) or await self._load(lane, name)
            if worker is None:
                outcomes.extend("unavailable" for _ in steps[position:])
                return
            workers[name] = worker
            batch = steps[position:]
            items, ahead = [], Counter[str]()
            for step in batch:
                event = self.events[step.ref.event_index]
                ahead[event["id"]] += 1  # numbered as if each earlier one succeeds; re-planned after a failure
                attempt = attempts.peek(event["id"], name, ahead[event["id"]])
                items.append({
                    "event": event, "attempt": attempt, "attempt_id": attempt_id(self.seed, name, event["id"], attempt),
                    "request_id": invocation_id(module, spec, self.seed, event, source_copy(step), attempt),
                })
            done: list[dict[str, Any]] = []
            message = {"op": "batch", "timeout": spec.timeout, "items": items}
            self.watchdog.track(worker, spec.memory)
            try:
                await worker.request(message, b"", spec.timeout * (spec.retries + 1) + 1.0, on_item=done.append)
                failure = None
            except WorkerTimeout:
                failure = "timeout"
            except WorkerDied:
                failure = "oom" if worker.kill_reason == "oom" else "crash"
            finally:
                self.watchdog.untrack(worker)
            settled = [(report["status"] == "ok", report.get("retryable", True), report["status"]) for report in done]
            if failure is not None:
                workers.pop(name, None)
                await worker.terminate()
                settled.append((False, True, failure))
            for (ok, retryable, status), step in zip(settled, batch):
                attempts.next(self.events[step.ref.event_index]["id"], name)
                decision = decide(inject=step.inject, ok=ok, failed_before=failed, retries=spec.retries,
                                  retryable=retryable is not False)
                if decision.verdict == "retry":
                    failed += 1
                    break
                outcomes.append(_outcome(decision, status))
                position, failed = position + 1, 0

    async def _load(self, lane: Lane, name: str) -> WorkerProcess | None:
        spec = self.specs[name]
        worker = lane.spares.pop() if lane.spares else await WorkerProcess.spawn(self.manifest.root, self.output.append)
        env = handler_environment(load_runtime(spec.runtime).environment(spec, self.manifest.root), spec.env,
                                  faasemu_env(lane.state_path, lane.sink_url, lane.events_url))
        try:
            await worker.load(spec.to_wire(), self.manifest.root, env, max(LOAD_TIMEOUT, spec.timeout))
        except LoadFailed as exc:
            self.load_problems[name] = LoadProblem(name, exc.error)
            await worker.terminate()
            return None
        except (WorkerDied, WorkerTimeout) as exc:
            self.load_problems[name] = LoadProblem(
                name, WorkerError("Runtime.ExitError", str(exc) or "the worker ended while loading"))
            await worker.terminate()
            return None
        return worker

    # -- state and effects -----------------------------------------------------------------------

    def _reset(self, lane: Lane) -> None:
        state = self.manifest.state
        if state.kind == "sqlite":
            sqlite_state.reset(self.template, lane.state_path)
        elif state.kind == "dir":
            dir_state.reset(lane.state_path)
        else:
            assert state.reset_hook is not None
            hook_state.call(state.reset_hook, "reset", self.manifest.root, self._hook_env(lane))

    def _snapshot(self, lane: Lane) -> Snapshot:
        state = self.manifest.state
        if state.kind == "sqlite":
            return sqlite_state.snapshot(lane.state_path)
        if state.kind == "dir":
            return dir_state.snapshot(lane.state_path)
        assert state.snapshot_hook is not None
        value = hook_state.call(state.snapshot_hook, "snapshot", self.manifest.root, self._hook_env(lane))
        return hook_state.to_snapshot(value)

    def _hook_env(self, lane: Lane) -> dict[str, str]:
        # the project's configuration (.env, top-level env): hooks reach the same store the handlers do
        return handler_environment({}, self.manifest.env, faasemu_env(lane.state_path, lane.sink_url, lane.events_url))

    @staticmethod
    def _effects(log: EffectLog) -> Effects:
        sink = tuple(sorted(SinkEffect(c.name, c.method, canonical_json(c.body)) for c in list(log.sink)))
        emitted = []
        for body in list(log.emitted):
            for event in emitted_events(body):
                emitted.append(EmittedEffect(str(event.get("type")), str(event.get("source", "")),
                                             canonical_json(event.get("data"))))
        return Effects(sink, tuple(sorted(emitted)))


def _outcome(decision: Decision, status: str) -> str:
    """A run's status of a step: the policy's `lost*`, else what the handler did (ok, error, crash ...)."""
    return "lost*" if decision.label == "lost*" else status


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def emitted_events(body: Any) -> list[dict[str, Any]]:
    """What a handler posted to $FAASEMU_EVENTS_URL, read as the ingress would (structured or plain)."""
    raw = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    content_type = "application/cloudevents-batch+json" if isinstance(body, list) else "application/json"
    try:
        return parse_ingress(content_type, {}, raw, id_factory=lambda: "", now=lambda: "")
    except IngressError:
        return [body] if isinstance(body, dict) else [{"type": "(unreadable)", "data": body}]


def row_keys(snapshot: Snapshot | None) -> dict[str, Any]:
    """`table[key]` -> row content, for telling which rows a delivery changed."""
    found: dict[str, Any] = {}
    if snapshot is None:
        return found
    for table in snapshot.tables:
        positions = [table.columns.index(k) for k in table.key] if table.key else None
        for row in table.rows:
            if positions is not None:
                found[f"{table.name}[{','.join(repr(row[p]) for p in positions)}]"] = row
            else:
                key = f"{table.name}[{row!r}]"
                found[key] = found.get(key, 0) + 1 if isinstance(found.get(key), int) else 1
    return found


def changed_keys(before: Snapshot | None, after: Snapshot) -> set[str]:
    old, new = row_keys(before), row_keys(after)
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


def effect_keys(before: Effects, after: Effects) -> frozenset[str]:
    """The sinks and emitted types a delivery added to (effects only ever grow within a run)."""
    sink = Counter(after.sink) - Counter(before.sink)
    emitted = Counter(after.emitted) - Counter(before.emitted)
    return frozenset({f"sink.{e.name}" for e in sink} | {f"emitted.{e.type}" for e in emitted})
