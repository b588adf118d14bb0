"""What waits to be delivered in `faasemu up`: a delivery row with its event (`Pending`), one function's
queue of them by due time (`DueQueue`), and how an attempt ended (`Settled`, `attempt_tags`).

Its own module because the bus (delivery/bus.py) and its batch delivery (delivery/batches.py) both
hand these around; neither owns them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faasemu.chaos.model import Inject
from faasemu.delivery.eventlog import DeliveryRow
from faasemu.workers.pool import Outcome

OVERLAP = "overlap"  # the tag of a `--overlap` copy's row


@dataclass(slots=True)
class Pending:
    """A delivery row and its event, queued, parked behind its order key, or in flight."""

    row: DeliveryRow
    event: dict[str, Any]
    claimed: tuple[str, str] | None = None  # the order key this row holds (Bus._claim), as it was then


@dataclass(slots=True)
class Settled:
    """How one attempt of a delivery ended, for its console line."""

    status: str  # ok | retry | dead | fail* | lost*
    attempt: int
    tags: list[str]
    ms: float
    outcome: Outcome | None


class DueQueue:
    """One function's deliveries, earliest `next_at` first, then in the order they were queued.

    Not by sequence number: the bus queues in acceptance order anyway, and live `--shuffle` queues
    in the seeded order it logs, which a re-sort by sequence number would quietly undo.
    """

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Pending]] = []
        self.changed = asyncio.Event()
        self._tiebreak = itertools.count()

    def push(self, item: Pending) -> None:
        heapq.heappush(self.heap, (item.row.next_at, next(self._tiebreak), item))
        self.changed.set()

    def __len__(self) -> int:
        return len(self.heap)

    def pop_ready(self, fits: Callable[[Pending], bool]) -> Pending | None:
        """The first queued delivery if it is due now and `fits`, else None (a batch takes what is
        waiting now: there is no batching window)."""
        if self.heap and self.heap[0][0] <= time.time() and fits(self.heap[0][-1]):
            return heapq.heappop(self.heap)[-1]
        return None

    async def pop_due(self) -> Pending:
        while True:
            wait: float | None = None
            if self.heap:
                wait = self.heap[0][0] - time.time()
                if wait <= 0:
                    return heapq.heappop(self.heap)[-1]
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), wait)
            except TimeoutError:
                pass


def attempt_tags(row: DeliveryRow, inject: Inject | None) -> list[str]:
    """What an attempt was, for its console line: the injected fault, a duplicate (and `--overlap`) copy, or
    a redelivery after injected chaos; nothing for a plain attempt."""
    if inject:
        return [inject]
    if row.copy:
        return ["duplicate", OVERLAP] if row.tags == OVERLAP else ["duplicate"]
    return ["redelivery"] if row.tags else []
