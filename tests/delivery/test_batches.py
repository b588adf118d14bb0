"""Which due deliveries go together in one SQS-style batch (delivery/batches.py `take`, docs/delivery.md#batches-sqs).

`take` is given the bus's real queue type and plain callables for the bus's order-key claims, so the
rules are checked here without a server; tests/delivery/test_sqs_batches.py checks them through `up`.
"""

from __future__ import annotations

import time

from faasemu.delivery.batches import batchable, take
from faasemu.delivery.due import DueQueue, Pending
from faasemu.delivery.eventlog import DeliveryRow


def pending(seq: int, event_id: str, *, op: str = "event", inject: str | None = None, due: float = 0.0,
            copy: int = 0) -> Pending:
    row = DeliveryRow(seq, "worker", copy, op, next_at=time.time() + due, inject=inject)
    return Pending(row, {"id": event_id, "type": "t"})


def queue_of(*items: Pending) -> DueQueue:
    queue = DueQueue()
    for item in items:
        queue.push(item)
    return queue


def ids(items: list[Pending]) -> list[str]:
    return [item.event["id"] for item in items]


def test_a_batch_takes_what_is_due_in_queue_order_up_to_its_size() -> None:
    first = pending(1, "a")
    queue = queue_of(pending(2, "b"), pending(3, "c"), pending(4, "d"))
    assert ids(take(first, queue, 3, joins=lambda item: True, claim=lambda item: None)) == ["a", "b", "c"]
    assert len(queue) == 1


def test_a_second_copy_of_an_event_a_later_delivery_or_a_fail_starts_the_next_batch() -> None:
    later = queue_of(pending(2, "b", due=60))  # not due yet: there is no batching window
    assert ids(take(pending(1, "a"), later, 10, joins=lambda item: True, claim=lambda item: None)) == ["a"]
    copy = queue_of(pending(1, "a", copy=1), pending(2, "b"))  # one record per message id
    assert ids(take(pending(1, "a"), copy, 10, joins=lambda item: True, claim=lambda item: None)) == ["a"]
    failing = queue_of(pending(2, "b", inject="fail"), pending(3, "c"))  # its handler never runs
    assert ids(take(pending(1, "a"), failing, 10, joins=lambda item: True, claim=lambda item: None)) == ["a"]
    assert not batchable(pending(1, "a", op="raw")) and not batchable(pending(1, "a", inject="fail"))
    assert batchable(pending(1, "a", inject="lost-ack"))


def test_each_record_is_claimed_before_the_next_is_looked_at() -> None:
    """As the bus's order keys: the first delivery of a key holds it, so a second of that key stays queued,
    even one that would come in the same batch."""
    keys = {"a": "k1", "b": "k2", "c": "k2", "d": "k3"}
    held: set[str] = {keys["a"]}
    claimed: list[str] = []

    def claim(item: Pending) -> None:
        claimed.append(item.event["id"])
        held.add(keys[item.event["id"]])

    queue = queue_of(pending(2, "b"), pending(3, "c"), pending(4, "d"))
    taken = take(pending(1, "a"), queue, 10, joins=lambda item: keys[item.event["id"]] not in held, claim=claim)
    assert ids(taken) == ["a", "b"] and claimed == ["b"]  # c waits for b's key; d is behind it in the queue
    assert [entry[-1].event["id"] for entry in sorted(queue.heap)] == ["c", "d"]
