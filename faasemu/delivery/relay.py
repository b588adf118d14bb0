"""Moving captured table changes into the bus's durable log, at least once (`faasemu up`).

A trigger's change is captured in the state database, in the writer's own transaction
(project/capture_sqlite.py, project/capture_postgres.py). The relay reads what is captured, stores
each change as an event with a delivery to the trigger's webhook (`Bus.publish`, committed to
`.faasemu/events.db`), and only then forgets it in the state database. A crash between the two
reads it again: the event log already knows its id, so it is not stored twice, and if the log's
commit was lost it is stored then. No change is lost, as Hasura's event log promises
(docs/delivery.md#triggers).

It polls, ten times a second when idle (SQLite has no notification; Hasura polls its event log the
same way, every second by default), and at once when `poke`d after a delivery, so that one
handler's write reaches the next handler without waiting out the interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from faasemu.delivery.bus import Bus
from faasemu.delivery.webhooks import WEBHOOK_OP
from faasemu.project.capture import CapturedChange, change_event
from faasemu.project.spec import TriggerSpec

POLL_INTERVAL = 0.1
BATCH = 500


class CaptureSource:
    """One state database's captured changes: `pending` and `forget`, bound to the database.

    A PostgreSQL database is read through one connection kept open (opening one forks a server process,
    ~9 ms, 50 times a `pending` on an open one; ten polls a second would pay it all day), opened on first
    use and again after a failure (a restarted server). A SQLite file is opened per call: that costs
    microseconds, and its connections may not move between the threads `asyncio.to_thread` uses."""

    def __init__(self, module: object, db: str) -> None:
        self.module = module  # capture_sqlite or capture_postgres
        self.db = db
        self.keep_open = db.startswith(("postgresql://", "postgres://"))
        self._connection: Any = None

    def pending(self, limit: int) -> list[CapturedChange]:
        return self._call("pending", limit)

    def forget(self, seqs: Iterable[int]) -> None:
        self._call("forget", list(seqs))

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing left to release
                pass

    def _call(self, name: str, argument: Any) -> Any:
        function = getattr(self.module, name)
        if not self.keep_open:
            return function(self.db, argument)
        if self._connection is None:
            self._connection = self.module.connect(self.db)  # type: ignore[attr-defined]
        try:
            return function(self._connection, argument)
        except Exception:
            self.close()  # the next call reconnects
            raise


class TriggerRelay:
    """The loop of one `up` that turns captured changes into webhook deliveries."""

    def __init__(self, source: CaptureSource, bus: Bus, triggers: Callable[[], tuple[TriggerSpec, ...]],
                 interval: float = POLL_INTERVAL) -> None:
        self.source = source
        self.bus = bus
        self.triggers = triggers
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.relayed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        """Look now (a handler may just have written a row a trigger captures)."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.source.close)

    async def _run(self) -> None:
        while True:
            try:
                moved = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a locked or vanished database must not end the relay
                self.bus.console.internal_error(f"could not read captured table changes: {type(exc).__name__}: {exc}; "
                                                "trying again")
                moved = 0
            if moved >= BATCH:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass

    async def relay_once(self) -> int:
        """Store what is captured now in the event log, then forget it; returns how many changes."""
        changes = await asyncio.to_thread(self.source.pending, BATCH)
        if not changes:
            return 0
        triggers = {trigger.name: trigger for trigger in self.triggers()}
        known = self.bus.log.known_ids([change.id for change in changes])
        fresh, orphans = [], []
        for change in changes:
            trigger = triggers.get(change.trigger)
            if trigger is None:
                orphans.append(change)
            elif change.id not in known:
                fresh.append((change_event(change, trigger.webhook), trigger.webhook))
        # all committed (in one transaction: the bus batches a loop tick's publishes) before forgetting
        await asyncio.gather(*(self.bus.publish([event], "trigger", target=webhook, op=WEBHOOK_OP)
                               for event, webhook in fresh))
        for change in orphans:
            self.bus.console.warning(f"a change captured for trigger {change.trigger!r} ({change.op} on "
                                     f"{change.schema}.{change.table}) has no trigger of that name in the manifest "
                                     "any more; it is not delivered")
        await asyncio.to_thread(self.source.forget, [change.seq for change in changes])
        self.relayed += len(fresh)
        return len(changes)
