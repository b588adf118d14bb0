"""PURE: the campaign's systematic probes (docs/verification.md#the-campaign, step 2), group-tested.

A correct app should cost a handful of runs, so each probe first perturbs many deliveries at
once and only narrows down (halving, one batch per level) where something fails. Groups never
mix functions where the probe can tell who is to blame, and under `--only FN` every delivery
stays in every schedule while only FN's are perturbed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from faasemu.chaos.model import (
    APPLY_CHANGE,
    Batched,
    Crash,
    DeliveryRef,
    Duplicate,
    Move,
    Overlap,
    Perturbation,
    duplicate_at_end,
    duplicate_right_after,
    reverse,
    select,
)
from faasemu.verify.model import Candidate
from faasemu.verify.shrink import Check, Memo, memo_of

Group = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """A failing group of members: one member, or the smallest failing group found whose
    halves both pass (an interaction; shrinking narrows it further)."""

    members: Group
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A probe's findings as (function, candidate) pairs, and what it cost.

    `function` is None where the probe cannot tell (the whole reversal, swaps of two functions'
    deliveries): the campaign attributes those after shrinking. Iterating yields the pairs.
    """

    probe: str
    findings: tuple[tuple[str | None, Candidate], ...]
    calls: int
    candidates: int

    def __iter__(self) -> Iterator[tuple[str | None, Candidate]]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)


def group_test(
    groups: Sequence[Sequence[int]],
    make: Callable[[Sequence[int]], Candidate],
    check: Check,
    *,
    uncleared: Callable[[int], bool] | None = None,
) -> list[Finding]:
    """Adaptive group testing: every group in one batch, then the halves of each failing group,
    one batch per level, down to single members.

    A failing group whose halves both pass is itself a finding (members interact). With
    `uncleared`, a passing group does not clear members for which it is True: they are tested
    again, all in one batch, as their own group (when it is smaller) and one by one.
    Example: one bad member among 1,000 costs 1 + 2 * 10 candidates in 11 calls.
    """
    memo = memo_of(check)
    found: dict[Group, Finding] = {}
    passed = _narrow([tuple(g) for g in groups if g], make, memo, found)
    if uncleared is not None:
        again: list[Group] = []
        for group in passed:
            suspects = tuple(i for i in group if uncleared(i)) if len(group) > 1 else ()
            if 1 < len(suspects) < len(group):
                again.append(suspects)
            again.extend((i,) for i in suspects)
        _narrow(list(dict.fromkeys(again)), make, memo, found)
    return sorted(found.values(), key=lambda f: f.members)


def _narrow(groups: list[Group], make: Callable[[Sequence[int]], Candidate], memo: Memo,
            found: dict[Group, Finding]) -> list[Group]:
    """Halve failing groups level by level, recording findings; returns the groups that passed."""
    passed: list[Group] = []
    level: list[tuple[Group, Group | None]] = [(g, None) for g in groups]
    while level:
        candidates = [make(group) for group, _parent in level]
        answers = memo(candidates)
        failing_halves: dict[Group, int] = {}
        deeper: list[tuple[Group, Group | None]] = []
        for (group, parent), candidate, bad in zip(level, candidates, answers):
            if parent is not None:
                failing_halves[parent] = failing_halves.get(parent, 0) + bad
            if not bad:
                passed.append(group)
            elif len(group) == 1:
                found[group] = Finding(group, candidate)
            else:
                middle = len(group) // 2
                deeper += [(group[:middle], group), (group[middle:], group)]
        for parent, count in failing_halves.items():
            if count == 0:
                found[parent] = Finding(parent, make(parent))
        level = deeper
    return passed


def _per_function(refs: Sequence[DeliveryRef], only: str | None) -> dict[str, Group]:
    groups: dict[str, list[int]] = {}
    for ref in sorted(refs, key=lambda r: r.index):
        if ref.function != APPLY_CHANGE and (only is None or ref.function == only):
            groups.setdefault(ref.function, []).append(ref.index)
    return {function: tuple(members) for function, members in groups.items()}


