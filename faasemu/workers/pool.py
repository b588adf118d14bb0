"""A function's workers: started on first use, at most `concurrency`, requests queued FIFO.

Isolation lives here. A request whose handler runs past its timeout, grows past its memory or
ends its interpreter costs that worker, never the supervisor: the pool answers with what
happened (`Outcome.kind`) and starts a fresh worker for whoever comes next. A reload bumps the
generation: in-flight requests finish on the old workers, which are then retired, and new
requests wait for new-generation workers, so no request fails because of a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from faasemu.project.environment import handler_environment
from faasemu.project.failures import WorkerError, format_error
from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.contract import Runtime, load_runtime
from faasemu.workers import forkserver
from faasemu.workers.process import LoadFailed, NotStarted, WorkerDied, WorkerProcess, WorkerTimeout

OutcomeKind = Literal["ok", "error", "timeout", "crash", "oom", "unavailable"]
LOAD_TIMEOUT = 10.0  # Lambda's init phase limit; a handler's own timeout applies once it runs
# Pipelining (docs/architecture.md#pipelining): a freed worker takes up to PIPELINE_DEPTH queued HTTP
# requests at once when each of the function's last FAST_SAMPLES invocations took under FAST_MS.
# FAASEMU_PIPELINE=0 turns it off (benchmarks measure both ways in one run).
PIPELINE_DEPTH = 1 if os.environ.get("FAASEMU_PIPELINE") == "0" else 8
FAST_SAMPLES = 16
FAST_MS = 2.0


def load_deadline(spec: FunctionSpec) -> float:
    """How long a worker may take to import the function: Lambda's 10 s init limit, or the function's
    timeout when that is longer (Lambda then retries the init within the invocation's timeout)."""
    return max(LOAD_TIMEOUT, spec.timeout)


def load_timeout_error(spec: FunctionSpec, root: str, deadline: float) -> WorkerError:
    """The error of a load that ran past its deadline without the worker saying where it was stuck
    (it was in C code that never let the interpreter run its alarm handler)."""
    module = os.path.relpath(spec.handler_file, root) if spec.handler_file else spec.handler_module or spec.handler
    return WorkerError("InitTimeout",
                       f"{module} did not finish importing within {deadline:g} s (the load deadline: the function's "
                       f"timeout, at least Lambda's {LOAD_TIMEOUT:g} s init limit); the worker was killed")


class PoolObserver(Protocol):
    """What the pool tells the outside world (the console)."""

    def worker_output(self, function: str, line: str) -> None: ...

    def load_failed(self, function: str, error: WorkerError) -> None: ...

    def load_recovered(self, function: str, ms: float) -> None: ...


@dataclass(slots=True)
class Outcome:
    """How one invocation ended. `reply`/`body` are the worker's answer when it gave one."""

    kind: OutcomeKind
    reply: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    ms: float = 0.0
    cold_ms: float | None = None
    error: WorkerError | None = None  # what the handler raised (kind "error"), or why it cannot load ("unavailable")
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


class Unavailable(Exception):
    def __init__(self, error: WorkerError) -> None:
        self.error = error
        super().__init__(error.message)


class QueueTimeout(Exception):
    pass


class _Stale(Exception):
    """A worker's generation ended while it started."""


class Watchdog:
    """Every `interval` (25 ms), for each busy worker: past its deadline, kill it (a timeout);
    resident memory (/proc/PID/statm) past its limit, kill it (out of memory). Also expires
    requests that waited in a pool's queue past their timeout. One sweep for everything is far
    cheaper on the invoke path than a timer per request; timeouts are precise to `interval`."""

    def __init__(self, interval: float = 0.025) -> None:
        self.interval = interval
        self.limits: dict[WorkerProcess, int] = {}
        self.queues: set[FunctionPool] = set()
        self.task: asyncio.Task[None] | None = None

    def track(self, worker: WorkerProcess, limit_mb: int) -> None:
        self.limits[worker] = limit_mb * 1024 * 1024
        self._ensure_running()

    def untrack(self, worker: WorkerProcess) -> None:
        self.limits.pop(worker, None)

    def watch_queue(self, pool: FunctionPool) -> None:
        self.queues.add(pool)
        self._ensure_running()

    def _ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def check(self) -> None:
        now = asyncio.get_running_loop().time()
        for worker, limit in list(self.limits.items()):
            if worker.deadline is not None and now >= worker.deadline:
                worker.expire()
            elif worker.rss_bytes() > limit:
                worker.kill("oom")
        for pool in list(self.queues):
            if not pool.expire_waiters(now):
                self.queues.discard(pool)

    async def _run(self) -> None:
        while self.limits or self.queues:
            await asyncio.sleep(self.interval)
            self.check()

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


class FunctionPool:
    """The workers of one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        root: str,
        extra_env: dict[str, str],
        observer: PoolObserver,
        watchdog: Watchdog,
        *,
        warm: bool = False,
        attached: bool = False,
    ) -> None:
        """`attached`: workers on the terminal, for `breakpoint()` (`faasemu invoke`, workers/process.py)."""
        self.spec = spec
        self.root = root
        self.extra_env = extra_env
        self.observer = observer
        self.watchdog = watchdog
        self.warm = warm
        self.attached = attached
        self.adapter_module: Runtime = load_runtime(spec.runtime)  # the platform's pure half (contract.py)
        self.generation = 0
        self.idle: list[WorkerProcess] = []
        self.busy: set[WorkerProcess] = set()
        self._starting: dict[int, int] = {}  # generation -> workers being spawned or loading for it
        self._loading: dict[WorkerProcess, int] = {}  # workers importing the function -> their generation
        self.waiters: deque[asyncio.Future[WorkerProcess]] = deque()
        self.broken: WorkerError | None = None
        self.closing = False
        self.modules: set[str] = set()
        self.ever_started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation_of: dict[WorkerProcess, int] = {}
        self._cold: dict[WorkerProcess, float] = {}
        self._retired: set[WorkerProcess] = set()  # closing; reaped by close() if still alive
        self._deadlines: dict[asyncio.Future[WorkerProcess], float] = {}
        self._old_busy = 0  # busy workers of earlier generations (retire when they finish)
        self._announce = -1  # the generation whose first successful load is worth a notice
        self._extra = 0  # workers lent beyond `concurrency`, or being found for a `lend`
        self._lent: set[WorkerProcess] = set()
        self._held: set[WorkerProcess] = set()  # held or lent, not yet passed to `call` or given back
        self._pipelinable: set[asyncio.Future[WorkerProcess]] = set()  # waiters that may share a worker
        self._sharing: dict[WorkerProcess, int] = {}  # a worker's callers beyond the first (pipelined)
        self._recent: deque[float] = deque(maxlen=FAST_SAMPLES)  # the last invocations' durations, ms
        self.pipelined = 0  # calls sent to a worker behind another one, since the start (`status`)

    # -- environment -----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """Platform variables, then the manifest's, then faasemu's own (FAASEMU_STATE ...)."""
        return handler_environment(self.adapter_module.environment(self.spec, self.root), self.spec.env, self.extra_env)

    # -- invoking --------------------------------------------------------------------------------

    async def call(self, header: dict[str, Any], body: bytes = b"", timeout: float | None = None,
                   *, worker: WorkerProcess | None = None, pipelinable: bool = False) -> Outcome:
        """Run one operation on a worker of this function; never raises for what the handler did.
        `worker`: one this caller holds already (`hold`, `lend`), handed back when the call ends.
        `pipelinable`: the call may share a worker with other queued calls (docs/architecture.md#pipelining);
        one that the worker never began (the one before it failed) is queued again, within its timeout."""
        timeout = self.spec.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        queued_until = loop.time() + timeout
        held = worker
        while True:
            if held is not None:
                self._held.discard(held)
                worker, held = held, None
            else:
                try:
                    worker = await self._acquire(queued_until, pipelinable and not self.attached)
                except Unavailable as exc:
                    return Outcome("unavailable", error=exc.error, message=format_error(exc.error))
                except QueueTimeout:
                    return Outcome("timeout",
                                   message=f"Task timed out after {timeout:.2f} seconds waiting for a worker")
            try:
                return await self._run(worker, header, body, timeout)
            except NotStarted:
                continue  # never began: back in the queue, as if it had not been handed out

    async def _run(self, worker: WorkerProcess, header: dict[str, Any], body: bytes, timeout: float) -> Outcome:
        cold_ms = self._cold.pop(worker, None)
        if "inv" in header:
            header["inv"]["deadline"] = time.time() + timeout
            header["inv"]["timeout"] = timeout  # the worker's own clock: a pipelined call starts later
        self.watchdog.track(worker, self.spec.memory)
        started = time.perf_counter()
        try:
            reply, out = await worker.request(header, body, timeout, watched=True)
        except NotStarted:
            raise
        except WorkerTimeout:
            self._recent.clear()  # slow now: no pipelining until it is fast again
            return Outcome("timeout", ms=_ms(started), cold_ms=cold_ms,
                           message=f"Task timed out after {timeout:.2f} seconds")
        except WorkerDied as exc:
            self._recent.clear()
            if worker.kill_reason == "oom":
                return Outcome("oom", ms=_ms(started), cold_ms=cold_ms,
                               message=f"Runtime exited: memory limit of {self.spec.memory} MB exceeded")
            return Outcome("crash", ms=_ms(started), cold_ms=cold_ms, message=f"Runtime exited: {exc}")
        except asyncio.CancelledError:
            if worker.in_flight <= 1:  # its answer can no longer be delivered; never reuse it mid-request
                worker.kill("cancelled")  # (pipelined: its answer is read and dropped, the others go on)
            raise
        finally:
            self._release(worker)
        if "modules" in reply:
            self.modules.update(reply["modules"])
        ms = _ms(started)
        self._recent.append(reply.get("ms", ms))
        kind: OutcomeKind = "ok" if reply.get("ok") else "error"
        error = WorkerError.from_wire(reply["error"]) if reply.get("error") else None
        return Outcome(kind, reply, out, ms, cold_ms, error)

    def _fast(self) -> bool:
        """Whether queued calls may share a worker: every one of the last FAST_SAMPLES took under
        FAST_MS in the worker, so one waiting behind another waits little."""
        recent = self._recent
        return len(recent) == FAST_SAMPLES and max(recent) < FAST_MS

    async def hold(self, timeout: float) -> WorkerProcess:
        """A loaded worker, reserved for the caller's next `call(worker=...)` (or `give_back`).
        Raises Unavailable or QueueTimeout."""
        worker = await self._acquire(asyncio.get_running_loop().time() + timeout)
        self._held.add(worker)
        return worker

    async def lend(self, timeout: float) -> WorkerProcess:
        """Like `hold`, but a worker beyond `concurrency` when none is idle: the instance a platform
        scales out to for an overlapping duplicate (`--overlap`, docs/delivery.md#live-chaos-in-up).
        It is retired once handed back, so the pool shrinks to its size again."""
        self._extra += 1
        try:
            worker = await self._acquire(asyncio.get_running_loop().time() + timeout)
        except BaseException:
            self._extra -= 1
            raise
        self._lent.add(worker)
        self._held.add(worker)
        return worker

    @contextlib.asynccontextmanager
    async def pair(self, timeout: float) -> AsyncIterator[tuple[WorkerProcess | None, WorkerProcess | None]]:
        """Two loaded workers for a delivery and its overlapping copy (`--overlap`, `hold` then `lend`);
        None for one that cannot be had now (the handler cannot load, none came in time), whose
        delivery then goes through the queue. Those not passed to `call` go back on exit."""
        held: list[WorkerProcess | None] = [None, None]
        try:
            try:
                held[0] = await self.hold(timeout)
                held[1] = await self.lend(timeout)
            except (Unavailable, QueueTimeout):
                pass
            yield held[0], held[1]
        finally:
            for worker in held:
                if worker is not None:
                    self.give_back(worker)

    def give_back(self, worker: WorkerProcess) -> None:
        """A held or lent worker not passed to `call` (yet): back to the pool; any other, nothing.
        Safe to call in a `finally` whatever happened to it."""
        if worker in self._held:
            self._held.discard(worker)
            self._release(worker)

    async def _acquire(self, deadline: float, pipelinable: bool = False) -> WorkerProcess:
        if self.broken is not None:
            raise Unavailable(self.broken)
        if self.closing:
            raise Unavailable(WorkerError("Shutdown", "faasemu is stopping"))
        while self.idle and not self.waiters:
            worker = self.idle.pop()
            if worker.alive:
                self.busy.add(worker)
                return worker
            self._forget(worker)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WorkerProcess] = loop.create_future()
        self.waiters.append(future)
        self._deadlines[future] = deadline
        if pipelinable:
            self._pipelinable.add(future)
        self._grow()
        self._hand_out()
        if not future.done():
            self.watchdog.watch_queue(self)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(future.result())
            raise
        finally:
            self._deadlines.pop(future, None)
            self._pipelinable.discard(future)

    def expire_waiters(self, now: float) -> bool:
        """Fail queued requests whose timeout passed; returns whether any are still queued."""
        for future, deadline in list(self._deadlines.items()):
            if now >= deadline and not future.done():
                future.set_exception(QueueTimeout())
                try:
                    self.waiters.remove(future)
                except ValueError:
                    pass
        return any(not f.done() for f in self.waiters)

    def _current(self, worker: WorkerProcess) -> bool:
        return self._generation_of.get(worker) == self.generation

    @property
    def starting(self) -> int:
        """Workers being started, of every generation (a reload does not wait for stale ones)."""
        return sum(self._starting.values())

    @property
    def loading(self) -> bool:
        """A worker is importing the function (what it imports is not known until it is ready)."""
        return bool(self._loading)

    def _starting_now(self) -> int:
        return self._starting.get(self.generation, 0)

    def _count(self) -> int:
        """Workers of the current generation: idle, busy or starting."""
        return len(self.idle) + self._starting_now() + len(self.busy) - self._old_busy

    def _grow(self) -> None:
        if self._starting_now() >= len(self.waiters):
            return  # the common case under load: nobody waits for a worker that is not coming
        while (
            not self.closing
            and self.broken is None
            and self._starting_now() < len(self.waiters)
            and self._count() < self.spec.concurrency + self._extra
        ):
            self._start_worker()

    def _start_worker(self) -> None:
        self._starting[self.generation] = self._starting.get(self.generation, 0) + 1
        task = asyncio.get_running_loop().create_task(self._spawn(self.generation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, generation: int) -> None:
        started = time.perf_counter()
        worker: WorkerProcess | None = None
        failure: WorkerError | None = None
        spec = self.spec
        deadline = load_deadline(spec)
        try:
            worker = await WorkerProcess.spawn(self.root, self._output, attached=self.attached)
            if generation != self.generation or self.closing:
                raise _Stale()
            self._loading[worker] = generation
            await worker.load(spec.to_wire(), self.root, self.environment(), deadline)
        except _Stale:
            pass  # a reload happened while the interpreter started: its code would be stale
        except LoadFailed as exc:
            failure = exc.error
        except WorkerTimeout:
            failure = load_timeout_error(spec, self.root, deadline)
        except (WorkerDied, OSError) as exc:
            failure = WorkerError("Runtime.ExitError", f"while loading the handler: {exc}")
        except asyncio.CancelledError:
            if worker is not None:  # `up` is stopping: a worker still importing must not outlive it
                await worker.terminate()
            raise
        finally:
            self._starting[generation] -= 1
            if not self._starting[generation]:
                del self._starting[generation]
            if worker is not None:
                self._loading.pop(worker, None)
        if failure is not None or worker is None or generation != self.generation or self.closing:
            if worker is not None:
                worker.kill("load failed" if failure is not None else "stale")
                dying = worker
                self._retired.add(dying)  # until it is reaped: close() waits for it
                dying.output.exited.add_done_callback(lambda _: self._retired.discard(dying))
            if failure is not None and generation == self.generation and not self.closing:
                self._mark_broken(failure)
            else:
                self._grow()  # requests queued for a newer generation still want a worker
            return
        self.ever_started = True
        self._generation_of[worker] = generation
        self._cold[worker] = _ms(started)
        self.modules.update(worker.ready_modules)
        if self._announce == generation:
            self._announce = -1
            self.observer.load_recovered(self.spec.name, self._cold[worker])
        self.idle.append(worker)
        self._hand_out()
        if worker in self.idle and self._count() > self.spec.concurrency + self._extra:
            self.idle.remove(worker)  # started for a `lend` that gave up meanwhile: not a worker too many
            self._forget(worker)

    def _hand_out(self) -> None:
        while self.waiters and self.idle:
            future = self.waiters.popleft()
            if future.done():
                continue
            worker = self.idle.pop()
            if not worker.alive:
                self._forget(worker)
                self.waiters.appendleft(future)
                continue
            self.busy.add(worker)
            future.set_result(worker)
            if PIPELINE_DEPTH > 1 and future in self._pipelinable and self.waiters and self._fast():
                self._share(worker)
        self._grow()

    def _share(self, worker: WorkerProcess) -> None:
        """Hand `worker` also to the next queued pipelinable calls, up to PIPELINE_DEPTH in all: they
        are sent together and answered in order (docs/architecture.md#pipelining)."""
        shared = 0
        while self.waiters and shared < PIPELINE_DEPTH - 1 and self.waiters[0] in self._pipelinable:
            future = self.waiters.popleft()
            if future.done():
                continue
            future.set_result(worker)
            shared += 1
        if shared:
            self._sharing[worker] = self._sharing.get(worker, 0) + shared
            self.pipelined += shared

    def _release(self, worker: WorkerProcess) -> None:
        sharing = self._sharing.get(worker, 0)
        if sharing:  # pipelined calls of this worker still running: it stays busy
            if sharing == 1:
                del self._sharing[worker]
            else:
                self._sharing[worker] = sharing - 1
            return
        self.watchdog.untrack(worker)
        if worker in self.busy:
            self.busy.discard(worker)
            if not self._current(worker):
                self._old_busy -= 1
        if worker in self._lent:
            self._lent.discard(worker)
            self._extra -= 1
        # kept only if the pool has room for it: a worker started for a `lend` that gave up, or one
        # that was lent, must not leave the pool above `concurrency` for good
        surplus = not self.waiters and self._count() >= self.spec.concurrency + self._extra
        if surplus or not worker.alive or not self._current(worker) or self.closing:
            self._forget(worker)
            if self.warm and not self.closing and self.broken is None:
                self._top_up()
            self._grow()
            return
        self.idle.append(worker)
        self._hand_out()

    def _forget(self, worker: WorkerProcess) -> None:
        worker.close()
        self._retired.add(worker)
        worker.output.exited.add_done_callback(lambda _: self._retired.discard(worker))
        self._generation_of.pop(worker, None)
        self._cold.pop(worker, None)

    def _mark_broken(self, error: WorkerError) -> None:
        self.broken = error
        self.observer.load_failed(self.spec.name, error)
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(Unavailable(error))

    def _output(self, line: str) -> None:
        self.observer.worker_output(self.spec.name, line)

    def _top_up(self) -> None:
        while self._count() < self.spec.concurrency:
            self._start_worker()

    # -- lifecycle -------------------------------------------------------------------------------

    def start_warm(self) -> None:
        """`--warm`: start every worker now instead of on first use."""
        self.warm = True
        self._top_up()

    def reload(self, spec: FunctionSpec | None = None) -> None:
        """New code or configuration: retire the current workers and start over.

        Busy workers finish their request first. One new worker starts at once when the function
        was in use (or broken, or warm), so the next request finds it ready and an import error is
        reported now rather than on the next request.
        """
        was_in_use = self.ever_started or self.broken is not None or self.warm
        if spec is not None:
            self.spec = spec
            self.adapter_module = load_runtime(spec.runtime)
        self.generation += 1
        self._old_busy = len(self.busy)
        self._announce = self.generation
        self.broken = None
        self.modules = set()
        for worker in self.idle:
            self._forget(worker)
        self.idle.clear()
        # Workers still importing the old code are of no use, and one stuck in its import (a
        # `time.sleep` at module level) would otherwise hold its slot until its load deadline.
        for worker in list(self._loading):
            worker.kill("reloaded")
        if self.warm:
            self._top_up()
        elif was_in_use and self._starting_now() == 0:
            self._start_worker()
        self._grow()

    def retire(self) -> None:
        """The function left the manifest: refuse new work, let in-flight requests finish."""
        self.closing = True
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(Unavailable(WorkerError("Removed", "the function was removed")))
        for worker in self.idle:
            self._forget(worker)
        self.idle.clear()
        for worker in list(self._loading):
            worker.kill("removed")

    async def close(self) -> None:
        self.closing = True
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(Unavailable(WorkerError("Shutdown", "faasemu is stopping")))
        workers = [*self.idle, *self.busy, *self._retired, *self._loading]
        for worker in workers:
            worker.kill("shutdown")  # now, before any await: a worker stuck in its import reads no socket
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        self.idle.clear()
        # the cancelled starts are awaited too: one cut off mid-spawn reaps its own process
        await asyncio.gather(*tasks, *(worker.terminate() for worker in workers), return_exceptions=True)
        await forkserver.stop_idle()  # with no worker left (say, the handler cannot load) it would linger

    def status(self) -> dict[str, Any]:
        return {
            "workers": {"idle": len(self.idle), "busy": len(self.busy), "starting": self.starting},
            "queued": sum(1 for f in self.waiters if not f.done()),
            "pipelined": self.pipelined,
            "generation": self.generation,
            "error": None if self.broken is None else self.broken.to_wire(),
        }


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
