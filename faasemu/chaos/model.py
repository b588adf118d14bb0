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

Order keys (docs/verification.md#order-keys): deliveries of one function whose events have the same
value at its `order_key` keep canonical order among themselves, and every copy of one of them comes
before the next; `apply` enforces it whatever the perturbations, and `order_violations` checks it.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from faasemu.events.subscriptions import CHANGE_TYPE, subscribers
from faasemu.project.spec import FunctionSpec

Inject = Literal["fail", "lost-ack", "crash"]
Shuffle = int | Literal["all"]
SCALE = 1000  # shuffle delays are drawn in thousandths of a position: readable, exact to compare
# The `function` of an events file's table change in the baseline: a step that applies the change as an
# outside client would, at its place in file order. Never perturbed (`apply` ignores perturbations of it):
# the outside world writes once; what is perturbed is the delivery of the trigger events it fires.
APPLY_CHANGE = "(change)"


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """The chaos flags. All zero (the default of `up` and `replay`) means the baseline exactly."""

    duplicates: float = 0.0
    shuffle: Shuffle = 0
    lost_ack: float = 0.0
    fail: float = 0.0
    overlap: float = 0.0
    crash: float = 0.0

    def __post_init__(self) -> None:
        for flag, value in (("--duplicates", self.duplicates), ("--lost-ack", self.lost_ack), ("--fail", self.fail),
                            ("--overlap", self.overlap), ("--crash", self.crash)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{flag} must be between 0 and 1, got {value}")
        if self.shuffle != "all" and (
            isinstance(self.shuffle, bool) or not isinstance(self.shuffle, int) or self.shuffle < 0
        ):
            raise ValueError(f"--shuffle must be a number of positions (0 or more) or 'all', got {self.shuffle!r}")

    @property
    def active(self) -> bool:
        return bool(self.duplicates or self.shuffle or self.lost_ack or self.fail or self.overlap or self.crash)

    @property
    def v2(self) -> bool:
        """Overlaps or crashes are on: copies then also land on another instance half the time
        (off in `up`/`replay` defaults, so their random streams stay what they were)."""
        return bool(self.overlap or self.crash)

    def flags(self, defaults: ChaosOptions | None = None) -> list[str]:
        """The command-line flags that reproduce these options where they differ from `defaults`."""
        defaults = defaults or ChaosOptions()
        pairs = (("--duplicates", self.duplicates, defaults.duplicates), ("--shuffle", self.shuffle, defaults.shuffle),
                 ("--lost-ack", self.lost_ack, defaults.lost_ack), ("--fail", self.fail, defaults.fail),
                 ("--overlap", self.overlap, defaults.overlap), ("--crash", self.crash, defaults.crash))
        return [part for flag, value, default in pairs if value != default for part in (flag, str(value))]


CAMPAIGN_DEFAULTS = ChaosOptions(duplicates=0.1, shuffle=5, lost_ack=0.05, fail=0.05, overlap=0.05, crash=0.05)


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
    repeats an event id), `event_index` the position of its event in the events list.

    `order` is the event's value at its function's `order_key`, as canonical JSON text (None: the
    function has no order key, or the event no value there: unordered). `serial`: the platform never
    overlaps this delivery (its function reserves `concurrency: 1`, or it has an order value).

    `parent` is set on a downstream delivery (docs/verification.md#cascades): (index of the delivery
    whose first run emitted its event, the emission's index); its `event_id` is then the emission's
    path (`pay-1>0`), never the event's possibly random id.
    """

    event_id: str
    function: str
    index: int
    event_index: int
    order: str | None = None
    serial: bool = False
    parent: tuple[int, int] | None = None


def order_value(event: Mapping[str, Any], path: str) -> str | None:
    """The value at dotted `path` (`data.order`) from the CloudEvent's top level, as canonical JSON
    text so that equal values compare equal whatever their type; None when missing or null."""
    value: Any = event
    for segment in path.split("."):
        if not isinstance(value, Mapping) or segment not in value:
            return None
        value = value[segment]
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical(events: Sequence[Mapping[str, Any]], functions: Sequence[FunctionSpec]) -> list[DeliveryRef]:
    """The baseline: events in order, and for one event its subscribers in manifest order
    (docs/verification.md#chaos-model), each with its order value and whether it may overlap. A table
    change is one step (`APPLY_CHANGE`); a trigger's event goes to its webhook."""
    specs = {spec.name: spec for spec in functions}
    refs: list[DeliveryRef] = []
    for event_index, event in enumerate(events):
        if event["type"] == CHANGE_TYPE:
            refs.append(DeliveryRef(event["id"], APPLY_CHANGE, len(refs), event_index))
            continue
        webhook = event.get("faasemuwebhook")  # a trigger's event (up's event log): to its webhook
        names = [webhook] if isinstance(webhook, str) and webhook in specs else subscribers(event["type"], functions)
        for name in names:
            spec = specs[name]
            order = order_value(event, spec.order_key) if spec.order_key else None
            serial = (spec.concurrency_set and spec.concurrency == 1) or order is not None
            refs.append(DeliveryRef(event["id"], name, len(refs), event_index, order, serial))
    return refs


@dataclass(frozen=True, slots=True)
class Move:
    """Baseline delivery `ref_index` sits at key `to` instead of at its own index (shuffle)."""

    ref_index: int
    to: float


@dataclass(frozen=True, slots=True)
class Duplicate:
    """One extra delivery of `ref_index` at key `at` (None: right after its original); `other`: the
    copy runs on another instance of the function (in-memory state does not see the original)."""

    ref_index: int
    at: float | None = None
    other: bool = False


@dataclass(frozen=True, slots=True)
class Fail:
    """The original delivery fails before its handler runs; one redelivery follows at `redeliver_at`
    (on another instance when `other`)."""

    ref_index: int
    redeliver_at: float | None = None
    other: bool = False


@dataclass(frozen=True, slots=True)
class LostAck:
    """The handler runs but its success is lost; one redelivery follows at `redeliver_at` (on
    another instance when `other`)."""

    ref_index: int
    redeliver_at: float | None = None
    other: bool = False


@dataclass(frozen=True, slots=True)
class Overlap:
    """The delivery and one copy of it start together on two instances (scale-out). Ignored for a
    `serial` delivery: its platform never overlaps it."""

    ref_index: int


@dataclass(frozen=True, slots=True)
class Crash:
    """The original attempt is killed right after its `after`-th step (a commit, a sink call or an
    emitted event; after >= 1); one redelivery follows at `redeliver_at` (None: right after it), in
    a fresh instance that replaces the dead one."""

    ref_index: int
    after: int
    redeliver_at: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 1:
            raise ValueError(f"Crash(after=...) is the step after which delivery {self.ref_index} is killed: "
                             f"a whole number of at least 1, got {self.after!r}")


@dataclass(frozen=True, slots=True)
class Batched:
    """Delivery `ref_index` travels in the same invocation as the step right before it, when that
    step is a delivery of the same SQS batch function on the same instance and the batch is not full
    (`batch_size`): Lambda's event source mapping hands a function up to that many records at once,
    and a failed invocation returns them all to the queue (docs/verification.md#batches)."""

    ref_index: int


Perturbation = Move | Duplicate | Fail | LostAck | Overlap | Crash | Batched


@dataclass(frozen=True, slots=True)
class Step:
    """One entry of an executable schedule. `copy` 0 is the original delivery, then 1, 2 ... in schedule order.

    `instance` 0 is the function's primary instance, 1 another one. `crash_after` is the k of an
    injected crash (`inject == "crash"`). `together`: this step starts together with the next step,
    its overlap copy.
    """

    ref: DeliveryRef
    copy: int = 0
    inject: Inject | None = None
    tags: tuple[str, ...] = ()
    instance: int = 0
    crash_after: int = 0
    together: bool = False
    joins: bool = False  # a `Batched` original: in the invocation of the step before it (runner decides)


def describe(step: Step) -> str:
    """Short tag text for tables: `duplicate`, `moved, fail`, or '' for a plain delivery."""
    return ", ".join(step.tags)


_ORIGINAL, _REDELIVERY, _DUPLICATE = 0, 1, 2
_OTHER = "other instance"


def apply(baseline: Sequence[DeliveryRef], perturbations: Iterable[Perturbation]) -> list[Step]:
    """The schedule of `baseline` under `perturbations`. Pure and deterministic.

    A perturbation of a delivery that is not in `baseline` is ignored, so dropping a delivery
    while shrinking drops its perturbations too; so is one of a table change (`APPLY_CHANGE`). Two
    Moves of one delivery, two Overlaps, two injected failures (fail, lost ack, crash) of one
    delivery, or an Overlap with a fail or crash of the same delivery, are contradictions and raise
    ValueError.

    Deliveries with an order value keep canonical order within (function, order) and every copy of
    one of them sorts before the next one's original (docs/verification.md#order-keys).

    A downstream delivery (`parent` set) never sorts before the first run of its parent (its original,
    or its redelivery when the original fails), ties after it; one whose parent is not in `baseline`
    is left out, with its own children (docs/verification.md#cascades).
    """
    refs: dict[int, DeliveryRef] = {}
    for ref in baseline:
        if ref.index in refs:
            raise ValueError(f"two baseline deliveries have index {ref.index}")
        refs[ref.index] = ref
    for index in sorted(refs):  # a parent's index is below its children's: one pass drops whole subtrees
        parent = refs[index].parent
        if parent is not None and parent[0] not in refs:
            del refs[index]
    keys = {index: float(index) for index in refs}
    moved: set[int] = set()
    injected: dict[int, Inject] = {}
    crash_after: dict[int, int] = {}
    overlapped: set[int] = set()
    batched: set[int] = set()
    extras: list[tuple[int, float | None, int, bool]] = []  # (ref index, key asked for, rank, other instance)
    for item in perturbations:
        index = item.ref_index
        if index not in refs or refs[index].function == APPLY_CHANGE:
            continue
        if isinstance(item, Batched):
            batched.add(index)
        elif isinstance(item, Move):
            if index in moved:
                raise ValueError(f"delivery {index} is moved twice")
            moved.add(index)
            keys[index] = float(item.to)
        elif isinstance(item, Duplicate):
            extras.append((index, item.at, _DUPLICATE, item.other))
        elif isinstance(item, Overlap):
            if refs[index].serial or refs[index].order is not None:
                continue  # concurrency: 1 or an order key: the platform never overlaps it
            if index in overlapped:
                raise ValueError(f"delivery {index} is overlapped twice")
            overlapped.add(index)
        else:
            if index in injected:
                raise ValueError(f"delivery {index} has two injected failures")
            if isinstance(item, Crash):
                injected[index] = "crash"
                crash_after[index] = item.after
                extras.append((index, item.redeliver_at, _REDELIVERY, False))
            else:
                injected[index] = "fail" if isinstance(item, Fail) else "lost-ack"
                extras.append((index, item.redeliver_at, _REDELIVERY, item.other))
    for index in sorted(overlapped):
        if injected.get(index) in ("fail", "crash"):
            raise ValueError(f"delivery {index} is overlapped and has an injected {injected[index]}: an overlap "
                             "needs an original attempt that runs to its end (a lost ack is allowed)")
    bound = _order_keys(refs, keys)
    shown = dict(keys)  # before the parent-before-child clamp: a child is "moved" only by its own Move

    def copy_key(index: int, at: float | None) -> float:
        key = keys[index] if at is None else max(float(at), keys[index])
        return min(key, bound[index]) if index in bound else key

    if any(ref.parent is not None for ref in refs.values()):
        redelivered = {index: at for index, at, rank, _other in extras if rank == _REDELIVERY}
        for index in sorted(refs):
            parent = refs[index].parent
            if parent is None:
                continue
            first = parent[0]  # the parent's first run: its original, or the redelivery of a fail
            first_key = copy_key(first, redelivered[first]) if injected.get(first) == "fail" else keys[first]
            keys[index] = max(keys[index], first_key)  # ties: the child's higher index sorts it after
    entries = [(keys[index], index, _ORIGINAL, 0) for index in refs]
    for seq, (index, at, rank, _other) in enumerate(extras, start=1):
        entries.append((copy_key(index, at), index, rank, seq))
    entries.sort()
    copies: Counter[int] = Counter()
    steps = []
    for _key, index, rank, seq in entries:
        copy = copies[index]
        copies[index] += 1
        ref = refs[index]
        if rank == _ORIGINAL:
            inject = injected.get(index)
            after = crash_after.get(index, 0)
            tags = (("moved",) if shown[index] != index else ()) + (
                (f"crash after step {after}",) if inject == "crash" else (inject,) if inject else ()
            ) + (("overlap",) if index in overlapped else ()) + (("batched",) if index in batched else ())
            steps.append(Step(ref, copy, inject, tags, crash_after=after, together=index in overlapped,
                              joins=index in batched))
            if index in overlapped:  # inserted after sorting: nothing may come between the two
                steps.append(Step(ref, copies[index], None, ("duplicate", "overlap"), instance=1))
                copies[index] += 1
        else:
            other = extras[seq - 1][3]
            tags = ("redelivery",) if rank == _REDELIVERY else ("duplicate",)
            steps.append(Step(ref, copy, None, tags + ((_OTHER,) if other else ()), instance=1 if other else 0))
    return _gather_batches(steps) if batched else steps


def _gather_batches(steps: list[Step]) -> list[Step]:
    """Each `Batched` original moves up to right after the nearest earlier step of its function on
    the same instance (and the steps already batched with it): an SQS queue is the function's own,
    so the deliveries of other functions in between do not split its batches. It never moves past
    its own parent's first run (a cascade's causality) nor past an injected failure's step."""
    ordered: list[Step] = []
    for step in steps:
        if step.joins:
            j = len(ordered) - 1
            parent = step.ref.parent[0] if step.ref.parent is not None else None
            while j >= 0 and not (ordered[j].ref.function == step.ref.function
                                  and ordered[j].instance == step.instance):
                if ordered[j].ref.index == parent:
                    j = -1
                    break
                j -= 1
            if j >= 0 and ordered[j].inject is None and not ordered[j].together:
                k = j + 1
                while k < len(ordered) and ordered[k].joins and ordered[k].ref.function == step.ref.function:
                    k += 1
                ordered.insert(k, step)
                continue
        ordered.append(step)
    return ordered


def _order_keys(refs: Mapping[int, DeliveryRef], keys: dict[int, float]) -> dict[int, float]:
    """Enforce order keys on `keys` in place; returns, per keyed delivery, the key its copies may not pass.

    Within one (function, order) group the originals get the group's own keys back, sorted, in
    canonical order: the group keeps its slots, and Moves still interleave it with other deliveries.
    A copy of i is clamped to the key of the next original j of its group; at equal keys ties break
    by canonical index (i < j), so the copy sorts before j.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for index in sorted(refs):
        ref = refs[index]
        if ref.order is not None:
            groups.setdefault((ref.function, ref.order), []).append(index)
    bound: dict[int, float] = {}
    for members in groups.values():
        for index, key in zip(members, sorted(keys[index] for index in members), strict=True):
            keys[index] = key
        for index, following in itertools.pairwise(members):
            bound[index] = keys[following]
    return bound


def order_violations(steps: Sequence[Step]) -> list[str]:
    """What makes `steps` a schedule no platform would deliver (empty: legal).

    Within one (function, order value) every step of delivery i comes before every step of a later
    delivery j (originals in canonical order, each copy before the next original); a step that
    starts `together` with the next is followed by its own copy on another instance, and is never a
    delivery its platform keeps serial (concurrency: 1, an order key).
    """
    problems: list[str] = []
    latest: dict[tuple[str, str], Step] = {}
    for position, step in enumerate(steps):
        ref = step.ref
        if step.together:
            following = steps[position + 1] if position + 1 < len(steps) else None
            if ref.serial or ref.order is not None:
                problems.append(f"step {position}: delivery {ref.index} of {ref.function} is overlapped, but its "
                                "platform never overlaps it (concurrency: 1 or an order key)")
            if following is None or following.ref != ref or following.copy == 0 or following.instance == step.instance:
                problems.append(f"step {position}: delivery {ref.index} of {ref.function} starts together with the "
                                "next step, which is not a copy of it on another instance")
        if ref.order is None:
            continue
        group = (ref.function, ref.order)
        before = latest.get(group)
        if before is not None and before.ref.index > ref.index:
            what = "original" if step.copy == 0 else f"copy {step.copy}"
            problems.append(f"step {position}: delivery {ref.index} ({what}) of {ref.function} comes after delivery "
                            f"{before.ref.index}, a later delivery with the same order value {ref.order}")
        else:
            latest[group] = step
    return problems


# --- random schedules -----------------------------------------------------------------------------


def _later(key: float, n: int, rng: random.Random) -> float:
    """A copy's key: after canonical slot p, p uniform from the original's slot to the last one."""
    first = int(key)
    return rng.randint(first, max(first, n - 1)) + 0.5


def generate(
    n_deliveries: int,
    options: ChaosOptions,
    rng: random.Random,
    *,
    steps: Sequence[int | None] | None = None,
    serial: Sequence[bool] | None = None,
    batchable: Sequence[bool] | None = None,
) -> list[Perturbation]:
    """Random perturbations of a baseline of `n_deliveries`, every choice drawn from `rng`.

    `batchable[i]`: delivery i goes to an SQS batch function; it then joins the invocation of the
    step before it half the time (`Batched`), drawn last, and only for such deliveries.

    Per delivery, in canonical order: a shuffle key, then `fail` with its probability, else
    `lost-ack` with its own, else a crash (the three hit one attempt, so they exclude each other),
    then a duplicate, then an overlap. Shuffle W delays each delivery by a uniform [0, W+1) positions;
    sorting by the delayed keys keeps every original within W positions of its canonical one (a
    delivery j more than W after i always keeps a key >= j > i + W >= key of i). `all` draws every
    key uniformly in [0, n): any permutation. Copies are never perturbed again.

    `steps[i]` is the number of steps the traced baseline saw for delivery i (None or missing:
    unknown, no crash; a crash needs 2 or more: after the last step it would be a lost ack), and
    `serial[i]` says delivery i is never overlapped. Extra numbers are drawn only for the v2 options
    (`--overlap`, `--crash`): with both 0 the perturbations are exactly those of the first model, and
    with either on, a copy lands on another instance half the time.
    """
    n = n_deliveries
    v2 = options.v2
    found: list[Perturbation] = []
    for index in range(n):
        key = float(index)
        if options.shuffle == "all":
            key = rng.random() * n
        elif options.shuffle > 0:
            key = index + rng.randrange((options.shuffle + 1) * SCALE) / SCALE
        if key != index:
            found.append(Move(index, key))
        seen = steps[index] if steps is not None and index < len(steps) else None
        count = seen or 0
        hit: Fail | LostAck | Crash | None = None
        if rng.random() < options.fail:
            hit = Fail(index, _later(key, n, rng), v2 and rng.random() < 0.5)
        elif rng.random() < options.lost_ack:
            hit = LostAck(index, _later(key, n, rng), v2 and rng.random() < 0.5)
        elif options.crash > 0:
            # drawn whatever the step count, so a count that differs elsewhere shifts nothing after it
            roll, pick = rng.random(), rng.random()
            if count >= 2 and roll < options.crash:
                hit = Crash(index, 1 + min(count - 2, int(pick * (count - 1))), _later(key, n, rng))
        if hit is not None:
            found.append(hit)
        if rng.random() < options.duplicates:
            found.append(Duplicate(index, _later(key, n, rng), v2 and rng.random() < 0.5))
        kept_serial = serial is not None and index < len(serial) and serial[index]
        if (options.overlap > 0 and not kept_serial and not isinstance(hit, (Fail, Crash))
                and rng.random() < options.overlap):
            found.append(Overlap(index))
        if batchable is not None and index < len(batchable) and batchable[index] and rng.random() < 0.5:
            found.append(Batched(index))
    return found


def perturb(baseline: Sequence[DeliveryRef], options: ChaosOptions, seed: int,
            *, steps: Sequence[int | None] | None = None) -> tuple[list[Perturbation], list[Step]]:
    """Perturbations and schedule of one seeded run: the same seed gives exactly the same both.
    Serial deliveries come from the baseline; `steps` is as in `generate`."""
    n = max((ref.index for ref in baseline), default=-1) + 1
    serial = [False] * n
    for ref in baseline:
        serial[ref.index] = ref.serial
    perturbations = generate(n, options, random.Random(seed), steps=steps, serial=serial)
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


def duplicate_right_after(indices: Iterable[int], other: bool = False) -> list[Perturbation]:
    """A copy right after each original; `other`: in a fresh instance (in-memory dedup misses it)."""
    return [Duplicate(index, None, other) for index in indices]


def duplicate_at_end(indices: Iterable[int], n_deliveries: int) -> list[Perturbation]:
    """Copies after every unmoved baseline delivery, in canonical order among themselves."""
    return [Duplicate(index, float(n_deliveries)) for index in indices]


def batched(indices: Iterable[int]) -> list[Perturbation]:
    """Each delivery in the invocation of the one before it (the runner cuts batches at `batch_size`)."""
    return [Batched(index) for index in indices]


def overlap(indices: Iterable[int]) -> list[Perturbation]:
    """Each delivery started together with its own copy on a second instance."""
    return [Overlap(index) for index in indices]


def crash_after(indices: Iterable[int], k: int) -> list[Perturbation]:
    """Each delivery killed right after its k-th step, then redelivered right after."""
    return [Crash(index, k) for index in indices]


def reverse(n_deliveries: int) -> list[Perturbation]:
    return [Move(index, float(n_deliveries - 1 - index)) for index in range(n_deliveries)
            if n_deliveries - 1 - index != index]
