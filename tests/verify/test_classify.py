from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from faasemu.chaos.model import DeliveryRef, Duplicate, Fail, LostAck, Move, Perturbation, Step
from faasemu.verify.classify import (
    Classified,
    Kind,
    Violation,
    adjacent_form,
    attribute,
    best_per_kind,
    classify,
    copies_adjacent,
    late_copy_form,
)
from faasemu.verify.model import Candidate
from faasemu.verify.shrink import schedule_of


def refs_of(functions: str) -> list[DeliveryRef]:
    """One delivery per letter, each its own event: "ABC" is A's delivery 0, B's 1, C's 2."""
    return [DeliveryRef(f"e{i}", name, i, i) for i, name in enumerate(functions)]


REFS = refs_of("ABABABABAB")


class FakeCheck:
    """A violation when `outcome` of the handler runs differs from that of the candidate's baseline."""

    def __init__(self, outcome: Callable[[list[int]], object], refs: Sequence[DeliveryRef] = REFS) -> None:
        self.outcome = outcome
        self.refs = refs
        self.asked: list[Candidate] = []

    def fails(self, candidate: Candidate) -> bool:
        def result(c: Candidate) -> object:
            return self.outcome([s.ref.index for s in schedule_of(c, self.refs) if s.inject != "fail"])

        return result(candidate) != result(candidate.baseline())

    def __call__(self, candidates: Sequence[Candidate]) -> list[bool]:
        self.asked += candidates
        return [self.fails(c) for c in candidates]


def last_writer(writes: dict[int, tuple[str, str]]) -> Callable[[list[int]], object]:
    """Delivery i sets row writes[i][0] to writes[i][1]; the outcome is the final rows."""

    def outcome(order: list[int]) -> object:
        rows: dict[str, str] = {}
        for index in order:
            if index in writes:
                rows[writes[index][0]] = writes[index][1]
        return rows

    return outcome


def twice(index: int) -> Callable[[list[int]], object]:
    return lambda order: Counter(order)[index] > 1


def cand(deliveries: set[int], *perturbations: Perturbation) -> Candidate:
    return Candidate(frozenset(deliveries), perturbations)


# --- classify -----------------------------------------------------------------------------------


def test_adjacent_duplicate_is_idempotency_without_running_anything() -> None:
    check = FakeCheck(twice(3))
    violation = cand({3}, Duplicate(3))
    assert classify(violation, check, REFS).kind == "idempotency"
    assert classify(violation, check, REFS).candidate == violation
    assert check.asked == []


def test_moves_only_are_order() -> None:
    check = FakeCheck(lambda order: order.index(5) < order.index(2))
    violation = cand({2, 5}, Move(2, 5.5))
    assert classify(violation, check, REFS).kind == "order" and check.asked == []


def test_late_duplicate_that_matters_only_because_it_is_late_is_order_without_the_original() -> None:
    # 2 and 5 both set row x; a copy of 2 after 5 leaves 2's value: a lost update, not a replay bug.
    check = FakeCheck(last_writer({2: ("x", "a"), 5: ("x", "b")}))
    violation = cand({2, 5}, Duplicate(2, 5.5))
    result = classify(violation, check, REFS)
    assert result.kind == "order"
    assert result.candidate == cand({2, 5}, Move(2, 5.5))
    assert [s.ref.index for s in schedule_of(result.candidate, REFS)] == [5, 2]


def test_late_duplicate_that_is_an_idempotency_bug_is_placed_right_after_and_reshrunk() -> None:
    check = FakeCheck(twice(3))
    violation = cand({3, 6}, Duplicate(3, 6.5))  # 6 only stood between the original and its copy
    result = classify(violation, check, REFS)
    assert result == Classified("idempotency", cand({3}, Duplicate(3)))
    assert len(check.asked) == len(set(check.asked))


def test_late_duplicate_that_neither_form_reproduces_stays_idempotency_as_found() -> None:
    # Fails only for the pattern 3, 6, 3: neither the adjacent copy nor the move reproduces it.
    def outcome(order: list[int]) -> object:
        return "".join(str(i) for i in order if i in (3, 6)).find("363") >= 0

    check = FakeCheck(outcome)
    violation = cand({3, 6}, Duplicate(3, 6.5))
    assert classify(violation, check, REFS) == Classified("idempotency", violation)


def test_fail_only_delays_so_it_is_order() -> None:
    check = FakeCheck(lambda order: order.index(5) < order.index(2))
    violation = cand({2, 5}, Fail(2, 5.5))
    assert classify(violation, check, REFS).kind == "order"


