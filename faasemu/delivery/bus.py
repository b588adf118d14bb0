"""At-least-once delivery for `faasemu up`: routing, retries with backoff, dead letters, live chaos.

Accepting an event and delivering it are separate: `publish` returns once the event and its
delivery rows are committed to the event log (many requests share one commit), and each
function's runners then deliver what is due, at most `concurrency` at a time. A delivery is
acknowledged in the log only after its handler returned. What an attempt is numbered, the id it
carries, and what follows its outcome (retry with backoff, dead letter, redelivery after injected
chaos) are the shared delivery policy's (delivery/policy.py, docs/delivery.md); this module keeps
them durable and timely.

A function whose runtime delivers batches (Lambda's SQS event source mapping with `batch_size`,
`report_batch_item_failures` or `order_key`) gets up to `batch_size` of its due deliveries in one
invocation; each record is then settled by the same policy as a single delivery
(docs/delivery.md#batches-sqs). What a batch is and does is delivery/batches.py's; what waits in a
function's queue is delivery/due.py's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from faasemu.chaos.live import LiveChaos
from faasemu.chaos.model import Inject, order_value
from faasemu.delivery import batches
from faasemu.delivery.deliverer import Deliverer
from faasemu.delivery.due import OVERLAP, DueQueue, Pending, Settled, attempt_tags
from faasemu.delivery.eventlog import DeliveryRow, EventLog
from faasemu.delivery.policy import (
    INJECTED_ERRORS,
    Attempts,
    Decision,
    attempt_id,
    backoff,
    decide,
    duplicate_delay,
    runs_handler,
    stored_inject,
)
from faasemu.delivery.webhooks import WEBHOOK_OP, answer, change_summary, trigger_of, webhook_request
from faasemu.events.model import data_bytes
from faasemu.events.subscriptions import subscribers
from faasemu.project.spec import TriggerSpec
from faasemu.project.triggers import HASURA_INTERVAL
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.runtimes.request_ids import invocation_id
from faasemu.workers.process import WorkerProcess

SHUFFLE_HOLD = 1.0  # live --shuffle holds deliveries at most this long (docs/delivery.md#live-chaos-in-up)


class Relay(Protocol):
    """What the bus needs of delivery/relay.py's TriggerRelay (which imports the bus)."""

    def start(self) -> None: ...
    def poke(self) -> None: ...
    async def close(self) -> None: ...


