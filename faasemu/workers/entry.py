"""A worker process: loads one function, then answers invocations over a socket, one at a time.

Started as `python -m faasemu.workers.entry FD PID` with its end of a socketpair at FD; it ends when
the process PID (the supervisor that started it) does. Usually it is forked instead, from a fork server
holding these modules already (faasemu/workers/forkserver.py); both ways end in `run`.
It imports only the standard library (a bare interpreter starts in ~20 ms; the supervisor's web
stack would add 0.3 s to every cold start and reload). User code is imported only after the
`load` message has set the function's environment, so a pre-started worker holds no user module.

Messages (see `faasemu/workers/wire.py` for framing):
  in:  preload {runtimes} (optional, before load)  out: preloaded
  in:  load {function, root, env, timeout} out: ready {ms, modules} | load_error {error}
                                           (an import still running after `timeout` s: InitTimeout)
  in:  http {id, req, inv} + body          out: done {id, ok, res, error?, ms, modules?} + body
  in:  event {id, delivery, inv}           out: done {id, ok, error?, ms, modules?}
  in:  raw {id, inv} + payload             out: done {id, ok, error?, ms, modules?} + result
  in:  records {id, inv, records: [{delivery, seq?}]}
                                           out: done {id, ok, failed?, error?, ms, modules?}
  `records` delivers several events in ONE invocation (Lambda's SQS batches, docs/delivery.md#batches-sqs):
  each `delivery` is a `Delivery.to_wire()` numbered and identified by the caller, `seq` the event's
  position in the log or file (a FIFO SequenceNumber; optional), `inv` the one invocation's. Answers:
  ok true, failed [] (every record succeeded); ok true, failed [i, ...] (the records at those positions
  failed, by a batchItemFailures answer; the rest succeeded); ok false, error (the whole batch failed:
  the handler raised, or its batchItemFailures answer was malformed, error.type InvalidBatchResponse,
  the message saying why). A timeout or crash gives no answer: the whole batch failed.
  in:  batch {timeout, items: [{event, attempt, attempt_id, request_id, steps?, crash_after?, gate?, records?,
             http?, http_body?}]}  (http: the request a trigger's webhook gets, as `http` takes it; its body as text)
                                           out: item {i, status, error?, retryable?, steps?, failed?} per item,
                                                then done
  With `records` ([{event, attempt, attempt_id, seq?}]), the item is ONE invocation of those SQS records
  (the adapter's `deliver_batch`); `failed` lists the positions its batchItemFailures named.
  With `gate` (a lock file), `gated {i}` first, then the handler once the runner releases the lock;
  with `steps` (a counter file), the item's commits as `steps: [[n, "commit", [table, ...]], ...]`;
  with `crash_after: k`, an item frame with status `crashed` and the process gone (137) right after
  step k (faasemu/workers/steps.py, docs/verification.md#steps-crashes-and-the-overlap-gate).
  A batch delivers several events in a row (a campaign run ships whole stretches of its schedule
  at once), each attempt numbered and identified by the runner from the delivery policy, and stops
  after the first delivery that raises: the runner decides what follows (docs/delivery.md).
A handler that calls sys.exit, or crashes the interpreter, ends this process: the supervisor
sees the socket close and answers for it, as a platform reports a runtime exit.
"""

from __future__ import annotations

import dataclasses
import fcntl
import io
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any, BinaryIO, cast

from faasemu.project.failures import Frame, WorkerError, is_retryable
from faasemu.project.platforms import PLATFORMS
from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.base import Delivery, HttpRequest, HttpResponse, Invocation, new_request_id
from faasemu.runtimes.contract import Adapter, load_runtime
from faasemu.workers import importer, steps, wire

_OWN_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_IMPORT_MACHINERY = (os.path.dirname(os.__file__) + os.sep + "importlib", "<frozen importlib")


def _is_machinery(filename: str) -> bool:
    """faasemu's own frames and the import system's: noise above the user's first frame."""
    return filename.startswith(_OWN_PACKAGE + os.sep) or filename.startswith(_IMPORT_MACHINERY)


