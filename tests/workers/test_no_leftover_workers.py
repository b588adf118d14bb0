"""No worker process outlives the pool or campaign runner that started it, even when they close while
a worker is still starting. A process left running, or reaped after its event loop closed, shows up
as a ResourceWarning at some later garbage collection, in whichever test happens to be running then
(this was a flaky CI failure). Real worker processes."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from pathlib import Path
from typing import Any

from conftest import write_project

from faasemu.chaos.model import canonical
from faasemu.project.manifest import load_manifest
from faasemu.verify.model import Candidate
from faasemu.verify.runner import Runner
from faasemu.workers.pool import FunctionPool, Watchdog

HANDLER = "def handler(event, context):\n    return {'ok': True}\n"


def children() -> set[int]:
    """This process's children, alive or not yet reaped."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as file:
                found.update(int(pid) for pid in file.read().split())
        except OSError:
            pass
    return found


def no_orphans(caplog: Any, started: set[int]) -> None:
    """Nothing left to reap: no child still ours, and no process reaped after its loop closed
    (asyncio logs that; the collection below raises any ResourceWarning as an error here)."""
    gc.collect()
    assert not (children() & started), "a worker outlived what started it"
    late = [r.getMessage() for r in caplog.records if "is closed" in r.getMessage()]
    assert not late, late


def project(root: Path) -> Path:
    return write_project(root, {
        "faasemu.yaml": """\
            functions:
              echo:
                handler: app.py:handler
                events: [demo.*]
        """,
        "app.py": HANDLER,
    })


class Quiet:
    def worker_output(self, function: str, line: str) -> None: ...
    def load_failed(self, function: str, error: Any) -> None: ...
    def load_recovered(self, function: str, ms: float) -> None: ...


def test_a_pool_closed_while_its_workers_start_leaves_no_process(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "asyncio")
    manifest = load_manifest(str(project(tmp_path)))
    spec = manifest.function("echo")
    assert spec is not None
    before = children()

    async def main() -> set[int]:
        pool = FunctionPool(spec, str(tmp_path), {}, Quiet(), Watchdog())
        calls = [asyncio.ensure_future(pool.call({"op": "raw", "inv": {"request_id": "r", "deadline": 0}}, b"{}"))
                 for _ in range(3)]
        for delay in (0.0, 0.005, 0.02):  # cut off at different points of the spawn and the load
            await asyncio.sleep(delay)
        started = children() - before
        await pool.close()
        await asyncio.gather(*calls, return_exceptions=True)
        return started

    started = asyncio.run(main())
    assert started, "the pool started no worker: the test would prove nothing"
    no_orphans(caplog, started)


def test_a_campaign_runner_closed_right_after_a_run_leaves_no_process(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "asyncio")
    manifest = load_manifest(str(project(tmp_path)))
    events = [{"specversion": "1.0", "id": f"e{i}", "source": "t", "type": "demo.x", "data": {}} for i in range(2)]
    baseline = canonical(events, manifest.functions)
    before = children()

    started: set[int] = set()

    async def main() -> None:
        async with Runner(manifest, events, baseline, 1, lanes=2) as runner:
            await runner.run_many([Candidate(None, ()), Candidate(None, ())])
            await asyncio.sleep(0.05)  # the spares for the lanes' next runs are being started
            started.update(children() - before)
        # closing cut them off part-way

    for _ in range(3):
        asyncio.run(main())
    assert started, "no spare worker was being started: the test would prove nothing"
    no_orphans(caplog, started)
