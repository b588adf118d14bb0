"""The delivery policy (faasemu/delivery/policy.py), driven by one table.

The table crosses what the handler does x the function's `retries` x the injected perturbation x
whether the events file repeats the event's id. Each row runs a whole delivery through the policy
the way every executor does (number the attempt, run the handler unless the attempt is injected
away, ask `decide`, follow the verdict) and checks the trace against the rules written out
independently below (docs/delivery.md).
"""

from __future__ import annotations

import itertools

import pytest

from faasemu.chaos.model import DeliveryRef, Inject, Step
from faasemu.delivery.policy import (
    INJECTED_ERRORS,
    MAX_BACKOFF,
    Attempts,
    attempt_id,
    backoff,
    decide,
    duplicate_delay,
    runs_handler,
    source_copy,
    stored_inject,
)

SEED = 7
HANDLERS = ("ok", "fails", "fails-once", "fatal")  # fatal: raises with retryable=False
RETRIES = (0, 1, 2)
INJECTS = (None, "fail", "lost-ack")
REPEATED = (False, True)


def run_delivery(attempts: Attempts, event_id: str, handler: str, retries: int,
                 inject: Inject | None) -> list[tuple[int, str, bool, str]]:
    """One delivery through the policy, as the bus, replay and the campaign runner execute it.

    Returns [(attempt, attempt id, handler ran, label)], one per attempt, until the delivery ends.
    The injected attempt's redelivery is the same delivery tried again (its schedule step, or its
    row in the bus), so it is part of the trace.
    """
    trace: list[tuple[int, str, bool, str]] = []
    failed = 0
    ran = 0
    current: Inject | None = inject
    while True:
        number = attempts.next(event_id, "fn")
        runs = runs_handler(current)
        ok = False
        if runs:
            ran += 1
            ok = handler == "ok" or (handler == "fails-once" and ran > 1)
        decision = decide(inject=current, ok=ok, failed_before=failed, retries=retries,
                          retryable=handler != "fatal")
        trace.append((number, attempt_id(SEED, "fn", event_id, number), runs, decision.label))
        if decision.verdict == "redeliver":
            current = None  # an injected failure hits one attempt; its redelivery is never injected again
        elif decision.verdict == "retry":
            failed += 1
        else:
            return trace


def expected_labels(handler: str, retries: int, inject: str | None) -> list[tuple[bool, str]]:
    """The rules, spelled out: (handler ran, label) per attempt."""
    labels: list[tuple[bool, str]] = []
    ran = 0
    if inject == "fail":
        labels.append((False, "fail*"))  # fails before the handler, never counted against retries
    elif inject == "lost-ack":
        labels.append((True, "lost*"))  # the handler ran; whatever it did, one redelivery follows
        ran = 1
    if handler == "ok" or (handler == "fails-once" and ran):
        return [*labels, (True, "ok")]
    if handler == "fatal":
        return [*labels, (True, "dead")]  # not retryable: dead at once, whatever `retries`
    if handler == "fails-once":
        return [*labels, (True, "retry"), (True, "ok")] if retries >= 1 else [*labels, (True, "dead")]
    return [*labels, *[(True, "retry")] * retries, (True, "dead")]  # always fails: retries, then dead


@pytest.mark.parametrize(("handler", "retries", "inject", "repeated"),
                         list(itertools.product(HANDLERS, RETRIES, INJECTS, REPEATED)))
def test_policy_table(handler: str, retries: int, inject: str | None, repeated: bool) -> None:
    attempts = Attempts()
    before: list[tuple[int, str, bool, str]] = []
    if repeated:  # an earlier line of the file with the same id: the same event, delivered before
        before = run_delivery(attempts, "evt-1", "ok", retries, None)
    trace = run_delivery(attempts, "evt-1", handler, retries, stored_inject(inject))
    assert [(ran, label) for _, _, ran, label in trace] == expected_labels(handler, retries, inject)
    first = len(before) + 1  # numbering continues across the repeated id, and never restarts
    assert [number for number, *_ in trace] == list(range(first, first + len(trace)))
    numbers = range(first, first + len(trace))
    assert [aid for _, aid, *_ in trace] == [attempt_id(SEED, "fn", "evt-1", n) for n in numbers]
    assert len({aid for _, aid, *_ in before + trace}) == len(before) + len(trace)  # a new id per attempt


def test_attempt_ids_are_a_function_of_seed_function_event_and_attempt_only() -> None:
    assert attempt_id(0, "f", "e-1", 1) == "897179821f2ff00e"  # pinned: ids in saved counterexamples stay valid
    assert len({attempt_id(s, f, e, a) for s in (0, 1) for f in ("f", "g") for e in ("e", "e1") for a in (1, 11)}) == 16
    # "e" + attempt 11 and "e1" + attempt 1 must differ: the parts are separated by NUL bytes
    assert attempt_id(0, "f", "e", 11) != attempt_id(0, "f", "e1", 1)


def test_numbering_is_per_event_and_function() -> None:
    attempts = Attempts()
    assert [attempts.next("a", "f"), attempts.next("a", "g"), attempts.next("a", "f"), attempts.next("b", "f")] == [
        1, 1, 2, 1]
    assert attempts.peek("a", "f") == 3 and attempts.peek("a", "f", ahead=2) == 4 and attempts.next("a", "f") == 3
    attempts.restore("c", "f", 4)  # a restarted bus continues after what its log recorded
    attempts.restore("c", "f", 2)  # never backwards
    assert attempts.next("c", "f") == 5


@pytest.mark.parametrize(("failures", "wait"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (20, MAX_BACKOFF)])
def test_backoff_doubles_from_the_retry_delay_up_to_a_minute(failures: int, wait: float) -> None:
    assert backoff(0.5, failures) == wait


def test_a_live_duplicate_follows_its_original_within_a_second_seeded_by_the_delivery() -> None:
    delays = {duplicate_delay(3, "f", f"e-{i}") for i in range(200)}
    assert all(0.05 <= d < 1.0 for d in delays) and len(delays) > 100
    assert duplicate_delay(3, "f", "e-1") == duplicate_delay(3, "f", "e-1") != duplicate_delay(4, "f", "e-1")


def test_the_request_id_copy_counts_sends_not_redeliveries() -> None:
    ref = DeliveryRef("e", "f", 0, 0)
    assert source_copy(Step(ref)) == 0
    assert source_copy(Step(ref, 1, None, ("duplicate",))) == 1
    assert source_copy(Step(ref, 2, None, ("redelivery",))) == 0  # a redelivery retries the same send


def test_injections_as_the_event_log_stores_them() -> None:
    assert [stored_inject(t) for t in (None, "", "fail", "lost-ack")] == [None, None, "fail", "lost-ack"]
    with pytest.raises(ValueError, match="'boom'"):
        stored_inject("boom")
    assert set(INJECTED_ERRORS) == {"fail", "lost-ack"}
    assert decide(inject="fail", ok=True, failed_before=99, retries=0).again  # whatever the budget
