"""At-least-once delivery for `faasemu up`: routing, retries with backoff, dead letters, live chaos.

Accepting an event and delivering it are separate: `publish` returns once the event and its
delivery rows are committed to the event log (many requests share one commit), and each
function's runners then deliver what is due, at most `concurrency` at a time. A delivery is
acknowledged in the log only after its handler returned. What an attempt is numbered, the id it
carries, and what follows its outcome (retry with backoff, dead letter, redelivery after injected
chaos) are the shared delivery policy's (delivery/policy.py, docs/delivery.md); this module keeps
them durable and timely.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Any

from faasemu.chaos.live import LiveChaos
from faasemu.delivery.deliverer import Deliverer
from faasemu.delivery.eventlog import DeliveryRow, EventLog
from faasemu.delivery.policy import (
    INJECTED_ERRORS,
    Attempts,
    attempt_id,
    backoff,
    decide,
    duplicate_delay,
    runs_handler,
    stored_inject,
)
from faasemu.events.model import data_bytes
from faasemu.events.subscriptions import subscribers
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.runtimes.request_ids import invocation_id
from faasemu.workers.pool import Outcome

SHUFFLE_HOLD = 1.0  # live --shuffle holds deliveries at most this long (docs/delivery.md#live-chaos-in-up)


@dataclass(slots=True)
class Pending:
    row: DeliveryRow
    event: dict[str, Any]


@dataclass(slots=True)
class Settled:
    """How one attempt of a delivery ended, for its console line."""

    status: str  # ok | retry | dead | fail* | lost*
    attempt: int
    tags: list[str]
    ms: float
    outcome: Outcome | None


@dataclass(slots=True)
class Accepted:
    """What the ingress answers for one event."""

    id: str
    seq: int
    functions: list[str]


class DueQueue:
    """One function's deliveries, earliest `next_at` first, then in the order they were queued.

    Not by sequence number: the bus queues in acceptance order anyway, and live `--shuffle` queues
    in the seeded order it logs, which a re-sort by sequence number would quietly undo.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Pending]] = []
        self.changed = asyncio.Event()
        self._tiebreak = itertools.count()

    def push(self, item: Pending) -> None:
        heapq.heappush(self.heap, (item.row.next_at, next(self._tiebreak), item))
        self.changed.set()

    def __len__(self) -> int:
        return len(self.heap)

    async def pop_due(self) -> Pending:
        while True:
            wait: float | None = None
            if self.heap:
                wait = self.heap[0][0] - time.time()
                if wait <= 0:
                    return heapq.heappop(self.heap)[-1]
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), wait)
            except TimeoutError:
                pass