def test_duplicate_of_a_failed_delivery_goes_right_after_its_redelivery() -> None:
    # The original fails, the copy runs in place, the redelivery after 5: not adjacent.
    check = FakeCheck(twice(2))
    violation = cand({2, 5}, Fail(2, 5.5), Duplicate(2))
    assert not copies_adjacent(schedule_of(violation, REFS))
    placed = adjacent_form(violation)
    assert placed.perturbations == (Fail(2, 5.5), Duplicate(2, 5.5))
    assert copies_adjacent(schedule_of(placed, REFS))
    result = classify(violation, check, REFS)
    assert result.kind == "idempotency"
    assert result.candidate == cand({2}, Fail(2, 5.5), Duplicate(2, 5.5))


def test_late_lost_ack_redelivery_that_loses_an_update_is_order() -> None:
    check = FakeCheck(last_writer({2: ("x", "a"), 5: ("x", "b")}))
    violation = cand({2, 5}, LostAck(2, 5.5))
    result = classify(violation, check, REFS)
    assert result.kind == "order" and result.candidate == cand({2, 5}, Move(2, 5.5))


def test_late_copy_form_follows_a_moved_original() -> None:
    form = late_copy_form(cand({1, 2, 7}, Move(2, 0.5), Duplicate(2, 6.5), Move(1, 3.5)))
    assert form.perturbations == (Move(1, 3.5), Move(2, 6.5))


# --- attribute ----------------------------------------------------------------------------------


def test_single_function_bug_blames_it_without_running() -> None:
    check = FakeCheck(twice(3))
    assert attribute(cand({3}, Duplicate(3)), check, REFS) == ["B"]
    assert check.asked == []


def test_correct_function_whose_deliveries_moved_is_not_blamed() -> None:
    # A's deliveries 0 and 2 must stay in order; B's 1 and 5 are correct but were moved too.
    check = FakeCheck(lambda order: order.index(2) < order.index(0))
    violation = cand({0, 1, 2, 5}, Move(0, 2.0), Move(2, 0.0), Move(1, 5.5), Move(5, 0.2))
    assert attribute(violation, check, REFS) == ["A"]


def test_add_and_remove_in_two_functions_blames_both() -> None:
    # A adds x (delivery 0), B removes it (delivery 2), C (1) is unrelated; both moves are needed.
    refs = refs_of("ACB")

    def outcome(order: list[int]) -> object:
        items: set[str] = set()
        for index in order:
            if index == 0:
                items.add("x")
            elif index == 2:
                items.discard("x")
        return items

    check = FakeCheck(outcome, refs)
    violation = cand({0, 1, 2}, Move(0, 1.5), Move(2, 1.2), Move(1, 0.5))
    assert attribute(violation, check, refs) == ["A", "B"]
    assert len(check.asked) == len(set(check.asked))


def test_attribution_is_in_manifest_order() -> None:
    refs = [DeliveryRef("e0", "Z", 0, 0), DeliveryRef("e0", "A", 1, 0)]
    check = FakeCheck(lambda order: Counter(order)[0] > 1 or Counter(order)[1] > 1, refs)
    assert attribute(cand({0, 1}, Duplicate(1), Duplicate(0)), check, refs) == ["Z", "A"]


# --- best_per_kind ------------------------------------------------------------------------------


def violation(function: str, kind: Kind, *indices: int) -> Violation:
    steps = tuple(Step(REFS[i], copy=k) for k, i in enumerate(indices))
    return Violation(function, kind, cand(set(indices)), steps)


def test_best_per_kind_keeps_fewest_deliveries_then_earliest_position() -> None:
    found = [
        violation("B", "order", 7, 3, 5),
        violation("B", "order", 9, 5),
        violation("B", "order", 7, 3),
        violation("B", "idempotency", 3, 3),
        violation("A", "order", 6, 4),
        violation("A", "order", 2, 8),
    ]
    best = best_per_kind(found, REFS)
    assert [(v.function, v.kind, [s.ref.index for s in v.steps]) for v in best] == [
        ("A", "order", [2, 8]),
        ("B", "idempotency", [3, 3]),
        ("B", "order", [7, 3]),
    ]


def test_best_per_kind_equal_schedules_keep_the_first_found() -> None:
    first, second = violation("A", "order", 4, 2), violation("A", "order", 2, 4)
    assert best_per_kind([first, second]) == [first]


def test_a_single_delivery_failed_and_redelivered_is_an_idempotency_violation() -> None:
    # One delivery, an injected failure, then its redelivery: nothing is reordered, so the outcome
    # changing with the attempt that succeeded is an at-least-once (idempotency) problem.
    refs = [DeliveryRef("e1", "f", 0, 0), DeliveryRef("e2", "f", 1, 1)]
    candidate = Candidate(frozenset({0}), (Fail(0),))
    assert classify(candidate, lambda cs: [True] * len(cs), refs).kind == "idempotency"
