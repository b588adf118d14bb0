"""`faasemu up` shuts the bus and the workers down once, in `serve`, however uvicorn ends."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from faasemu.project.spec import Manifest
from faasemu.server.gateway import Gateway
from faasemu.server.up import UpOptions, serve
from conftest import Server, write_project


class Recorder:
    """Stands in for the bus and the supervisor: notes each call in one shared list."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls
        self.console = self

    def start(self) -> int:
        self.calls.append(f"{self.name}.start")
        return 0

    async def close(self) -> None:
        self.calls.append(f"{self.name}.close")

    def notice(self, text: str) -> None: ...


def lifespan_only(run_shutdown: bool) -> Any:
    """uvicorn's Server.serve reduced to the lifespan; without the shutdown message, as a second Ctrl+C does."""

    async def fake_serve(self: uvicorn.Server, sockets: Any = None) -> None:
        incoming: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []
        await incoming.put({"type": "lifespan.startup"})
        if run_shutdown:
            await incoming.put({"type": "lifespan.shutdown"})

        async def send(message: dict[str, str]) -> None:
            sent.append(message["type"])

        app = self.config.app
        task = asyncio.create_task(app({"type": "lifespan"}, incoming.get, send))
        while "lifespan.startup.complete" not in sent or (run_shutdown and "lifespan.shutdown.complete" not in sent):
            await asyncio.sleep(0)
        task.cancel()

    return fake_serve


@pytest.mark.parametrize("run_shutdown", [True, False], ids=["graceful", "lifespan-skipped"])
def test_the_bus_then_the_workers_close_exactly_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     run_shutdown: bool) -> None:
    monkeypatch.setattr(uvicorn.Server, "serve", lifespan_only(run_shutdown))
    calls: list[str] = []
    supervisor, bus = Recorder("supervisor", calls), Recorder("bus", calls)
    gateway = Gateway(supervisor, bus)  # type: ignore[arg-type]  # recorders, not the real bus and supervisor
    manifest = Manifest(path=str(tmp_path / "faasemu.yaml"), root=str(tmp_path), name="p")
    with socket.socket() as sock:
        asyncio.run(serve(gateway, supervisor, sock, manifest, UpOptions(reload=False)))
    assert calls == ["supervisor.start", "bus.start", "bus.close", "supervisor.close"]


def _state(pid: int) -> str | None:
    """A process's state letter from /proc (`Z` for a zombie), or None once it is gone (reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stopped_up_has_reaped_its_workers_before_it_exits(tmp_path: Path, signum: int) -> None:
    """uvicorn re-raises SIGTERM as its serve() returns, killing the process before any `finally`:
    the workers must be closed during the lifespan shutdown, or they outlive `up` as zombies."""
    manifest = write_project(tmp_path, {
        "faasemu.yaml": """\
            functions:
              ok: {handler: app.py:handler, http: {path: /ok, methods: [GET]}, concurrency: 2}
            """,
        "app.py": "def handler(event, context):\n    return 'ok'\n",
    })
    server = Server(manifest).start()
    try:
        assert httpx.get(f"{server.url}/ok", timeout=10).status_code == 200
        assert server.process is not None
        workers = [int(p) for p in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
                   .read_text().split()]
        assert workers, "the request started a worker"
        server.process.send_signal(signum)
        server.process.wait(15)
        # The supervisor has exited: a worker it reaped has no /proc entry; one it left is a zombie
        # (or still running) until init gets to it.
        assert {pid: _state(pid) for pid in workers} == {pid: None for pid in workers}, server.output()
    finally:
        server.stop()