class Bus:
    """The event bus of one `faasemu up`."""

    def __init__(
        self,
        log: EventLog,
        supervisor: Deliverer,
        *,
        seed: int = 0,
        chaos: LiveChaos | None = None,
        retry_delay: float = 0.5,
    ) -> None:
        self.log = log
        self.supervisor = supervisor
        self.console = supervisor.console
        self.seed = seed
        self.chaos = chaos
        self.retry_delay = retry_delay
        self.queues: dict[str, DueQueue] = {}
        self.runners: dict[str, list[asyncio.Task[None]]] = {}
        self.attempts = Attempts()  # per (event id, function): the policy's numbering
        self.inflight: set[tuple[int, str, int]] = set()
        self._incoming: list[tuple[list[tuple[dict[str, Any], str, list[DeliveryRow]]], asyncio.Future[list[int]]]] = []
        self._dirty: list[DeliveryRow] = []
        self._flush_scheduled = False
        self._shuffle = chaos.shuffle_buffer() if chaos and chaos.window > 0 else None
        self._shuffle_timer: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> int:
        """Start a runner per worker slot and queue every delivery left open by an earlier run."""
        self.sync_functions()
        reopened = 0
        for (event_id, function), made in self.log.attempts_of_open().items():
            self.attempts.restore(event_id, function, made)
        for row, event in self.log.open_deliveries():
            if row.function in self.queues:
                self.queues[row.function].push(Pending(row, event))
                reopened += 1
        return reopened

    def requeue_open(self) -> int:
        """Queue pending deliveries this process does not hold yet (redriven from another process)."""
        self._flush()  # commit acknowledgements first, or a delivery just done still reads as pending
        held = {item[-1].row.key for queue in self.queues.values() for item in queue.heap} | self.inflight
        if self._shuffle is not None:
            held |= {item.row.key for item in self._shuffle.held()}
        queued = 0
        for row, event in self.log.open_deliveries():
            if row.key not in held and row.function in self.queues:
                self.queues[row.function].push(Pending(row, event))
                queued += 1
        return queued

    def sync_functions(self) -> None:
        """Match runners to the current manifest (after a live edit)."""
        for name, pool in self.supervisor.pools.items():
            queue = self.queues.setdefault(name, DueQueue())
            tasks = [t for t in self.runners.get(name, []) if not t.done()]
            while len(tasks) < pool.spec.concurrency:
                tasks.append(asyncio.get_running_loop().create_task(self._run(name, queue)))
            self.runners[name] = tasks
        for name in [n for n in self.runners if n not in self.supervisor.pools]:
            for task in self.runners.pop(name):
                task.cancel()

    async def close(self) -> None:
        for tasks in self.runners.values():
            for task in tasks:
                task.cancel()
        self._flush()
        self.log.close()

    # -- accepting -------------------------------------------------------------------------------

    async def publish(
        self, events: list[dict[str, Any]], origin: str, *, target: str | None = None, op: str = "event"
    ) -> list[Accepted]:
        """Store events durably and queue their deliveries; returns once committed."""
        now = time.time()
        functions = [pool.spec for pool in self.supervisor.pools.values()]
        batch = []
        for event in events:
            names = [target] if target else subscribers(event["type"], functions)
            rows = []
            for name in names:
                decision = self.chaos.decide(event["id"], name) if self.chaos else None
                inject = decision.inject if decision else None
                rows.append(DeliveryRow(0, name, 0, op, next_at=now, inject=inject, tags=inject or ""))
                if decision and decision.duplicate:
                    delay = duplicate_delay(self.seed, name, event["id"])
                    rows.append(DeliveryRow(0, name, 1, op, next_at=now + delay, tags="duplicate"))
            batch.append((event, origin, rows))
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._incoming.append((batch, future))
        self._schedule_flush()
        seqs = await future
        accepted = []
        for (event, _origin, rows), seq in zip(batch, seqs):
            accepted.append(Accepted(event["id"], seq, list(dict.fromkeys(r.function for r in rows))))
            if not rows:
                self.console.invocation("-", f"event {event['type']}", "-", 0.0,
                                        note=f"evt {event['id']}  matched no function")
        return accepted

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """One transaction for everything accepted and acknowledged since the last tick."""
        self._flush_scheduled = False
        incoming, self._incoming = self._incoming, []
        if incoming:
            everything = [item for batch, _ in incoming for item in batch]
            try:
                seqs = self.log.append(everything)
            except Exception as exc:
                for _, future in incoming:
                    if not future.done():
                        future.set_exception(exc)
            else:
                position = 0
                for batch, future in incoming:
                    if not future.done():
                        future.set_result(seqs[position : position + len(batch)])
                    position += len(batch)
                for event, _, rows in everything:
                    for row in rows:
                        self._enqueue(Pending(row, event))
        dirty, self._dirty = self._dirty, []
        self.log.update(dirty)

    def _persist(self, row: DeliveryRow) -> None:
        """Commit a row's state now, with whatever else is pending. Synchronous on purpose: waiting
        for the next tick's batch costs a loop turn per delivery, and under a busy ingress a turn
        is long (32 connections' worth of requests), which starved deliveries."""
        self._dirty.append(row)
        self._flush()

    def _enqueue(self, item: Pending) -> None:
        if self._shuffle is None or item.row.copy > 0:
            self._queue(item)
            return
        self._release(self._shuffle.push(item))
        if len(self._shuffle) and self._shuffle_timer is None:
            self._shuffle_timer = asyncio.get_running_loop().call_later(SHUFFLE_HOLD, self._release_shuffled)

    def _release_shuffled(self) -> None:
        self._shuffle_timer = None
        if self._shuffle is not None:
            self._release(self._shuffle.flush())

    def _release(self, items: list[Pending]) -> None:
        """Queue deliveries the shuffle window let go of, in the order released, logging any it reordered.

        Each becomes due now, not at its acceptance time: otherwise a delivery held back would sort
        before those released ahead of it that are still queued, and the order logged would not be
        the order delivered.
        """
        order = [item.row.event_seq for item in items]
        if order != sorted(order):
            ids = ", ".join(f"{item.event['id']}->{item.row.function}" for item in items)
            self.console.notice(f"chaos  shuffle released {len(items)} deliveries in seeded order: {ids}", "yellow")
        now = time.time()
        for item in items:
            item.row.next_at = max(item.row.next_at, now)
            self._queue(item)

    def _queue(self, item: Pending) -> None:
        queue = self.queues.get(item.row.function)
        if queue is not None:
            queue.push(item)

    # -- delivering ------------------------------------------------------------------------------

    async def _run(self, name: str, queue: DueQueue) -> None:
        """One delivery slot of a function. Only cancellation ends it: a fault in faasemu's own code
        while handling one delivery is logged plainly and that delivery retried or dead-lettered,
        and the loop takes the next one (a dead loop would leave the function's events pending
        until `up` restarts, which no one would notice)."""
        while True:
            item = await queue.pop_due()
            self.inflight.add(item.row.key)
            try:
                settled = await self._deliver(name, item)
            except Exception as exc:
                self._internal_failure(name, item, exc)
                settled = None
            finally:
                self.inflight.discard(item.row.key)
            if settled is None:
                continue
            try:
                self._report(name, item, settled)
            except Exception as exc:
                self.console.internal_error(
                    f"could not log the delivery of event {item.event.get('id')!r} to {name} "
                    f"({settled.status}): {type(exc).__name__}: {exc}")

    def _internal_failure(self, name: str, item: Pending, exc: Exception) -> None:
        """Count a delivery that faasemu itself failed as a failed attempt: retried with backoff within
        the function's `retries`, then dead-lettered with the error (so `faasemu events --dead` shows
        it and `--redrive` can deliver it again once the cause is gone)."""
        row = item.row
        pool = self.supervisor.pools.get(name)
        retries = pool.spec.retries if pool is not None else 0
        error = f"faasemu internal error: {type(exc).__name__}: {exc}"
        failures = max(1, row.attempts - row.budget_from)
        row.last_error = error
        if decide(inject=None, ok=False, failed_before=failures - 1, retries=retries).verdict == "dead":
            row.status = "dead"
            what = "dead-lettered (faasemu events --dead)"
        else:
            row.status = "pending"
            row.next_at = time.time() + backoff(self.retry_delay, failures)
            what = f"retried in {row.next_at - time.time():.1f} s"
        self.console.internal_error(f"delivery of event {item.event.get('id')!r} to {name} failed inside faasemu "
                                    f"({type(exc).__name__}: {exc}); {what}")
        try:
            self._persist(row)
        except Exception as persist_exc:
            self.console.internal_error(f"could not store the state of that delivery: {persist_exc!r}")
        if row.status == "pending":
            self._queue(item)

    async def _deliver(self, name: str, item: Pending) -> Settled | None:
        """Attempt one delivery and settle its row (done, pending again, or dead); None when the
        function is gone. Reporting is left to `_report`, so a fault there cannot unsettle it."""
        pool = self.supervisor.pools.get(name)
        if pool is None:  # removed from the manifest: stays pending in the log for a later `up`
            return None
        row, event = item.row, item.event
        attempt = self.attempts.next(event["id"], name)
        request_id = attempt_id(self.seed, name, event["id"], attempt)
        inject, row.inject = stored_inject(row.inject), None
        # The attempt is on disk before the handler runs: if faasemu dies now, the redelivery after
        # a restart is the next attempt, with new per-attempt ids, as a platform's would be.
        row.attempts += 1
        self._persist(row)
        started = time.perf_counter()
        if not runs_handler(inject):
            outcome = None
        elif row.op == "raw":
            inv = Invocation(invocation_id(pool.adapter_module, pool.spec, self.seed, event, row.copy, attempt), 0.0,
                             attempt)
            outcome = await pool.call({"op": "raw", "inv": inv.to_wire()}, data_bytes(event) or b"{}")
        else:
            delivery = Delivery(event, attempt, request_id)
            # the runtime's request id: Lambda's async retries keep theirs (runtimes/request_ids.py)
            inv = Invocation(invocation_id(pool.adapter_module, pool.spec, self.seed, event, row.copy, attempt), 0.0,
                             attempt)
            outcome = await pool.call({"op": "event", "delivery": delivery.to_wire(), "inv": inv.to_wire()})
        ok = outcome is not None and outcome.ok
        tags: list[str] = [inject] if inject else ["duplicate"] if row.copy else ["redelivery"] if row.tags else []
        failed_before = row.attempts - 1 - row.budget_from
        retryable = outcome is None or outcome.error is None or outcome.error.retryable
        decision = decide(inject=inject, ok=ok, failed_before=failed_before, retries=pool.spec.retries,
                          retryable=retryable)
        if decision.verdict == "redeliver":
            row.budget_from += 1  # not counted against `retries`: the policy's rule for injected failures
            row.status = "pending"
            row.next_at = time.time() + self.retry_delay
            row.last_error = INJECTED_ERRORS[inject] if inject else None
        elif decision.verdict == "done":
            row.status = "done"
            row.last_error = None
        else:
            assert outcome is not None
            row.last_error = outcome.error.headline if outcome.error else (outcome.message or outcome.kind)
            if decision.verdict == "dead":
                row.status = "dead"
            else:
                row.status = "pending"
                row.next_at = time.time() + backoff(self.retry_delay, failed_before + 1)
        status = decision.label
        ms = (time.perf_counter() - started) * 1000
        self._dirty.append(row)
        self._schedule_flush()
        if row.status == "pending":
            self._queue(item)
        return Settled(status, attempt, tags, ms, outcome)

    def _report(self, name: str, item: Pending, settled: Settled) -> None:
        row, event = item.row, item.event
        note = f"evt {event['id']}  attempt {settled.attempt}"
        if settled.tags:
            note += f"  [{', '.join(settled.tags)}]"
        if settled.status == "retry":
            note += f" -> retry in {max(0.0, row.next_at - time.time()):.1f} s"
        elif settled.status == "dead":
            note += "  -> dead letter (faasemu events --dead)"
        if settled.outcome is None:
            self.console.invocation(name, f"event {event['type']}", settled.status, settled.ms, note=note)
        else:
            self.supervisor.report(name, f"event {event['type']}", settled.status, settled.outcome, note)


def ingress_answer(accepted: list[Accepted]) -> dict[str, Any]:
    return {
        "ids": [a.id for a in accepted],
        "deliveries": {a.id: a.functions for a in accepted},
        "unrouted": [a.id for a in accepted if not a.functions],
    }


