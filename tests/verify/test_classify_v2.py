"""Classification of chaos v2 violations from the simplest explanation (docs/verification.md#kinds):
a plain duplicate, then a copy on another instance, then a race, then a crash.

The checks here are models of real handlers run on the schedule `apply` gives, instance by instance,
so each test can fail: a handler that deduplicates in memory (per instance), one that credits on
every run, and one that is safe against everything but a crash between two steps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from faasemu.chaos.model import Crash, DeliveryRef, Duplicate, Fail, Overlap, Step
from faasemu.verify.classify import classify, instance_form, plain_form
from faasemu.verify.model import Candidate
from faasemu.verify.shrink import schedule_of

REFS = [DeliveryRef(f"e{i}", "credit", i, i) for i in range(4)]
Model = Callable[[Sequence[Step]], object]


def memory_dedup(steps: Sequence[Step]) -> object:
    """Credits unless this instance saw the event; a crash after the credit kills the instance."""
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    credits: Counter[int] = Counter()
    for step in steps:
        if step.inject == "fail" or step.ref.index in seen[step.instance]:
            continue
        credits[step.ref.index] += 1
        if step.inject == "crash":
            seen[0] = set()
            continue
        seen[step.instance].add(step.ref.index)
    return credits


def every_time(steps: Sequence[Step]) -> object:
    return Counter(step.ref.index for step in steps if step.inject != "fail")


def charge_then_record(steps: Sequence[Step]) -> object:
    """Checks a durable record (shared by instances), serialised: only a crash between the charge
    and the record charges twice."""
    recorded: set[int] = set()
    charges: Counter[int] = Counter()
    for step in steps:
        if step.inject == "fail" or step.ref.index in recorded:
            continue
        charges[step.ref.index] += 1
        if step.inject != "crash":
            recorded.add(step.ref.index)
    return charges


def check_of(model: Model) -> Callable[[Sequence[Candidate]], list[bool]]:
    def check(candidates: Sequence[Candidate]) -> list[bool]:
        return [model(schedule_of(c, REFS)) != model(schedule_of(c.baseline(), REFS)) for c in candidates]
    return check


def kind_of(model: Model, *perturbations: object) -> str:
    candidate = Candidate(None, tuple(perturbations))  # type: ignore[arg-type]
    assert check_of(model)([candidate]) == [True]
    return classify(candidate, check_of(model), REFS).kind


def test_a_copy_on_another_instance_of_a_memory_dedup_is_an_instance_violation() -> None:
    assert kind_of(memory_dedup, Duplicate(1, None, other=True)) == "instance"


def test_a_redelivery_elsewhere_then_a_duplicate_here_is_an_instance_violation() -> None:
    """The redelivery after a `fail` ran on the other instance, and a later duplicate on this one:
    each copy alone is seen by its own instance, so it is not a plain idempotency bug."""
    assert kind_of(memory_dedup, Fail(1, None, other=True), Duplicate(1)) == "instance"


def test_a_race_that_a_copy_elsewhere_explains_is_an_instance_violation() -> None:
    assert kind_of(memory_dedup, Overlap(2)) == "instance"


def test_a_race_or_a_crash_that_a_plain_duplicate_explains_is_an_idempotency_violation() -> None:
    assert kind_of(every_time, Overlap(2)) == "idempotency"
    assert kind_of(every_time, Crash(2, 1)) == "idempotency"


def test_a_crash_that_nothing_simpler_explains_is_a_crash_violation() -> None:
    assert kind_of(charge_then_record, Crash(0, 1)) == "crash"


def test_the_forms_replace_only_what_they_explain() -> None:
    candidate = Candidate(None, (Overlap(0), Crash(1, 2), Duplicate(2, None, other=True), Fail(3, 3.5, other=True)))
    assert plain_form(candidate).perturbations == (Duplicate(0), Duplicate(1), Duplicate(2), Fail(3, 3.5))
    assert instance_form(candidate).perturbations[:2] == (Duplicate(0, None, other=True),
                                                          Duplicate(1, None, other=True))
