"""Cascades in the pure parts (docs/verification.md#cascades): parent before child in `apply`, a
dropped parent takes its children with it, broker ids, delivery paths, and emitted events as one
effect per (source, id), the first copy winning."""

from __future__ import annotations

import json
import re

import pytest

from faasemu.chaos.model import DeliveryRef, Duplicate, Fail, LostAck, Move, Overlap, apply
from faasemu.delivery.effects import EffectLog
from faasemu.verify.compare import Comparator, nondeterministic_columns
from faasemu.verify.model import Effects, EmittedEffect, RunResult, Snapshot
from faasemu.verify.cascade import broker_id, delivery_paths, read_emitted
from faasemu.verify.runner import Runner

# o-1 -> producer (0), o-2 -> producer (1); 0 emitted the event consumed by 2, which emitted the
# event consumed by 3 (a grandchild); 1 emitted the event consumed by 4.
REFS = [
    DeliveryRef("o-1", "producer", 0, 0),
    DeliveryRef("o-2", "producer", 1, 1),
    DeliveryRef("o-1>0", "consumer", 2, 2, parent=(0, 0)),
    DeliveryRef("o-1>0>0", "auditor", 3, 3, parent=(2, 0)),
    DeliveryRef("o-2>0", "consumer", 4, 4, parent=(1, 0)),
]


def order(steps) -> list[tuple[int, tuple[str, ...]]]:
    return [(s.ref.index, s.tags) for s in steps]


def test_the_baseline_is_canonical_then_downstream_in_join_order() -> None:
    assert [s.ref.index for s in apply(REFS, ())] == [0, 1, 2, 3, 4]


def test_a_child_never_runs_before_its_parent_and_is_not_tagged_moved_for_it() -> None:
    steps = apply(REFS, [Move(0, 4.5), Move(2, 0.0)])
    # keys: 1 at 1, 4 at 4, 0 at 4.5; 2 asked for 0 and 3 sits at 3, both clamped to 4.5, after 0
    assert [s.ref.index for s in steps] == [1, 4, 0, 2, 3]
    tags = dict(order(steps))
    assert tags[2] == ("moved",) and tags[3] == ()  # 3 moved along with its parent, not by a Move of its own


def test_ties_put_the_child_after_its_parent() -> None:
    steps = apply(REFS, [Move(0, 2.0)])  # the parent lands on its child's own key
    indices = [s.ref.index for s in steps]
    assert indices.index(0) < indices.index(2)


def test_a_failed_parent_runs_first_on_its_redelivery_so_the_child_waits_for_that() -> None:
    steps = apply(REFS, [Fail(0, redeliver_at=3.5)])
    indices = [(s.ref.index, s.inject) for s in steps]
    first_run = indices.index((0, None))  # the redelivery, after the injected fail
    assert indices.index((2, None)) > first_run and indices.index((3, None)) > first_run


def test_a_lost_ack_parent_ran_on_its_original_so_the_child_need_not_wait_for_the_redelivery() -> None:
    steps = apply(REFS, [LostAck(0, redeliver_at=4.5)])
    indices = [s.ref.index for s in steps]
    assert indices == [0, 1, 2, 3, 4, 0]


def test_an_overlapped_parent_keeps_its_pair_together_and_the_child_after_both() -> None:
    steps = apply(REFS, [Overlap(0), Move(2, 0.0)])
    assert [s.ref.index for s in steps[:3]] == [0, 0, 2] and steps[0].together


def test_dropping_a_parent_drops_its_children_and_their_perturbations() -> None:
    kept = [REFS[1], REFS[2], REFS[3], REFS[4]]  # 0 is gone: so are 2 and 3 (and 3's duplicate)
    steps = apply(kept, [Duplicate(3), Duplicate(4)])
    assert order(steps) == [(1, ()), (4, ()), (4, ("duplicate",))]


def test_a_childs_copy_may_land_anywhere_after_it_but_never_before_its_parent() -> None:
    steps = apply(REFS, [Move(0, 3.25), Duplicate(2, at=0.5)])
    indices = [s.ref.index for s in steps]
    assert indices.index(0) < indices.index(2) and indices.count(2) == 2


