"""`faasemu up` shuts the bus and the workers down once, in `serve`, however uvicorn ends."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from faasemu.project.spec import Manifest
from faasemu.server.gateway import Gateway
from faasemu.server.up import UpOptions, serve


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
