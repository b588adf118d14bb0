from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from faasemu.chaos.model import DeliveryRef, Duplicate, Move
from faasemu.verify.model import Candidate
from faasemu.verify.probes import (
    Finding,
    conflicting_swaps,
    duplicates_at_end,
    duplicates_right_after,
    group_test,
    pack_disjoint,
    reversal,
)
from faasemu.verify.shrink import schedule_of


def refs_of(functions: str) -> list[DeliveryRef]:
    return [DeliveryRef(f"e{i}", name, i, i) for i, name in enumerate(functions)]


class FakeCheck:
    """A violation when `outcome` of the handler runs differs from that of the candidate's baseline."""

    def __init__(self, outcome: Callable[[list[int]], object], refs: Sequence[DeliveryRef]) -> None:
        self.outcome = outcome
        self.refs = refs
        self.batches: list[list[Candidate]] = []

    def __call__(self, candidates: Sequence[Candidate]) -> list[bool]:
        self.batches.append(list(candidates))

        def result(c: Candidate) -> object:
            return self.outcome([s.ref.index for s in schedule_of(c, self.refs) if s.inject != "fail"])

        return [result(c) != result(c.baseline()) for c in candidates]

    @property
    def asked(self) -> list[Candidate]:
        return [c for batch in self.batches for c in batch]


def duplicated(candidate: Candidate) -> set[int]:
    return {p.ref_index for p in candidate.perturbations if isinstance(p, Duplicate)}


# --- group_test ---------------------------------------------------------------------------------


def test_one_bad_member_among_1000_costs_log_n_candidates_batched_per_level() -> None:
    batches: list[list[Candidate]] = []

    def check(candidates: Sequence[Candidate]) -> list[bool]:
        batches.append(list(candidates))
        return [637 in duplicated(c) for c in candidates]

    def make(members: Sequence[int]) -> Candidate:
        return Candidate(None, tuple(Duplicate(i) for i in members))

    findings = group_test([range(1000)], make, check)
    assert findings == [Finding((637,), Candidate(None, (Duplicate(637),)))]
    levels = math.ceil(math.log2(1000))
    assert len(batches) == 1 + levels
    assert sum(len(b) for b in batches) == 1 + 2 * levels
    assert all(len(b) <= 2 for b in batches)


def test_all_groups_go_in_one_batch_and_passing_groups_cost_nothing_more() -> None:
    batches: list[int] = []

    def check(candidates: Sequence[Candidate]) -> list[bool]:
        batches.append(len(candidates))
        return [False] * len(candidates)

    assert group_test([[0, 1], [2, 3, 4], [5]], lambda m: Candidate(None, tuple(Duplicate(i) for i in m)), check) == []
    assert batches == [3]


def test_interacting_members_give_the_smallest_failing_group() -> None:
    def check(candidates: Sequence[Candidate]) -> list[bool]:
        return [{3, 7} <= duplicated(c) for c in candidates]

    findings = group_test([range(10)], lambda m: Candidate(None, tuple(Duplicate(i) for i in m)), check)
    assert [f.members for f in findings] == [tuple(range(10))]


# --- duplicates right after -----------------------------------------------------------------------


REFS = refs_of("AB" * 8)


def test_duplicates_right_after_narrows_per_function() -> None:
    check = FakeCheck(lambda order: Counter(order)[5] > 1, REFS)  # B's delivery 5 is not idempotent
    result = duplicates_right_after(REFS, check)
    assert list(result) == [("B", Candidate(None, (Duplicate(5),)))]
    assert result.calls == len(check.batches) and result.candidates == len(check.asked)
    assert len(check.batches[0]) == 2, "one group per function, in one batch"
    assert all(len({REFS[i].function for i in duplicated(c)}) == 1 for c in check.asked)


def test_only_perturbs_only_that_function() -> None:
    check = FakeCheck(lambda order: Counter(order)[5] > 1, REFS)
    result = duplicates_right_after(REFS, check, only="A")
    assert list(result) == [] and result.candidates == 1
    (asked,) = check.asked
    assert asked.deliveries is None and duplicated(asked) == {i for i in range(16) if i % 2 == 0}


# --- duplicates at end --------------------------------------------------------------------------


F_REFS = refs_of("FFFFFFGG")


def last_writer(writes: dict[int, tuple[str, str]]) -> Callable[[list[int]], object]:
    def outcome(order: list[int]) -> object:
        rows: dict[str, str] = {}
        for index in order:
            if index in writes:
                rows[writes[index][0]] = writes[index][1]
        return rows

    return outcome