def test_broker_ids_are_new_per_attempt_and_the_same_for_the_same_seed() -> None:
    first = broker_id(11, "o-1", 1, 0)
    assert first == broker_id(11, "o-1", 1, 0)
    assert len({first, broker_id(11, "o-1", 2, 0), broker_id(11, "o-1", 1, 1), broker_id(12, "o-1", 1, 0),
                broker_id(11, "o-2", 1, 0)}) == 5
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", first)


def test_paths_name_the_function_only_when_an_event_reaches_several() -> None:
    refs = [DeliveryRef("a", "f", 0, 0), DeliveryRef("b", "f", 1, 1), DeliveryRef("b", "g", 2, 1),
            DeliveryRef("a", "f", 3, 2)]  # a file that repeats the id a
    assert delivery_paths(refs) == ["a:f", "b:f", "b:g", "a:f#2"]
    assert delivery_paths(refs[1:2]) == ["b"]


@pytest.mark.parametrize("body", [
    {"type": "invoice.requested", "source": "orders", "data": {"order": "o-1"}},
    [{"type": "invoice.requested", "source": "orders", "data": {"order": "o-1"}}],
])
def test_an_emitted_event_without_an_id_is_read_with_an_empty_one_and_the_delivery_time(body) -> None:
    [(event, readable)] = read_emitted(body, "1970-01-01T00:00:07Z")
    assert readable and event["id"] == "" and event["time"] == "1970-01-01T00:00:07Z"
    assert (event["type"], event["source"], event["data"]) == ("invoice.requested", "orders", {"order": "o-1"})


def test_an_unreadable_body_is_recorded_but_not_routable() -> None:
    [(_event, readable)] = read_emitted({"order": "o-1"}, "1970-01-01T00:00:07Z")
    assert not readable


def log_of(*bodies: dict) -> EffectLog:
    log = EffectLog()
    for body in bodies:
        log.record_emitted(json.dumps(body).encode())
    return log


def test_two_emissions_of_one_source_and_id_are_one_effect_the_first_copy_winning() -> None:
    one = {"id": "inv-1", "type": "invoice.requested", "source": "orders", "data": {"amount": 20}}
    again = {**one, "data": {"amount": 99}}
    effects = Runner._effects(log_of(one, again, {**one, "source": "billing"}))
    assert effects.emitted == (
        EmittedEffect("invoice.requested", "billing", '{"amount":20}', "inv-1"),
        EmittedEffect("invoice.requested", "orders", '{"amount":20}', "inv-1"),
    )


def test_events_without_an_id_and_without_cascades_still_count_per_call() -> None:
    event = {"type": "invoice.requested", "source": "orders", "data": {"amount": 20}}
    assert len(Runner._effects(log_of(event, event)).emitted) == 2


def run(*emitted: EmittedEffect) -> RunResult:
    return RunResult(Snapshot(), Effects((), tuple(sorted(emitted))))


def test_random_ids_are_masked_by_calibration_and_distinct_events_still_counted() -> None:
    def invoice(identity: str) -> EmittedEffect:
        return EmittedEffect("invoice.requested", "orders", '{"amount":20}', identity)

    first, second = run(invoice("uuid-1")), run(invoice("uuid-2"))
    comparator = Comparator(nondeterministic_columns(first, second))
    assert comparator.nondeterministic == {"emitted.invoice.requested"}
    assert not comparator.differs(first, second)
    twice = run(invoice("uuid-3"), invoice("uuid-4"))
    assert comparator.diff(first, twice) == {"emitted invoice.requested": [1, 2]}


def test_events_that_differ_only_by_id_are_told_apart_in_the_diff() -> None:
    a = run(EmittedEffect("invoice.requested", "orders", '{"amount":20}', "inv-1"))
    b = run(EmittedEffect("invoice.requested", "orders", '{"amount":20}', "inv-2"))
    assert Comparator().diff(a, b) == {'emitted invoice.requested orders id=inv-1 {"amount":20}': [1, 0],
                                       'emitted invoice.requested orders id=inv-2 {"amount":20}': [0, 1]}
