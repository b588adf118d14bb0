"""A fork server: one pre-started interpreter that forks workers, so a cold start costs a fork.

A fresh `python -m faasemu.workers.entry` pays an interpreter start and faasemu's imports (~60-90 ms,
more on a busy machine) before it can import the user's code; a campaign starts fresh workers for
every run. The fork server pays that once, then forks a child per worker: the child holds the
standard library, faasemu's worker modules and, for a server started for some runtimes, their
platform SDKs (`entry.preload`), never a user module. The child then becomes exactly what the
subprocess path makes (docs/architecture.md#fork-server):

- its own session (`setsid`, as `start_new_session`): the supervisor kills it with its group;
- stdin /dev/null, stdout and stderr one pipe read by the supervisor, its socketpair end at fd 3,
  no other descriptor (the server's control socket and wake-up pipe are closed);
- its environment exactly the `env` asked for (`os.environ` cleared, then set), cwd the project
  root, `sys.path[0]` that directory as `python -m` would make it (the server runs with `-P`, so
  its own path has no directory of the supervisor's);
- signal handlers back to the defaults, `random` reseeded (Python's own at-fork hook);
- it dies with the fork server (PR_SET_PDEATHSIG), which dies with the supervisor (its control socket
  closes; PR_SET_PDEATHSIG sends it SIGTERM too, and it kills and reaps its children before it ends).

What a fork cannot give: the interpreter's start-up settings are the server's. So servers are
keyed by the variables read at start-up (PYTHON*, locale, LD_LIBRARY_PATH) and by the preloaded
runtimes; a worker whose environment asks for coverage measurement (COVERAGE_PROCESS_START,
COV_CORE_*: hooks run at start-up) takes the subprocess path, and so does every worker with
FAASEMU_FORKSERVER=0 in faasemu's own environment. Forked workers share the server's string hash seed.

Protocol (a SOCK_SEQPACKET socketpair, one JSON object per record):
  supervisor -> server: spawn {id, root, env} with two descriptors (the worker's socket end, its
                        output pipe's write end); import {modules} (faasemu's own runtime adapters,
                        learnt from the workers' loads: the next fork has them); stop {}
  server -> supervisor: ready {pid}; spawned {id, pid} | refused {id, error}; exited {pid, status}
                        (status as asyncio's returncode: negative for a signal); then EOF.
Exit statuses come from here because a worker is the server's child, not the supervisor's.

The server half imports no asyncio (every worker would inherit it); the client half (the asyncio
side, used by process.py) imports it when first used.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

ENV_SWITCH = "FAASEMU_FORKSERVER"  # "0": every worker is a fresh interpreter (the subprocess path)
STARTUP_TIMEOUT = 30.0  # a server not ready by then is given up for this event loop (fallback)
STOP_TIMEOUT = 5.0
RECORD_LIMIT = 1 << 20  # one spawn request: its environment must fit
WORKER_FD = 3
LEARNABLE = ("faasemu.runtimes.",)  # what the server may import when a worker's load names it
_STARTUP_NAMES = frozenset({"LANG", "LANGUAGE", "LD_LIBRARY_PATH", "LD_PRELOAD"})
_STARTUP_PREFIXES = ("PYTHON", "LC_")
_COVERAGE = ("COVERAGE_PROCESS_START", "COV_CORE_")

Key = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]  # (preloaded runtimes, start-up variables)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Off with FAASEMU_FORKSERVER=0 (or "false", "no", "off"), and where there is no fork (not POSIX)."""
    return hasattr(os, "fork") and environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def server_key(env: Mapping[str, str], preload: Sequence[str] = ()) -> Key | None:
    """Which server may fork a worker with this environment: the one started with the same start-up
    variables and preloads. None when none may (coverage's start-up hooks must run in the worker).

    >>> server_key({"PATH": "/bin", "LANG": "C.UTF-8"}, ["gcf"])
    (('gcf',), (('LANG', 'C.UTF-8'),))
    >>> server_key({"COVERAGE_PROCESS_START": ".coveragerc"}) is None
    True
    """
    if any(name.startswith(_COVERAGE) for name in env):
        return None
    startup = sorted((k, v) for k, v in env.items() if k in _STARTUP_NAMES or k.startswith(_STARTUP_PREFIXES))
    return tuple(sorted(set(preload))), tuple(startup)


# -- the server process -------------------------------------------------------------------------


def _send(control: socket.socket, message: dict[str, Any]) -> bool:
    try:
        control.send(json.dumps(message).encode())
        return True
    except OSError:  # the supervisor is gone: the loop ends on its EOF
        return False


