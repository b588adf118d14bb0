"""Executing schedules for the campaign: with cluster.py, and lanes.py and perturbed.py (split from
this module), the only I/O in `verify/`.

A *lane* (lanes.py) is one slot that runs one candidate at a time: its own state file (on a RAM
filesystem when there is one, reset by copying a template), its own effect-sink URLs, and fresh
worker processes per run, so user modules are imported after the run's FAASEMU_* variables are set.
Lanes run in parallel, one per core. Workers are pre-started while the lane is busy (holding
faasemu's code only, never a user module), and each run ships whole stretches of its schedule,
consecutive deliveries to one function, in a single message. A crash part-way and an overlapping
pair need more than a message: their mechanics are perturbed.py's, what their attempts mean is here.

Cascades (docs/verification.md#cascades): the traced baseline attributes each emitted event to the
delivery that emitted it and appends a downstream delivery per subscriber (a FIFO broker); later
runs deliver, at each downstream step, what its parent's first run emitted in that run, and send
new events (a new id from a copy, more emissions) onward after the static schedule.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from typing import Any

from faasemu.chaos.model import APPLY_CHANGE, DeliveryRef, Step, apply, order_value
from faasemu.delivery.effects import EffectLog, LocalEffectServer
from faasemu.delivery.policy import Attempts, Decision, attempt_id, decide, source_copy
from faasemu.events.subscriptions import subscribers
from faasemu.project.capture import ChangeError, NoMatchingRow, parse_change
from faasemu.project.environment import faasemu_env, handler_environment
from faasemu.project.errors import InputFileError, UsageError
from faasemu.project.paths import ProjectPaths
from faasemu.project.spec import FunctionSpec, Manifest
from faasemu.runtimes.contract import load_runtime
from faasemu.runtimes.request_ids import invocation_id
from faasemu.verify import perturbed
from faasemu.verify.cascade import (
    EMITTED_TIME,
    CascadeRun,
    broker_id,
    canonical_json,
    delivery_paths,
    identity_of,
    read_emitted,
    record_effect,
)
from faasemu.verify.lanes import Lane, LoadProblem, close_lane, kill_spares, load_worker, open_lane, ram_folder, top_up
from faasemu.verify.model import Candidate, Effects, RunResult, SinkEffect, Snapshot, Table
from faasemu.verify.stores import folder as dir_state
from faasemu.verify.stores import hooks as hook_state
from faasemu.verify.stores import postgres as postgres_state
from faasemu.verify.stores import sqlite as sqlite_state
from faasemu.verify.triggers import captured_events, is_trigger_event, webhook_item, webhook_retries
from faasemu.workers.pool import Watchdog
from faasemu.workers.process import WorkerDied, WorkerProcess, WorkerTimeout

MAX_DEPTH = 10  # cascades: an event emitted by a delivery this deep is not delivered onward
MAX_DOWNSTREAM = 10_000  # cascades: downstream deliveries at most, in the baseline and per run for new events
NEW = 1 << 40  # indices of a run's new events' deliveries: never a baseline index


SPARES_LIMIT = 8  # the most spare workers a lane keeps ready


class Runner:
    """Runs candidates (schedules) against fresh state and returns their snapshots and effects."""

    def __init__(
        self, manifest: Manifest, events: Sequence[dict[str, Any]], refs: Sequence[DeliveryRef], seed: int,
        *, lanes: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.events = list(events)
        self.refs = list(refs)
        # cascades: each delivery's path (names it and seeds broker ids), depth and baseline emission count
        self.canonical = len(self.refs)
        self.paths = delivery_paths(self.refs)
        self.depth = [0] * len(self.refs)
        self.emissions: dict[int, int] = {}
        self.discovered = False
        self.cascades = any(ref.parent is not None for ref in self.refs)
        self.limit: str | None = None  # why discovery stopped adding downstream deliveries, if it did
        self.seed = seed
        self.lane_count = max(1, lanes or os.cpu_count() or 1)
        self.specs: dict[str, FunctionSpec] = {spec.name: spec for spec in manifest.functions}
        self.used_functions = functions_of(self.refs)
        self.effects = LocalEffectServer(manifest.queues)
        self.watchdog = Watchdog()
        self.lanes: list[Lane] = []
        self.base = ""
        self.template = ""
        self.databases: postgres_state.CampaignDatabases | None = None  # state.postgres: the template and lanes' copies
        self.generated: frozenset[str] = frozenset()  # columns a sequence fills (state.postgres): always masked
        self.capture: Any = None  # the state's capture module when the manifest has triggers (triggers.py)
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
            if self.manifest.triggers:
                from faasemu.project import capture_sqlite

                capture_sqlite.install(self.template, self.manifest.triggers, self.manifest.path)
                self.capture = capture_sqlite
        elif state.kind == "postgres":
            self.databases = postgres_state.CampaignDatabases(self.manifest)
            await asyncio.to_thread(self.databases.open, [f"lane{number}" for number in range(self.lane_count)])
            self.generated = self.databases.generated
            if self.manifest.triggers:
                from faasemu.project import capture_postgres

                self.capture = capture_postgres
        self._free = asyncio.Queue()
        for number in range(self.lane_count):
            lane = open_lane(self.base, number, state.kind, self.effects)
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
            await close_lane(lane)
        self.watchdog.stop()
        self.effects.__exit__(None, None, None)
        if self.databases is not None:
            await self.databases.aclose()
        shutil.rmtree(self.base, ignore_errors=True)

    def discard(self) -> None:
        """Remove the lanes' folders and kill leftover workers (after an interrupted campaign)."""
        for lane in self.lanes:
            kill_spares(lane)
        if self.databases is not None:
            self.databases.close()
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)

    def _top_up(self, lane: Lane) -> None:
        """Pre-start generic workers for the lane's next run while this one executes: one per function
        used, or as many as its recent runs loaded (second instances, cold starts after crashes)."""
        runtimes = sorted({self.specs[name].runtime for name in self.used_functions})
        top_up(lane, self.manifest.root, lambda: max(len(self.used_functions), lane.needed), runtimes,
               self.output.append)

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

    async def discover(self) -> RunResult:
        """The traced baseline, which also finds the downstream deliveries (once; `--replay-cex` asks
        it before re-running a counterexample, so a path names the same delivery again)."""
        return await self.run(self.lanes[0], Candidate(), trace=True)

    async def run(self, lane: Lane, candidate: Candidate, *, trace: bool = False) -> RunResult:
        """One run on one lane. With `trace`, one delivery per message and a snapshot after each:
        what each delivery touched (rows by key, sinks, emitted types) and its steps, for the probes.
        The first traced run discovers the downstream deliveries (docs/verification.md#cascades).

        Each function has a primary instance (its warm worker) and, for copies on another instance
        and overlapping pairs, a second one (docs/verification.md#steps-crashes-and-the-overlap-gate).
        With cascades every delivery travels alone, so each emitted event is the step's.
        """
        discover = trace and not self.discovered
        steps = self.steps_of(candidate)
        cascade = CascadeRun(discover) if discover or self.cascades else None
        lane.cascade = cascade
        await self._reset(lane)
        lane.loads = 0
        self.effects.take(lane.id)
        workers: dict[str, WorkerProcess] = {}
        others: dict[str, WorkerProcess] = {}
        attempts = Attempts()  # numbered per (event id, function) as by `up` and `replay` (delivery/policy.py)
        outcomes: list[str] = []
        touched: list[frozenset[str]] = []
        names: list[tuple[str, ...]] = []
        previous = self._snapshot(lane) if trace else None
        previous_effects = Effects()
        index = 0
        try:
            while index < len(steps) or (cascade is not None and cascade.queue):
                if index == len(steps) and cascade is not None:  # new events: after the static schedule, FIFO
                    steps.extend(cascade.queue)
                    cascade.queue.clear()
                step = steps[index]
                name = step.ref.function
                if name == APPLY_CHANGE:
                    outcomes.append(self._apply_change(lane, step))
                    index += 1
                elif cascade is not None and step.ref.parent is not None and self._resolve(cascade, step.ref) is None:
                    outcomes.append("not emitted")  # its parent's first run did not emit it in this run
                    index += 1
                elif step.inject == "fail" or name in self.load_problems:
                    event = self._event(lane, step.ref)
                    if step.inject == "fail":  # fails before the handler runs, but is an attempt all the same
                        attempts.next(event["id"], name)
                    outcomes.append("fail*" if step.inject == "fail" else "unavailable")
                    index += 1
                elif step.together and index + 1 < len(steps):
                    await self._overlap(lane, workers, others, steps[index], steps[index + 1], attempts, outcomes)
                    index += 2
                elif step.inject == "crash":
                    await self._crash(lane, workers, step, attempts, outcomes)
                    index += 1
                elif group := self._batch_from(steps, index):
                    await self._ship_records(lane, others if step.instance else workers, group, attempts, outcomes)
                    index += len(group)
                else:
                    end = index + 1
                    if not trace and cascade is None:
                        while end < len(steps) and _joins(steps[end], step):
                            end += 1
                        if end < len(steps) and end - 1 > index and _joins_batch(steps[end], steps[end - 1]):
                            end -= 1  # the last one leads the SQS batch that the next step joins
                    pool = others if step.instance else workers
                    await self._ship(lane, pool, name, steps[index:end], attempts, outcomes,
                                     names=names if trace else None)
                    index = end
                if trace:
                    current = self._snapshot(lane)
                    effects = self._effects(self.effects.logs[lane.id])
                    touched.append(frozenset(changed_keys(previous, current)) | effect_keys(previous_effects, effects))
                    previous, previous_effects = current, effects
                    while len(touched) < len(outcomes):
                        touched.append(frozenset())
                    while len(names) < len(outcomes):
                        names.append(())
                if cascade is not None and cascade.joined:  # downstream deliveries join the end (FIFO)
                    steps.extend(cascade.joined)
                    cascade.joined.clear()
        finally:
            await asyncio.gather(*(w.terminate() for w in [*workers.values(), *others.values()]),
                                 return_exceptions=True)
            # spares for as many workers as the lane's recent runs loaded (a second instance or a cold
            # start after a crash waits for a fork otherwise), decaying by one a run, bounded
            lane.needed = min(max(lane.loads, lane.needed - 1), SPARES_LIMIT)
            self._top_up(lane)
            lane.cascade = None
        self.runs += 1
        self.deliveries += len(steps)
        snapshot = self._snapshot(lane)
        log = self.effects.take(lane.id)
        if cascade is None:
            effects = self._effects(log)
        else:
            for event, readable in self._read_emitted(log, cascade, ""):  # a body no step claimed (none expected)
                record_effect(cascade, event, readable)
            emitted = tuple(sorted([*cascade.effects.values(), *cascade.unnamed]))
            effects = Effects(self._effects(log).sink, emitted)
        if discover:
            self.discovered = True
            self.cascades = len(self.refs) > self.canonical
            self.used_functions = functions_of(self.refs)
            known = len(self.refs)  # the traced schedule's static part: one step per delivery, in index order
            touched, names = touched[:known], names[:known]
        return RunResult(snapshot, effects, tuple(outcomes), tuple(touched), tuple(names))

    # -- cascades (docs/verification.md#cascades) ------------------------------------------------

    def _event(self, lane: Lane, ref: DeliveryRef) -> dict[str, Any]:
        """The event a step delivers: a downstream or new delivery's as emitted in this run."""
        if lane.cascade is not None and ref.index in lane.cascade.events:
            return lane.cascade.events[ref.index]
        return self.events[ref.event_index]

    def _resolve(self, run: CascadeRun, ref: DeliveryRef) -> dict[str, Any] | None:
        """What the first run of a downstream delivery's parent emitted at its index in this run
        (None: nothing there, or an event its function does not subscribe to)."""
        if ref.index in run.events:
            return run.events[ref.index]
        assert ref.parent is not None
        parent, number = ref.parent
        emitted = run.first.get(parent)
        if emitted is None or number >= len(emitted) or not emitted[number].get("type"):
            return None
        event = emitted[number]
        if ref.function not in self._routes(event):
            return None
        run.events[ref.index] = event
        return event

    def _read_emitted(self, log: EffectLog, run: CascadeRun, time: str) -> list[tuple[dict[str, Any], bool]]:
        """The lane's bodies not yet attributed, as events (readable: routable onward)."""
        bodies = list(log.emitted)[run.mark:]
        run.mark += len(bodies)
        return [pair for body in bodies for pair in read_emitted(body, time or EMITTED_TIME)]

    def _emitted(self, lane: Lane, step: Step, attempt: int) -> None:
        """Attribute what the lane received since the last step to one attempt of `step`."""
        run = lane.cascade
        if run is None:
            return
        time = str(self._event(lane, step.ref).get("time") or "")
        received = self._read_emitted(self.effects.logs[lane.id], run, time)
        self._attribute(run, step.ref, attempt, received + self._captured(lane))

    def _attribute(self, run: CascadeRun, ref: DeliveryRef, attempt: int,
                   received: list[tuple[dict[str, Any], bool]]) -> None:
        """Name one attempt's emissions (an event without an id gets the broker's id for this path,
        attempt and index), record them as effects, and send onward what is new: the first run's
        emissions while discovering, then a later run's events whose (source, id) the first run did
        not emit, or the first run's beyond what the baseline emitted."""
        path = run.paths.get(ref.index) or self.paths[ref.index]
        named: list[dict[str, Any]] = []
        for number, (event, readable) in enumerate(received):
            if readable and not event.get("id"):
                event = {**event, "id": broker_id(self.seed, path, attempt, number)}
                if is_trigger_event(event):  # the payload's id is the event's (triggers.py)
                    event["data"] = {**event["data"], "id": event["id"]}
            named.append(event)
            if not is_trigger_event(event):  # a change is state, compared as state: not an effect
                record_effect(run, event, readable)
        routable = [(number, event) for number, (event, (_e, readable)) in enumerate(zip(named, received)) if readable]
        static = ref.index not in run.paths
        if ref.index not in run.first:
            run.first[ref.index] = named
            if run.discover and static:
                self.emissions[ref.index] = len(named)
                self._join(run, ref, path, routable)
                return
            known = self.emissions.get(ref.index, 0) if static else 0
            fresh = [(number, event) for number, event in routable if number >= known]
        else:
            seen = {identity_of(event) for event in run.first[ref.index]}
            fresh = [(number, event) for number, event in routable if identity_of(event) not in seen]
        self._send_new(run, ref, path, attempt, fresh)

    def _join(self, run: CascadeRun, ref: DeliveryRef, path: str, emitted: list[tuple[int, dict[str, Any]]]) -> None:
        """Discovery: a downstream delivery per emitted event and subscriber, in manifest order."""
        depth = self.depth[ref.index] + 1
        for number, event in emitted:
            names = self._routes(event)
            if not names:
                continue
            if depth > MAX_DEPTH:
                self.limit = f"events emitted at depth {MAX_DEPTH} are not delivered onward"
                continue
            label = f"{path}>{number}"
            self.events.append(event)
            for name in names:
                if len(self.refs) - self.canonical >= MAX_DOWNSTREAM:
                    self.limit = f"stopped at {MAX_DOWNSTREAM} downstream deliveries"
                    return
                order, serial = self._ordering(name, event)
                child = DeliveryRef(label, name, len(self.refs), len(self.events) - 1, order, serial,
                                    (ref.index, number))
                self.refs.append(child)
                self.depth.append(depth)
                self.paths.append(label if len(names) == 1 else f"{label}:{name}")
                run.events[child.index] = event
                run.joined.append(Step(child))

    def _send_new(self, run: CascadeRun, ref: DeliveryRef, parent: str, attempt: int,
                  fresh: list[tuple[int, dict[str, Any]]]) -> None:
        """New events of this run: delivered to their subscribers after the static schedule, unperturbed
        (path `parent>j#attempt`: never a downstream delivery's)."""
        depth = run.depth.get(ref.index, self.depth[ref.index] if ref.index < len(self.depth) else 0) + 1
        for number, event in fresh:
            names = self._routes(event)
            for name in names:
                if depth > MAX_DEPTH or run.new >= MAX_DOWNSTREAM:
                    return
                order, serial = self._ordering(name, event)
                index = NEW + run.new
                run.new += 1
                path = f"{parent}>{number}#{attempt}"
                run.events[index] = event
                run.paths[index] = path if len(names) == 1 else f"{path}:{name}"
                run.depth[index] = depth
                run.queue.append(Step(DeliveryRef(path, name, index, -1, order, serial)))

    def _routes(self, event: dict[str, Any]) -> list[str]:
        """Who an emitted event goes to: a trigger event to its webhook, any other to its subscribers."""
        if is_trigger_event(event):
            name = str(event["faasemuwebhook"])
            return [name] if name in self.specs else []
        return subscribers(str(event["type"]), self.manifest.functions)

    def _retries(self, spec: FunctionSpec, event: dict[str, Any]) -> int:
        return webhook_retries(spec, self.manifest.triggers, event)

    def _state_db(self, lane: Lane) -> Any:
        """The lane's database for faasemu's own reads and writes: a SQLite path, or an open connection."""
        return self.databases.connection(lane.id) if self.databases is not None else lane.state_path

    def _captured(self, lane: Lane) -> list[tuple[dict[str, Any], bool]]:
        """The changes the lane's triggers captured since the last step, as events (and forgotten)."""
        if self.capture is None:
            return []
        db = self._state_db(lane)
        changes = self.capture.pending(db, MAX_DOWNSTREAM)
        self.capture.forget(db, [change.seq for change in changes])
        return [(event, True) for event in captured_events(changes, self.manifest.triggers)]

    def _apply_change(self, lane: Lane, step: Step) -> str:
        """An events file's table change, applied as an outside client would (one transaction, Hasura's
        admin session); what its triggers captured is this step's to deliver onward."""
        event = self.events[step.ref.event_index]
        kind = self.manifest.state.kind
        if kind not in ("sqlite", "postgres"):
            raise UsageError(f"{event['id']}: a table change needs a database: state.sqlite or state.postgres "
                             f"in {self.manifest.path} (the state is {kind})")
        from faasemu.project import capture_postgres, capture_sqlite

        module: Any = capture_postgres if kind == "postgres" else capture_sqlite
        try:
            module.apply_change(self._state_db(lane), parse_change({"change": event["faasemuchange"]}))
        except NoMatchingRow:
            return "no match"  # a perturbed run: the row its where names is not there (yet)
        except ChangeError as exc:
            if not self.discovered:  # the in-order run: the file itself is wrong
                raise InputFileError(str(event.get("faasemufile") or event["id"]), event.get("faasemuline"),
                                     f"{exc} (the change is applied as an outside client would, in file order)") \
                    from None
            return "refused"
        self._emitted(lane, step, 1)
        return "applied"

    def _ordering(self, name: str, event: dict[str, Any]) -> tuple[str | None, bool]:
        spec = self.specs[name]
        order = order_value(event, spec.order_key) if spec.order_key else None
        return order, (spec.concurrency_set and spec.concurrency == 1) or order is not None

    def _item(self, lane: Lane, spec: FunctionSpec, step: Step, attempt: int) -> dict[str, Any]:
        """One delivery of a `batch` message, numbered and identified as the delivery policy says.
        A function fed by SQS batches gets it as one record (`records`), so that its partial batch
        response is read as Lambda reads it (docs/verification.md#batches)."""
        event = self._event(lane, step.ref)
        module = load_runtime(spec.runtime)
        item = {"event": event, "attempt": attempt,
                "attempt_id": attempt_id(self.seed, spec.name, event["id"], attempt),
                "request_id": invocation_id(module, spec, self.seed, event, source_copy(step), attempt)}
        if is_trigger_event(event):  # POSTed to the webhook as Hasura posts it (delivery/webhooks.py)
            item.update(webhook_item(spec, self.manifest.triggers, event, attempt))
        elif module.delivers_batches(spec):
            item["records"] = [{"event": event, "attempt": attempt, "attempt_id": item["attempt_id"],
                                "seq": step.ref.event_index + 1}]
        return item

    def _batch_from(self, steps: Sequence[Step], index: int) -> list[Step]:
        """The SQS batch that starts at `index`: it and the `Batched` steps right after it, up to the
        function's `batch_size` ([] when it is not a batch function, or nothing joins it)."""
        first = steps[index]
        spec = self.specs[first.ref.function]
        if spec.batch_size < 2 or not load_runtime(spec.runtime).delivers_batches(spec) or first.together:
            return []
        group = [first]
        while (len(group) < spec.batch_size and index + len(group) < len(steps)
               and _joins_batch(steps[index + len(group)], first)):
            group.append(steps[index + len(group)])
        return group if len(group) > 1 else []

    async def _ship(
        self, lane: Lane, workers: dict[str, WorkerProcess], name: str, steps: Sequence[Step],
        attempts: Attempts, outcomes: list[str], *, failed_before: int = 0,
        names: list[tuple[str, ...]] | None = None,
    ) -> None:
        """Deliver consecutive steps of one function on one instance, as few messages as the outcomes allow.

        The runner numbers and identifies each attempt (the policy's `Attempts` and `attempt_id`)
        and ships the steps in one batch; the worker stops after the first failure, and the policy
        decides what follows it: a retry (shipped again with the rest), a dead letter, or, after a
        lost ack, nothing now (the schedule's redelivery step follows). A worker that dies or times
        out is a failure too, and a fresh worker (a cold start, as after a platform's crash) takes over.
        With `names` (the traced baseline, one step per call), each delivery's steps are recorded.
        """
        spec = self.specs[name]
        position, failed = 0, failed_before  # the next step to deliver, and its handler failures so far
        traced: tuple[str, ...] = ()
        while position < len(steps):
            worker = workers.get(name) or await self._load(lane, name)
            if worker is None:
                outcomes.extend("unavailable" for _ in steps[position:])
                return
            workers[name] = worker
            batch = steps[position:]
            items, ahead = [], Counter[str]()
            for step in batch:
                event = self._event(lane, step.ref)
                ahead[event["id"]] += 1  # numbered as if each earlier one succeeds; re-planned after a failure
                items.append(self._item(lane, spec, step, attempts.peek(event["id"], name, ahead[event["id"]])))
            if names is not None:
                items[0]["steps"] = lane.counter_path
                self.effects.arm(lane.id, lane.counter_path, worker.pid)
                sink_steps = len(self.effects.logs[lane.id].steps)
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
                if names is not None:
                    self.effects.disarm(lane.id)
            if lane.cascade is not None:  # one delivery per message: what arrived is this attempt's
                self._emitted(lane, batch[0], items[0]["attempt"])
            if names is not None:
                own = [(n, f"commit {', '.join(tables)}".strip()) for report in done
                       for n, _kind, tables in report.get("steps", ())]
                others = [(n, f"{kind} {what}".strip())
                          for n, kind, what in self.effects.logs[lane.id].steps[sink_steps:]]
                traced = tuple(text for _n, text in sorted(own + others))  # this attempt's; a retry's replace them
            settled = [(report["status"] == "ok" and not report.get("failed"), report.get("retryable", True),
                        "error" if report.get("failed") else report["status"]) for report in done]
            if failure is not None:
                workers.pop(name, None)
                await worker.terminate()
                settled.append((False, True, failure))
            for (ok, retryable, status), step in zip(settled, batch):
                attempts.next(self._event(lane, step.ref)["id"], name)
                decision = decide(inject=step.inject, ok=ok, failed_before=failed,
                                  retries=self._retries(spec, self._event(lane, step.ref)),
                                  retryable=retryable is not False)
                if decision.verdict == "retry":
                    failed += 1
                    break
                outcomes.append(_outcome(decision, status))
                if names is not None:
                    names.append(traced)
                position, failed = position + 1, 0

    async def _ship_records(self, lane: Lane, workers: dict[str, WorkerProcess], group: Sequence[Step],
                            attempts: Attempts, outcomes: list[str]) -> None:
        """Several SQS records in ONE invocation (docs/verification.md#batches). A failed invocation
        (raised, timed out, crashed, a malformed batchItemFailures) returns every record to the queue;
        a partial batch response only the records it names. The records to retry travel together
        again, at once on the warm worker, each within the function's `retries` (the policy)."""
        name = group[0].ref.function
        spec = self.specs[name]
        todo = list(range(len(group)))
        failures = [0] * len(group)
        results: list[str | None] = [None] * len(group)
        while todo:
            worker = workers.get(name) or await self._load(lane, name)
            if worker is None:
                break
            workers[name] = worker
            records: list[dict[str, Any]] = []
            numbers: list[int] = []
            for position in todo:
                event = self._event(lane, group[position].ref)
                numbers.append(attempts.next(event["id"], name))
                records.append({"event": event, "attempt": numbers[-1], "seq": group[position].ref.event_index + 1,
                                "attempt_id": attempt_id(self.seed, name, event["id"], numbers[-1])})
            item = {**self._item(lane, spec, group[todo[0]], numbers[0]), "records": records}
            done: list[dict[str, Any]] = []
            self.watchdog.track(worker, spec.memory)
            try:
                await worker.request({"op": "batch", "timeout": spec.timeout, "items": [item]}, b"",
                                     spec.timeout + 1.0, on_item=done.append)
                failure = None
            except WorkerTimeout:
                failure = "timeout"
            except WorkerDied:
                failure = "oom" if worker.kill_reason == "oom" else "crash"
            finally:
                self.watchdog.untrack(worker)
            if failure is not None:
                workers.pop(name, None)
                await worker.terminate()
            report = done[0] if done else {"status": failure or "error"}
            whole = failure is not None or report["status"] != "ok"
            failed = set(range(len(todo))) if whole else set(report.get("failed") or ())
            status = failure or (report["status"] if whole else "error")
            again = []
            for number, position in enumerate(todo):
                ok = number not in failed
                decision = decide(inject=None, ok=ok, failed_before=failures[position], retries=spec.retries,
                                  retryable=report.get("retryable", True) is not False)
                if decision.verdict == "retry":
                    failures[position] += 1
                    again.append(position)
                else:
                    results[position] = _outcome(decision, "ok" if ok else status)
            todo = again
        outcomes.extend(result or "unavailable" for result in results)

    async def _crash(self, lane: Lane, workers: dict[str, WorkerProcess], step: Step, attempts: Attempts,
                     outcomes: list[str]) -> None:
        """One attempt killed right after its k-th step (docs/verification.md#crash-part-way): the worker
        ends itself after a commit, the sink kills it after a call. The instance is gone either way
        (also when the handler finished first): the schedule's redelivery runs in a fresh one."""
        name = step.ref.function
        spec = self.specs[name]
        worker = workers.get(name) or await self._load(lane, name)
        if worker is None:
            outcomes.append("unavailable")
            return
        workers.pop(name, None)
        event = self._event(lane, step.ref)
        item = {**self._item(lane, spec, step, attempts.next(event["id"], name)),
                "steps": lane.counter_path, "crash_after": step.crash_after}
        await perturbed.crash(lane, worker, item, step.crash_after, spec, self.watchdog, self.effects)
        self._emitted(lane, step, item["attempt"])
        outcomes.append("crash*")

    async def _overlap(self, lane: Lane, workers: dict[str, WorkerProcess], others: dict[str, WorkerProcess],
                       first: Step, second: Step, attempts: Attempts, outcomes: list[str]) -> None:
        """A delivery and its copy started together on two warm instances, released by one signal
        (`perturbed.together`: the lane's gate file). What follows each attempt is the policy's, as in
        `_ship` (a retry of either runs afterwards, on its own instance)."""
        name = first.ref.function
        spec = self.specs[name]
        pair: list[WorkerProcess] = []
        for pool in (workers, others):
            worker = pool.get(name) or await self._load(lane, name)
            if worker is None:
                outcomes.extend(("unavailable", "unavailable"))
                return
            pool[name] = worker
            pair.append(worker)
        event_id = self._event(lane, first.ref)["id"]
        items = [{**self._item(lane, spec, step, attempts.next(event_id, name)), "gate": lane.gate_path}
                 for step in (first, second)]
        answers, reports = await perturbed.together(lane, pair, items, spec, self.watchdog)
        if lane.cascade is not None:
            # The two copies post to one URL: the original is taken to have emitted the first half
            # of what arrived, its copy the rest (they run the same code on the same event).
            time = str(self._event(lane, first.ref).get("time") or "")
            received = self._read_emitted(self.effects.logs[lane.id], lane.cascade, time) + self._captured(lane)
            half = (len(received) + 1) // 2
            self._attribute(lane.cascade, first.ref, items[0]["attempt"], received[:half])
            self._attribute(lane.cascade, second.ref, items[1]["attempt"], received[half:])
        slots: list[str | None] = [None, None]  # the pair's outcomes in schedule order, retries included
        retry: list[tuple[int, dict[str, WorkerProcess], Step]] = []
        for number, (pool, worker, step, answer) in enumerate(zip((workers, others), pair, (first, second), answers)):
            self.watchdog.untrack(worker)
            retryable: Any = True
            if isinstance(answer, BaseException):
                status = "timeout" if isinstance(answer, WorkerTimeout) else (
                    "oom" if worker.kill_reason == "oom" else "crash")
                pool.pop(name, None)
                await worker.terminate()
                ok = False
            else:
                report = reports[number][0] if reports[number] else {"status": "error"}
                status, retryable = report["status"], report.get("retryable", True)
                ok = status == "ok" and not report.get("failed")
            decision = decide(inject=step.inject, ok=ok, failed_before=0,
                              retries=self._retries(spec, self._event(lane, step.ref)),
                              retryable=retryable is not False)
            if decision.verdict == "retry":
                retry.append((number, pool, step))
            else:
                slots[number] = _outcome(decision, status)
        for number, pool, step in retry:
            tail: list[str] = []
            await self._ship(lane, pool, name, [step], attempts, tail, failed_before=1)
            slots[number] = tail[0] if tail else "unavailable"
        outcomes.extend(slot or "unavailable" for slot in slots)

    async def _load(self, lane: Lane, name: str) -> WorkerProcess | None:
        """The function loaded in a fresh worker of the lane, or None (recorded in `load_problems`)."""
        return await load_worker(lane, self.specs[name], self.manifest, self.output.append, self.load_problems)

    # -- state and effects -----------------------------------------------------------------------

    async def _reset(self, lane: Lane) -> None:
        state = self.manifest.state
        if self.databases is not None:
            lane.state_path = await self.databases.fresh(lane.id)  # a new database: handlers get its URL at load
        elif state.kind == "sqlite":
            sqlite_state.reset(self.template, lane.state_path)
        elif state.kind == "dir":
            dir_state.reset(lane.state_path)
        else:
            assert state.reset_hook is not None
            hook_state.call(state.reset_hook, "reset", self.manifest.root, self._hook_env(lane))

    def _snapshot(self, lane: Lane) -> Snapshot:
        state = self.manifest.state
        if self.databases is not None:
            return self.databases.snapshot(lane.id)
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
        """Sink calls as a multiset; emitted events one per (source, id), the first copy winning
        (without cascades an event without an id cannot be named, so those count per call)."""
        sink = tuple(sorted(SinkEffect(c.name, c.method, canonical_json(c.body)) for c in list(log.sink)))
        run = CascadeRun(False)
        for body in list(log.emitted):
            for event, readable in read_emitted(body, EMITTED_TIME):
                record_effect(run, event, readable)
        return Effects(sink, tuple(sorted([*run.effects.values(), *run.unnamed])))