def _by_function(name: str, refs: Sequence[DeliveryRef], check: Check, only: str | None,
                 make: Callable[[Sequence[int]], Candidate],
                 uncleared: Callable[[int], bool] | None = None) -> ProbeResult:
    memo = Memo(check, len(refs))
    owner = {r.index: r.function for r in refs}
    findings = group_test(list(_per_function(refs, only).values()), make, memo, uncleared=uncleared)
    pairs = tuple((owner[f.members[0]], f.candidate) for f in findings)
    return ProbeResult(name, pairs, memo.calls, memo.candidates)


def duplicates_right_after(refs: Sequence[DeliveryRef], check: Check, only: str | None = None) -> ProbeResult:
    """Every delivery of a function duplicated right after itself, per function, then narrowed."""
    return _by_function("duplicates right after", refs, check, only,
                        lambda members: Candidate(None, tuple(duplicate_right_after(members))))


def duplicates_elsewhere(refs: Sequence[DeliveryRef], check: Check, only: str | None = None) -> ProbeResult:
    """Every delivery of a function duplicated right after itself, the copy on another instance
    (docs/verification.md#probes): in-memory deduplication passes the warm-worker probe and fails here."""
    return _by_function("duplicates on another instance", refs, check, only,
                        lambda members: Candidate(None, tuple(Duplicate(i, None, other=True) for i in members)))


def overlaps(refs: Sequence[DeliveryRef], check: Check, only: str | None = None) -> ProbeResult:
    """Every delivery of a function started together with its own copy on a second warm instance
    (scale-out duplicates); serial deliveries (`concurrency: 1`, an order key) are left out."""
    racing = [r for r in refs if not r.serial]
    memo = Memo(check, len(refs))
    owner = {r.index: r.function for r in refs}
    groups = list(_per_function(racing, only).values())
    findings = group_test(groups, lambda members: Candidate(None, tuple(Overlap(i) for i in members)), memo)
    pairs = tuple((owner[f.members[0]], f.candidate) for f in findings)
    return ProbeResult("overlapping duplicates", pairs, memo.calls, memo.candidates)


def crashes(refs: Sequence[DeliveryRef], check: Check, steps: Sequence[tuple[str, ...]],
            only: str | None = None, per_shape: int = 4) -> ProbeResult:
    """Deliveries killed right after their k-th step, then retried in a fresh instance, for every k
    from the first step to the one before the last (after the last, it is a lost ack).

    `steps[i]` names delivery i's steps in the traced baseline. Per function and k, the group holds
    at most `per_shape` deliveries of each distinct step sequence: deliveries that take the same
    steps crash the same way, and each crash costs a cold start (the random schedules' `--crash`
    reaches the others).
    """
    memo = Memo(check, len(refs))
    owner = {r.index: r.function for r in refs}
    items: list[tuple[int, int]] = []  # (delivery, k): group members are numbers into this list
    groups: list[tuple[int, ...]] = []
    for members in _per_function(refs, only).values():
        deepest = max((len(steps[i]) for i in members if i < len(steps)), default=0)
        for k in range(1, deepest):
            taken: dict[tuple[str, ...], int] = {}
            group = []
            for i in members:
                shape = steps[i] if i < len(steps) else ()
                if len(shape) > k and taken.get(shape, 0) < per_shape:
                    taken[shape] = taken.get(shape, 0) + 1
                    group.append(len(items))
                    items.append((i, k))
            if group:
                groups.append(tuple(group))

    def make(members: Sequence[int]) -> Candidate:
        return Candidate(None, tuple(Crash(items[m][0], items[m][1]) for m in members))

    findings = group_test(groups, make, memo)
    pairs = tuple((owner[items[f.members[0]][0]], f.candidate) for f in findings)
    return ProbeResult("crashes part-way", pairs, memo.calls, memo.candidates)


def batches(refs: Sequence[DeliveryRef], check: Check, batchable: Sequence[bool],
            only: str | None = None) -> ProbeResult:
    """Every delivery of an SQS batch function in the invocation of the one before it (batches of up
    to `batch_size`, cut by the runner), per function, then narrowed: a failed invocation retries its
    whole batch, so records that had succeeded run again (docs/verification.md#batches)."""
    taking = [r for r in refs if r.index < len(batchable) and batchable[r.index]]
    memo = Memo(check, len(refs))
    owner = {r.index: r.function for r in refs}
    groups = list(_per_function(taking, only).values())
    findings = group_test(groups, lambda members: Candidate(None, tuple(Batched(i) for i in members)), memo)
    pairs = tuple((owner[f.members[0]], f.candidate) for f in findings)
    return ProbeResult("batches", pairs, memo.calls, memo.candidates)


