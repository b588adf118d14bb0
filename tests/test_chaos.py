from __future__ import annotations

import random
from collections import Counter

import pytest

from faasemu.chaos.live import LiveChaos, ShuffleBuffer
from faasemu.chaos.model import (
    CAMPAIGN_DEFAULTS,
    ChaosOptions,
    DeliveryRef,
    Duplicate,
    Fail,
    LostAck,
    Move,
    Perturbation,
    Step,
    apply,
    canonical,
    describe,
    duplicate_at_end,
    duplicate_right_after,
    generate,
    new_seed,
    parse_shuffle,
    perturb,
    reverse,
    select,
)
from faasemu.delivery.policy import Attempts
from faasemu.project.spec import FunctionSpec


def refs(n: int, functions: tuple[str, ...] = ("f",)) -> list[DeliveryRef]:
    return [DeliveryRef(f"e-{i}", functions[i % len(functions)], i, i) for i in range(n)]


def attempt_numbers(steps: list[Step]) -> list[int]:
    """The attempt each step's handler sees when every handler returns: the delivery policy's numbering
    (chaos.attempt_numbers, which said the same for these schedules, is gone: nothing used it)."""
    attempts = Attempts()
    return [attempts.next(step.ref.event_id, step.ref.function) for step in steps]


def order(steps: list[Step]) -> list[int]:
    return [step.ref.index for step in steps]


def originals(steps: list[Step]) -> list[int]:
    return [step.ref.index for step in steps if step.copy == 0]


def check_valid(baseline: list[DeliveryRef], perturbations: list[Perturbation], steps: list[Step]) -> None:
    """The invariants every schedule keeps, whatever subset of perturbations produced it."""
    kept = {ref.index for ref in baseline}
    assert sorted(originals(steps)) == sorted(kept)  # each delivery exactly once as an original
    first: dict[int, int] = {}
    for position, step in enumerate(steps):
        first.setdefault(step.ref.index, position)
        assert (step.copy == 0) == (first[step.ref.index] == position)  # copies come after their original
        if step.copy:
            assert step.inject is None and step.tags in (("duplicate",), ("redelivery",))
    live = [p for p in perturbations if p.ref_index in kept]
    by_ref = Counter(step.ref.index for step in steps)
    of_ref: dict[int, list[Step]] = {}
    for step in steps:
        of_ref.setdefault(step.ref.index, []).append(step)
    for item in live:
        original, *copies = of_ref[item.ref_index]
        if isinstance(item, Duplicate):
            assert any(s.tags == ("duplicate",) for s in copies)
        elif isinstance(item, (Fail, LostAck)):
            assert original.inject == ("fail" if isinstance(item, Fail) else "lost-ack")
            assert [s.tags for s in copies].count(("redelivery",)) == 1
        elif item.to != item.ref_index:
            assert "moved" in original.tags
    extras = Counter(p.ref_index for p in live if not isinstance(p, Move))
    assert all(by_ref[index] == 1 + extras[index] for index in kept)