class LoadDeadline(BaseException):
    """Raised into the user's module code when its import runs past the load deadline. A
    BaseException, so that the user's own `except Exception:` around a slow call does not swallow it."""


_UNARMED = object()


def _arm_load_deadline(seconds: float | None) -> Any:
    """SIGALRM after `seconds`: it interrupts a sleep, a socket read or a lock wait at module level,
    so the worker itself can say where its import was stuck. Returns the previous handler."""
    if not seconds or seconds <= 0:
        return _UNARMED

    def expired(_signum: int, _frame: Any) -> None:
        raise LoadDeadline(seconds)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


def _disarm_load_deadline(previous: Any) -> None:
    if previous is not _UNARMED:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


def describe_load_deadline(exc: LoadDeadline, root: str) -> WorkerError:
    """An InitTimeout naming the project module whose top-level code was running, and the line."""
    error = describe_error(exc, root)
    seconds = exc.args[0] if exc.args else 0
    frames = [f for f in error.frames if not _is_machinery(f[0])]
    user = [f for f in frames if os.path.realpath(f[0]).startswith(root + os.sep)]
    importing = [f for f in user if f[2] == "<module>"]
    module = os.path.relpath(importing[-1][0], root) if importing else "the handler's module"
    where = f"{os.path.relpath(user[-1][0], root)}:{user[-1][1]}" if user else ""
    stuck = f"; stuck in `{user[-1][3]}`" if user and user[-1][3] else ""
    # 10 s is pool.LOAD_TIMEOUT (not imported here: the pool's module brings asyncio into every worker)
    return dataclasses.replace(
        error, type="InitTimeout", where=where, frames=tuple(frames),
        message=f"{module} did not finish importing within {seconds:g} s (the load deadline: the function's "
                f"timeout, at least Lambda's 10 s init limit){stuck}",
    )


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """End this worker when the process that started it ends, however it ends (even `kill -9`).

    Workers run in a session of their own (a Ctrl+C is the supervisor's to handle), so no signal from
    the terminal reaches them; a worker stuck in its import never reads the socket whose EOF would
    otherwise tell it. Linux's PR_SET_PDEATHSIG does; elsewhere the supervisor's shutdown must.
    `signum`: the signal sent then (a fork server asks for SIGTERM, to kill and reap its children first).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request above took effect
        os._exit(1)


def describe_error(exc: BaseException, root: str) -> WorkerError:
    """The error as the console shows it: type, message, the user's frames, and the project line at fault.

    Frames above the user's first one (this worker, the runtime adapter, importlib) are dropped, as
    the Lambda runtime drops its own from `stackTrace`.
    """
    frames: list[Frame] = [
        (frame.filename, frame.lineno or 0, frame.name, frame.line or "")
        for frame in traceback.extract_tb(exc.__traceback__)
    ]
    while frames and _is_machinery(frames[0][0]):
        frames.pop(0)
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        frames = [(exc.filename, exc.lineno or 0, "<module>", (exc.text or "").strip())]
        where = f"{os.path.relpath(exc.filename, root)}:{exc.lineno or 0}"
    else:
        for filename, lineno, _name, _line in reversed(frames):
            if os.path.realpath(filename).startswith(root + os.sep):
                where = f"{os.path.relpath(filename, root)}:{lineno}"
                break
    return WorkerError(
        type=type(exc).__name__, message=str(exc), where=where, frames=tuple(frames),
        text="".join(traceback.format_exception(exc)),
        retryable=is_retryable(exc),
    )


class Worker:
    """The loaded function and the loop that serves it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = cast(BinaryIO, sock.makefile("rb", buffering=256 * 1024))  # typeshed: IOBase for "rb"
        self.root = os.getcwd()
        self.adapter: Adapter  # set by load(), before serve() reads any message
        self.known_modules = 0
        self.imported: importer.ProjectModules | None = None  # made by load(), before user code

    def load(self, message: dict[str, Any]) -> None:
        started = time.perf_counter()
        self.root = os.path.realpath(message["root"])
        self.imported = importer.ProjectModules(self.root)
        os.chdir(self.root)
        os.environ.update(message.get("env", {}))
        if "TZ" in message.get("env", {}):
            time.tzset()
        if self.root not in sys.path:
            sys.path.insert(0, self.root)
        importer.install_source_only_imports(self.root)
        spec = FunctionSpec.from_wire(message["function"])
        if os.environ.get("FAASEMU_DEBUGPY"):  # before the user's module: breakpoints in its top level work too
            wait_for_debugger(self.sock, os.environ["FAASEMU_DEBUGPY"])
        previous = _arm_load_deadline(message.get("timeout"))
        try:
            runtime = load_runtime(spec.runtime)
            adapter = runtime.adapter(spec)
            # each platform imports the handler's file its own way (importer.import_handler_module)
            module = importer.import_handler_module(self.root, spec.handler_file, spec.handler_module,
                                                    runtime.capabilities.import_style)
            adapter.bind(module)
            _disarm_load_deadline(previous)
        except LoadDeadline as exc:  # stuck importing: say where, then this worker ends
            _disarm_load_deadline(previous)
            wire.write_frame(self.sock, {"op": "load_error", "error": describe_load_deadline(exc, self.root).to_wire()})
            raise SystemExit(3) from None
        except Exception as exc:  # the user's syntax or import error: reported, then this worker ends
            _disarm_load_deadline(previous)
            wire.write_frame(self.sock, {"op": "load_error", "error": describe_error(exc, self.root).to_wire()})
            raise SystemExit(3) from None
        self.adapter = adapter
        wire.write_frame(
            self.sock, {"op": "ready", "ms": (time.perf_counter() - started) * 1000, "modules": self.modules()}
        )

    def modules(self) -> list[str]:
        self.known_modules = len(sys.modules)
        assert self.imported is not None
        return self.imported.current()

    def serve(self) -> None:
        while True:
            try:
                message, body = wire.read_frame_from(self.stream)
            except EOFError:
                return
            reply, reply_body = self.handle(message, body)
            if message.get("op") == "batch":
                wire.write_frame(self.sock, reply, reply_body)
                continue
            if len(sys.modules) != self.known_modules:
                reply["modules"] = self.modules()
            wire.write_frame(self.sock, reply, reply_body)

    def handle(self, message: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        op = message["op"]
        if op == "batch":
            return self.batch(message), b""
        inv = Invocation.from_wire(message["inv"])
        if "timeout" in message["inv"]:  # relative: a pipelined request's clock starts now, not when it was sent
            inv.deadline = time.time() + message["inv"]["timeout"]
        if not inv.request_id:  # HTTP calls: made here, off the supervisor's busy core
            inv.request_id = new_request_id()
        reply: dict[str, Any] = {"op": "done", "id": message.get("id"), "ok": True}
        started = time.perf_counter()
        out = b""
        try:
            if op == "http":
                response = self.adapter.invoke_http(HttpRequest.from_wire(message["req"], body), inv)
                reply["res"] = response.to_wire()
                out = response.body
            elif op == "event":
                self.adapter.deliver(Delivery.from_wire(message["delivery"]), inv)
            elif op == "raw":
                out = self.adapter.invoke_raw(body, inv)
            elif op == "records":
                records = message["records"]
                reply["failed"] = self.adapter.deliver_batch(
                    [Delivery.from_wire(r["delivery"]) for r in records], inv, [r.get("seq") for r in records])
            else:
                raise ValueError(f"unknown operation {op!r}")
        except Exception as exc:  # the handler raised: answer as the platform does, and report it
            reply["ok"] = False
            reply["error"] = describe_error(exc, self.root).to_wire()
            if op == "http":
                response = self._error_response(exc, inv)
                reply["res"] = response.to_wire()
                out = response.body
            elif op == "raw" and (payload := self.adapter.error_payload(exc, inv)) is not None:
                reply["payload"] = payload
        reply["ms"] = (time.perf_counter() - started) * 1000
        reply["rid"] = inv.request_id
        if op == "raw" and self.adapter.last_log is not None:
            reply["log"] = self.adapter.last_log  # the invocation's output, for Lambda's `LogType: Tail`
        return reply, out

    def batch(self, message: dict[str, Any]) -> dict[str, Any]:
        """Deliver several events in a row, each as numbered and identified by the campaign runner,
        stopping after the first that fails: what follows a failure (a retry, a dead letter, the
        rest of the batch) is the delivery policy's to decide (faasemu/delivery/policy.py), and the
        runner asks it; this loop only runs the handler, so it cannot disagree with `up` or `replay`.

        An item may also ask for its steps traced (`steps`), to be killed right after its k-th step
        (`crash_after`), or to wait at a gate shared with another worker (`gate`), so that two copies
        start together (docs/verification.md#steps-crashes-and-the-overlap-gate)."""
        timeout = message["timeout"]
        started = time.perf_counter()
        for index, item in enumerate(message["items"]):
            attempt = item["attempt"]
            report: dict[str, Any] = {"op": "item", "i": index, "status": "ok"}
            tracer: steps.StepTracer | None = None
            problem = steps.item_problem(item)
            if problem is None and item.get("steps") is not None:
                def crashed(trace: list[steps.Step], index: int = index) -> None:
                    wire.write_frame(self.sock, {"op": "item", "i": index, "status": "crashed", "steps": trace})

                try:
                    tracer = steps.StepTracer(steps.counter(item["steps"]), item.get("crash_after"), crashed)
                except (OSError, ValueError) as exc:  # missing, or not an 8-byte counter (mmap: ValueError)
                    problem = f"cannot map the step counter {item['steps']}: {exc}"
            if problem is None and (gate := item.get("gate")) is not None:
                # signal `gated`, then wait for the runner to drop its LOCK_EX: one release starts both copies
                try:
                    fd = os.open(gate, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    problem = f"cannot open the gate file {gate}: {exc.strerror or exc}"
                else:
                    try:
                        wire.write_frame(self.sock, {"op": "gated", "i": index})
                        fcntl.flock(fd, fcntl.LOCK_SH)
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    finally:
                        os.close(fd)
            if problem is not None:  # faasemu's message, not the handler: reported, never retried
                wire.write_frame(self.sock, {**report, "status": "error", "retryable": False,
                                             "error": f"batch item {index}: {problem}"})
                break
            try:
                if tracer is not None:
                    tracer.start()
                try:
                    inv = Invocation(item["request_id"], time.time() + timeout, attempt)
                    if item.get("records") is not None:  # SQS records in one invocation: which failed
                        records = item["records"]
                        failed = self.adapter.deliver_batch(
                            [Delivery(r["event"], r["attempt"], r["attempt_id"]) for r in records], inv,
                            [r.get("seq") for r in records])
                        if failed:
                            report["failed"] = failed
                    elif item.get("http") is not None:  # a trigger's webhook POST: a 2xx answer succeeds
                        request = HttpRequest.from_wire(item["http"], item.get("http_body", "").encode())
                        response = self.adapter.invoke_http(request, inv)
                        if not 200 <= response.status < 300:
                            report["status"] = "error"
                            report["error"] = f"the webhook answered HTTP {response.status}"
                    else:
                        self.adapter.deliver(Delivery(item["event"], attempt, item["attempt_id"]), inv)
                finally:
                    if tracer is not None:
                        tracer.stop()
            except Exception as exc:  # the handler failed: reported, and the runner decides what follows
                report["status"] = "error"
                report["error"] = f"{type(exc).__name__}: {exc}"
                if not is_retryable(exc):
                    report["retryable"] = False
            if tracer is not None:
                report["steps"] = tracer.steps
            wire.write_frame(self.sock, report)
            if report["status"] != "ok":
                break
        return {"op": "done", "ok": True, "ms": (time.perf_counter() - started) * 1000}

    def _error_response(self, exc: Exception, inv: Invocation) -> HttpResponse:
        try:
            return self.adapter.error_response(exc, inv)
        except Exception:
            return HttpResponse(500, [("content-type", "text/plain")], b"Internal Server Error")


def wait_for_debugger(sock: socket.socket, port: str) -> None:
    """`up --debug FN --debugpy PORT`: listen on 127.0.0.1:PORT for an editor's debugger (debugpy, the
    Debug Adapter Protocol VS Code and PyCharm speak) and wait until one attaches, the supervisor told first
    that the worker is paused (no deadline meanwhile). `breakpoint()` then stops in the editor
    (PYTHONBREAKPOINT=debugpy.breakpoint, set by the supervisor). docs/runtime-contract.md#debugging."""
    try:
        import debugpy
    except ImportError:
        wire.write_frame(sock, {"op": "load_error", "error": WorkerError(
            "Runtime.ImportModuleError", "--debugpy needs debugpy in the environment faasemu runs in: "
            "pip install 'faasemu[debug]'").to_wire()})
        raise SystemExit(3) from None
    debugpy.listen(("127.0.0.1", int(port)))
    wire.write_frame(sock, {"op": "paused"})
    sys.stderr.write(f"faasemu: waiting for a debugger on 127.0.0.1:{port} (attach your editor: debugpy)\n")
    sys.stderr.flush()
    debugpy.wait_for_client()


def attach_debugger(sock: socket.socket) -> None:
    """`breakpoint()` in a worker attached to the terminal (`faasemu invoke`): pdb on the terminal, and
    the supervisor told first that the worker is paused, so no deadline kills it while a person reads
    (the load alarm is disarmed too). docs/runtime-contract.md#debugging."""

    def paused(*args: Any, **kwargs: Any) -> None:
        import pdb

        signal.setitimer(signal.ITIMER_REAL, 0)
        wire.write_frame(sock, {"op": "paused"})
        pdb.Pdb().set_trace(sys._getframe(1))

    sys.breakpointhook = paused


def main(argv: list[str]) -> None:
    """`python -m faasemu.workers.entry FD PID [attached]`: the subprocess path (process.py)."""
    if len(argv) > 2:
        die_with_parent(int(argv[2]))
    run(socket.socket(fileno=int(argv[1])), attached=len(argv) > 3 and argv[3] == "attached")


def run(sock: socket.socket, *, attached: bool = False) -> None:
    """Serve one worker's life on `sock`: optional preloads, one `load`, then requests until EOF.

    Both ways a worker starts call this, once its process is set up: `main` (a fresh interpreter) and
    a fork server's child (faasemu/workers/forkserver.py), so the two cannot drift apart."""
    sys.dont_write_bytecode = True
    if isinstance(sys.stdout, io.TextIOWrapper):  # not when a test harness replaced it
        sys.stdout.reconfigure(line_buffering=True)
    if attached:
        attach_debugger(sock)
    worker = Worker(sock)
    while True:
        try:
            message, _ = wire.read_frame_from(worker.stream)
        except EOFError:
            return
        if message.get("op") != "preload":
            break
        preload(message.get("runtimes", ()))
        wire.write_frame(sock, {"op": "preloaded"})
    worker.load(message)
    worker.serve()


def preload(runtimes: list[str]) -> None:
    """Import platform SDKs before any user module (docs/verification.md#isolation allows a pre-started worker to hold
    faasemu's code and the SDKs): a campaign's spare workers then skip ~0.3 s per run."""
    import importlib

    for runtime in runtimes:
        for name in PLATFORMS[runtime].capabilities.preload:
            try:
                importlib.import_module(name)
            except Exception:  # a missing SDK is reported when the function loads, with the extra to install
                pass


if __name__ == "__main__":
    main(sys.argv)
