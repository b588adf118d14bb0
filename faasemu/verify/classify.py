"""PURE: the kind of a shrunk violation, the functions to blame, and the one to report
(docs/verification.md#kinds, #attribution).

A handler "runs" at every step except an injected `fail` (the delivery fails before its handler
runs), so a Fail only delays a delivery to its redelivery and counts as a reordering, while a
Duplicate or a LostAck makes a handler run twice and counts as a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from faasemu.chaos.model import (
    APPLY_CHANGE,
    Batched,
    Crash,
    DeliveryRef,
    Duplicate,
    Fail,
    LostAck,
    Move,
    Overlap,
    Perturbation,
    Step,
)
from faasemu.verify.model import Candidate
from faasemu.verify.shrink import Check, memo_of, schedule_of, shrink

Kind = Literal["idempotency", "order", "instance", "overlap", "crash", "batch"]
KINDS: tuple[Kind, ...] = ("idempotency", "order", "instance", "overlap", "crash", "batch")
# The kinds that make a function not idempotent (docs/verification.md#kinds): all but `order`.
NOT_IDEMPOTENT: frozenset[str] = frozenset({"idempotency", "instance", "overlap", "crash", "batch"})
# Simplest explanation first: a plain duplicate, then a copy on another instance, then a race, then a crash.
SIMPLEST: tuple[Kind, ...] = ("idempotency", "instance", "overlap", "crash")


@dataclass(frozen=True, slots=True)
class Classified:
    """`fallback`: for a crash explained as a race, the crash itself, reported instead when the race
    does not reproduce again (a race is timing; a crash is not)."""

    kind: Kind
    candidate: Candidate
    fallback: Candidate | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    """One counterexample as reported: a function blamed for a kind, with its minimal schedule."""

    function: str
    kind: Kind
    candidate: Candidate
    steps: tuple[Step, ...]
    fallback: Candidate | None = None


def _is_copy(p: Perturbation) -> bool:
    return isinstance(p, (Duplicate, LostAck))


def family(p: Perturbation) -> Kind:
    """The kind a perturbation alone can show: what `_unexplained` drops once a function is known for it."""
    if isinstance(p, Batched):
        return "batch"
    if isinstance(p, Overlap):
        return "overlap"
    if isinstance(p, Crash):
        return "crash"
    if isinstance(p, (Duplicate, LostAck)):
        return "instance" if p.other else "idempotency"
    return "order"


def _special(p: Perturbation) -> bool:
    """A v2 perturbation: a race, a crash part-way, or a copy (or redelivery) on another instance."""
    return isinstance(p, (Overlap, Crash)) or (isinstance(p, (Duplicate, LostAck, Fail)) and p.other)


def plain_form(candidate: Candidate) -> Candidate:
    """Every race, crash and other-instance copy as a plain copy on the same warm instance:
    an Overlap or a Crash becomes a duplicate right after the original."""
    placed: list[Perturbation] = []
    for p in candidate.perturbations:
        if isinstance(p, (Overlap, Crash)):
            placed.append(Duplicate(p.ref_index))
        elif isinstance(p, Duplicate) and p.other:
            placed.append(Duplicate(p.ref_index, p.at))
        elif isinstance(p, LostAck) and p.other:
            placed.append(LostAck(p.ref_index, p.redeliver_at))
        elif isinstance(p, Fail) and p.other:
            placed.append(Fail(p.ref_index, p.redeliver_at))
        else:
            placed.append(p)
    return Candidate(candidate.deliveries, tuple(placed))


def instance_form(candidate: Candidate) -> Candidate:
    """Every race and crash as a whole second run right after, on another instance."""
    placed: list[Perturbation] = [
        Duplicate(p.ref_index, None, other=True) if isinstance(p, (Overlap, Crash)) else p
        for p in candidate.perturbations
    ]
    return Candidate(candidate.deliveries, tuple(placed))


def overlap_form(candidate: Candidate) -> Candidate:
    """Every crash as a race of the delivery with its own copy."""
    placed: list[Perturbation] = [Overlap(p.ref_index) if isinstance(p, Crash) else p
                                  for p in candidate.perturbations]
    return Candidate(candidate.deliveries, tuple(placed))


def copies_adjacent(steps: Sequence[Step]) -> bool:
    """Whether every delivery's handler runs form one unbroken stretch of the schedule.

    Injected `fail` steps are skipped: nothing ran there, so they separate nothing.
    """
    runs: dict[int, list[int]] = {}
    for position, step in enumerate(s for s in steps if s.inject != "fail"):
        runs.setdefault(step.ref.index, []).append(position)
    return all(p[-1] - p[0] + 1 == len(p) for p in runs.values())


def _keys(perturbations: Sequence[Perturbation]) -> dict[int, float]:
    return {p.ref_index: float(p.to) for p in perturbations if isinstance(p, Move)}


def adjacent_form(candidate: Candidate) -> Candidate:
    """Every copy right after the run it copies: after the redelivery when the original failed."""
    failed = {p.ref_index: p.redeliver_at for p in candidate.perturbations if isinstance(p, Fail)}
    keys = _keys(candidate.perturbations)
    placed: list[Perturbation] = []
    for p in candidate.perturbations:
        if isinstance(p, Duplicate):
            at = failed.get(p.ref_index)
            key = keys.get(p.ref_index, float(p.ref_index))
            placed.append(Duplicate(p.ref_index, None if at is None else max(float(at), key)))
        elif isinstance(p, LostAck):
            placed.append(LostAck(p.ref_index, None))
        else:
            placed.append(p)
    return Candidate(candidate.deliveries, tuple(placed))


def late_copy_form(candidate: Candidate) -> Candidate:
    """Each copied delivery runs once, where its last copy ran: a reordering without duplicates.

    Beyond the copy's own original, a LostAck or a Fail of the same
    delivery goes too, and a Move to the copy's key keeps its place among other deliveries
    (ties sort by canonical index whether a step is a copy or a moved original).
    """
    keys = _keys(candidate.perturbations)
    last: dict[int, float] = {}
    for p in candidate.perturbations:
        if isinstance(p, (Duplicate, LostAck)):
            own = keys.get(p.ref_index, float(p.ref_index))
            at = p.at if isinstance(p, Duplicate) else p.redeliver_at
            key = own if at is None else max(float(at), own)
            last[p.ref_index] = max(key, last.get(p.ref_index, key))
    rest = [p for p in candidate.perturbations if p.ref_index not in last]
    return Candidate(candidate.deliveries, tuple(rest + [Move(i, key) for i, key in sorted(last.items())]))


def classify(candidate: Candidate, check: Check, refs: Sequence[DeliveryRef]) -> Classified:
    """The kind of a shrunk violation, with the (minimal) candidate that shows that kind.

    The adjacent and late-copy forms are asked in one batch (parallel lanes) even though the
    second matters only when the first passes; a form that reproduces is shrunk again, since
    moving a copy can make deliveries that only mattered for its old position unnecessary.
    """
    n = len(refs)
    memo = memo_of(check, n)
    memo.knows(candidate, True)
    if any(isinstance(p, Batched) for p in candidate.perturbations):
        # docs/verification.md#batches: what still fails with every record in its own invocation is
        # explained without batches; only what needs a batch retry is `batch`.
        alone = Candidate(candidate.deliveries, tuple(p for p in candidate.perturbations if not isinstance(p, Batched)))
        if alone.perturbations and memo([alone])[0]:
            return classify(shrink(alone, memo, n), memo, refs)
        return Classified("batch", candidate)
    if any(_special(p) for p in candidate.perturbations):
        return _classify_special(candidate, memo, refs)
    if not any(_is_copy(p) for p in candidate.perturbations):
        if _retry_alone(candidate, n):
            # One delivery, failed once and redelivered: nothing was reordered, yet the outcome
            # changed with the attempt that succeeded (a per-attempt value, such as an SQS
            # receiptHandle, leaked into state). A retry is a redelivery: at-least-once, idempotency.
            return Classified("idempotency", candidate)
        return Classified("order", candidate)
    if copies_adjacent(schedule_of(candidate, refs)):
        return Classified("idempotency", candidate)
    adjacent, late = adjacent_form(candidate), late_copy_form(candidate)
    adjacent_fails, late_fails = memo([adjacent, late])
    if adjacent_fails:
        copied = {p.ref_index for p in adjacent.perturbations if _is_copy(p)}
        pins = [p for p in adjacent.perturbations if p.ref_index in copied and not isinstance(p, Move)]
        return Classified("idempotency", shrink(adjacent, memo, n, pinned=pins))
    if late_fails:
        return Classified("order", shrink(late, memo, n))
    return Classified("idempotency", candidate)


def _classify_special(candidate: Candidate, check: Check, refs: Sequence[DeliveryRef]) -> Classified:
    """A violation with a race, a crash or an other-instance copy, explained as simply as it can be
    (docs/verification.md#kinds): the simpler forms are asked in one batch, and the first that still
    fails gives the kind. A serial delivery is never raced, so its crash cannot become an overlap."""
    n = len(refs)
    memo = memo_of(check, n)
    serial = {r.index for r in refs if r.serial}
    crashes = [p for p in candidate.perturbations if isinstance(p, Crash)]
    races = any(isinstance(p, Overlap) for p in candidate.perturbations)
    forms: list[tuple[Kind, Candidate]] = [("idempotency", plain_form(candidate))]
    if races or crashes:
        forms.append(("instance", instance_form(candidate)))
    if crashes and not any(p.ref_index in serial for p in crashes):
        forms.append(("overlap", overlap_form(candidate)))
    forms = [(kind, form) for kind, form in forms if form != candidate]
    answers = memo([form for _kind, form in forms])
    for (kind, form), bad in zip(forms, answers):
        if bad:
            if kind == "idempotency":
                return classify(shrink(form, memo, n), memo, refs)
            return Classified(kind, shrink(form, memo, n), candidate if crashes and kind == "overlap" else None)
    if crashes:
        return Classified("crash", candidate)
    return Classified("overlap" if races else "instance", candidate)


def _retry_alone(candidate: Candidate, n: int) -> bool:
    """A single delivery whose only perturbations are injected failures (then its redelivery)."""
    kept = candidate.deliveries if candidate.deliveries is not None else frozenset(range(n))
    injected = candidate.perturbations
    return len(kept) == 1 and bool(injected) and all(isinstance(p, Fail) for p in injected)


def functions_of(candidate: Candidate, refs: Sequence[DeliveryRef]) -> list[str]:
    """The functions with perturbations in the candidate, in manifest order."""
    owner = {r.index: r.function for r in refs}
    names = {owner[p.ref_index] for p in candidate.perturbations if p.ref_index in owner}
    return [f for f in manifest_order(refs) if f in names]


def manifest_order(refs: Sequence[DeliveryRef]) -> list[str]:
    """Functions in the order their first delivery appears in the baseline."""
    return list(dict.fromkeys(r.function for r in sorted(refs, key=lambda r: r.index) if r.function != APPLY_CHANGE))


def attribute(candidate: Candidate, check: Check, refs: Sequence[DeliveryRef]) -> list[str]:
    """The functions to blame, in manifest order (docs/verification.md#attribution).

    First, each function whose perturbations alone (every other delivery once, in place) still
    fail; else each function without whose perturbations it passes. Moved-as-collateral
    deliveries are not perturbations, so they blame nobody; a function whose perturbations are
    not needed is never blamed. With a single perturbed function nothing needs running. When
    neither rule blames anyone (three or more functions, any two enough), every perturbed
    function is blamed: the violation needs some of them and none can be singled out.
    """
    names = functions_of(candidate, refs)
    if len(names) <= 1:
        return names
    memo = memo_of(check, len(refs))
    memo.knows(candidate, True)
    owner = {r.index: r.function for r in refs}

    def only(names_kept: set[str]) -> Candidate:
        kept = tuple(p for p in candidate.perturbations if owner.get(p.ref_index) in names_kept)
        return Candidate(candidate.deliveries, kept)

    alone = memo([only({f}) for f in names])
    if any(alone):
        return [f for f, bad in zip(names, alone) if bad]
    without = memo([only(set(names) - {f}) for f in names])
    needed = [f for f, bad in zip(names, without) if not bad]
    return needed or names


def best_per_kind(violations: Iterable[Violation], refs: Sequence[DeliveryRef] = ()) -> list[Violation]:
    """At most one violation per (function, kind): the fewest schedule steps, then the earliest
    canonical position of a delivery in it, then the earliest found (a total, seeded order).

    Sorted by function in manifest order when `refs` is given (else first seen), then kind.
    """
    best: dict[tuple[str, Kind], tuple[tuple[int, tuple[int, ...]], Violation]] = {}
    for violation in violations:
        positions = tuple(sorted(step.ref.index for step in violation.steps))
        rank = (len(violation.steps), positions)
        key = (violation.function, violation.kind)
        if key not in best or rank < best[key][0]:
            best[key] = (rank, violation)
    seen = list(dict.fromkeys(function for function, _kind in best))
    order = {f: k for k, f in enumerate(manifest_order(refs))}

    def place(key: tuple[str, Kind]) -> tuple[int, int]:
        return order.get(key[0], len(order) + seen.index(key[0])), KINDS.index(key[1])

    return [best[key][1] for key in sorted(best, key=place)]