@dataclass(slots=True)
class Accepted:
    """What the ingress answers for one event."""

    id: str
    seq: int
    functions: list[str]


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
        triggers: Callable[[], tuple[TriggerSpec, ...]] = tuple,
    ) -> None:
        self.log = log
        self.triggers = triggers  # the manifest's current triggers, for webhook deliveries
        self.relay: Relay | None = None  # moves captured table changes in (delivery/relay.py), when any
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
        self._overlaps: dict[tuple[int, str], Pending] = {}  # (event seq, function) -> its `--overlap` copy
        # per-key FIFO (docs/delivery.md#ordering): order key -> the (event seq, function) whose rows hold
        # it, and the deliveries of that key that wait for it, in the order they came due
        self._key_holder: dict[tuple[str, str], tuple[int, str]] = {}
        self._key_parked: dict[tuple[str, str], deque[Pending]] = {}

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
        if self.relay is not None:
            self.relay.start()
        return reopened

    def requeue_open(self) -> int:
        """Queue pending deliveries this process does not hold yet (redriven from another process)."""
        self._flush()  # commit acknowledgements first, or a delivery just done still reads as pending
        held = {item[-1].row.key for queue in self.queues.values() for item in queue.heap} | self.inflight
        held |= {item.row.key for item in self._overlaps.values()}
        held |= {item.row.key for parked in self._key_parked.values() for item in parked}
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
            self._drop_keys(name)

    async def close(self) -> None:
        if self.relay is not None:  # nothing more comes in, then the deliveries stop
            await self.relay.close()
        everything = [task for tasks in self.runners.values() for task in tasks]
        for task in everything:
            task.cancel()
        # awaited: a delivery cut off mid-call hands its worker back (killed) before the pools close
        await asyncio.gather(*everything, return_exceptions=True)
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
                decision = self.chaos.decide(event["id"], name, self._serial(name, event)) if self.chaos else None
                inject = decision.inject if decision else None
                rows.append(DeliveryRow(0, name, 0, op, next_at=now, inject=inject, tags=inject or ""))
                if decision and decision.duplicate:
                    delay = duplicate_delay(self.seed, name, event["id"])
                    rows.append(DeliveryRow(0, name, 1, op, next_at=now + delay, tags="duplicate"))
                if decision and decision.overlap:  # started with the original, on a second worker
                    rows.append(DeliveryRow(0, name, rows[-1].copy + 1, op, next_at=now, tags=OVERLAP))
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
                        if row.tags == OVERLAP:  # held beside its original, which takes it along
                            self._overlaps[(row.event_seq, row.function)] = Pending(row, event)
                        else:
                            self._enqueue(Pending(row, event))
        dirty, self._dirty = self._dirty, []
        self.log.update(dirty)

    def _persist(self, row: DeliveryRow) -> None:
        """Commit a row's state now, with whatever else is pending. Synchronous on purpose: waiting
        for the next tick's batch costs a loop turn per delivery, and under a busy ingress a turn
        is long (32 connections' worth of requests), which starved deliveries."""
        self._persist_rows([row])

    def _persist_rows(self, rows: list[DeliveryRow]) -> None:
        """`_persist` for the records of a batch: one commit for all."""
        self._dirty.extend(rows)
        self._flush()

    def _serial(self, name: str, event: dict[str, Any]) -> bool:
        """The platform never overlaps this delivery: `concurrency: 1` set explicitly, or an order value
        (the same rule as the campaign's, chaos/model.py `canonical`)."""
        pool = self.supervisor.pools.get(name)
        if pool is None:
            return True
        spec = pool.spec
        return (spec.concurrency_set and spec.concurrency == 1) or (
            spec.order_key is not None and order_value(event, spec.order_key) is not None)

    def _order_key(self, item: Pending) -> tuple[str, str] | None:
        """(function, order value) for a function with an `order_key`: live `--shuffle` never lets a
        delivery overtake an earlier one with the same key (docs/verification.md#order-keys)."""
        pool = self.supervisor.pools.get(item.row.function)
        path = pool.spec.order_key if pool is not None else None
        value = order_value(item.event, path) if path else None
        return None if value is None else (item.row.function, value)

    def _claimable(self, item: Pending) -> bool:
        key = self._order_key(item)
        return key is None or self._key_holder.get(key, (item.row.event_seq, item.row.function)) == (
            item.row.event_seq, item.row.function)

    def _claim(self, item: Pending) -> bool:
        """Whether `item` may be delivered now. A function with an `order_key` gets its deliveries of
        one key one event at a time, as a FIFO queue's message group does: the first to come due
        holds the key until every row of its event (retries, redeliveries, duplicates) is settled;
        a later one is parked until then."""
        key = self._order_key(item)
        if key is None:
            return True
        mine = (item.row.event_seq, item.row.function)
        if self._key_holder.setdefault(key, mine) == mine:
            item.claimed = key
            return True
        self._key_parked.setdefault(key, deque()).append(item)
        return False

    def _unclaim(self, item: Pending) -> None:
        """A row is done or dead: once its event has no open row left, the key goes to the next parked
        delivery, queued again now."""
        key = item.claimed  # the key it held, even if the manifest's order_key changed since
        mine = (item.row.event_seq, item.row.function)
        if key is None or self._key_holder.get(key) != mine or self._still_open(item):
            return
        del self._key_holder[key]
        parked = self._key_parked.pop(key, None)
        if parked:
            following = parked.popleft()
            holder = (following.row.event_seq, following.row.function)
            self._key_holder[key] = holder
            for other in [following, *(p for p in parked if (p.row.event_seq, p.row.function) == holder)]:
                self._queue(other)  # every row of the next event: its duplicate is not left parked behind
            rest = deque(p for p in parked if (p.row.event_seq, p.row.function) != holder)
            if rest:
                self._key_parked[key] = rest

    def _drop_keys(self, name: str) -> None:
        """A function removed from the manifest: its keys are let go and its parked deliveries forgotten
        here (they stay pending in the log, for a later `up` or a redrive)."""
        for key in [k for k, holder in self._key_holder.items() if holder[1] == name]:
            del self._key_holder[key]
        for key in [k for k in self._key_parked if k[0] == name]:
            del self._key_parked[key]

    def _still_open(self, item: Pending) -> bool:
        """Another row of `item`'s event and function is queued, in flight, parked or held back by --shuffle."""
        seq, name = item.row.event_seq, item.row.function
        queue = self.queues.get(name)
        queued = [entry[-1] for entry in queue.heap] if queue is not None else []
        held = self._shuffle.held() if self._shuffle is not None else []
        if item.claimed is not None:
            held = [*held, *self._key_parked.get(item.claimed, ())]
        return (any(k[0] == seq and k[1] == name and k != item.row.key for k in self.inflight)
                or any(other.row.event_seq == seq and other.row.function == name and other is not item
                       for other in [*queued, *held]))

    def _enqueue(self, item: Pending) -> None:
        if self._shuffle is None or item.row.copy > 0:
            self._queue(item)
            return
        self._release(self._shuffle.push(item, key=self._order_key(item)))
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
            if not self._claim(item):
                continue  # parked behind an earlier delivery of its order key
            partner = self._overlaps.pop((item.row.event_seq, name), None) if item.row.copy == 0 else None
            if partner is not None:
                await self._run_overlap(name, item, partner)
                continue
            items = self._batch(name, item, queue)
            if items:
                await self._run_batch(name, items)
                continue
            await self._deliver_one(name, item)

    async def _deliver_one(self, name: str, item: Pending, worker: WorkerProcess | None = None) -> None:
        """Deliver, settle and report one delivery; a fault in faasemu's own code is logged and counted
        as a failed attempt, never raised (it would end the delivery loop)."""
        self.inflight.add(item.row.key)
        try:
            settled = await self._deliver(name, item, worker)
        except Exception as exc:
            self._internal_failure(name, item, exc)
            settled = None
        finally:
            self.inflight.discard(item.row.key)
            if self.relay is not None:  # the handler may have written a row a trigger captures
                self.relay.poke()
        if settled is None:
            return
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
        else:
            self._unclaim(item)

    async def _run_overlap(self, name: str, item: Pending, partner: Pending) -> None:
        """`--overlap`: the delivery and its copy start together, each on a loaded worker of its own,
        the second lent beyond `concurrency` (a platform scaling out). Each is then settled and
        reported as any delivery; a fault in one does not stop the other."""
        pool = self.supervisor.pools.get(name)
        if pool is None:  # removed from the manifest: both stay pending in the log for a later `up`
            return
        async with pool.pair(pool.spec.timeout) as (first, second):
            self.console.notice(f"chaos  overlap: event {item.event.get('id')} -> {name} and its copy start together "
                                f"on {'two workers' if second is not None else 'one worker (no second one free)'}",
                                "yellow")
            await asyncio.gather(self._deliver_one(name, item, first), self._deliver_one(name, partner, second))

    async def _deliver(self, name: str, item: Pending, worker: WorkerProcess | None = None) -> Settled | None:
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
        self._persist(row)  # on a fault, a worker held for this delivery goes back in _run_overlap
        started = time.perf_counter()
        trigger = trigger_of(event, self.triggers()) if row.op == WEBHOOK_OP else None  # its retries and interval
        if not runs_handler(inject):
            outcome = None
        elif row.op == "raw":
            inv = Invocation(invocation_id(pool.adapter_module, pool.spec, self.seed, event, row.copy, attempt), 0.0,
                             attempt)
            outcome = await pool.call({"op": "raw", "inv": inv.to_wire()}, data_bytes(event) or b"{}", worker=worker)
        elif row.op == WEBHOOK_OP:  # a captured change: POSTed as Hasura posts to a webhook
            request = webhook_request(pool.spec, trigger, event, attempt, int(time.time() * 1000))
            inv = Invocation(request_id, 0.0, attempt)
            outcome = await pool.call({"op": "http", "req": request.to_wire(), "inv": inv.to_wire()}, request.body,
                                      worker=worker)
        else:
            delivery = Delivery(event, attempt, request_id)
            # the runtime's request id: Lambda's async retries keep theirs (runtimes/request_ids.py)
            inv = Invocation(invocation_id(pool.adapter_module, pool.spec, self.seed, event, row.copy, attempt), 0.0,
                             attempt)
            outcome = await pool.call({"op": "event", "delivery": delivery.to_wire(), "inv": inv.to_wire()},
                                      worker=worker)
        ok = outcome is not None and outcome.ok
        retries, delay, error = pool.spec.retries, None, None
        if row.op == WEBHOOK_OP and outcome is not None:  # Hasura's rules (delivery/webhooks.py)
            retries = trigger.retries if trigger is not None else 0
            answered = answer(outcome.kind, outcome.reply)
            ok = answered.ok
            delay = answered.retry_after if answered.retry_after is not None else \
                trigger.interval if trigger is not None else HASURA_INTERVAL
            if not ok and answered.status is not None and outcome.error is None:
                error = f"the webhook answered HTTP {answered.status} (Hasura retries anything but 2xx)"
        tags = attempt_tags(row, inject)
        failed_before = row.attempts - 1 - row.budget_from
        retryable = outcome is None or outcome.error is None or outcome.error.retryable
        decision = decide(inject=inject, ok=ok, failed_before=failed_before, retries=retries,
                          retryable=retryable)
        if outcome is not None and error is None:
            error = outcome.error.headline if outcome.error else (outcome.message or outcome.kind)
        self._settle(item, decision, inject, failed_before, error, delay=delay)
        ms = (time.perf_counter() - started) * 1000
        return Settled(decision.label, attempt, tags, ms, outcome)

    def _settle(self, item: Pending, decision: Decision, inject: Inject | None, failed_before: int,
                error: str | None, now: float | None = None, delay: float | None = None) -> None:
        """Store what the policy decided on the row (in the next commit), and queue it again if pending.

        `now`: the moment the attempt ended (one for all records of a batch, so that records retried
        together come due together, as a batch's messages become visible again together)."""
        row = item.row
        now = time.time() if now is None else now
        if decision.verdict == "redeliver":
            row.budget_from += 1  # not counted against `retries`: the policy's rule for injected failures
            row.status = "pending"
            row.next_at = now + self.retry_delay
            row.last_error = INJECTED_ERRORS[inject] if inject else None
        elif decision.verdict == "done":
            row.status = "done"
            row.last_error = None
        else:
            row.last_error = error
            if decision.verdict == "dead":
                row.status = "dead"
            else:
                row.status = "pending"
                # a trigger's fixed interval (Hasura's interval_sec), else the bus's doubling backoff
                row.next_at = now + (delay if delay is not None else backoff(self.retry_delay, failed_before + 1))
        self._dirty.append(row)
        self._schedule_flush()
        if row.status == "pending":
            self._queue(item)
        else:
            self._unclaim(item)

    # -- batches (docs/delivery.md#batches-sqs, delivery/batches.py) ------------------------------

    def _batch(self, name: str, first: Pending, queue: DueQueue) -> list[Pending] | None:
        """`first` and the deliveries of the function waiting now, up to its batch_size, when its
        runtime delivers batches; None when `first` goes alone through `_deliver` (no batches, an
        Invoke API or async HTTP row, or an injected `--fail`, whose handler never runs)."""
        pool = self.supervisor.pools.get(name)
        if pool is None or not pool.adapter_module.delivers_batches(pool.spec) or not batches.batchable(first):
            return None
        return batches.take(first, queue, pool.spec.batch_size,
                            joins=lambda item: self._claimable(item)
                            and (item.row.event_seq, name) not in self._overlaps,  # goes with its copy
                            claim=self._claim)

    async def _run_batch(self, name: str, items: list[Pending]) -> None:
        """Deliver, settle and report one batch; as in `_deliver_one`, a fault in faasemu's own code counts
        as a failed attempt of each record not settled yet, never raised."""
        for item in items:
            self.inflight.add(item.row.key)
        handled: list[Pending] = []  # settled (and maybe queued again) before anything went wrong
        try:
            try:
                pool = self.supervisor.pools.get(name)
                if pool is None:
                    return
                settled, outcome = await batches.deliver(name, pool, items, attempts=self.attempts, seed=self.seed,
                                                         persist=self._persist_rows, settle=self._settle,
                                                         handled=handled)
            except Exception as exc:
                for item in items:
                    if not any(item is done for done in handled):
                        self._internal_failure(name, item, exc)
                return
        finally:
            for item in items:
                self.inflight.discard(item.row.key)
        try:
            batches.report(self.supervisor, name, items, settled, outcome)
        except Exception as exc:
            self.console.internal_error(f"could not log a batch of {len(items)} deliveries to {name}: "
                                        f"{type(exc).__name__}: {exc}")

    def _report(self, name: str, item: Pending, settled: Settled) -> None:
        row, event = item.row, item.event
        note = f"evt {event['id']}  attempt {settled.attempt}"
        if settled.tags:
            note += f"  [{', '.join(settled.tags)}]"
        if settled.status == "retry":
            note += f" -> retry in {max(0.0, row.next_at - time.time()):.1f} s"
        elif settled.status == "dead":
            note += "  -> dead letter (faasemu events --dead)"
        what = change_summary(event) if row.op == WEBHOOK_OP else f"event {event['type']}"
        if settled.outcome is None:
            self.console.invocation(name, what, settled.status, settled.ms, note=note)
        else:
            self.supervisor.report(name, what, settled.status, settled.outcome, note)


def ingress_answer(accepted: list[Accepted]) -> dict[str, Any]:
    return {
        "ids": [a.id for a in accepted],
        "deliveries": {a.id: a.functions for a in accepted},
        "unrouted": [a.id for a in accepted if not a.functions],
    }


