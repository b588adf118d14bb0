"""PURE: live chaos for `up`, where deliveries arrive one at a time and no schedule is known ahead.

The same model as `model.py` (docs/verification.md#live-chaos-in-up): per delivery `fail` with its probability,
else `lost-ack`, then a duplicate; `--shuffle W` with the same delay model as `model.generate`.
Time stays the caller's (the bus, docs/delivery.md#live-chaos-in-up), so this module has no clock.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faasemu.chaos.model import SCALE, ChaosOptions, Inject

LIVE_ALL_WINDOW = 1000  # `up --shuffle all`: a stream has no end, so "any order" is this many pending
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LiveDecision:
    duplicate: bool = False
    inject: Inject | None = None


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

    def decide(self, event_id: str, function: str) -> LiveDecision:
        rng = random.Random(f"{self.seed}/{event_id}/{function}")
        inject: Inject | None = None
        if rng.random() < self.options.fail:
            inject = "fail"
        elif rng.random() < self.options.lost_ack:
            inject = "lost-ack"
        return LiveDecision(duplicate=rng.random() < self.options.duplicates, inject=inject)

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
    """

    def __init__(self, window: int, rng: random.Random) -> None:
        if window < 0:
            raise ValueError(f"window must be 0 or more, got {window}")
        self.window = window
        self._rng = rng
        self._pending: list[tuple[int, int, T]] = []  # (key in 1/SCALE positions, arrival number, item)
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, item: T) -> list[T]:
        """Add an item; returns the items released now, in order (possibly none, possibly this one)."""
        seq = self._pushed
        self._pushed += 1
        heapq.heappush(self._pending, (seq * SCALE + self._rng.randrange((self.window + 1) * SCALE), seq, item))
        released = []
        while self._pending and self._pending[0][0] < (seq + 1) * SCALE:
            released.append(heapq.heappop(self._pending)[2])
        return released

    def held(self) -> list[T]:
        """The items pending now, in no particular order (the bus asks which deliveries it holds)."""
        return [entry[2] for entry in self._pending]

    def flush(self) -> list[T]:
        """Release everything pending, in its seeded order."""
        released = [entry[2] for entry in sorted(self._pending)]
        self._pending.clear()
        return released