def serve(control: socket.socket, supervisor: int, runtimes: Sequence[str]) -> None:
    """The server's loop: single-threaded, forking from a state that holds no user module."""
    import ctypes  # noqa: F401  # entry.die_with_parent needs it in every child: imported once, here
    import sqlite3  # noqa: F401  # most handlers import it (SQLite is faasemu's default state): ~3 ms less per cold start

    from faasemu.workers import entry

    entry.die_with_parent(supervisor, signal.SIGTERM)  # SIGTERM: our children are killed and reaped first
    if runtimes:
        entry.preload(list(runtimes))
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    stopping: list[int] = []
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)  # the wake-up byte is what counts
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    children: set[int] = set()
    poller = select.poll()
    poller.register(control.fileno(), select.POLLIN)
    poller.register(wake_r.fileno(), select.POLLIN)
    if not _send(control, {"op": "ready", "pid": os.getpid()}):
        return
    while not stopping:
        for fd, _events in poller.poll():
            if fd == wake_r.fileno():
                try:
                    while wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            try:
                data, fds, flags, _ = socket.recv_fds(control, RECORD_LIMIT, 2)
            except OSError:
                data, fds, flags = b"", [], 0
            if not data:
                stopping.append(0)  # the supervisor closed its end, or ended
                break
            message = json.loads(data)
            if message.get("op") == "stop":
                stopping.append(0)
                break
            if message.get("op") == "import":
                _import_own(message.get("modules", ()))
                continue
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 2:
                for each in fds:
                    os.close(each)
                _send(control, {"op": "refused", "id": message.get("id"),
                                "error": "fork server: a spawn request needs its socket and pipe, and an environment "
                                         f"under {RECORD_LIMIT} bytes"})
                continue
            pid = _spawn(control, message, fds, (wake_r, wake_w))
            if pid:
                children.add(pid)
        _reap(control, children, block=False)
    signal.set_wakeup_fd(-1)
    for pid in children:
        kill_group(pid)
    _reap(control, children, block=True)


def _import_own(modules: Sequence[str]) -> None:
    """Import faasemu's runtime adapters (they import only the standard library at module level:
    runtimes/contract.py); anything else is refused, so no user module ever enters the server."""
    import importlib

    for name in modules:
        if name.startswith(LEARNABLE):
            try:
                importlib.import_module(name)
            except Exception:  # the worker that loads it reports the error
                pass


