"""Live chaos v2 (`chaos/live.py`): overlap decisions, and a shuffle buffer that keeps order keys in order."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from faasemu.chaos.live import LiveChaos, ShuffleBuffer
from faasemu.chaos.model import ChaosOptions

# sha256 of the release sequences and decisions below as the first live model (before order keys and
# overlaps) drew them: with no key and no --overlap, nothing may change for `up`'s users.
FIRST_MODEL = "e9b37c9d6f81087bbfb9ca39fa00c04a8679ae68128c7dccc2213a6734052a0e"


def fingerprint(keyword: bool) -> str:
    out: list[object] = []
    for window in (0, 1, 3, 7):
        buffer: ShuffleBuffer[int] = ShuffleBuffer(window, random.Random(f"9/{window}"))
        releases: list[list[int]] = [buffer.push(i, key=None) if keyword else buffer.push(i) for i in range(200)]
        releases.append(buffer.flush())
        out.append(releases)
    chaos = LiveChaos(ChaosOptions(duplicates=0.3, lost_ack=0.2, fail=0.2), 11)
    decisions = [chaos.decide(f"e-{i}", "fg"[i % 2]) for i in range(300)]
    assert not any(decision.overlap for decision in decisions)
    out.append([[decision.duplicate, decision.inject] for decision in decisions])
    return hashlib.sha256(json.dumps(out).encode()).hexdigest()


def test_without_keys_or_overlap_the_first_models_streams_are_unchanged() -> None:
    assert fingerprint(keyword=False) == FIRST_MODEL
    assert fingerprint(keyword=True) == FIRST_MODEL


def test_overlap_is_drawn_last_so_the_other_decisions_stay_the_same() -> None:
    base = ChaosOptions(duplicates=0.3, lost_ack=0.2, fail=0.2)
    with_overlap = ChaosOptions(duplicates=0.3, lost_ack=0.2, fail=0.2, overlap=0.5)
    for i in range(500):
        plain = LiveChaos(base, 4).decide(f"e-{i}", "f")
        more = LiveChaos(with_overlap, 4).decide(f"e-{i}", "f")
        assert (plain.duplicate, plain.inject) == (more.duplicate, more.inject)


def test_overlap_rate_never_with_fail_and_never_serial() -> None:
    chaos = LiveChaos(ChaosOptions(fail=0.3, overlap=0.4), 8)
    decisions = [chaos.decide(f"e-{i}", "f") for i in range(4000)]
    assert not any(d.overlap and d.inject == "fail" for d in decisions)
    unfailed = [d for d in decisions if d.inject != "fail"]
    assert 0.35 < sum(d.overlap for d in unfailed) / len(unfailed) < 0.45
    assert not any(chaos.decide(f"e-{i}", "f", serial=True).overlap for i in range(1000))
    assert chaos.decide("e-1", "f") == chaos.decide("e-1", "f")  # keyed by (seed, event, function)


def drive(window: int, seed: int, keys: list[str | None]) -> list[int]:
    """Push item i with keys[i]; the release order (flush at the end), checking the buffer's bounds on the way."""
    buffer: ShuffleBuffer[int] = ShuffleBuffer(window, random.Random(seed))
    released: list[int] = []
    for item, key in enumerate(keys):
        released += buffer.push(item, key)
        assert len(buffer) <= window
    released += buffer.flush()
    assert len(buffer) == 0
    return released


@pytest.mark.parametrize("window", [0, 1, 2, 5, 20])
def test_items_with_one_key_never_overtake_each_other(window: int) -> None:
    rng = random.Random(window)
    for seed in range(30):
        keys = [rng.choice(["a", "b", "c", None, None]) for _ in range(150)]
        released = drive(window, seed, keys)
        assert sorted(released) == list(range(len(keys)))
        for key in ("a", "b", "c"):
            of_key = [item for item in released if keys[item] == key]
            assert of_key == sorted(of_key)
        position = {item: at for at, item in enumerate(released)}
        for item in released:  # overtaken by at most W later items, keyed or not
            assert sum(1 for later in range(item + 1, len(keys)) if position[later] < position[item]) <= window


def test_keyed_items_are_still_shuffled_against_other_keys() -> None:
    keys: list[str | None] = [f"k{i % 2}" for i in range(200)]
    released = drive(5, 3, keys)
    assert released != sorted(released)  # different keys interleave
    assert [i for i in released if i % 2 == 0] == list(range(0, 200, 2))


def test_flush_keeps_keys_in_order() -> None:
    buffer: ShuffleBuffer[int] = ShuffleBuffer(50, random.Random(1))
    released: list[int] = []
    for item in range(40):
        released += buffer.push(item, "same")
    released += buffer.flush()
    assert released == list(range(40))
    assert buffer.flush() == []
