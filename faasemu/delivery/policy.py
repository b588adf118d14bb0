"""The at-least-once delivery policy: pure rules that `up`'s bus, `replay` and the campaign runner share.

Each of the three executes deliveries its own way (a durable queue, a loop over a schedule, batches
shipped to workers), but none of them decides on its own what an attempt is numbered, what id it
carries, how long to wait before a retry, or what follows an outcome: they ask this module. No I/O,
no clock, no asyncio: every rule here is a function of its arguments (docs/delivery.md).

    counter = Attempts()
    attempt = counter.next("evt-1", "credit")           # 1, then 2 for the next attempt of that event
    attempt_id(7, "credit", "evt-1", attempt)            # the same 16 hex digits in every path
    decide(inject=None, ok=False, failed_before=0, retries=2).verdict   # "retry"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from faasemu.chaos.model import Inject, Step
from faasemu.runtimes.request_ids import attempt_value

MAX_BACKOFF = 60.0  # seconds: the longest wait between two attempts, however many failures came before

Verdict = Literal["done", "retry", "dead", "redeliver"]
# The status a delivery's console line and replay's table show for each verdict; `*` marks chaos.
Label = Literal["ok", "retry", "dead", "fail*", "lost*"]

INJECTED_ERRORS: dict[Inject, str] = {
    "fail": "injected: failed before the handler ran",
    "lost-ack": "injected: ack lost",
}


def attempt_id(seed: int, function: str, event_id: str, attempt: int) -> str:
    """The per-attempt value (request id, SQS receipt handle, Kubeless event-id ...): sha256 of
    (seed, function, event id, attempt), 16 hex digits. It depends on nothing else (no clock, no
    schedule position), so the same attempt of the same delivery gets the same id in every path.

    The formula itself is `runtimes.request_ids.attempt_value`, one layer down, since a runtime's
    default request id is this value and runtimes may not import `delivery/`.

    >>> attempt_id(0, "f", "e-1", 1)
    '897179821f2ff00e'
    """
    return attempt_value(seed, function, event_id, attempt)


def duplicate_delay(seed: int, function: str, event_id: str) -> float:
    """How long after the original live chaos (`up --duplicates`) delivers a copy: 0.05 to 1 s, seeded
    by the delivery, so the same events get the same copies at the same offsets under the same seed."""
    return 0.05 + int(attempt_id(seed, function, event_id, 0), 16) % 950 / 1000


def backoff(retry_delay: float, failures: int) -> float:
    """Seconds before the retry that follows the `failures`-th counted failure: `retry_delay`,
    doubled per further failure, at most MAX_BACKOFF (`--retry-delay 0.5`: 0.5, 1, 2, 4 ...)."""
    return min(MAX_BACKOFF, retry_delay * 2 ** max(0, failures - 1))


def source_copy(step: Step) -> int:
    """Which send of an event by its source a schedule step is (0 the original, then duplicates).

    A redelivery after an injected failure or a lost ack is the same send tried again, so it keeps
    copy 0: runtimes whose request id follows the send (Lambda's async invocations) keep it.
    """
    return step.copy if "duplicate" in step.tags else 0


@dataclass
class Attempts:
    """Attempt numbers, counted from 1 per (event id, function) across all copies of a delivery.

    Keyed by the event's id, not its position: a line of an events file that repeats an earlier id
    is the same event delivered again (docs/delivery.md#attempt-numbers), so its first attempt follows the earlier
    line's last one, as a duplicate's does. Every attempt counts, injected failures included: the
    handler of a redelivery after `--fail` sees attempt 2.
    """

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def next(self, event_id: str, function: str) -> int:
        """Number the next attempt and count it."""
        key = (event_id, function)
        self.counts[key] = number = self.counts.get(key, 0) + 1
        return number

    def peek(self, event_id: str, function: str, ahead: int = 1) -> int:
        """The number the `ahead`-th next attempt will get, without counting anything."""
        return self.counts.get((event_id, function), 0) + ahead

    def restore(self, event_id: str, function: str, made: int) -> None:
        """Continue after `made` attempts already on record (the bus, reopening its event log)."""
        key = (event_id, function)
        self.counts[key] = max(self.counts.get(key, 0), made)


@dataclass(frozen=True, slots=True)
class Decision:
    """What follows one attempt."""

    verdict: Verdict
    label: Label
    counted: bool  # a handler failure that counts against `retries`

    @property
    def again(self) -> bool:
        """Another attempt of this delivery follows (now after a backoff, or later as a redelivery)."""
        return self.verdict in ("retry", "redeliver")


def stored_inject(text: str | None) -> Inject | None:
    """An injected failure as the event log stores it (a TEXT column), checked back into its type."""
    if text is None or text == "":
        return None
    for inject in INJECTED_ERRORS:
        if text == inject:
            return inject
    raise ValueError(f"unknown injected failure {text!r}")


def runs_handler(inject: Inject | None) -> bool:
    """An injected `--fail` fails the attempt before the handler runs; a lost ack runs it."""
    return inject != "fail"


def decide(*, inject: Inject | None, ok: bool, failed_before: int, retries: int, retryable: bool = True) -> Decision:
    """What follows an attempt of a delivery.

    `failed_before` counts this delivery's earlier handler failures since its budget started (its
    first attempt, or its last redrive). The rules:

    - an injected failure (`fail`, `lost-ack`) is always followed by one redelivery, whatever the
      outcome and `retries` (0 included), and does not count against them;
    - a handler that returned is done;
    - a handler failure is retried while the failures, this one included, are at most `retries`,
      and dead-lettered after that, or at once when the runtime says the platform would not retry
      it (`retryable` False: a Knative 4xx, for one).
    """
    if inject == "fail":
        return Decision("redeliver", "fail*", counted=False)
    if inject == "lost-ack":
        return Decision("redeliver", "lost*", counted=False)
    if ok:
        return Decision("done", "ok", counted=False)
    if retryable and failed_before + 1 <= retries:
        return Decision("retry", "retry", counted=True)
    return Decision("dead", "dead", counted=True)
