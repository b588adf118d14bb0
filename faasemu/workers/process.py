"""The supervisor's handle on one worker process: spawn, one request at a time, kill, measure.

Driven by the event loop: the worker's socket is an asyncio protocol parsing frames, its stdout
and stderr a protocol relaying lines. No threads, no multiprocessing queues.

A worker is forked by a fork server when one can serve it (faasemu/workers/forkserver.py: a cold
start is then a fork, not an interpreter start), and is a fresh `python -m faasemu.workers.entry`
otherwise: attached to the terminal (pdb), with FAASEMU_FORKSERVER=0, or when no fork server starts.
Both look the same from here (`_Handle`): pid, returncode, kill, the `exited` future, the output.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from faasemu.project.environment import handler_base_env
from faasemu.project.failures import WorkerError
from faasemu.project.platforms import PLATFORMS
from faasemu.workers import forkserver, wire

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
LOAD_GRACE = 1.0  # past a load's deadline, how long the worker has to report where it was stuck
OutputSink = Callable[[str], None]


class WorkerDied(Exception):
    """The worker ended while a request was in flight (crash, sys.exit, kill)."""


class WorkerTimeout(Exception):
    """The request ran past its deadline."""


class NotStarted(WorkerDied):
    """A pipelined request the worker never began: the one before it timed out, crashed or ran out of
    memory. Nothing of it ran, so the pool queues it again (docs/architecture.md#pipelining)."""


class LoadFailed(Exception):
    """The function could not be loaded; `error` is the worker's description (type, message, where)."""

    def __init__(self, error: WorkerError) -> None:
        self.error = error
        super().__init__(error.message or "load failed")


class _Channel(asyncio.Protocol):
    """Frames from the worker; resolves the pending requests in the order they were sent.

    Usually one request is pending. Pipelined ones (the pool's, docs/architecture.md#pipelining) wait
    in `waiting` behind it: the worker reads and answers frames in order, so each answer is the
    oldest request's. A batch streams `item` frames before its final answer: they go to `on_item`
    (and restart the timeout), so a worker that dies mid-batch tells exactly which deliveries completed.
    """

    def __init__(self) -> None:
        self.reader = wire.FrameReader()
        self.waiting: deque[tuple[asyncio.Future[wire.Frame], float]] = deque()  # (answer, timeout) in order
        self.on_item: Callable[[dict[str, Any]], None] | None = None
        self.on_paused: Callable[[], None] | None = None
        self.on_answer: Callable[[], None] | None = None  # the head answered: the next one's clock starts
        self.transport: asyncio.Transport | None = None
        self.closed = False

    @property
    def pending(self) -> asyncio.Future[wire.Frame] | None:
        """The request the worker is running (the oldest unanswered one)."""
        return self.waiting[0][0] if self.waiting else None

    def fail(self, head: BaseException) -> None:
        """Fail every unanswered request: the running one with `head`, those behind it as NotStarted."""
        waiting, self.waiting = self.waiting, deque()
        for number, (future, _) in enumerate(waiting):
            if not future.done():
                future.set_exception(head if number == 0 else NotStarted("the worker ended before this request began"))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a Unix stream connection: always a Transport

    def data_received(self, data: bytes) -> None:
        # `gated` (a batch item waiting at its gate, docs/verification.md#steps-crashes-and-the-overlap-gate)
        # is streamed like `item` and is never the answer: without `on_item` it is dropped
        for frame in self.reader.feed(data):
            op = frame[0].get("op")
            if op == "paused":  # at a breakpoint (an attached worker): never the answer
                if self.on_paused is not None:
                    self.on_paused()
                continue
            if op == "gated" or (op == "item" and self.on_item is not None):
                if self.on_item is not None:
                    self.on_item(frame[0])
                continue
            if self.waiting:
                future, _ = self.waiting.popleft()
                if not future.done():  # a cancelled caller's answer is read and dropped: the order holds
                    future.set_result(frame)
                if self.waiting and self.on_answer is not None:
                    self.on_answer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.fail(WorkerDied("worker exited"))


class _Output(asyncio.SubprocessProtocol):
    """The worker's stdout and stderr, relayed line by line to the console."""

    def __init__(self, sink: OutputSink) -> None:
        self.sink = sink
        self.partial = b""
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for line in lines:
            self.sink(line.decode(errors="replace"))

    def process_exited(self) -> None:
        if self.exited.done():
            return
        if self.partial:
            self.sink(self.partial.decode(errors="replace"))
            self.partial = b""
        if not self.exited.done():
            self.exited.set_result(0)


class _Handle(Protocol):
    """What WorkerProcess needs of its process: an asyncio SubprocessTransport has it, and so has
    `_Forked` (a fork server's child)."""

    def get_pid(self) -> int: ...

    def get_returncode(self) -> int | None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class _Forked:
    """A fork server's child as a `_Handle`. Its status comes from the fork server; `output.exited`
    is resolved once that status is known and the output pipe is drained (or 0.1 s later, when a
    process the worker started keeps the pipe open), so no line it wrote before exiting is lost."""

    DRAIN = 0.1

    def __init__(self, child: forkserver.ForkedChild, output: _Output) -> None:
        self.child = child
        self.output = output
        self.pipe: asyncio.ReadTransport | None = None
        self.pipe_open = True
        child.exited.add_done_callback(self._exited)

    def get_pid(self) -> int:
        return self.child.pid

    def get_returncode(self) -> int | None:
        return self.child.returncode

    def kill(self) -> None:
        self.child.kill()

    def close(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        self.kill()  # as a SubprocessTransport's close() does with a process still running

    def pipe_closed(self) -> None:
        self.pipe_open = False
        if self.child.exited.done():
            self.output.process_exited()

    def _exited(self, _: object) -> None:
        if not self.pipe_open:
            self.output.process_exited()
        else:
            self.child.exited.get_loop().call_later(self.DRAIN, self.output.process_exited)


class _Pipe(asyncio.Protocol):
    """The read end of a forked worker's stdout+stderr pipe, fed to `_Output` as a subprocess pipe."""

    def __init__(self, forked: _Forked) -> None:
        self.forked = forked

    def data_received(self, data: bytes) -> None:
        self.forked.output.pipe_data_received(1, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.forked.pipe_closed()


class WorkerProcess:
    """One worker interpreter. Not reused across functions; killed rather than cleaned up."""

    def __init__(self, transport: _Handle, output: _Output, channel: _Channel) -> None:
        self.transport = transport
        self.output = output
        self.channel = channel
        self.pid: int = transport.get_pid()
        self.kill_reason: str | None = None
        self.started = time.monotonic()
        self.ready_modules: list[str] = []
        self.deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._outbox: list[bytes] = []  # pipelined frames written together on the loop's next turn
        channel.on_paused = self._paused
        channel.on_answer = self._next_started

    @classmethod
    async def spawn(cls, root: str, output: OutputSink, env: dict[str, str] | None = None,
                    *, attached: bool = False, preload: Sequence[str] = ()) -> WorkerProcess:
        """`attached`: the worker reads this process's stdin and writes to its stderr directly (not
        relayed line by line), so `breakpoint()` gives a usable pdb (`faasemu invoke`); it is always
        a fresh interpreter. `preload`: runtimes whose SDKs the worker imports before any user module
        (a fork server started for them has them imported already: `preload()` is then free).
        Raises OSError when the worker cannot start (no such root)."""
        # never the whole shell (faasemu/project/environment.py); `load` adds the function's own
        env = env if env is not None else handler_base_env(os.environ)
        if not attached and forkserver.enabled():
            worker = await cls._fork(root, output, env, preload)
            if worker is not None:
                return worker
        worker = await cls._start(root, output, env, attached)
        if preload:
            try:
                await worker.preload(list(preload))
            except BaseException:
                await worker.terminate()
                raise
        return worker

    @classmethod
    async def _fork(cls, root: str, sink: OutputSink, env: dict[str, str],
                    preload: Sequence[str]) -> WorkerProcess | None:
        """A worker forked by this loop's fork server; None when none can fork it (then: `_start`)."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        read_end, write_end = os.pipe()
        try:
            try:
                forked = await forkserver.spawn(root, env, (child.fileno(), write_end), preload)
            finally:
                child.close()
                os.close(write_end)
        except BaseException:
            parent.close()
            os.close(read_end)
            raise
        if forked is None:
            parent.close()
            os.close(read_end)
            return None
        output = _Output(sink)
        handle = _Forked(forked, output)
        pipe = os.fdopen(read_end, "rb", buffering=0)
        try:
            handle.pipe, _ = await loop.connect_read_pipe(lambda: _Pipe(handle), pipe)
            _, channel = await loop.create_unix_connection(_Channel, sock=parent)
        except BaseException:  # cancelled (Ctrl+C) part-way: the process must not be left behind
            forkserver.kill_group(forked.pid)
            parent.close()
            if handle.pipe is None:
                pipe.close()
            await _reap(output)
            handle.close()
            raise
        return cls(handle, output, channel)

    @classmethod
    async def _start(cls, root: str, output: OutputSink, env: dict[str, str], attached: bool) -> WorkerProcess:
        """A fresh interpreter: `python -m faasemu.workers.entry FD PID`."""
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Output(output),
                sys.executable,
                "-m",
                "faasemu.workers.entry",
                str(child.fileno()),
                str(os.getpid()),  # the worker ends itself if this process goes (entry.die_with_parent)
                *(["attached"] if attached else []),
                stdin=None if attached else subprocess.DEVNULL,
                stdout=sys.stderr.fileno() if attached else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(child.fileno(),),
                cwd=root,
                env=env,
                # a Ctrl+C in the terminal is the supervisor's to handle; an attached worker stays in the
                # terminal's foreground group, or reading the terminal would stop it (SIGTTIN)
                start_new_session=not attached,
            )
        finally:
            child.close()
        try:
            _, channel = await loop.create_unix_connection(_Channel, sock=parent)
        except BaseException:  # cancelled (Ctrl+C) between the two: the process must not be left behind
            try:
                os.killpg(transport.get_pid(), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):  # an attached worker leads no group of its own
                try:
                    transport.kill()
                except ProcessLookupError:
                    pass
            parent.close()
            await _reap(protocol)  # reaped before the loop ends, or its transport warns when collected
            transport.close()
            raise
        return cls(transport, protocol, channel)

    @property
    def alive(self) -> bool:
        """Running and reachable. False as soon as it is killed: its exit is reported later, and a
        killed worker must never be handed to the next request meanwhile."""
        return self.kill_reason is None and self.transport.get_returncode() is None and not self.channel.closed

    @property
    def exit_description(self) -> str:
        code = self.transport.get_returncode()
        if code is None:
            return "worker exited"
        if code < 0:
            try:
                return f"worker killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"worker killed by signal {-code}"
        return f"worker exited with status {code}"

    async def preload(self, runtimes: list[str], timeout: float = 30.0) -> None:
        """Have a spare worker import the platform SDKs of these runtimes (never user code); nothing
        to do when its fork server imported them already (`spawn(preload=...)`)."""
        if isinstance(self.transport, _Forked) and set(runtimes) <= set(self.transport.child.server.key[0]):
            return
        await self.request({"op": "preload", "runtimes": runtimes}, b"", timeout)

    async def load(self, function: dict[str, Any], root: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
        """Send `load` and wait for `ready`. Raises LoadFailed with the user's error, or WorkerDied/Timeout.

        The worker enforces `timeout` itself and answers an `InitTimeout` naming the module and line it
        was stuck in; this side kills it LOAD_GRACE later in case it cannot (stuck in C code).
        """
        message = {"op": "load", "function": function, "root": root, "env": env, "timeout": timeout}
        if isinstance(self.transport, _Forked) and function.get("runtime") in PLATFORMS:
            self.transport.child.server.learn(PLATFORMS[function["runtime"]].module)
        reply, _ = await self.request(message, b"", timeout + LOAD_GRACE)
        if reply.get("op") == "load_error":
            raise LoadFailed(WorkerError.from_wire(reply["error"]))
        self.ready_modules = reply.get("modules", [])
        return reply

    async def request(
        self, header: dict[str, Any], body: bytes, timeout: float,
        on_item: Callable[[dict[str, Any]], None] | None = None, *, watched: bool = False,
    ) -> wire.Frame:
        """One round trip. On timeout the worker is killed: a handler cannot be interrupted safely.

        With `watched`, the deadline is left on the worker (`deadline`, loop time) for the pool's
        watchdog, which sweeps busy workers every 25 ms: cheaper than a timer per request.
        Otherwise a timer enforces it. A batch whose item timer is reset on each item is unwatched.
        With `on_item`, each streamed `item` frame is passed to it and restarts the `timeout`
        (which then bounds one item of a batch, not the whole batch).

        Watched requests may be pipelined: sent while earlier ones are unanswered (the pool does it
        for a fast function's queued HTTP requests, pool.py `_hand_out`). Each waits its turn in the
        worker; its `timeout` starts when the one before it is answered, and it raises NotStarted if
        the worker ends before its turn. Frames sent in one turn of the loop go in one write.
        """
        if not self.alive:
            raise WorkerDied(self.exit_description)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[wire.Frame] = loop.create_future()
        channel = self.channel
        assert channel.transport is not None
        first = not channel.waiting
        assert first or (watched and on_item is None), "only watched requests are pipelined"
        channel.waiting.append((future, timeout))
        timed = first and not watched  # unwatched (loading, a campaign's batch): a timer of its own
        if first:
            self.deadline = loop.time() + timeout
            if timed:
                self._timer = loop.call_at(self.deadline, self._deadline_reached)
        if on_item is not None:
            def item_arrived(item: dict[str, Any]) -> None:
                self.deadline = loop.time() + timeout  # the timer, when it fires, reads the moved deadline
                on_item(item)

            channel.on_item = item_arrived
        frame = wire.encode(header, body)
        if first and not self._outbox:
            channel.transport.write(frame)
        else:
            if not self._outbox:
                loop.call_soon(self._flush)
            self._outbox.append(frame)
        try:
            return await future
        except NotStarted:
            raise
        except WorkerDied:
            await self.wait_exited()
            raise WorkerDied(self.exit_description) from None
        finally:
            if timed and self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not channel.waiting:
                self.deadline = None
            channel.on_item = None if on_item is not None else channel.on_item

    def _deadline_reached(self) -> None:
        """An unwatched request's timer: expire, or wait on if an item moved the deadline meanwhile
        (moving it costs a batch item one assignment, not a timer cancelled and made again)."""
        self._timer = None
        if self.deadline is None:  # paused at a breakpoint, or answered
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self.deadline:
            self._timer = loop.call_at(self.deadline, self._deadline_reached)
        else:
            self.expire()

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        transport = self.channel.transport
        if frames and transport is not None and not transport.is_closing():
            transport.writelines(frames)

    def _next_started(self) -> None:
        """The worker answered the oldest request and is starting the next one: its clock starts now."""
        if self.channel.waiting and self.deadline is not None:
            self.deadline = asyncio.get_running_loop().time() + self.channel.waiting[0][1]

    @property
    def in_flight(self) -> int:
        """Requests sent and not answered (more than one when pipelined)."""
        return len(self.channel.waiting)

    def _paused(self) -> None:
        """The handler stopped at a breakpoint: the request in flight has no deadline any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.deadline = None

    def expire(self) -> None:
        """The deadline passed: kill the worker and fail the request in flight with WorkerTimeout (and
        any pipelined behind it with NotStarted: they never began)."""
        self.kill("timeout")
        self.channel.fail(WorkerTimeout())

    def kill(self, reason: str = "stopped") -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        if self.transport.get_returncode() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    self.transport.kill()
                except ProcessLookupError:
                    pass

    async def wait_exited(self, timeout: float = 2.0) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.output.exited), timeout)
        except TimeoutError:
            pass

    async def terminate(self) -> None:
        """Kill the worker now and reap it, so nothing outlives the event loop."""
        self.kill("shutdown")
        await self.wait_exited()
        if self.channel.transport is not None:
            self.channel.transport.close()
        self.transport.close()
        if isinstance(self.transport, _Forked):  # the last one: its fork server is stopped too
            await forkserver.release(self.transport.child)

    def close(self) -> None:
        """Ask the worker to finish by closing its socket (it exits at EOF), and kill it if it lingers."""
        if self.channel.transport is not None:
            self.channel.transport.close()
        asyncio.get_running_loop().call_later(1.0, self.kill)

    def rss_bytes(self) -> int:
        """Resident memory of the worker and the processes it started (a runtime that forks per call,
        as Kubeless does), from /proc; 0 when unavailable (the process is gone)."""
        total = _rss(self.pid)
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children", "rb") as children:
                total += sum(_rss(int(child)) for child in children.read().split())
        except (OSError, ValueError):
            pass
        return total


async def _reap(output: _Output, timeout: float = 2.0) -> None:
    """Wait (shielded: also while being cancelled) for a killed worker's exit to be reported."""
    try:
        await asyncio.wait_for(asyncio.shield(output.exited), timeout)
    except (TimeoutError, asyncio.CancelledError):
        pass


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0
