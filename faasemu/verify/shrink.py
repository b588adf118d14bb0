"""PURE: shrink a violating candidate to a 1-minimal one by delta debugging (docs/verification.md#shrinking).

Shrinking removes single baseline deliveries (never whole events) and then single perturbations,
and repeats both until neither can lose anything: the result needs every delivery and every
perturbation it keeps. Each round of ddmin asks all its subsets and complements in one batch,
because the runner executes a batch in parallel lanes; a `Memo` makes sure no candidate runs twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

from faasemu.chaos.model import DeliveryRef, Perturbation, Step, apply
from faasemu.verify.model import Candidate

Check = Callable[[Sequence[Candidate]], list[bool]]
"""True for each candidate whose run differs from its own baseline (a violation)."""

T = TypeVar("T")


class Memo:
    """A `Check` that asks each distinct candidate at most once and counts what it asked.

    A candidate whose schedule equals its own baseline (no perturbations, or only ones that
    change nothing once deliveries are gone) cannot differ from it, so it passes unasked.
    Pass one Memo to several functions to share answers between them.
    """

    def __init__(self, check: Check, n: int | None = None) -> None:
        self.check = check
        self.n = n
        self.answers: dict[Candidate, bool] = {}
        self.calls = 0
        self.candidates = 0

    def __call__(self, candidates: Sequence[Candidate]) -> list[bool]:
        wanted = [c for c in dict.fromkeys(candidates) if c not in self.answers]
        asked = []
        for candidate in wanted:
            if is_trivial(candidate, self.n):
                self.answers[candidate] = False
            else:
                asked.append(candidate)
        if asked:
            self.calls += 1
            self.candidates += len(asked)
            answers = self.check(asked)
            if len(answers) != len(asked):
                raise ValueError(f"check answered {len(answers)} times for {len(asked)} candidates")
            self.answers.update(zip(asked, (bool(a) for a in answers)))
        return [self.answers[c] for c in candidates]

    def knows(self, candidate: Candidate, answer: bool) -> None:
        """Record an answer learnt elsewhere (the violation being shrunk is known to fail)."""
        self.answers.setdefault(candidate, answer)


def memo_of(check: Check, n: int | None = None) -> Memo:
    return check if isinstance(check, Memo) else Memo(check, n)


def kept(candidate: Candidate, n: int) -> frozenset[int]:
    return frozenset(range(n)) if candidate.deliveries is None else candidate.deliveries


def _stand_ins(indices: Collection[int]) -> list[DeliveryRef]:
    return [DeliveryRef(str(i), "", i, i) for i in sorted(indices)]


def is_trivial(candidate: Candidate, n: int | None) -> bool:
    """Whether the candidate's schedule is exactly its baseline: every delivery once, in order, no injection.

    Without `n`, a candidate of all deliveries (None) is trivial only when it has no perturbations.
    """
    if not candidate.perturbations:
        return True
    if n is None and candidate.deliveries is None:
        return False
    refs = _stand_ins(kept(candidate, n or 0))
    steps = apply(refs, candidate.perturbations)
    return [(s.ref.index, s.inject, s.joins) for s in steps] == [(r.index, None, False) for r in refs]


def normalise(candidate: Candidate, n: int) -> Candidate:
    """Explicit deliveries, and only the perturbations of kept deliveries (what apply() would use)."""
    deliveries = kept(candidate, n)
    return Candidate(deliveries, tuple(p for p in candidate.perturbations if p.ref_index in deliveries))


def with_deliveries(candidate: Candidate, deliveries: Collection[int]) -> Candidate:
    keep = frozenset(deliveries)
    return Candidate(keep, tuple(p for p in candidate.perturbations if p.ref_index in keep))


def ddmin(items: Sequence[T], fails: Callable[[list[list[T]]], list[bool]]) -> list[T]:
    """Zeller's ddmin, one batch per round: the subsets, then the complements, of the current split.

    `fails` is never asked about `items` itself (known to fail). When one item is left, the
    empty remainder is asked too: with pinned parts, those alone may still fail.
    """
    current = list(items)
    granularity = 2
    while len(current) >= 2:
        chunks = _split(current, granularity)
        complements = [[x for k, chunk in enumerate(chunks) if k != j for x in chunk] for j in range(len(chunks))]
        trials = chunks + (complements if len(chunks) > 2 else [])
        answers = fails(trials)
        failing = next((t for t, bad in zip(trials, answers) if bad), None)
        if failing is not None:
            shrunk_to_chunk = any(failing is chunk for chunk in chunks)
            granularity = 2 if shrunk_to_chunk else max(granularity - 1, 2)
            current = failing
        elif granularity >= len(current):
            break
        else:
            granularity = min(2 * granularity, len(current))
    if len(current) == 1 and fails([[]])[0]:
        return []
    return current


def _split(items: list[T], parts: int) -> list[list[T]]:
    size, extra = divmod(len(items), parts)
    chunks: list[list[T]] = []
    start = 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [chunk for chunk in chunks if chunk]


def shrink(candidate: Candidate, check: Check, n: int, *, pinned: Collection[Perturbation] = ()) -> Candidate:
    """A 1-minimal violating candidate: dropping any one delivery or perturbation makes it pass.

    `pinned` perturbations are never dropped, nor are their deliveries (classification uses it
    to shrink a schedule without losing the duplicate that gives it its kind).
    Example: a duplicate bug of delivery 3 among 1,000 ends as deliveries {3}, [Duplicate(3)].
    """
    memo = memo_of(check, n)
    current = normalise(candidate, n)
    memo.knows(current, True)
    pin_set = set(pinned)
    fixed = frozenset(p.ref_index for p in current.perturbations if p in pin_set)
    while True:
        current = _drop_deliveries(current, fixed, memo, n)
        pruned = _drop_perturbations(current, pin_set, memo)
        if pruned == current:  # no perturbation went, so the deliveries just kept are still 1-minimal
            return current
        current = pruned


def _drop_deliveries(start: Candidate, fixed: frozenset[int], memo: Memo, n: int) -> Candidate:
    def fails(trials: list[list[int]]) -> list[bool]:
        return memo([with_deliveries(start, fixed.union(t)) for t in trials])

    return with_deliveries(start, fixed.union(ddmin(sorted(kept(start, n) - fixed), fails)))


def _drop_perturbations(start: Candidate, pinned: set[Perturbation], memo: Memo) -> Candidate:
    """ddmin over positions in the tuple, so two equal perturbations (two copies) count as two."""
    every = start.perturbations
    pins = {k for k, p in enumerate(every) if p in pinned}

    def keeping(chosen: Collection[int]) -> Candidate:
        return Candidate(start.deliveries, tuple(p for k, p in enumerate(every) if k in pins or k in chosen))

    def fails(trials: list[list[int]]) -> list[bool]:
        return memo([keeping(set(t)) for t in trials])

    return keeping(set(ddmin([k for k in range(len(every)) if k not in pins], fails)))


def schedule_of(candidate: Candidate, refs: Sequence[DeliveryRef]) -> list[Step]:
    """The steps the report prints: apply() on the kept deliveries."""
    keep = candidate.deliveries
    return apply([r for r in refs if keep is None or r.index in keep], candidate.perturbations)