def _joins(step: Step, first: Step) -> bool:
    """Whether `step` can travel in the same `batch` message as the stretch that `first` starts."""
    return (step.ref.function == first.ref.function and step.instance == first.instance
            and step.inject not in ("fail", "crash") and not step.together)


def _joins_batch(step: Step, before: Step) -> bool:
    """Whether `step` (a `Batched` original) travels in the SQS batch of the step before it."""
    return (step.joins and step.ref.function == before.ref.function and step.instance == before.instance
            and step.inject is None and not step.together)


def _outcome(decision: Decision, status: str) -> str:
    """A run's status of a step: the policy's `lost*`, else what the handler did (ok, error, crash ...)."""
    return "lost*" if decision.label == "lost*" else status


def functions_of(refs: Sequence[DeliveryRef]) -> list[str]:
    """The functions deliveries go to (a table change's step goes to none)."""
    return sorted({ref.function for ref in refs if ref.function != APPLY_CHANGE})


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
    """The `row_keys` whose rows differ between two snapshots. A delivery changes a few rows of a
    state that grows with the run, so a table whose rows are equal is skipped and, in a keyed
    table, only the rows in one snapshot and not the other are keyed (the traced baseline of a
    1,000-event campaign takes a snapshot after each of its 2,000 deliveries)."""
    old_tables = {table.name: table for table in before.tables} if before is not None else {}
    new_tables = {table.name: table for table in after.tables}
    changed: set[str] = set()
    for name in sorted(old_tables.keys() | new_tables.keys()):
        old, new = old_tables.get(name), new_tables.get(name)
        if old == new:
            continue
        if old is None or new is None or not new.key or old.key != new.key or old.columns != new.columns:
            changed |= _changed_in(old, new)  # no key, or a table made, dropped or altered: row by row
            continue
        positions = [new.columns.index(k) for k in new.key]
        changed.update(f"{name}[{','.join(repr(row[p]) for p in positions)}]"
                       for row in set(old.rows).symmetric_difference(new.rows))
    return changed


def _changed_in(old: Table | None, new: Table | None) -> set[str]:
    """`changed_keys` for one table, from every row of both versions."""
    before = row_keys(Snapshot((old,)) if old is not None else None)
    after = row_keys(Snapshot((new,)) if new is not None else None)
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def effect_keys(before: Effects, after: Effects) -> frozenset[str]:
    """The sinks and emitted types a delivery added to (effects only ever grow within a run)."""
    sink = Counter(after.sink) - Counter(before.sink)
    emitted = Counter(after.emitted) - Counter(before.emitted)
    return frozenset({f"sink.{e.name}" for e in sink} | {f"emitted.{e.type}" for e in emitted})
