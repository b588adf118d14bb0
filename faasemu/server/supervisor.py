"""The supervisor's state: one pool per function, the router, and live changes to both.

No HTTP here: the gateway turns requests into `invoke_http` calls, the watcher turns file
changes into `files_changed` and `manifest_changed`. A configuration is swapped whole, so a
request sees either the old routes or the new ones, never a mix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from faasemu.project.console import Console, relative
from faasemu.project.errors import FaasemuError
from faasemu.project.failures import WorkerError
from faasemu.project.spec import FunctionSpec, HttpTrigger, Manifest
from faasemu.runtimes.base import HttpRequest, HttpResponse, new_request_id
from faasemu.server.router import Router
from faasemu.workers.pool import FunctionPool, Outcome, Watchdog


def async_routes(pool: FunctionPool) -> tuple[HttpTrigger, ...]:
    return pool.adapter_module.async_routes(pool.spec)


def host_routes(pool: FunctionPool) -> tuple[tuple[HttpTrigger, HttpResponse], ...]:
    """Paths the platform's host answers itself (Azure's home page and ping), if the runtime has any."""
    return pool.adapter_module.host_routes(pool.spec)


DEBUG_TIMEOUT = 24 * 3600.0  # `--debugpy`: a person stepping through a handler in an editor


class Supervisor:
    """Owns the workers of every function of the current manifest."""

    def __init__(self, manifest: Manifest, console: Console, extra_env: dict[str, str], *, warm: bool = False,
                 debug: str | None = None, debugpy: int | None = None) -> None:
        self.manifest = manifest
        self.debug = debug  # `up --debug FN`: that function's one worker is attached to the terminal
        self.debugpy = debugpy  # `--debugpy PORT`: that worker waits for an editor's debugger there
        self.console = console
        self.extra_env = extra_env
        self.warm = warm
        self.watchdog = Watchdog()
        self.pools: dict[str, FunctionPool] = {}
        self.router = Router()
        self.on_functions_changed: list[Callable[[], None]] = []
        for spec in manifest.functions:
            self.pools[spec.name] = self._new_pool(spec)
        self._build_router()

    def _new_pool(self, spec: FunctionSpec) -> FunctionPool:
        return FunctionPool(self._as_run(spec), self.manifest.root, self.extra_env, self, self.watchdog,
                            warm=self.warm, attached=spec.name == self.debug)

    def _as_run(self, spec: FunctionSpec) -> FunctionSpec:
        """The function debugged gets one worker (one terminal, one pdb at a time)."""
        # concurrency_set: never overlapped either (`--overlap` would lend it a second attached worker)
        if spec.name != self.debug:
            return spec
        spec = dataclasses.replace(spec, concurrency=1, concurrency_set=True)
        if self.debugpy is None:
            return spec
        # An editor's breakpoint says nothing to faasemu (pdb's does: workers/entry.py): no deadline at all.
        env = {**spec.env, "FAASEMU_DEBUGPY": str(self.debugpy), "PYTHONBREAKPOINT": "debugpy.breakpoint",
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # not its note on frozen modules, at every start
        return dataclasses.replace(spec, env=env, timeout=DEBUG_TIMEOUT)

    def _build_router(self) -> None:
        pools = list(self.pools.values())
        self.router = Router.build(
            [(pool.spec, pool.adapter_module.http_routes(pool.spec)) for pool in pools],
            [(pool.spec, async_routes(pool)) for pool in pools],
            [(pool.spec, host_routes(pool)) for pool in pools],
        )

    def start(self) -> None:
        if self.warm:
            for pool in self.pools.values():
                pool.start_warm()

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()
        self.watchdog.stop()
        self.console.flush()

    # -- invoking --------------------------------------------------------------------------------

    async def invoke_http(self, name: str, request: HttpRequest) -> tuple[HttpResponse, Outcome]:
        pool = self.pools[name]
        outcome = await pool.call({"op": "http", "req": request.to_wire(), "inv": {"request_id": "", "deadline": 0.0}},
                                  request.body, pipelinable=True)
        if outcome.kind in ("ok", "error") and "res" in outcome.reply:
            response = HttpResponse.from_wire(outcome.reply["res"], outcome.body)
        else:
            response = pool.adapter_module.failure_response(outcome.kind, outcome.message, new_request_id())
        self.report(name, f"{request.method} {request.path}", response.status, outcome)
        return response, outcome

    def report(self, name: str, trigger: str, status: str | int, outcome: Outcome, note: str = "") -> None:
        try:
            self.console.invocation(name, trigger, status, outcome.ms, outcome.cold_ms, note)
            if outcome.kind == "error" and outcome.error:
                self.console.error(name, outcome.error)
            elif outcome.kind in ("timeout", "crash", "oom"):
                self.console.error(name, WorkerError(outcome.kind, outcome.message))
        except Exception as exc:
            self.console.internal_error(f"could not log {trigger} of {name} ({status}): {type(exc).__name__}: {exc}")

    # -- PoolObserver ----------------------------------------------------------------------------

    def worker_output(self, function: str, line: str) -> None:
        self.console.worker_output(function, line)

    def load_failed(self, function: str, error: WorkerError) -> None:
        self.console.error(function, error, context="cannot load the handler; answering 503 until the file is fixed")

    def load_recovered(self, function: str, ms: float) -> None:
        self.console.notice(f"reload  {function} ready ({ms:.0f} ms)", style="green")

    # -- live changes ----------------------------------------------------------------------------

    def files_changed(self, paths: set[str]) -> list[str]:
        """Restart the workers a change to these source files can affect; returns their names.

        A function is affected when one of its workers imported a changed file, when the file is
        its handler, or when it is broken or still importing (the change may be the fix: a module
        created, say, or a `time.sleep` removed from a module its import is stuck in).
        A function never started has nothing to restart: its first worker reads the new code.
        """
        affected = []
        for pool in self.pools.values():
            handler = os.path.realpath(pool.spec.handler_file) if pool.spec.handler_file else None
            if pool.broken is not None or pool.loading or pool.modules & paths or handler in paths:
                affected.append(pool.spec.name)
                pool.reload()
        names = ", ".join(sorted(relative(p, self.manifest.root) for p in paths))
        if affected:
            self.console.notice(f"reload  {names} changed -> {', '.join(affected)}")
        return affected

    def manifest_changed(self, loader: Any) -> bool:
        """Apply an edited manifest live; an invalid one is reported and the last good one kept."""
        try:
            new: Manifest = loader()
        except FaasemuError as exc:
            self.console.warning(f"{exc}\n         the previous configuration keeps serving")
            return False
        old = self.manifest
        if (new.host, new.port) != (old.host, old.port):
            self.console.warning("host and port changes apply at the next `faasemu up`")
        changes = []
        for spec in new.functions:
            pool = self.pools.get(spec.name)
            if pool is None:
                self.pools[spec.name] = self._new_pool(spec)
                if self.warm:
                    self.pools[spec.name].start_warm()
                changes.append(f"+{spec.name}")
            elif pool.spec != self._as_run(spec):
                pool.reload(self._as_run(spec))
                changes.append(f"~{spec.name}")
        for name in [n for n in self.pools if new.function(n) is None]:
            pool = self.pools.pop(name)
            pool.retire()
            changes.append(f"-{name}")
        self.manifest = new
        self.pools = {spec.name: self.pools[spec.name] for spec in new.functions}
        self._build_router()
        for listener in self.on_functions_changed:
            listener()
        applied = " ".join(changes) or "no function changed"
        self.console.notice(f"reload  {relative(new.path, new.root)} applied: {applied}")
        return True

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for pool in self.pools.values():
            spec = pool.spec
            rows.append(
                {
                    "name": spec.name,
                    "runtime": spec.runtime,
                    "handler": spec.handler,
                    "http": [{"path": t.path, "methods": list(t.methods) or ["ANY"]}
                             for t in pool.adapter_module.http_routes(spec)],
                    "async_http": [{"path": t.path, "methods": list(t.methods) or ["ANY"]} for t in async_routes(pool)],
                    "events": list(spec.events),
                    "timeout": spec.timeout,
                    "memory": spec.memory,
                    "concurrency": spec.concurrency,
                    "retries": spec.retries,
                    **pool.status(),
                }
            )
        return rows