def duplicates_at_end(refs: Sequence[DeliveryRef], check: Check, shared: Callable[[int], bool],
                      only: str | None = None) -> ProbeResult:
    """Every delivery of a function duplicated after the last one, per function.

    `shared(i)`: delivery i's baseline writes touch rows other deliveries also write. Replaying
    a whole sequence can then land back on the baseline (last writer wins again), so a passing
    group proves nothing about such members and they are tested again (see group_test).
    """
    n = len(refs)
    return _by_function("duplicates at end", refs, check, only,
                        lambda members: Candidate(None, tuple(duplicate_at_end(members, n))), shared)


def reversal(n: int, check: Check, refs: Sequence[DeliveryRef], only: str | None = None) -> ProbeResult:
    """The whole order reversed (one candidate); with `only`, only that function's deliveries move."""
    memo = Memo(check, n)
    moves = reverse(n) if only is None else select(reverse(n), refs, {only})
    candidate = Candidate(None, tuple(moves))
    (bad,) = memo([candidate])
    return ProbeResult("reversal", ((only, candidate),) if bad else (), memo.calls, memo.candidates)


def pack_disjoint(pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Pair numbers packed first-fit into groups where no delivery is in two pairs.

    Disjoint swaps never move one delivery twice (a contradiction for chaos.apply), and each
    pair's two deliveries still end up reversed. 1,000 pairs of distinct deliveries fit in one group.
    """
    groups: list[list[int]] = []
    used: list[set[int]] = []
    for number, (i, j) in enumerate(pairs):
        for group, taken in zip(groups, used):
            if i not in taken and j not in taken:
                group.append(number)
                taken.update((i, j))
                break
        else:
            groups.append([number])
            used.append({i, j})
    return groups


def conflicting_swaps(pairs: Sequence[tuple[int, int]], check: Check, only: str | None = None,
                      refs: Sequence[DeliveryRef] = ()) -> ProbeResult:
    """Pairs of deliveries whose baseline writes touch the same rows or keys, put in the other order.

    Per function (as the duplicate probes are), so that a finding is that function's own
    perturbation and `--only FN` asks exactly the candidates the full campaign asks for FN: FN's
    delivery of the pair moves half a position past the other one (the later one jumps ahead of
    the earlier; an earlier one of FN's drops behind the later). Each function's swaps are
    group-tested in groups where no delivery moves twice, then narrowed down.
    """
    if not refs:
        raise ValueError("conflicting_swaps needs refs to know each delivery's function")
    owner = {r.index: r.function for r in refs}
    ordered = list(dict.fromkeys((min(p), max(p)) for p in pairs if p[0] != p[1]))
    names = [only] if only is not None else list(dict.fromkeys(r.function for r in refs if r.function != APPLY_CHANGE))
    memo = Memo(check, len(refs))
    found: list[tuple[str | None, Candidate]] = []
    for name in names:
        shapes: list[Perturbation] = []
        ends: list[tuple[int, int]] = []
        for i, j in ordered:
            move = _swap_for(i, j, owner, name)
            if move is not None:
                shapes.append(move)
                ends.append((i, j))
        if not shapes:
            continue

        def make(members: Sequence[int], shapes: list[Perturbation] = shapes) -> Candidate:
            return Candidate(None, tuple(shapes[k] for k in members))

        found.extend((name, f.candidate) for f in group_test(pack_disjoint(ends), make, memo))
    return ProbeResult("conflicting swaps", tuple(found), memo.calls, memo.candidates)


def _swap_for(i: int, j: int, owner: dict[int, str], name: str) -> Perturbation | None:
    """The one move of `name`'s delivery that puts the pair (i < j) in the other order."""
    if owner.get(j) == name:
        return Move(j, i - 0.5)
    if owner.get(i) == name:
        return Move(i, j + 0.5)
    return None
