"""SQS-style batch delivery for `faasemu up`'s bus: up to `batch_size` due deliveries in one invocation
(docs/delivery.md#batches-sqs).

A function whose runtime delivers batches (Lambda's SQS event source mapping with `batch_size`,
`report_batch_item_failures` or `order_key`) gets the deliveries waiting now in one invocation, each
record then settled by the shared delivery policy as a single delivery would be. Its own module
because which deliveries go together, what one invocation of many records means for each, and its
console line are the batch's concern; the bus (delivery/bus.py) keeps what is its own and passes it
in: the queue and order-key claims, the attempt numbering, committing rows and settling them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from faasemu.chaos.model import Inject
from faasemu.delivery.deliverer import Deliverer
from faasemu.delivery.due import DueQueue, Pending, Settled, attempt_tags
from faasemu.delivery.eventlog import DeliveryRow
from faasemu.delivery.policy import Attempts, Decision, attempt_id, decide, stored_inject
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.runtimes.request_ids import invocation_id
from faasemu.workers.pool import FunctionPool, Outcome

# The bus's `_settle`: store what the policy decided on the row, queue it again if pending. The last
# argument is the moment the attempt ended, one for all records (they become visible again together).
Settle = Callable[[Pending, Decision, Inject | None, int, str | None, float], None]


def batchable(item: Pending) -> bool:
    """An event delivery whose handler runs (not an Invoke API or async HTTP row, not an injected --fail)."""
    return item.row.op == "event" and stored_inject(item.row.inject) != "fail"


def take(first: Pending, queue: DueQueue, size: int, joins: Callable[[Pending], bool],
         claim: Callable[[Pending], object]) -> list[Pending]:
    """`first` and the deliveries of its function waiting now, up to `size` (a batch takes what is
    waiting: there is no batching window), in queue order.

    Only batchable ones that `joins` accepts, and one record per message id: a batch never holds two
    copies of one event. Each is `claim`ed before the next is looked at, so that two events of one
    order key never go together.
    """
    items = [first]
    ids = {first.event["id"]}
    while len(items) < size:
        more = queue.pop_ready(lambda item: batchable(item) and item.event["id"] not in ids and joins(item))
        if more is None:
            break
        claim(more)
        items.append(more)
        ids.add(more.event["id"])
    return items


async def deliver(name: str, pool: FunctionPool, items: list[Pending], *, attempts: Attempts, seed: int,
                  persist: Callable[[list[DeliveryRow]], None], settle: Settle,
                  handled: list[Pending] | None = None) -> tuple[list[Settled], Outcome]:
    """One invocation with a record per delivery (the worker's `records` operation); each record is
    then settled by the policy on its own: a failed invocation (raised, timed out, crashed, a
    malformed batchItemFailures answer) fails every record, a batchItemFailures answer the ones it
    names. `handled` collects the records settled, should anything go wrong after some were."""
    numbers, injects, records = [], [], []
    for item in items:
        row, event = item.row, item.event
        attempt = attempts.next(event["id"], name)
        numbers.append(attempt)
        injects.append(stored_inject(row.inject))
        row.inject = None
        row.attempts += 1
        records.append({"delivery": Delivery(event, attempt, attempt_id(seed, name, event["id"], attempt)).to_wire(),
                        "seq": row.event_seq})
    # every record's attempt is on disk before the handler runs (as a single delivery's, delivery/bus.py)
    persist([item.row for item in items])
    first = items[0]
    inv = Invocation(invocation_id(pool.adapter_module, pool.spec, seed, first.event, first.row.copy, numbers[0]),
                     0.0, numbers[0])
    started = time.perf_counter()
    outcome = await pool.call({"op": "records", "records": records, "inv": inv.to_wire()})
    ms = (time.perf_counter() - started) * 1000
    failed = set(outcome.reply.get("failed") or ()) if outcome.ok else set(range(len(items)))
    batch_error = outcome.error.headline if outcome.error else (outcome.message or outcome.kind)
    retryable = outcome.error is None or outcome.error.retryable
    settled = []
    ended = time.time()
    for index, item in enumerate(items):
        row, inject = item.row, injects[index]
        ok = index not in failed
        failed_before = row.attempts - 1 - row.budget_from
        decision = decide(inject=inject, ok=ok, failed_before=failed_before, retries=pool.spec.retries,
                          retryable=retryable)
        error = batch_error if not outcome.ok else "reported failed in batchItemFailures"
        settle(item, decision, inject, failed_before, error, ended)
        if handled is not None:
            handled.append(item)
        settled.append(Settled(decision.label, numbers[index], attempt_tags(row, inject), ms, outcome))
    return settled, outcome


def report(deliverer: Deliverer, name: str, items: list[Pending], settled: list[Settled], outcome: Outcome) -> None:
    """One console line for the invocation, naming each record's outcome; a failed invocation's error
    (a malformed batchItemFailures answer says why the whole batch failed) follows it."""
    parts = []
    for item, one in zip(items, settled):
        part = f"{item.event['id']} #{one.attempt} {one.status}"
        if one.tags:
            part += f" [{', '.join(one.tags)}]"
        if one.status == "retry":
            part += f" (in {max(0.0, item.row.next_at - time.time()):.1f} s)"
        parts.append(part)
    labels = [one.status for one in settled]
    status = next((label for label in ("dead", "retry", "lost*", "fail*") if label in labels), "ok")
    note = f"{len(items)} record{'s' if len(items) != 1 else ''}: " + ", ".join(parts)
    if "dead" in labels:
        note += "  -> dead letter (faasemu events --dead)"
    types = {str(item.event["type"]) for item in items}
    trigger = f"sqs {types.pop()}" if len(types) == 1 else "sqs batch"
    deliverer.report(name, trigger, status, outcome, note)