def test_duplicates_at_end_retests_members_that_share_rows() -> None:
    # 2 and 4 both set row x: replaying all of F at the end ends on 4's value again, as the baseline.
    outcome = last_writer({2: ("x", "a"), 4: ("x", "b")})
    shared = {2, 4}.__contains__
    blind = duplicates_at_end(F_REFS, FakeCheck(outcome, F_REFS), lambda i: False)
    assert list(blind) == []
    check = FakeCheck(outcome, F_REFS)
    result = duplicates_at_end(F_REFS, check, shared)
    assert list(result) == [("F", Candidate(None, (Duplicate(2, 8.0),)))]
    assert len(check.batches) == 2, "the retests go in one batch"


def test_duplicates_at_end_finds_a_shared_pair_that_only_fails_together() -> None:
    def outcome(order: list[int]) -> object:
        extra = {i for i, k in Counter(order).items() if k > 1}
        return {2, 4} <= extra and not set(range(6)) <= extra

    check = FakeCheck(outcome, F_REFS)
    result = duplicates_at_end(F_REFS, check, {2, 4}.__contains__)
    assert list(result) == [("F", Candidate(None, (Duplicate(2, 8.0), Duplicate(4, 8.0))))]
    assert len(check.asked) == len(set(check.asked))


def test_duplicates_at_end_shared_singletons_are_not_retested_when_already_known() -> None:
    check = FakeCheck(lambda order: False, F_REFS)
    result = duplicates_at_end(F_REFS, check, lambda i: True, only="G")
    # G's group of two passes; both share rows, so each is tried alone: 1 + 2 candidates.
    assert result.candidates == 3 and result.calls == 2


# --- reversal -----------------------------------------------------------------------------------


def test_reversal_is_one_candidate_and_only_moves_only_that_function() -> None:
    check = FakeCheck(lambda order: order.index(2) < order.index(0), REFS)  # A's 0 must precede A's 2
    whole = reversal(len(REFS), check, REFS)
    assert [f for f, _ in whole] == [None] and whole.candidates == 1
    only_b = reversal(len(REFS), check, REFS, only="B")
    assert list(only_b) == []
    assert {REFS[p.ref_index].function for p in check.asked[-1].perturbations} == {"B"}
    only_a = reversal(len(REFS), check, REFS, only="A")
    assert [f for f, _ in only_a] == ["A"]


# --- conflicting swaps --------------------------------------------------------------------------


def test_1000_conflicting_pairs_of_a_correct_app_cost_one_candidate() -> None:
    refs = refs_of("A" * 2000)
    check = FakeCheck(lambda order: False, refs)
    result = conflicting_swaps([(2 * k, 2 * k + 1) for k in range(1000)], check, refs=refs)
    assert list(result) == [] and result.candidates == 1 and result.calls == 1


def test_a_hot_row_packs_into_few_disjoint_groups() -> None:
    pairs = [(i, j) for i in range(10) for j in range(i + 1, 10)]  # 45 pairs, every delivery in 9
    groups = pack_disjoint(pairs)
    assert sorted(k for g in groups for k in g) == list(range(45))
    for group in groups:
        deliveries = [d for k in group for d in pairs[k]]
        assert len(deliveries) == len(set(deliveries))
    assert len(groups) <= 2 * 9 - 1


def test_a_bad_swap_is_narrowed_to_its_pair() -> None:
    refs = refs_of("A" * 2000)
    check = FakeCheck(lambda order: order.index(401) < order.index(400), refs)
    result = conflicting_swaps([(2 * k, 2 * k + 1) for k in range(1000)], check, refs=refs)
    # Per function: the later delivery of the pair jumps ahead of the earlier one.
    assert list(result) == [("A", Candidate(None, (Move(401, 399.5),)))]
    assert result.candidates <= 1 + 2 * 10


@pytest.mark.parametrize(
    ("only", "moves", "cost"),
    [("A", (Move(1, 3.5),), 1), ("B", (Move(3, 0.5),), 3)],  # (0, 2) has no A delivery, so A skips it
)
def test_swaps_under_only_move_just_that_functions_delivery(only: str, moves: tuple[Move, ...], cost: int) -> None:
    refs = refs_of("CABB")
    check = FakeCheck(lambda order: order.index(3) < order.index(1), refs)
    result = conflicting_swaps([(3, 1), (0, 2)], check, only=only, refs=refs)
    assert list(result) == [(only, Candidate(None, moves))]
    assert result.candidates == cost


def test_swaps_under_only_need_refs() -> None:
    with pytest.raises(ValueError, match="needs refs"):
        conflicting_swaps([(0, 1)], lambda cs: [False] * len(cs), only="A")
