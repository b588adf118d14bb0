"""A batch's timeout bounds each item, not the whole batch (faasemu/workers/process.py `request`
with `on_item`: the deadline moves with every item answered, and the one timer reads it when it fires).

Real worker processes, a real handler that sleeps: what is checked is what the campaign runner
sees, the items answered, the timeout raised, and the worker's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from conftest import loaded_worker, write_project

from faasemu.workers.process import WorkerProcess, WorkerTimeout

MANIFEST = """\
name: batch-timeout
functions:
  napper:
    handler: app.py:handler
    events: [nap]
"""

APP = """\
import time


def handler(event, context):
    time.sleep(event["detail"]["sleep"])
    return {"slept": event["detail"]["sleep"]}
"""


def loaded(root: Path) -> contextlib.AbstractAsyncContextManager[WorkerProcess]:
    write_project(root, {"faasemu.yaml": MANIFEST, "app.py": APP})
    return loaded_worker(root, "napper")


def nap(index: int, seconds: float) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": f"evt-{index}", "source": "tests", "type": "nap",
             "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json", "data": {"sleep": seconds}}
    return {"event": event, "attempt": 1, "attempt_id": f"att-{index}", "request_id": f"req-{index}"}


def test_a_batch_longer_than_its_timeout_passes_when_each_item_is_within_it(tmp_path: Path) -> None:
    async def run() -> tuple[list[dict[str, Any]], float]:
        async with loaded(tmp_path) as worker:
            items: list[dict[str, Any]] = []
            started = time.monotonic()
            await worker.request({"op": "batch", "timeout": 30, "items": [nap(i, 0.3) for i in range(5)]}, b"",
                                 0.8, on_item=items.append)
            return items, time.monotonic() - started

    items, took = asyncio.run(run())
    assert [item["status"] for item in items] == ["ok"] * 5
    assert took > 0.8  # the whole batch outlasted the timeout: only each item had to fit in it


def test_an_item_that_outlasts_the_timeout_kills_the_worker_after_the_items_before_it(tmp_path: Path) -> None:
    async def run() -> tuple[list[dict[str, Any]], BaseException | None, float, bool]:
        async with loaded(tmp_path) as worker:
            items: list[dict[str, Any]] = []
            started = time.monotonic()
            raised: BaseException | None = None
            try:
                await worker.request({"op": "batch", "timeout": 30,
                                      "items": [nap(0, 0.3), nap(1, 0.3), nap(2, 30.0), nap(3, 0.0)]}, b"",
                                     0.8, on_item=items.append)
            except WorkerTimeout as exc:
                raised = exc
            took = time.monotonic() - started
            await worker.wait_exited()
            return items, raised, took, worker.alive

    items, raised, took, alive = asyncio.run(run())
    assert isinstance(raised, WorkerTimeout)
    assert [item["status"] for item in items] == ["ok", "ok"]  # the two before it were answered
    assert 1.3 < took < 10  # ~0.6 s of items, then the hanging one's 0.8 s: not the batch's first 0.8 s
    assert not alive
