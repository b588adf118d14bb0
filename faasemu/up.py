"""`faasemu up`: bind, build the supervisor, serve with uvicorn, watch the project."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from dataclasses import dataclass

from faasemu import __version__
from faasemu.chaos import ChaosOptions, LiveChaos, new_seed
from faasemu.console import Console, LogFormat, relative
from faasemu.errors import FaasemuError, UsageError
from faasemu.manifest import load_manifest
from faasemu.spec import Manifest
from faasemu.state import ensure_project_state


@dataclass(frozen=True)
class UpOptions:
    manifest: str = "faasemu.yaml"
    host: str | None = None
    port: int | None = None
    warm: bool = False
    reload: bool = True
    log_format: LogFormat = "text"
    quiet: bool = False
    chaos: ChaosOptions = ChaosOptions()
    seed: int | None = None
    retry_delay: float = 0.5


def bind(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a busy port is a clear error rather than a stack trace."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}; pass another --port") from None
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def project_env(manifest: Manifest, base_url: str) -> dict[str, str]:
    """The FAASEMU_* variables every handler gets in `up` (SPEC §2, §6)."""
    return {
        "FAASEMU_STATE": ensure_project_state(manifest),
        "FAASEMU_SINK_URL": f"{base_url}/_faasemu/sink",
        "FAASEMU_EVENTS_URL": f"{base_url}/_faasemu/events",
    }


def events_db_path(manifest: Manifest) -> str:
    folder = os.path.join(manifest.root, ".faasemu")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "events.db")


def server_marker_path(manifest: Manifest) -> str:
    return os.path.join(manifest.root, ".faasemu", "up.json")


def write_server_marker(manifest: Manifest, base_url: str) -> str:
    """`.faasemu/up.json`: where this `up` listens, so `faasemu events --redrive` can wake it."""
    path = server_marker_path(manifest)
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"url": base_url, "pid": os.getpid()}, file)
    return path


def remove_server_marker(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as file:
            if json.load(file).get("pid") == os.getpid():
                os.unlink(path)
    except (OSError, ValueError):
        pass


def running_server_url(manifest: Manifest) -> str | None:
    """The URL of the `faasemu up` serving this project, if one is alive."""
    try:
        with open(server_marker_path(manifest), encoding="utf-8") as file:
            marker = json.load(file)
        os.kill(int(marker["pid"]), 0)
        return str(marker["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def startup_rows(supervisor, base_url: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for pool in supervisor.pools.values():
        spec = pool.spec
        routes = pool.adapter_module.http_routes(spec)
        background = getattr(pool.adapter_module, "async_routes", lambda spec: ())(spec)
        triggers = [f"{' '.join(t.methods) or 'ANY'} {t.path}" for t in routes]
        triggers += [f"{' '.join(t.methods) or 'ANY'} {t.path} (202, via the bus)" for t in background]
        routes = (*routes, *background)
        if spec.events:
            triggers.append("events: " + ", ".join(spec.events))
        route = "\n".join(f"{base_url}{t.path}" for t in routes)
        rows.append((spec.name, spec.runtime, "\n".join(triggers) or "-", route or "-"))
    return rows


def run_up(options: UpOptions) -> None:
    manifest = load_manifest(options.manifest)
    host = options.host or manifest.host
    port = manifest.port if options.port is None else options.port
    sock = bind(host, port)
    base_url = f"http://{url_host(host)}:{sock.getsockname()[1]}"
    console = Console(options.log_format, options.quiet)
    from faasemu.bus import Bus
    from faasemu.eventlog import EventLog
    from faasemu.gateway import Gateway
    from faasemu.supervisor import Supervisor

    env = project_env(manifest, base_url)
    supervisor = Supervisor(manifest, console, env, warm=options.warm)
    seed = options.seed if options.seed is not None else (new_seed() if options.chaos.active else 0)
    chaos = LiveChaos(options.chaos, seed) if options.chaos.active else None
    log_path = events_db_path(manifest)
    bus = Bus(EventLog(log_path), supervisor, seed=seed, chaos=chaos, retry_delay=options.retry_delay)
    supervisor.on_functions_changed.append(bus.sync_functions)
    gateway = Gateway(supervisor, bus)
    state = relative(env["FAASEMU_STATE"], manifest.root)
    console.startup(
        f"faasemu {__version__} · {manifest.name} · {base_url} · state {state} · events {relative(log_path, manifest.root)}",
        startup_rows(supervisor, base_url),
        ("watching the project for changes · " if options.reload else "")
        + f"post events to {base_url}/_faasemu/events · Ctrl+C to stop",
    )
    if chaos is not None:
        console.warning(f"live chaos: {' '.join(options.chaos.flags())} --seed {seed} (every injected perturbation is logged)")
    if not is_loopback(host):
        console.warning(
            f"listening on {host}: the event ingress, the Lambda Invoke API and every function are open to the "
            "network without authentication"
        )
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvicorn[standard] brings uvloop where it builds; asyncio's loop works too
        loop_factory = None
    marker = write_server_marker(manifest, base_url)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(gateway, supervisor, sock, manifest, options))
    except KeyboardInterrupt:
        pass  # Ctrl+C is how `up` is stopped: uvicorn shut down gracefully and re-raised the signal
    finally:
        remove_server_marker(marker)


async def serve(gateway, supervisor, sock: socket.socket, manifest: Manifest, options: UpOptions) -> None:
    import uvicorn

    # No proxy-headers middleware (nothing sits in front of a local emulator) and no Server header:
    # both cost time on every request of the hot path.
    config = uvicorn.Config(gateway, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3,
                            proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(supervisor, manifest, options.manifest, stop)) if options.reload else None
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()
        if watcher is not None:
            watcher.cancel()
        await supervisor.close()


async def watch(supervisor, manifest: Manifest, given_path: str, stop: asyncio.Event) -> None:
    from faasemu.watch import source_changes

    manifest_path = os.path.realpath(manifest.path)
    async for paths in source_changes(manifest.root, manifest.path, stop):
        try:
            if manifest_path in paths:
                paths.discard(manifest_path)
                supervisor.manifest_changed(lambda: load_manifest(given_path))
            if paths:
                supervisor.files_changed(paths)
        except FaasemuError as exc:  # never let a bad edit stop the watcher
            supervisor.console.warning(str(exc))
