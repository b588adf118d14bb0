from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from faasemu.chaos.model import CAMPAIGN_DEFAULTS, DeliveryRef, Duplicate, Fail, LostAck, Move, Step, generate, reverse
from faasemu.verify.model import Candidate
from faasemu.verify.shrink import Memo, ddmin, is_trivial, schedule_of, shrink

N = 20
REFS = [DeliveryRef(f"e{i}", "AB"[i % 2], i, i) for i in range(N)]


def runs(steps: Sequence[Step]) -> list[int]:
    """The deliveries whose handler ran, in order (an injected fail runs nothing)."""
    return [s.ref.index for s in steps if s.inject != "fail"]


class FakeCheck:
    """A runner stand-in: a violation when `outcome` of the schedule differs from its baseline's."""

    def __init__(self, outcome: Callable[[list[int]], object], refs: Sequence[DeliveryRef] = REFS) -> None:
        self.outcome = outcome
        self.refs = refs
        self.batches: list[list[Candidate]] = []

    def fails(self, candidate: Candidate) -> bool:
        own = self.outcome(runs(schedule_of(candidate, self.refs)))
        return own != self.outcome(runs(schedule_of(candidate.baseline(), self.refs)))

    def __call__(self, candidates: Sequence[Candidate]) -> list[bool]:
        self.batches.append(list(candidates))
        return [self.fails(c) for c in candidates]

    @property
    def asked(self) -> list[Candidate]:
        return [c for batch in self.batches for c in batch]


def counts_twice(index: int) -> Callable[[list[int]], object]:
    return lambda order: Counter(order)[index] > 1


def runs_before(first: int, then: int) -> Callable[[list[int]], object]:
    return lambda order: first in order and then in order and order.index(first) < order.index(then)


def assert_one_minimal(result: Candidate, check: FakeCheck) -> None:
    assert check.fails(result)
    assert result.deliveries is not None
    for index in result.deliveries:
        keep = result.deliveries - {index}
        smaller = Candidate(keep, tuple(p for p in result.perturbations if p.ref_index in keep))
        assert not check.fails(smaller), f"delivery {index} is not needed"
    for item in result.perturbations:
        assert not check.fails(Candidate(result.deliveries, tuple(p for p in result.perturbations if p != item)))
    assert all(p.ref_index in result.deliveries for p in result.perturbations)


def test_duplicate_bug_shrinks_to_one_delivery_and_its_duplicate() -> None:
    check = FakeCheck(counts_twice(3))
    noisy = Candidate(None, (Move(1, 4.2), Duplicate(3, 12.5), Move(7, 9.1), Duplicate(8), Fail(10, 15.5)))
    result = shrink(noisy, check, N)
    assert result == Candidate(frozenset({3}), (Duplicate(3, 12.5),))
    assert len(schedule_of(result, REFS)) == 2


def test_order_bug_shrinks_to_two_deliveries() -> None:
    check = FakeCheck(runs_before(5, 2))
    result = shrink(Candidate(None, tuple(reverse(N))), check, N)
    assert result.deliveries == frozenset({2, 5})
    assert 1 <= len(result.perturbations) <= 2 and all(isinstance(p, Move) for p in result.perturbations)
    assert_one_minimal(result, check)


def test_each_candidate_is_asked_at_most_once_and_never_the_start() -> None:
    check = FakeCheck(runs_before(5, 2))
    start = Candidate(None, tuple(reverse(N)))
    shrink(start, check, N)
    asked = check.asked
    assert len(asked) == len(set(asked))
    assert Candidate(frozenset(range(N)), start.perturbations) not in asked
    assert all(c.perturbations for c in asked), "a schedule without perturbations cannot differ from its baseline"
    assert max(len(b) for b in check.batches) > 1, "ddmin rounds are batched"


@pytest.mark.parametrize("seed", range(12))
def test_random_schedules_shrink_to_one_minimal(seed: int) -> None:
    rng = random.Random(seed)
    perturbations = generate(N, CAMPAIGN_DEFAULTS, rng) + [Duplicate(6, 15.5)]
    check = FakeCheck(lambda order: (Counter(order)[6] > 1, runs_before(9, 4)(order)))
    result = shrink(Candidate(None, tuple(perturbations)), check, N)
    assert_one_minimal(result, check)
    assert len(check.asked) == len(set(check.asked))


def test_violation_needing_two_perturbations_keeps_both() -> None:
    # 2 must run after 8 and 8 twice: two independent perturbations, both needed.
    def outcome(order: list[int]) -> object:
        return Counter(order)[8] > 1 and runs_before(8, 2)(order)

    check = FakeCheck(outcome)
    start = Candidate(None, (Move(2, 8.5), Duplicate(8), Move(4, 0.5), LostAck(11, 18.5)))
    result = shrink(start, check, N)
    assert result == Candidate(frozenset({2, 8}), (Move(2, 8.5), Duplicate(8)))


def test_pinned_perturbations_and_their_deliveries_stay() -> None:
    check = FakeCheck(counts_twice(3))
    start = Candidate(None, (Duplicate(3), Move(5, 1.5)))
    result = shrink(start, check, N, pinned=[Move(5, 1.5)])
    assert result == Candidate(frozenset({3, 5}), (Duplicate(3), Move(5, 1.5)))


def test_ddmin_asks_the_empty_remainder_when_one_item_is_left() -> None:
    asked: list[list[int]] = []

    def fails(trials: list[list[int]]) -> list[bool]:
        asked.extend(trials)
        return [True for _ in trials]

    assert ddmin([7], fails) == []
    assert asked == [[]]


def test_memo_skips_trivial_candidates_and_repeats() -> None:
    check = FakeCheck(counts_twice(3))
    memo = Memo(check, N)
    moved_in_place = Candidate(frozenset({3, 4}), (Move(3, 3.5),))  # still before 4: the baseline exactly
    dup = Candidate(frozenset({3}), (Duplicate(3),))
    assert is_trivial(moved_in_place, N)
    assert memo([moved_in_place, dup, dup, Candidate(None, ())]) == [False, True, True, False]
    assert memo([dup]) == [True]
    assert check.asked == [dup] and memo.calls == 1 and memo.candidates == 1
    assert not is_trivial(Candidate(frozenset({3}), (Fail(3),)), N), "an injected failure is not the baseline"


def test_two_equal_copies_count_as_two_perturbations() -> None:
    check = FakeCheck(counts_twice(3))
    result = shrink(Candidate(None, (Duplicate(3), Duplicate(3))), check, N)
    assert result == Candidate(frozenset({3}), (Duplicate(3),))


def test_a_duplicate_bug_among_1000_deliveries_costs_few_batches() -> None:
    refs = [DeliveryRef(f"e{i}", "A", i, i) for i in range(1000)]
    check = FakeCheck(counts_twice(637), refs)
    noise = [p for p in generate(1000, CAMPAIGN_DEFAULTS, random.Random(3)) if p.ref_index != 637]
    start = Candidate(None, (*noise, Duplicate(637, 900.5)))
    result = shrink(start, check, 1000)
    assert result == Candidate(frozenset({637}), (Duplicate(637, 900.5),))
    assert len(check.batches) <= 40 and len(check.asked) <= 150
