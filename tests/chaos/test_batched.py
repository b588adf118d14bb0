"""`Batched`: a delivery in the same SQS invocation as the step before it of its own function
(docs/verification.md#batches). Pure: `apply` gathers the batch, the runner cuts it at batch_size."""

from __future__ import annotations

import random

from faasemu.chaos.model import Batched, ChaosOptions, DeliveryRef, Fail, apply, generate

# Two functions on every event: canonical order a0 b1 a2 b3 a4 b5.
REFS = [DeliveryRef(f"e{i // 2}", "ab"[i % 2], i, i // 2) for i in range(6)]


def order(steps) -> list[tuple[int, bool]]:
    return [(s.ref.index, s.joins) for s in steps]


def test_a_batched_delivery_moves_up_past_other_functions_to_its_batch_mate() -> None:
    steps = apply(REFS, [Batched(2), Batched(4)])
    assert order(steps) == [(0, False), (2, True), (4, True), (1, False), (3, False), (5, False)]
    assert "batched" in steps[1].tags and "moved" not in steps[1].tags


def test_without_batched_nothing_changes_and_a_first_delivery_has_nothing_to_join() -> None:
    assert order(apply(REFS, [])) == [(i, False) for i in range(6)]
    assert [s.ref.index for s in apply(REFS, [Batched(0)])] == list(range(6))


def test_a_batch_never_joins_a_step_with_an_injected_failure() -> None:
    """a0 fails before its handler runs: a2 joins its redelivery, the attempt that really runs."""
    steps = apply(REFS, [Fail(0, 0.5), Batched(2)])
    assert [(s.ref.index, s.inject, s.joins) for s in steps][:4] == [
        (0, "fail", False), (0, None, False), (2, None, True), (1, None, False)]


def test_generate_draws_batches_only_for_batch_functions_and_keeps_other_streams() -> None:
    options = ChaosOptions(duplicates=0.1, shuffle=2)
    plain = generate(6, options, random.Random(3))
    none = generate(6, options, random.Random(3), batchable=[False] * 6)
    assert plain == none
    drawn = generate(6, options, random.Random(3), batchable=[i % 2 == 0 for i in range(6)])
    assert {p.ref_index for p in drawn if isinstance(p, Batched)} <= {0, 2, 4}