# --- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duplicates": 1.5}, "--duplicates must be between 0 and 1, got 1.5"),
        ({"lost_ack": -0.1}, "--lost-ack must be between 0 and 1, got -0.1"),
        ({"fail": float("nan")}, "--fail must be between 0 and 1, got nan"),
        ({"fail": True}, "--fail must be between 0 and 1, got True"),
        ({"shuffle": -1}, "--shuffle must be a number of positions (0 or more) or 'all', got -1"),
        ({"shuffle": "some"}, "--shuffle must be a number of positions (0 or more) or 'all', got 'some'"),
    ],
)
def test_option_validation_names_the_flag(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        ChaosOptions(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_options_defaults_flags_and_parsing() -> None:
    assert CAMPAIGN_DEFAULTS == ChaosOptions(duplicates=0.1, shuffle=5, lost_ack=0.05, fail=0.05, overlap=0.05,
                                             crash=0.05)
    assert not ChaosOptions().active and CAMPAIGN_DEFAULTS.active and ChaosOptions(shuffle="all").active
    assert ChaosOptions(duplicates=0.3, shuffle="all").flags() == ["--duplicates", "0.3", "--shuffle", "all"]
    assert ChaosOptions(0.1, 5, 0.05, 0.2, 0.05, 0.05).flags(CAMPAIGN_DEFAULTS) == ["--fail", "0.2"]
    assert parse_shuffle("all") == "all" and parse_shuffle("7") == 7
    with pytest.raises(ValueError, match="--shuffle"):
        parse_shuffle("-2")
    with pytest.raises(ValueError, match="--shuffle"):
        parse_shuffle("many")


def test_new_seed_is_positive_and_fits_31_bits() -> None:
    assert all(1 <= new_seed() < 2**31 for _ in range(100))


# --- the model: apply ----------------------------------------------------------------------------


def test_null_options_give_the_baseline_exactly() -> None:
    baseline = refs(50)
    perturbations, steps = perturb(baseline, ChaosOptions(), seed=1)
    assert perturbations == [] and steps == [Step(ref) for ref in baseline]


def test_docstring_example() -> None:
    steps = apply(refs(3), [Move(0, 1.5), Duplicate(1), Fail(2, 2.5)])
    assert [(s.ref.index, s.copy, s.inject, describe(s)) for s in steps] == [
        (1, 0, None, ""), (1, 1, None, "duplicate"), (0, 0, None, "moved"),
        (2, 0, "fail", "fail"), (2, 1, None, "redelivery"),
    ]
    assert attempt_numbers(steps) == [1, 2, 1, 1, 2]


def test_copies_are_clamped_after_their_original() -> None:
    # the copy's slot (0.5) is before where its original moved (3.2): it goes right after the original
    steps = apply(refs(5), [Move(0, 3.2), Duplicate(0, 0.5)])
    assert order(steps) == [1, 2, 3, 0, 0, 4]
    # without the move the same duplicate is meaningful on its own
    assert order(apply(refs(5), [Duplicate(0, 0.5)])) == [0, 0, 1, 2, 3, 4]


def test_injection_and_duplicate_of_one_delivery() -> None:
    steps = apply(refs(4), [LostAck(1, 3.5), Duplicate(1, 1.5)])
    assert [(s.ref.index, s.copy, s.inject, s.tags) for s in steps] == [
        (0, 0, None, ()), (1, 0, "lost-ack", ("lost-ack",)), (1, 1, None, ("duplicate",)),
        (2, 0, None, ()), (3, 0, None, ()), (1, 2, None, ("redelivery",)),
    ]
    assert attempt_numbers(steps) == [1, 1, 2, 1, 1, 3]


def test_contradictions_raise() -> None:
    with pytest.raises(ValueError, match="moved twice"):
        apply(refs(3), [Move(0, 1.5), Move(0, 2.5)])
    with pytest.raises(ValueError, match="two injected failures"):
        apply(refs(3), [Fail(0), LostAck(0)])
    with pytest.raises(ValueError, match="index 0"):
        apply(refs(1) + refs(1), [])


def test_perturbations_of_removed_deliveries_are_ignored() -> None:
    baseline = [ref for ref in refs(4) if ref.index != 2]
    steps = apply(baseline, [Duplicate(2), Fail(1, 3.5), Move(3, 0.5)])
    assert order(steps) == [0, 3, 1, 1] and steps[2].inject == "fail"


def test_systematic_shapes() -> None:
    baseline = refs(3)
    assert order(apply(baseline, duplicate_right_after(range(3)))) == [0, 0, 1, 1, 2, 2]
    assert order(apply(baseline, duplicate_at_end(range(3), 3))) == [0, 1, 2, 0, 1, 2]
    assert order(apply(baseline, duplicate_at_end([2, 0], 3))) == [0, 1, 2, 0, 2]
    assert order(apply(refs(5), reverse(5))) == [4, 3, 2, 1, 0]
    assert order(apply(refs(4), reverse(4))) == [3, 2, 1, 0]
    # "right after" stays right after even when the original moved (here: reversed)
    assert order(apply(refs(3), reverse(3) + duplicate_right_after([0]))) == [2, 1, 0, 0]


def test_canonical_is_file_order_then_manifest_order_and_repeats_stay_distinct() -> None:
    functions = [
        FunctionSpec(name="b", handler="b.py:h", runtime="aws-lambda", events=("order.*",)),
        FunctionSpec(name="a", handler="a.py:h", runtime="aws-lambda", events=("*",)),
    ]
    events = [{"id": "x", "type": "order.created"}, {"id": "y", "type": "user.new"},
              {"id": "x", "type": "order.created"}]
    baseline = canonical(events, functions)
    assert [(r.event_id, r.function, r.index, r.event_index) for r in baseline] == [
        ("x", "b", 0, 0), ("x", "a", 1, 0), ("y", "a", 2, 1), ("x", "b", 3, 2), ("x", "a", 4, 2),
    ]
    assert select([Duplicate(0), Move(1, 3.5), Fail(3)], baseline, {"b"}) == [Duplicate(0), Fail(3)]


# --- random schedules ----------------------------------------------------------------------------


def test_same_seed_same_schedule_and_different_seeds_differ() -> None:
    baseline = refs(200)
    first = perturb(baseline, CAMPAIGN_DEFAULTS, seed=7)
    assert first == perturb(baseline, CAMPAIGN_DEFAULTS, seed=7)
    assert first[1] != perturb(baseline, CAMPAIGN_DEFAULTS, seed=8)[1]
    assert generate(200, CAMPAIGN_DEFAULTS, random.Random(3)) == generate(200, CAMPAIGN_DEFAULTS, random.Random(3))


def test_generation_uses_only_the_given_rng() -> None:
    random.seed(1)
    a = generate(100, CAMPAIGN_DEFAULTS, random.Random(5))
    random.seed(2)
    assert generate(100, CAMPAIGN_DEFAULTS, random.Random(5)) == a


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicate_rate(seed: int) -> None:
    found = generate(10_000, ChaosOptions(duplicates=0.2), random.Random(seed))
    assert all(isinstance(p, Duplicate) for p in found)
    assert 1800 <= len(found) <= 2200
    assert len({p.ref_index for p in found}) == len(found)  # at most one copy per delivery


@pytest.mark.parametrize("seed", [1, 2])
def test_fail_and_lost_ack_rates(seed: int) -> None:
    found = generate(10_000, ChaosOptions(fail=0.1, lost_ack=0.2), random.Random(seed))
    kinds = Counter(type(p) for p in found)
    assert 900 <= kinds[Fail] <= 1100
    assert 1620 <= kinds[LostAck] <= 1980  # lost-ack hits the deliveries not failed: 0.9 * 0.2
    assert len({p.ref_index for p in found}) == len(found)  # one attempt fails one way


@pytest.mark.parametrize("window", [1, 2, 5, 17])
def test_shuffle_never_moves_an_original_more_than_w(window: int) -> None:
    """Among the originals (copy 0, i.e. without duplicates and redeliveries), delivery i sits
    within W positions of i."""
    options = ChaosOptions(duplicates=0.3, shuffle=window, lost_ack=0.1, fail=0.1)
    baseline = refs(3000)
    for seed in range(3):
        perturbations, steps = perturb(baseline, options, seed)
        displacement = [abs(position - index) for position, index in enumerate(originals(steps))]
        assert max(displacement) <= window
        if window <= 5:
            assert max(displacement) == window  # the bound is reached, so it is the tight one
        check_valid(baseline, perturbations, steps)


def test_shuffle_one_does_swap_neighbours() -> None:
    _, steps = perturb(refs(1000), ChaosOptions(shuffle=1), seed=4)
    swapped = sum(1 for a, b in zip(originals(steps), originals(steps)[1:]) if a > b)
    assert 100 < swapped < 300  # P(u_i - u_{i+1} > 1) = 1/8 for u uniform in [0, 2)


def test_shuffle_all_is_any_permutation() -> None:
    firsts = Counter(originals(perturb(refs(3), ChaosOptions(shuffle="all"), seed)[1])[0] for seed in range(3000))
    assert all(900 <= firsts[i] <= 1100 for i in range(3))
    _, steps = perturb(refs(100), ChaosOptions(shuffle="all"), seed=1)
    assert max(abs(position - index) for position, index in enumerate(originals(steps))) > 50


@pytest.mark.parametrize("seed", range(5))
def test_every_injected_failure_is_followed_by_exactly_one_redelivery(seed: int) -> None:
    baseline = refs(1000)
    perturbations, steps = perturb(baseline, ChaosOptions(duplicates=0.3, shuffle=3, lost_ack=0.2, fail=0.2), seed)
    check_valid(baseline, perturbations, steps)
    for position, step in enumerate(steps):
        if step.inject:
            later = [s for s in steps[position + 1:] if s.ref.index == step.ref.index]
            assert [s.tags for s in later].count(("redelivery",)) == 1
            assert all(s.inject is None for s in later)  # a redelivery is never failed again
    assert all(n <= 3 for n in Counter(order(steps)).values())  # original, one redelivery, one copy


def test_removing_any_subset_of_perturbations_or_deliveries_stays_valid() -> None:
    baseline = refs(300)
    perturbations, _ = perturb(baseline, ChaosOptions(duplicates=0.3, shuffle=4, lost_ack=0.1, fail=0.1), seed=11)
    rng = random.Random(0)
    for _ in range(50):
        subset = [p for p in perturbations if rng.random() < 0.5]
        kept = [ref for ref in baseline if rng.random() < 0.8]
        check_valid(kept, subset, apply(kept, subset))
    for item in perturbations[:40]:  # single removals, as shrinking does
        rest = [p for p in perturbations if p is not item]
        check_valid(baseline, rest, apply(baseline, rest))


def test_removing_one_perturbation_leaves_the_others_in_place() -> None:
    baseline = refs(10)
    perturbations = [Move(2, 6.3), Duplicate(4, 8.5), Fail(7, 9.5)]
    assert order(apply(baseline, perturbations)) == [0, 1, 3, 4, 5, 6, 2, 7, 8, 4, 9, 7]
    assert order(apply(baseline, perturbations[1:])) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 4, 9, 7]
    assert order(apply(baseline, perturbations[:1] + perturbations[2:])) == [0, 1, 3, 4, 5, 6, 2, 7, 8, 9, 7]


# --- live chaos ----------------------------------------------------------------------------------


def test_live_decisions_are_reproducible_and_independent_of_arrival_order() -> None:
    options = ChaosOptions(duplicates=0.3, lost_ack=0.2, fail=0.1)
    keys = [(f"e-{i}", f"fn-{i % 3}") for i in range(300)]
    first = {key: LiveChaos(options, 42).decide(*key) for key in keys}
    chaos = LiveChaos(options, 42)
    assert {key: chaos.decide(*key) for key in reversed(keys)} == first
    assert {key: LiveChaos(options, 43).decide(*key) for key in keys} != first


def test_live_decision_rates() -> None:
    chaos = LiveChaos(ChaosOptions(duplicates=0.2, lost_ack=0.1, fail=0.1), seed=9)
    decisions = [chaos.decide(f"e-{i}", "fn") for i in range(10_000)]
    assert 1800 <= sum(d.duplicate for d in decisions) <= 2200
    injects = Counter(d.inject for d in decisions)
    assert 900 <= injects["fail"] <= 1100 and 810 <= injects["lost-ack"] <= 990
    quiet = LiveChaos(ChaosOptions(), seed=9)
    assert all(quiet.decide(f"e-{i}", "fn") == quiet.decide("x", "y") for i in range(100))
    assert not quiet.decide("x", "y").duplicate and quiet.decide("x", "y").inject is None


@pytest.mark.parametrize("window", [0, 1, 3, 10])
def test_shuffle_buffer_holds_at_most_w_and_moves_items_at_most_w(window: int) -> None:
    buffer: ShuffleBuffer[int] = ShuffleBuffer(window, random.Random(5))
    released: list[int] = []
    for item in range(2000):
        released += buffer.push(item)
        assert len(buffer) <= window
    released += buffer.flush()
    assert len(buffer) == 0 and sorted(released) == list(range(2000))
    assert max(abs(position - item) for position, item in enumerate(released)) <= window
    if window:
        assert released != sorted(released)
    else:
        assert released == list(range(2000))


def test_shuffle_buffer_is_seeded() -> None:
    def run(seed: int) -> list[list[int]]:
        buffer: ShuffleBuffer[int] = ShuffleBuffer(4, random.Random(seed))
        return [buffer.push(i) for i in range(50)] + [buffer.flush()]

    assert run(1) == run(1) and run(1) != run(2)
    live = LiveChaos(ChaosOptions(shuffle=3), 8)
    a, b = live.shuffle_buffer(), live.shuffle_buffer()
    assert [a.push(i) for i in range(30)] == [b.push(i) for i in range(30)]
    assert LiveChaos(ChaosOptions(shuffle="all"), 1).window == 1000
    with pytest.raises(ValueError):
        ShuffleBuffer(-1, random.Random(0))
