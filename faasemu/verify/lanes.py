"""The campaign runner's lanes: setting one up, keeping spare workers ready for it, loading a
function into a fresh worker, and closing it (docs/verification.md#isolation).

A *lane* is one slot that runs one candidate at a time: its own state file (on a RAM filesystem
when there is one), its own effect-sink URLs, a step counter and an overlap gate file, and fresh
worker processes per run, so user modules are imported after the run's FAASEMU_* variables are
set. Split from runner.py, which owns the lanes' schedule and state: here is only what a lane is
and how its workers come and go. I/O (files, worker processes), like runner.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from faasemu.delivery.effects import LocalEffectServer
from faasemu.project import stepcounter
from faasemu.project.environment import faasemu_env, handler_environment
from faasemu.project.failures import WorkerError
from faasemu.project.spec import FunctionSpec, Manifest
from faasemu.runtimes.contract import load_runtime
from faasemu.verify.cascade import CascadeRun
from faasemu.workers.process import LoadFailed, WorkerDied, WorkerProcess, WorkerTimeout

LOAD_TIMEOUT = 30.0


def ram_folder() -> str | None:
    """A RAM filesystem for lanes: a commit costs ~0.4 ms there against ~2 ms on disk."""
    candidate = "/dev/shm"
    return candidate if os.path.isdir(candidate) and os.access(candidate, os.W_OK) else None


@dataclass
class Lane:
    id: str
    folder: str
    state_path: str
    sink_url: str
    events_url: str
    counter_path: str = ""  # the step counter the worker and the sink share (project/stepcounter.py)
    gate_path: str = ""  # the lock file that releases an overlapping pair together
    spares: list[WorkerProcess] = field(default_factory=list)
    topping_up: asyncio.Task[None] | None = None
    cascade: CascadeRun | None = None  # the running candidate's emitted events, when cascades are on
    loads: int = 0  # workers the running candidate has loaded so far (second instances and cold starts count)
    needed: int = 0  # the most any of the lane's recent runs loaded: the spares to keep ready
    runtimes: list[str] = field(default_factory=list)  # what its spares preload: a worker made at need does too


@dataclass
class LoadProblem:
    """A function whose handler cannot load: every delivery to it is `unavailable`."""

    function: str
    error: WorkerError


def open_lane(base: str, number: int, state_kind: str, effects: LocalEffectServer) -> Lane:
    """Lane `number` under `base`: its folder, its sink and events URLs, an empty step counter and gate file."""
    folder = os.path.join(base, f"lane-{number}")
    os.makedirs(folder)
    state_path = os.path.join(folder, "state" if state_kind == "dir" else "state.db")
    sink, events = effects.add_lane(f"lane{number}")
    lane = Lane(f"lane{number}", folder, state_path, sink, events,
                os.path.join(folder, "steps.counter"), os.path.join(folder, "overlap.gate"))
    stepcounter.create(lane.counter_path)
    with open(lane.gate_path, "wb"):
        pass
    return lane


def top_up(lane: Lane, root: str, wanted: Callable[[], int], runtimes: list[str],
           output: Callable[[str], None]) -> None:
    """Pre-start generic workers for the lane's next run while this one executes, until it has
    `wanted()` spares (read on every spawn: discovery may add functions while it runs)."""
    lane.runtimes = runtimes
    if lane.topping_up is not None and not lane.topping_up.done():
        return

    async def spawn() -> None:
        while len(lane.spares) < wanted():
            # a fork server started with these runtimes has their SDKs imported already (workers/forkserver.py)
            worker = await WorkerProcess.spawn(root, output, preload=runtimes)
            lane.spares.append(worker)

    lane.topping_up = asyncio.get_running_loop().create_task(spawn())


async def load_worker(lane: Lane, spec: FunctionSpec, manifest: Manifest, output: Callable[[str], None],
                      problems: dict[str, LoadProblem]) -> WorkerProcess | None:
    """A worker with the function loaded under the lane's state and URLs (a spare when there is one),
    or None: why it cannot load is then in `problems` and the worker stopped."""
    lane.loads += 1
    # made at need: from the spares' fork server (another preload would start, and stop, a second one)
    worker = lane.spares.pop() if lane.spares else await WorkerProcess.spawn(manifest.root, output,
                                                                             preload=lane.runtimes)
    env = handler_environment(load_runtime(spec.runtime).environment(spec, manifest.root), spec.env,
                              faasemu_env(lane.state_path, lane.sink_url, lane.events_url,
                                          queues=bool(manifest.queues)))
    try:
        await worker.load(spec.to_wire(), manifest.root, env, max(LOAD_TIMEOUT, spec.timeout))
    except LoadFailed as exc:
        problems[spec.name] = LoadProblem(spec.name, exc.error)
        await worker.terminate()
        return None
    except (WorkerDied, WorkerTimeout) as exc:
        problems[spec.name] = LoadProblem(
            spec.name, WorkerError("Runtime.ExitError", str(exc) or "the worker ended while loading"))
        await worker.terminate()
        return None
    return worker


async def close_lane(lane: Lane) -> None:
    """Stop the lane's top-up (awaited: a worker it was starting is stopped, not left behind) and its spares."""
    if lane.topping_up is not None:
        lane.topping_up.cancel()
        await asyncio.gather(lane.topping_up, return_exceptions=True)
    await asyncio.gather(*(w.terminate() for w in lane.spares), return_exceptions=True)
    lane.spares.clear()


def kill_spares(lane: Lane) -> None:
    """Kill the lane's spare workers at once (after an interrupted campaign, without a loop to await in)."""
    for worker in lane.spares:
        worker.kill("shutdown")
