"""The overlap gate: two real workers wait at one lock file and start their handlers on one release.

The test plays the campaign runner: it holds LOCK_EX on the gate file, ships an item with `gate` to
two loaded workers, waits for both `gated` frames and for both workers to be blocked on the lock,
checks that neither handler has run, then releases. (docs/verification.md#steps-crashes-and-the-overlap-gate)
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from conftest import wait_for
from test_steps import item, loaded, project, rows, ship

__all__ = ["project"]  # the fixture, shared with test_steps


def blocked_on_lock(pids: set[int]) -> bool:
    """Every pid in `pids` waits for a lock (a `->` line of /proc/locks names the waiters)."""
    with open("/proc/locks") as locks:
        waiting = {int(line.split()[5]) for line in locks if "->" in line}
    return pids <= waiting


def test_two_workers_start_together_on_one_release(project: Path) -> None:
    gate = project / "gate"
    gate.touch()

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with loaded(project, "with_block") as first, loaded(project, "with_block") as second:
            fd = os.open(gate, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                a = asyncio.create_task(ship(first, item(project, "a", gate=str(gate))))
                b = asyncio.create_task(ship(second, item(project, "b", gate=str(gate))))
                loop = asyncio.get_running_loop()
                pids = {first.pid, second.pid}
                assert await loop.run_in_executor(None, wait_for, lambda: blocked_on_lock(pids))
                assert rows(project, "orders") == []
                assert not (project / "marks" / "between").exists()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            (frames_a, done_a), (frames_b, done_b) = await asyncio.gather(a, b)
            assert done_a["op"] == done_b["op"] == "done"
            return frames_a, frames_b

    frames_a, frames_b = asyncio.run(run())
    for frames in (frames_a, frames_b):
        assert frames == [{"op": "gated", "i": 0}, {"op": "item", "i": 0, "status": "ok"}]
    assert sorted(rows(project, "orders")) == [("a",), ("b",)]


def test_gated_before_the_gate_is_taken_passes_straight_through(project: Path) -> None:
    gate = project / "gate"
    gate.touch()

    async def run() -> list[dict[str, Any]]:
        async with loaded(project, "explicit") as worker:
            frames, _ = await ship(worker, item(project, gate=str(gate)), item(project, "o2", gate=str(gate)))
            return frames

    assert [f["op"] for f in asyncio.run(run())] == ["gated", "item", "gated", "item"]
    assert rows(project, "orders") == [("o1",), ("o2",)]


def test_a_gate_that_cannot_be_opened_is_an_error_not_a_hang(project: Path) -> None:
    missing = project / "no-such-gate"

    async def run() -> tuple[list[dict[str, Any]], bool]:
        async with loaded(project, "explicit") as worker:
            frames, _ = await ship(worker, item(project, gate=str(missing)), item(project, "o2"))
            return frames, worker.alive

    frames, alive = asyncio.run(run())
    assert alive
    assert len(frames) == 1  # the batch stops at the refused item, as at any failed one
    [frame] = frames
    assert frame["status"] == "error" and frame["retryable"] is False
    assert f"cannot open the gate file {missing}" in frame["error"]
    assert rows(project, "orders") == []


def test_a_gated_frame_is_never_taken_for_the_answer(project: Path) -> None:
    gate = project / "gate"
    gate.touch()

    async def run() -> dict[str, Any]:
        async with loaded(project, "explicit") as worker:
            # no on_item: `gated` is dropped; the first frame that answers is the item's
            reply, _ = await worker.request({"op": "batch", "timeout": 30, "items": [item(project, gate=str(gate))]},
                                            b"", 30.0)
            return reply

    assert asyncio.run(run()) == {"op": "item", "i": 0, "status": "ok"}


def test_gate_and_steps_together(project: Path) -> None:
    gate = project / "gate"
    gate.touch()

    async def run() -> list[dict[str, Any]]:
        async with loaded(project, "explicit") as worker:
            frames, _ = await ship(worker, item(project, gate=str(gate), steps=str(project / "steps")))
            return frames

    gated, done = asyncio.run(run())
    assert gated == {"op": "gated", "i": 0}
    assert done["steps"] == [[1, "commit", ["orders", "stock"]], [2, "commit", ["audit"]]]
