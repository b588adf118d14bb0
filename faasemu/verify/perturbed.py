"""How the campaign runner executes its two perturbations that need more than a `batch` message:
a crash part-way and an overlapping pair started at one signal
(docs/verification.md#steps-crashes-and-the-overlap-gate).

Split from runner.py: these are the mechanics (arming the sink, the gate file's lock, waiting for
both `gated` frames); what the attempts mean (their numbering, the policy's decision, the emitted
events' attribution) stays the runner's. I/O (worker processes, a lock file), like runner.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Sequence
from typing import Any

from faasemu.delivery.effects import LocalEffectServer
from faasemu.project.spec import FunctionSpec
from faasemu.verify.lanes import Lane
from faasemu.workers.pool import Watchdog
from faasemu.workers.process import WorkerDied, WorkerProcess, WorkerTimeout


async def crash(lane: Lane, worker: WorkerProcess, item: dict[str, Any], crash_after: int, spec: FunctionSpec,
                watchdog: Watchdog, effects: LocalEffectServer) -> None:
    """Ship one item that is killed right after its `crash_after`-th step: the worker ends itself
    after a commit, the sink kills it after a call. The worker is stopped either way (also when the
    handler finished first): the schedule's redelivery runs in a fresh one."""
    effects.arm(lane.id, lane.counter_path, worker.pid, crash_after=crash_after)
    watchdog.track(worker, spec.memory)
    try:
        await worker.request({"op": "batch", "timeout": spec.timeout, "items": [item]}, b"", spec.timeout + 1.0)
    except (WorkerTimeout, WorkerDied):
        pass
    finally:
        watchdog.untrack(worker)
        effects.disarm(lane.id)
        await worker.terminate()


async def together(lane: Lane, pair: Sequence[WorkerProcess], items: Sequence[dict[str, Any]], spec: FunctionSpec,
                   watchdog: Watchdog) -> tuple[list[Any], list[list[dict[str, Any]]]]:
    """Ship `items[i]` to `pair[i]` and release both handlers at one signal: both workers wait on the
    lane's gate file (a shared lock held here exclusively) and say so; once both wait, the lock is let
    go. Returns each request's answer (or its exception) and each worker's item frames. The workers
    stay tracked by `watchdog` for the caller to untrack as it reads their answers (untracked here
    only when cancelled)."""
    reports: list[list[dict[str, Any]]] = [[], []]
    waiting = asyncio.Event()
    gated = [0]

    def on_item(number: int) -> Callable[[dict[str, Any]], None]:
        def seen(frame: dict[str, Any]) -> None:
            if frame.get("op") == "gated":
                gated[0] += 1
                if gated[0] == 2:
                    waiting.set()
            else:
                reports[number].append(frame)
        return seen

    gate = os.open(lane.gate_path, os.O_RDWR)
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        for worker in pair:
            watchdog.track(worker, spec.memory)
        tasks = [asyncio.ensure_future(worker.request({"op": "batch", "timeout": spec.timeout, "items": [item]},
                                                      b"", spec.timeout + 1.0, on_item=on_item(number)))
                 for number, (worker, item) in enumerate(zip(pair, items))]
        released = asyncio.ensure_future(waiting.wait())
        try:
            await asyncio.wait([released, *tasks], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (an interrupted campaign): leave nothing running or tracked
            for task in tasks:
                task.cancel()
            for worker in pair:
                watchdog.untrack(worker)
            raise
        finally:
            released.cancel()
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)
        os.close(gate)
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    return list(answers), reports
