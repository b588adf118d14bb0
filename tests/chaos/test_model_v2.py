"""The chaos model v2 (issue 10): order keys, overlaps, crashes, copies on another instance.

Pure and exact: no processes. Property checks draw from seeded `random.Random` loops, so a failure
names its seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

import pytest

from faasemu.chaos.model import (
    CAMPAIGN_DEFAULTS,
    ChaosOptions,
    Crash,
    DeliveryRef,
    Duplicate,
    Fail,
    LostAck,
    Move,
    Overlap,
    Perturbation,
    Step,
    apply,
    canonical,
    crash_after,
    duplicate_right_after,
    generate,
    order_value,
    order_violations,
    overlap,
    perturb,
    reverse,
    select,
)
from faasemu.project.spec import FunctionSpec

# sha256 of `first_model_streams()` as the first model (before v2) computed it: with --overlap and
# --crash at 0, generation and schedules must be exactly what they were.
FIRST_MODEL = "5bb5e7c8ea2f53f405ad883fae498cb331cf1f2e51599ace47f1c2c24661e511"


def first_model_streams(steps: list[int] | None = None, serial: list[bool] | None = None) -> str:
    out: list[object] = []
    for shuffle in (0, 1, 5, "all"):
        options = ChaosOptions(duplicates=0.3, shuffle=shuffle, lost_ack=0.2, fail=0.2)
        for seed in range(40):
            n = 30
            baseline = [DeliveryRef(f"e-{i}", "fg"[i % 2], i, i) for i in range(n)]
            found = generate(n, options, random.Random(seed), steps=steps, serial=serial)
            schedule = apply(baseline, found)
            assert not any(isinstance(p, (Overlap, Crash)) or getattr(p, "other", False) for p in found)
            assert all((s.instance, s.crash_after, s.together) == (0, 0, False) for s in schedule)
            out.append([[type(p).__name__, p.ref_index, getattr(p, "to", None), getattr(p, "at", None),
                         getattr(p, "redeliver_at", None)] for p in found])
            out.append([[s.ref.index, s.copy, s.inject, list(s.tags)] for s in schedule])
    return hashlib.sha256(json.dumps(out).encode()).hexdigest()


def keyed(orders: list[str | None], functions: str = "f") -> list[DeliveryRef]:
    """Baseline delivery i of function functions[i % len] with order value orders[i] (None: unordered)."""
    return [DeliveryRef(f"e-{i}", functions[i % len(functions)], i, i, order, order is not None)
            for i, order in enumerate(orders)]


def plain(n: int, serial: bool = False) -> list[DeliveryRef]:
    return [DeliveryRef(f"e-{i}", "f", i, i, None, serial) for i in range(n)]


def shape(steps: list[Step]) -> list[tuple[int, int, tuple[str, ...]]]:
    return [(s.ref.index, s.copy, s.tags) for s in steps]


# --- compatibility ------------------------------------------------------------------------------------


def test_first_models_streams_are_unchanged_without_overlap_and_crash() -> None:
    assert first_model_streams() == FIRST_MODEL
    # step counts and serial flags only matter once a v2 option is on
    assert first_model_streams(steps=[3] * 30, serial=[True, False] * 15) == FIRST_MODEL


def test_old_constructors_stay_valid() -> None:
    ref = DeliveryRef("e", "f", 0, 0)
    assert (ref.order, ref.serial) == (None, False)
    assert Duplicate(0) == Duplicate(0, None, False) and Fail(0, 1.5) == Fail(0, 1.5, False)
    assert LostAck(0) == LostAck(0, None, False)
    assert Step(ref) == Step(ref, 0, None, (), 0, 0, False)


# --- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"overlap": 1.5}, "--overlap must be between 0 and 1, got 1.5"),
    ({"crash": -0.01}, "--crash must be between 0 and 1, got -0.01"),
    ({"crash": True}, "--crash must be between 0 and 1, got True"),
])
def test_new_options_are_validated_naming_the_flag(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ChaosOptions(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_new_options_in_defaults_active_and_flags() -> None:
    assert (CAMPAIGN_DEFAULTS.overlap, CAMPAIGN_DEFAULTS.crash) == (0.05, 0.05)
    assert ChaosOptions(overlap=0.1).active and ChaosOptions(crash=0.1).active and not ChaosOptions().active
    assert ChaosOptions(overlap=0.2, crash=0.3).flags() == ["--overlap", "0.2", "--crash", "0.3"]
    assert ChaosOptions(0.1, 5, 0.05, 0.05, 0.0, 0.05).flags(CAMPAIGN_DEFAULTS) == ["--overlap", "0.0"]


# --- canonical: order values and serial deliveries --------------------------------------------------


def test_order_value_walks_the_dotted_path() -> None:
    event = {"id": "1", "subject": "s-1", "data": {"order": 7, "customer": {"id": "c"}, "none": None, "x": [1]}}
    assert order_value(event, "subject") == '"s-1"'
    assert order_value(event, "data.order") == "7"
    assert order_value(event, "data.customer.id") == '"c"'
    assert order_value(event, "data.customer") == '{"id":"c"}'
    assert order_value(event, "data.x") == "[1]"
    assert order_value(event, "data.none") is None
    assert order_value(event, "data.missing") is None
    assert order_value(event, "data.order.deeper") is None  # through a number
    assert order_value(event, "data.x.0") is None  # lists are not walked
    assert order_value({"data": "text"}, "data.order") is None


def test_canonical_fills_order_and_serial() -> None:
    functions = [
        FunctionSpec("ordered", "app:h", "aws-lambda", events=("o",), order_key="data.order"),
        FunctionSpec("reserved", "app:h", "aws-lambda", events=("o",), concurrency=1, concurrency_set=True),
        FunctionSpec("scaled", "app:h", "aws-lambda", events=("o",), concurrency=1),
        FunctionSpec("wide", "app:h", "aws-lambda", events=("o",), concurrency=4, concurrency_set=True),
    ]
    events = [{"id": "a", "type": "o", "data": {"order": 1}}, {"id": "b", "type": "o", "data": {"order": "1"}},
              {"id": "c", "type": "o", "data": {}}, {"id": "d", "type": "o", "data": {"order": None}}]
    refs = canonical(events, functions)
    assert [(r.function, r.order, r.serial) for r in refs[:4]] == [
        ("ordered", "1", True), ("reserved", None, True), ("scaled", None, False), ("wide", None, False)]
    assert refs[4].order == '"1"'  # 1 and "1" are different keys
    assert [(r.order, r.serial) for r in refs if r.function == "ordered"][2:] == [(None, False), (None, False)]


# --- overlap ------------------------------------------------------------------------------------------


def test_overlap_starts_the_copy_together_on_another_instance() -> None:
    steps = apply(plain(3), [Overlap(1)])
    assert shape(steps) == [(0, 0, ()), (1, 0, ("overlap",)), (1, 1, ("duplicate", "overlap")), (2, 0, ())]
    assert [(s.together, s.instance) for s in steps] == [(False, 0), (True, 0), (False, 1), (False, 0)]
    assert order_violations(steps) == []


def test_nothing_sorts_between_an_overlap_and_its_copy() -> None:
    steps = apply(plain(4), [Overlap(1), Duplicate(1), Move(2, 1.0), Duplicate(0, 1.0), LostAck(1, 1.0)])
    at = next(i for i, s in enumerate(steps) if s.together)
    assert (steps[at].ref.index, steps[at + 1].ref.index, steps[at + 1].tags) == (1, 1, ("duplicate", "overlap"))
    assert steps[at].inject == "lost-ack" and steps[at].tags == ("lost-ack", "overlap")
    assert [s.copy for s in steps if s.ref.index == 1] == [0, 1, 2, 3]


def test_overlap_of_a_serial_delivery_is_ignored() -> None:
    assert apply(plain(2, serial=True), [Overlap(0)]) == apply(plain(2, serial=True), [])
    assert apply(keyed(["a", "a"]), [Overlap(1)]) == apply(keyed(["a", "a"]), [])


@pytest.mark.parametrize("other", [Fail(0), Crash(0, 1)])
def test_overlap_with_a_failure_before_the_end_is_a_contradiction(other: Perturbation) -> None:
    for items in ([Overlap(0), other], [other, Overlap(0)]):
        with pytest.raises(ValueError, match="delivery 0 is overlapped and has an injected"):
            apply(plain(2), items)
    with pytest.raises(ValueError, match="overlapped twice"):
        apply(plain(2), [Overlap(0), Overlap(0)])


# --- crash and other instances --------------------------------------------------------------------


def test_crash_is_an_injected_failure_with_its_step_and_one_redelivery() -> None:
    steps = apply(plain(3), [Crash(0, 2, 1.5)])
    assert shape(steps) == [(0, 0, ("crash after step 2",)), (1, 0, ()), (0, 1, ("redelivery",)), (2, 0, ())]
    assert (steps[0].inject, steps[0].crash_after) == ("crash", 2)
    assert steps[2].instance == 0  # a fresh primary replaces the crashed one
    assert shape(apply(plain(2), [Crash(1, 1)]))[1:] == [(1, 0, ("crash after step 1",)), (1, 1, ("redelivery",))]


def test_crash_contradictions() -> None:
    contradictions: list[list[Perturbation]] = [[Crash(0, 1), Fail(0)], [LostAck(0), Crash(0, 1)],
                                                [Crash(0, 1), Crash(0, 2)]]
    for items in contradictions:
        with pytest.raises(ValueError, match="two injected failures"):
            apply(plain(1), items)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        Crash(0, 0)


def test_copies_on_another_instance() -> None:
    steps = apply(plain(3), [Duplicate(0, None, True), Fail(1, 1.5, True), LostAck(2, None, True)])
    copies = [(s.ref.index, s.tags, s.instance) for s in steps if s.copy]
    assert copies == [(0, ("duplicate", "other instance"), 1), (1, ("redelivery", "other instance"), 1),
                      (2, ("redelivery", "other instance"), 1)]


def test_shape_helpers_and_select() -> None:
    assert duplicate_right_after([1, 2]) == [Duplicate(1), Duplicate(2)]
    assert duplicate_right_after([1], other=True) == [Duplicate(1, None, True)]
    assert overlap([0, 3]) == [Overlap(0), Overlap(3)]
    assert crash_after([2, 4], 3) == [Crash(2, 3), Crash(4, 3)]
    baseline = keyed([None] * 4, "fg")
    items: list[Perturbation] = [Overlap(0), Crash(1, 1), Duplicate(2), Move(3, 0.5)]
    assert select(items, baseline, {"g"}) == [Crash(1, 1), Move(3, 0.5)]


# --- order keys -----------------------------------------------------------------------------------


def test_same_key_originals_keep_canonical_order_and_keep_their_slots() -> None:
    baseline = keyed(["a", None, "a", "b"])
    steps = apply(baseline, [Move(0, 3.5)])  # a0 wants to pass a2: it takes a2's slot and a2 takes its key
    assert [s.ref.index for s in steps] == [1, 0, 3, 2]
    assert order_violations(steps) == []
    # an unordered delivery and another key still move freely across them
    assert [s.ref.index for s in apply(baseline, [Move(1, 2.5), Move(3, -1.0)])] == [3, 0, 2, 1]


def test_a_copy_comes_before_the_next_same_key_delivery() -> None:
    baseline = keyed(["a", None, "a", None])
    steps = apply(baseline, [Duplicate(0, 3.5), LostAck(2, 3.5)])
    assert shape(steps) == [(0, 0, ()), (1, 0, ()), (0, 1, ("duplicate",)), (2, 0, ("lost-ack",)), (3, 0, ()),
                            (2, 1, ("redelivery",))]
    # at exactly the next original's key, the tie breaks by canonical index: the copy first
    tied = apply(keyed(["a", "a"]), [Fail(0, 1.0)])
    assert shape(tied) == [(0, 0, ("fail",)), (0, 1, ("redelivery",)), (1, 0, ())]
    crashed = apply(keyed(["a", "b", "a"]), [Crash(0, 1, 2.5)])
    assert [s.ref.index for s in crashed] == [0, 1, 0, 2]


def test_different_functions_and_values_are_different_groups() -> None:
    baseline = keyed(["a", "a", "a", "a"], functions="fg")  # f: 0, 2 and g: 1, 3
    steps = apply(baseline, [Move(0, 1.5)])
    assert [s.ref.index for s in steps] == [1, 0, 2, 3]
    assert order_violations(apply(baseline, [Move(2, 0.5)])) == []  # f's 2 is held behind f's 0
    assert [s.ref.index for s in apply(baseline, [Move(2, 0.5)])][:2] == [0, 2]


def test_reverse_of_a_keyed_baseline_reverses_only_across_keys() -> None:
    baseline = keyed(["a", "b", "a", "b", None])
    steps = apply(baseline, reverse(5))
    assert [s.ref.index for s in steps] == [4, 1, 0, 3, 2]
    assert order_violations(steps) == []


def test_serial_deliveries_drop_their_overlaps_and_are_otherwise_scheduled_alike() -> None:
    rng = random.Random(5)
    for seed in range(50):
        found = generate(20, CAMPAIGN_DEFAULTS, random.Random(seed), steps=[rng.randint(0, 3) for _ in range(20)])
        serial = [DeliveryRef(f"e-{i}", "f", i, i, None, True) for i in range(20)]
        unkeyed = apply(plain(20), [p for p in found if not isinstance(p, Overlap)])
        assert [(s.ref.index, s.copy, s.tags) for s in apply(serial, found)] == shape(unkeyed)


def test_order_violations_finds_illegal_schedules() -> None:
    a0, b1, a2 = keyed(["a", "b", "a"])
    assert order_violations([Step(a0), Step(b1), Step(a2)]) == []
    assert order_violations([Step(a2), Step(a0)]) == [
        "step 1: delivery 0 (original) of f comes after delivery 2, a later delivery with the same order value a"]
    assert order_violations([Step(a0), Step(a2), Step(a0, 1, tags=("redelivery",))]) == [
        "step 2: delivery 0 (copy 1) of f comes after delivery 2, a later delivery with the same order value a"]
    unkeyed = DeliveryRef("e-3", "f", 3, 3)
    assert order_violations([Step(unkeyed, together=True), Step(unkeyed, 1, instance=1)]) == []
    assert len(order_violations([Step(a0, together=True), Step(a0, 1, instance=1)])) == 1
    assert len(order_violations([Step(unkeyed, together=True), Step(a0)])) == 1
    assert len(order_violations([Step(unkeyed, together=True)])) == 1


# --- random schedules ---------------------------------------------------------------------------------

V2 = ChaosOptions(duplicates=0.3, shuffle=5, lost_ack=0.2, fail=0.2, overlap=0.3, crash=0.3)


@pytest.mark.parametrize("shuffle", [1, 5, "all"])
def test_random_perturbations_of_random_keyed_baselines_are_always_legal(shuffle: int | str) -> None:
    options = ChaosOptions(duplicates=0.3, shuffle=shuffle, lost_ack=0.2, fail=0.2, overlap=0.3, crash=0.3)  # type: ignore[arg-type]
    for seed in range(150):
        rng = random.Random(seed)
        n = rng.randint(1, 40)
        values = [None, "a", "b", "c"][: rng.randint(1, 4)]
        baseline = keyed([rng.choice(values) for _ in range(n)], functions="fg"[: rng.randint(1, 2)])
        steps = [rng.randint(0, 4) for _ in range(n)]
        found = generate(n, options, random.Random(seed), steps=steps, serial=[r.serial for r in baseline])
        assert order_violations(apply(baseline, found)) == [], seed
        kept = [ref for ref in baseline if rng.random() < 0.7]  # shrinking: drop deliveries and perturbations
        subset = [p for p in found if rng.random() < 0.7]
        assert order_violations(apply(kept, subset)) == [], seed


def test_hand_made_perturbations_with_any_keys_are_legal() -> None:
    for seed in range(300):
        rng = random.Random(seed)
        n = rng.randint(2, 25)
        baseline = keyed([rng.choice([None, "a", "b"]) for _ in range(n)], functions="fg"[: rng.randint(1, 2)])
        items: list[Perturbation] = []
        for index in range(n):
            if rng.random() < 0.6:
                items.append(Move(index, rng.uniform(-2, n + 2)))
            if rng.random() < 0.5:
                items.append(Duplicate(index, rng.choice([None, rng.uniform(-2, n + 2)]), rng.random() < 0.5))
            kind = rng.randrange(4)
            at = rng.choice([None, rng.uniform(-2, n + 2)])
            hits: list[Perturbation] = [Fail(index, at), LostAck(index, at), Crash(index, rng.randint(1, 3), at),
                                        Overlap(index)]
            items.append(hits[kind])
        rng.shuffle(items)
        schedule = apply(baseline, items)
        assert order_violations(schedule) == [], seed
        assert Counter(s.ref.index for s in schedule if s.copy == 0) == Counter(range(n))


def test_generate_v2_rules() -> None:
    n = 400
    serial = [i % 4 == 0 for i in range(n)]
    steps = [i % 5 for i in range(n)]
    counts: Counter[str] = Counter()
    others: Counter[bool] = Counter()
    for seed in range(10):
        found = generate(n, V2, random.Random(seed), steps=steps, serial=serial)
        assert found == generate(n, V2, random.Random(seed), steps=steps, serial=serial)
        by_index: dict[int, list[Perturbation]] = {}
        for item in found:
            by_index.setdefault(item.ref_index, []).append(item)
            counts[type(item).__name__] += 1
            if isinstance(item, (Duplicate, Fail, LostAck)):
                others[item.other] += 1
            if isinstance(item, Crash):
                assert 1 <= item.after <= steps[item.ref_index] - 1
                assert item.redeliver_at is not None
        for index, items in by_index.items():
            kinds = {type(item) for item in items}
            if Overlap in kinds:
                assert not serial[index] and not kinds & {Fail, Crash}
            assert len(kinds & {Fail, LostAck, Crash}) <= 1
        apply(plain(n), found)  # never contradictory
    assert counts["Overlap"] > 0 and counts["Crash"] > 0
    assert 0.4 < others[True] / sum(others.values()) < 0.6
    # no step count known, or a single step: no crash (after the last step it would be a lost ack)
    assert not any(isinstance(p, Crash) for p in generate(n, V2, random.Random(1)))
    assert not any(isinstance(p, Crash) for p in generate(n, V2, random.Random(1), steps=[1] * n))


def test_perturb_takes_serial_from_the_baseline() -> None:
    baseline = plain(200, serial=True)
    found, steps = perturb(baseline, ChaosOptions(overlap=0.5), seed=3)
    assert found == [] and not any(s.together for s in steps)
    found, steps = perturb(plain(200), ChaosOptions(overlap=0.5), seed=3)
    assert found and sum(s.together for s in steps) == len(found)
    found, _ = perturb(plain(50), ChaosOptions(crash=0.5), seed=3, steps=[3] * 50)
    assert found and all(isinstance(p, Crash) for p in found)
