"""PURE: live chaos for `up`, where deliveries arrive one at a time and no schedule is known ahead.

The same model as `model.py` (docs/verification.md#live-chaos-in-up): per delivery `fail` with its probability,
else `lost-ack`, then a duplicate, then an overlap; `--shuffle W` with the same delay model as `model.generate`,
keeping deliveries of one order key in arrival order.
Time stays the caller's (the bus, docs/delivery.md#live-chaos-in-up), so this module has no clock.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faasemu.chaos.model import SCALE, ChaosOptions, Inject

LIVE_ALL_WINDOW = 1000  # `up --shuffle all`: a stream has no end, so "any order" is this many pending
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LiveDecision:
    """`overlap`: a copy starts together with the delivery on a second worker (never with `fail`)."""

    duplicate: bool = False
    inject: Inject | None = None
    overlap: bool = False


class LiveChaos:
    """Decisions for `up --duplicates/--fail/--lost-ack/--shuffle --seed S`.

    Each decision draws from a generator seeded by (seed, event id, function), not from one
    shared stream: deliveries arrive in whatever order HTTP clients and workers produce, and a
    keyed draw makes the same events get the same chaos under the same seed anyway. Call
    `decide` once per delivery, not for its retries or injected redeliveries (never failed again).
    """

    def __init__(self, options: ChaosOptions, seed: int) -> None:
        self.options = options
        self.seed = seed

    def decide(self, event_id: str, function: str, serial: bool = False) -> LiveDecision:
        """`serial`: the delivery is never overlapped (`concurrency: 1`, or an order value).
        The overlap is drawn last and only with `--overlap`, so other streams are unchanged."""
        rng = random.Random(f"{self.seed}/{event_id}/{function}")
        inject: Inject | None = None
        if rng.random() < self.options.fail:
            inject = "fail"
        elif rng.random() < self.options.lost_ack:
            inject = "lost-ack"
        duplicate = rng.random() < self.options.duplicates
        overlap = (self.options.overlap > 0 and not serial and inject != "fail"
                   and rng.random() < self.options.overlap)
        return LiveDecision(duplicate=duplicate, inject=inject, overlap=overlap)

    @property
    def window(self) -> int:
        shuffle = self.options.shuffle
        return LIVE_ALL_WINDOW if shuffle == "all" else shuffle

    def shuffle_buffer(self) -> ShuffleBuffer[Any]:
        return ShuffleBuffer(self.window, random.Random(f"{self.seed}/shuffle"))


class ShuffleBuffer(Generic[T]):
    """Holds at most `window` pending items and releases them in a seeded order.

    The same delay model as `generate`: item number s gets key s + a uniform [0, W+1) delay and
    is released once no later item can sort before it, so no item is overtaken by more than W
    later ones and at most W stay pending. Time is the caller's: `up` flushes when the oldest
    pending item has waited one second (docs/delivery.md#live-chaos-in-up), keeping this class pure.

    Items pushed with the same `key` (an order value) never overtake each other: an item's sort key
    is raised to its pending predecessor's, and ties release in arrival order. The raised key stays
    below the predecessor's bound, itself below this item's, so both properties above still hold.
    """

    def __init__(self, window: int, rng: random.Random) -> None:
        if window < 0:
            raise ValueError(f"window must be 0 or more, got {window}")
        self.window = window
        self._rng = rng
        self._pending: list[tuple[int, int, T, Hashable | None]] = []  # (key in 1/SCALE, arrival, item, order key)
        self._last: dict[Hashable, tuple[int, int]] = {}  # order key -> (sort key, arrival) of its latest pending item
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, item: T, key: Hashable | None = None) -> list[T]:
        """Add an item; returns the items released now, in order (possibly none, possibly this one).
        Items with the same non-None `key` are released in the order they were pushed."""
        seq = self._pushed
        self._pushed += 1
        sort_key = seq * SCALE + self._rng.randrange((self.window + 1) * SCALE)  # drawn whatever the key
        if key is not None:
            if key in self._last:
                sort_key = max(sort_key, self._last[key][0])
            self._last[key] = (sort_key, seq)
        heapq.heappush(self._pending, (sort_key, seq, item, key))
        released = []
        while self._pending and self._pending[0][0] < (seq + 1) * SCALE:
            released.append(self._release(heapq.heappop(self._pending)))
        return released

    def _release(self, entry: tuple[int, int, T, Hashable | None]) -> T:
        _sort_key, seq, item, key = entry
        if key is not None and self._last.get(key, (0, -1))[1] == seq:
            del self._last[key]  # nothing of this key is pending: a later one draws freely
        return item

    def held(self) -> list[T]:
        """The items pending now, in no particular order (the bus asks which deliveries it holds)."""
        return [entry[2] for entry in self._pending]

    def flush(self) -> list[T]:
        """Release everything pending, in its seeded order."""
        released = [entry[2] for entry in sorted(self._pending, key=lambda entry: entry[:2])]
        self._pending.clear()
        self._last.clear()
        return released
