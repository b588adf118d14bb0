"""PURE: seeded chaos schedules (docs/verification.md#chaos-model), shared by `replay` and the campaign (`live.py`
draws the same chaos for `up`, one delivery at a time).

A perturbed schedule is the canonical baseline plus an explicit list of perturbations, and
`apply` turns the two into steps deterministically. Shrinking can then drop single deliveries
(leave a ref out of the baseline: its perturbations go with it) or single perturbations, and
re-apply the rest: every position is a *sort key in canonical coordinates*, never an index
into the perturbed list, so nothing else shifts.

Canonical coordinates: baseline delivery `i` sits at key `i`. `Move(i, to=5.25)` puts it at
5.25 instead; a copy (duplicate or redelivery) `at=3.5` goes after whatever sits at or before
3.5 and never before its own original (keys are clamped to the original's). Ties break by
canonical index, and for one delivery the original comes first, then its redelivery, then its
duplicate.

Example: baseline [a0, b1, c2], perturbations [Move(0, 1.5), Duplicate(1, None), Fail(2, 2.5)]
gives b1, b1 (duplicate), a0 (moved), c2 (fail), c2 (redelivery).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from faasemu.events.subscriptions import subscribers
from faasemu.project.spec import FunctionSpec

Inject = Literal["fail", "lost-ack"]
Shuffle = int | Literal["all"]
SCALE = 1000  # shuffle delays are drawn in thousandths of a position: readable, exact to compare


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """The chaos flags. All zero (the default of `up` and `replay`) means the baseline exactly."""

    duplicates: float = 0.0
    shuffle: Shuffle = 0
    lost_ack: float = 0.0
    fail: float = 0.0

    def __post_init__(self) -> None:
        for flag, value in (("--duplicates", self.duplicates), ("--lost-ack", self.lost_ack), ("--fail", self.fail)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{flag} must be between 0 and 1, got {value}")
        if self.shuffle != "all" and (
            isinstance(self.shuffle, bool) or not isinstance(self.shuffle, int) or self.shuffle < 0
        ):
            raise ValueError(f"--shuffle must be a number of positions (0 or more) or 'all', got {self.shuffle!r}")

    @property
    def active(self) -> bool:
        return bool(self.duplicates or self.shuffle or self.lost_ack or self.fail)

    def flags(self, defaults: ChaosOptions | None = None) -> list[str]:
        """The command-line flags that reproduce these options where they differ from `defaults`."""
        defaults = defaults or ChaosOptions()
        pairs = (("--duplicates", self.duplicates, defaults.duplicates), ("--shuffle", self.shuffle, defaults.shuffle),
                 ("--lost-ack", self.lost_ack, defaults.lost_ack), ("--fail", self.fail, defaults.fail))
        return [part for flag, value, default in pairs if value != default for part in (flag, str(value))]


CAMPAIGN_DEFAULTS = ChaosOptions(duplicates=0.1, shuffle=5, lost_ack=0.05, fail=0.05)


def parse_shuffle(text: str) -> Shuffle:
    """`--shuffle` value: a number of positions or `all`."""
    if text.strip().lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--shuffle must be a number of positions (0 or more) or 'all', got {text!r}") from None
    if value < 0:
        raise ValueError(f"--shuffle must be a number of positions (0 or more) or 'all', got {text!r}")
    return value


def new_seed() -> int:
    """The only entropy in faasemu: a fresh seed, which callers always print."""
    return random.SystemRandom().randrange(1, 2**31)


# --- the model --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRef:
    """One delivery of the baseline: `index` is its canonical position (unique even when a file
    repeats an event id), `event_index` the position of its event in the events list."""

    event_id: str
    function: str
    index: int
    event_index: int


def canonical(events: Sequence[Mapping[str, Any]], functions: Sequence[FunctionSpec]) -> list[DeliveryRef]:
    """The baseline: events in order, and for one event its subscribers in manifest order
    (docs/verification.md#chaos-model)."""
    refs: list[DeliveryRef] = []
    for event_index, event in enumerate(events):
        for name in subscribers(event["type"], functions):
            refs.append(DeliveryRef(event["id"], name, len(refs), event_index))
    return refs


@dataclass(frozen=True, slots=True)
class Move:
    """Baseline delivery `ref_index` sits at key `to` instead of at its own index (shuffle)."""

    ref_index: int
    to: float


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One extra delivery of `ref_index` at key `at` (None: right after its original)."""

    ref_index: int
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """The original delivery fails before its handler runs; one redelivery follows at `redeliver_at`."""

    ref_index: int
    redeliver_at: float | None = None


@dataclass(frozen=True, slots=True)
class LostAck:
    """The handler runs but its success is lost; one redelivery follows at `redeliver_at`."""

    ref_index: int
    redeliver_at: float | None = None


Perturbation = Move | Duplicate | Fail | LostAck


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of an executable schedule. `copy` 0 is the original delivery, then 1, 2 ... in schedule order."""

    ref: DeliveryRef
    copy: int = 0
    inject: Inject | None = None
    tags: tuple[str, ...] = ()


def describe(step: Step) -> str:
    """Short tag text for tables: `duplicate`, `moved, fail`, or '' for a plain delivery."""
    return ", ".join(step.tags)


_ORIGINAL, _REDELIVERY, _DUPLICATE = 0, 1, 2


def apply(baseline: Sequence[DeliveryRef], perturbations: Iterable[Perturbation]) -> list[Step]:
    """The schedule of `baseline` under `perturbations`. Pure and deterministic.

    A perturbation of a delivery that is not in `baseline` is ignored, so dropping a delivery
    while shrinking drops its perturbations too. Two Moves of one delivery, or two injected
    failures of one delivery, are contradictions and raise ValueError.
    """
    refs: dict[int, DeliveryRef] = {}
    for ref in baseline:
        if ref.index in refs:
            raise ValueError(f"two baseline deliveries have index {ref.index}")
        refs[ref.index] = ref
    keys = {index: float(index) for index in refs}
    moved: set[int] = set()
    injected: dict[int, Inject] = {}
    extras: list[tuple[int, float | None, int]] = []
    for item in perturbations:
        index = item.ref_index
        if index not in refs:
            continue
        if isinstance(item, Move):
            if index in moved:
                raise ValueError(f"delivery {index} is moved twice")
            moved.add(index)
            keys[index] = float(item.to)
        elif isinstance(item, Duplicate):
            extras.append((index, item.at, _DUPLICATE))
        else:
            if index in injected:
                raise ValueError(f"delivery {index} has two injected failures")
            injected[index] = "fail" if isinstance(item, Fail) else "lost-ack"
            extras.append((index, item.redeliver_at, _REDELIVERY))
    entries = [(keys[index], index, _ORIGINAL, 0) for index in refs]
    for seq, (index, at, rank) in enumerate(extras, start=1):
        entries.append((keys[index] if at is None else max(float(at), keys[index]), index, rank, seq))
    entries.sort()
    copies: Counter[int] = Counter()
    steps = []
    for _key, index, rank, _seq in entries:
        copy = copies[index]
        copies[index] += 1
        if rank == _ORIGINAL:
            inject = injected.get(index)
            tags = (("moved",) if keys[index] != index else ()) + ((inject,) if inject else ())
            steps.append(Step(refs[index], copy, inject, tags))
        else:
            steps.append(Step(refs[index], copy, None, ("redelivery",) if rank == _REDELIVERY else ("duplicate",)))
    return steps


# --- random schedules -----------------------------------------------------------------------------


def _later(key: float, n: int, rng: random.Random) -> float:
    """A copy's key: after canonical slot p, p uniform from the original's slot to the last one."""
    first = int(key)
    return rng.randint(first, max(first, n - 1)) + 0.5


def generate(n_deliveries: int, options: ChaosOptions, rng: random.Random) -> list[Perturbation]:
    """Random perturbations of a baseline of `n_deliveries`, every choice drawn from `rng`.

    Per delivery, in canonical order: a shuffle key, then `fail` with its probability, else
    `lost-ack` with its own (the two hit one attempt, so they exclude each other), then a
    duplicate. Shuffle W delays each delivery by a uniform [0, W+1) positions; sorting by the
    delayed keys keeps every original within W positions of its canonical one (a delivery j
    more than W after i always keeps a key >= j > i + W >= key of i). `all` draws every key
    uniformly in [0, n): any permutation. Copies are never perturbed again.
    """
    n = n_deliveries
    found: list[Perturbation] = []
    for index in range(n):
        key = float(index)
        if options.shuffle == "all":
            key = rng.random() * n
        elif options.shuffle > 0:
            key = index + rng.randrange((options.shuffle + 1) * SCALE) / SCALE
        if key != index:
            found.append(Move(index, key))
        if rng.random() < options.fail:
            found.append(Fail(index, _later(key, n, rng)))
        elif rng.random() < options.lost_ack:
            found.append(LostAck(index, _later(key, n, rng)))
        if rng.random() < options.duplicates:
            found.append(Duplicate(index, _later(key, n, rng)))
    return found


def perturb(baseline: Sequence[DeliveryRef], options: ChaosOptions, seed: int) -> tuple[list[Perturbation], list[Step]]:
    """Perturbations and schedule of one seeded run: the same seed gives exactly the same both."""
    n = max((ref.index for ref in baseline), default=-1) + 1
    perturbations = generate(n, options, random.Random(seed))
    return perturbations, apply(baseline, perturbations)


def select(
    perturbations: Iterable[Perturbation], baseline: Sequence[DeliveryRef], functions: Collection[str]
) -> list[Perturbation]:
    """The perturbations of the named functions' deliveries (`--only FN`, attribution).

    Filtering after generation keeps `--only FN` drawing exactly what the full campaign draws.
    """
    owner = {ref.index: ref.function for ref in baseline}
    return [item for item in perturbations if owner.get(item.ref_index) in functions]


# --- systematic shapes for the campaign's probes ------------------------------------------------


def duplicate_right_after(indices: Iterable[int]) -> list[Perturbation]:
    return [Duplicate(index) for index in indices]


def duplicate_at_end(indices: Iterable[int], n_deliveries: int) -> list[Perturbation]:
    """Copies after every unmoved baseline delivery, in canonical order among themselves."""
    return [Duplicate(index, float(n_deliveries)) for index in indices]


def reverse(n_deliveries: int) -> list[Perturbation]:
    return [Move(index, float(n_deliveries - 1 - index)) for index in range(n_deliveries)
            if n_deliveries - 1 - index != index]