def kill_group(pid: int) -> None:
    """SIGKILL a worker's session (or the worker alone, before it made one)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # not yet its own session leader
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _reap(control: socket.socket, children: set[int], *, block: bool) -> None:
    """Collect ended children and report each one's status (asyncio's returncode convention)."""
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        try:  # what the worker left running in its session ends with it (a worker that ended at its EOF
            os.killpg(pid, signal.SIGKILL)  # before the stop, say): never os.kill, the pid may be reused
        except (ProcessLookupError, PermissionError):
            pass
        _send(control, {"op": "exited", "pid": pid, "status": os.waitstatus_to_exitcode(status)})


def _spawn(control: socket.socket, message: dict[str, Any], fds: list[int], wake: tuple[socket.socket, ...]) -> int:
    """Fork one worker; returns its pid (0 when refused). Its `spawned` goes out before any `exited`."""
    root, env = message["root"], message["env"]
    if not os.path.isdir(root):
        for each in fds:
            os.close(each)
        _send(control, {"op": "refused", "id": message["id"],
                        "error": f"cannot start a worker in {root}: no such directory"})
        return 0
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        _become_worker(control, wake, fds, root, env, server)  # never returns
    for each in fds:
        os.close(each)
    _send(control, {"op": "spawned", "id": message["id"], "pid": pid})
    return pid


def _become_worker(control: socket.socket, wake: tuple[socket.socket, ...], fds: list[int], root: str,
                   env: dict[str, str], server: int) -> None:
    """In the child: set the process up as the subprocess path would have, then run the worker."""
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        from faasemu.workers import entry

        entry.die_with_parent(server)
        for sock in (control, *wake):
            sock.detach()  # closed below by number: no socket object may close a reused descriptor later
        worker_sock, out = fds
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        if worker_sock != WORKER_FD:
            os.dup2(worker_sock, WORKER_FD)
        os.closerange(WORKER_FD + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir(root)
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        sys.path.insert(0, os.getcwd())  # what `python -m` puts first: the working directory
        sys.argv = [entry.__file__, str(WORKER_FD), str(server)]
        _main_module(entry)
        code = 0
        entry.run(socket.socket(fileno=WORKER_FD))
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # as the interpreter does: the traceback on stderr, status 1
        sys.excepthook(*sys.exc_info())
        code = 1
    finally:
        _finalize()
        os._exit(code)


def _main_module(entry: Any) -> None:
    """`__main__` as `python -m faasemu.workers.entry` has it (not the fork server's)."""
    import types

    main = types.ModuleType("__main__")
    for name in ("__file__", "__spec__", "__loader__", "__package__", "__builtins__"):
        if hasattr(entry, name):
            setattr(main, name, getattr(entry, name))
    sys.modules["__main__"] = main


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _finalize() -> None:
    """What the interpreter does at exit, before os._exit skips it: join non-daemon threads, run
    `atexit` functions, flush the standard streams."""
    try:
        if "threading" in sys.modules:
            shutdown: Callable[[], None] | None = getattr(sys.modules["threading"], "_shutdown", None)
            if shutdown is not None:
                shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:
            pass


# -- the supervisor's side ----------------------------------------------------------------------


class ServerGone(Exception):
    """The fork server ended (or never became ready) before it answered."""


class ForkedChild:
    """A worker forked by a server: its pid, and its exit status once the server reports it."""

    def __init__(self, server: ForkServer, pid: int, exited: asyncio.Future[int]) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None
        self.exited = exited

    def ended(self, status: int) -> None:
        if self.returncode is None:
            self.returncode = status
        if not self.exited.done():
            self.exited.set_result(self.returncode)

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ForkServer:
    """One running server, as seen from the supervisor's event loop."""

    def __init__(self, key: Key) -> None:
        import asyncio

        self.key = key
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[int] = self.loop.create_future()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.pending: dict[int, asyncio.Future[ForkedChild]] = {}
        self.children: dict[int, ForkedChild] = {}
        self.sock: socket.socket | None = None
        self.transport: asyncio.SubprocessTransport | None = None
        self.process_exited: asyncio.Future[None] = self.loop.create_future()
        self._ids = 0
        self.learnt: set[str] = set()
        self._stopping: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.transport is None else self.transport.get_pid()

    @property
    def busy(self) -> bool:
        """Workers alive, or being forked: stopping now would kill them."""
        return bool(self.children or self.pending)

    async def start(self, env: Mapping[str, str]) -> None:
        import asyncio
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server = self

        class Exited(asyncio.SubprocessProtocol):
            def process_exited(self) -> None:
                if not server.process_exited.done():
                    server.process_exited.set_result(None)

        try:
            self.transport, _ = await self.loop.subprocess_exec(
                Exited, sys.executable, "-P", "-m", "faasemu.workers.forkserver",
                str(theirs.fileno()), str(os.getpid()), ",".join(self.key[0]),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,  # its own errors: our stderr
                pass_fds=(theirs.fileno(),), cwd="/", env=dict(env),
                start_new_session=True,  # a Ctrl+C in the terminal is the supervisor's to handle
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.loop.add_reader(ours.fileno(), self._readable)
        self._keeper = self.loop.create_task(self._keep())
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), STARTUP_TIMEOUT)
        except BaseException:
            await self.stop()
            raise

    async def _keep(self) -> None:
        """Stop the server when the event loop's owner shuts down (asyncio.run cancels every task)."""
        import asyncio

        try:
            await asyncio.shield(self.lost)
        finally:
            await self.stop()

    async def spawn(self, root: str, env: Mapping[str, str], fds: Sequence[int]) -> ForkedChild:
        """Fork a worker. Raises OSError (refused: no such root) or ServerGone."""
        if self.lost.done():
            raise ServerGone()
        assert self.sock is not None
        self._ids += 1
        ident = self._ids
        future: asyncio.Future[ForkedChild] = self.loop.create_future()
        self.pending[ident] = future
        record = json.dumps({"op": "spawn", "id": ident, "root": root, "env": dict(env)}).encode()
        try:
            self._write(record, fds)
            return await future
        finally:
            self.pending.pop(ident, None)  # cancelled: the child, when reported, is killed (_readable)

    def learn(self, module: str) -> None:
        """A worker of this server loads a function of this runtime: have the server import its
        adapter module (faasemu's, ~40 ms), so the next workers it forks start with it."""
        if module in self.learnt or self.sock is None or not module.startswith(LEARNABLE):
            return
        self.learnt.add(module)
        try:
            self._write(json.dumps({"op": "import", "modules": [module]}).encode())
        except OSError:
            pass

    def _write(self, record: bytes, fds: Sequence[int] = ()) -> None:
        assert self.sock is not None
        try:
            socket.send_fds(self.sock, [record], list(fds))
        except BlockingIOError:  # its queue is full: wait for room (the server reads as fast as it forks)
            self.sock.setblocking(True)
            try:
                socket.send_fds(self.sock, [record], list(fds))
            finally:
                self.sock.setblocking(False)

    def _readable(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._gone()
                return
            message = json.loads(data)
            op = message.get("op")
            if op == "ready":
                if not self.ready.done():
                    self.ready.set_result(message["pid"])
            elif op == "spawned":
                child = ForkedChild(self, message["pid"], self.loop.create_future())
                self.children[child.pid] = child
                future = self.pending.pop(message["id"], None)
                if future is None or future.done():  # its spawn was cancelled: nobody will own it
                    kill_group(child.pid)
                else:
                    future.set_result(child)
            elif op == "refused":
                future = self.pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_exception(OSError(message["error"]))
            elif op == "exited":
                ended = self.children.pop(message["pid"], None)
                if ended is not None:
                    ended.ended(message["status"])

    def _gone(self) -> None:
        """EOF on the control socket: the server stopped or died; its children are dead or dying
        (PR_SET_PDEATHSIG), reported as killed."""
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if not self.ready.done():
            self.ready.set_exception(ServerGone())
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ServerGone())
        self.pending.clear()
        for child in self.children.values():
            child.ended(-signal.SIGKILL)
        self.children.clear()
        if not self.lost.done():
            self.lost.set_result(None)
        _forget(self)

    async def stop(self) -> None:
        """Ask the server to kill and reap its children and end; wait for it (and reap it)."""
        import asyncio

        if self._stopping is None:
            self._stopping = self.loop.create_task(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        import asyncio

        _forget(self)
        if self.sock is not None:
            try:
                self._write(json.dumps({"op": "stop"}).encode())
            except OSError:
                self._gone()
        for waiting in (self.lost, self.process_exited):
            try:
                await asyncio.wait_for(asyncio.shield(waiting), STOP_TIMEOUT)
            except TimeoutError:
                if self.transport is not None:
                    self.transport.kill()
                    self._gone()
        if self.transport is not None:
            self.transport.close()
        if self._keeper is not None and self._keeper is not asyncio.current_task():
            self._keeper.cancel()


_servers: dict[Any, dict[Key, ForkServer]] = {}  # event loop -> its running servers
_failed: dict[Any, set[Key]] = {}  # event loop -> servers that could not start: not tried again


def _forget(server: ForkServer) -> None:
    running = _servers.get(server.loop)
    if running is not None and running.get(server.key) is server:
        del running[server.key]
        if not running:
            del _servers[server.loop]


async def spawn(root: str, env: Mapping[str, str], fds: Sequence[int],
                preload: Sequence[str] = ()) -> ForkedChild | None:
    """Fork a worker from this loop's server for `env` and `preload` (started on first use).
    None when no server can (coverage, one that failed to start, one that died meanwhile): the caller
    starts a fresh interpreter instead. Raises OSError when the server refused (no such root)."""
    import asyncio

    key = server_key(env, preload)
    if key is None:
        return None
    loop = asyncio.get_running_loop()
    for stale in [each for each in _servers if each.is_closed()]:
        del _servers[stale]
    if key in _failed.get(loop, ()):
        return None
    server = _servers.get(loop, {}).get(key)
    if server is None:
        server = ForkServer(key)
        _servers.setdefault(loop, {})[key] = server
        try:
            await server.start(env)
        except (ServerGone, OSError, TimeoutError) as exc:
            _forget(server)
            _failed.setdefault(loop, set()).add(key)
            print(f"faasemu: the fork server did not start ({type(exc).__name__}: {exc}); "
                  "workers start as fresh interpreters", file=sys.stderr)
            return None
    else:
        try:
            await asyncio.shield(server.ready)
        except ServerGone:
            return None
    try:
        return await server.spawn(root, env, fds)
    except ServerGone:
        return None


async def release(child: ForkedChild) -> None:
    """After a worker was terminated: stop its server if no other worker needs it, so a shutdown
    leaves no process behind (the next spawn starts a new one)."""
    server = child.server
    if not server.busy and _servers.get(server.loop, {}).get(server.key) is server:
        await server.stop()


async def stop_idle() -> None:
    """Stop this loop's servers that no worker needs (a pool closing, `up` stopping)."""
    import asyncio

    loop = asyncio.get_running_loop()
    idle = [server for server in _servers.get(loop, {}).values() if not server.busy]
    await asyncio.gather(*(server.stop() for server in idle), return_exceptions=True)


def running_servers() -> list[int]:
    """The pids of this loop's servers (for tests and benchmarks)."""
    import asyncio

    return [pid for server in _servers.get(asyncio.get_running_loop(), {}).values() if (pid := server.pid)]


def main(argv: list[str]) -> None:
    """`python -P -m faasemu.workers.forkserver FD SUPERVISOR_PID [RUNTIME,...]`"""
    control = socket.socket(fileno=int(argv[1]))
    serve(control, int(argv[2]), [name for name in (argv[3] if len(argv) > 3 else "").split(",") if name])


if __name__ == "__main__":
    main(sys.argv)
