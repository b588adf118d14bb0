"""`faasemu up`: bind, build the supervisor, serve with uvicorn, watch the project."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from dataclasses import dataclass, field

from faasemu import __version__
from faasemu.chaos.live import LiveChaos
from faasemu.chaos.model import ChaosOptions, new_seed
from faasemu.project.console import Console, LogFormat, relative
from faasemu.project.environment import effect_urls, faasemu_env
from faasemu.project.errors import FaasemuError, UsageError
from faasemu.project.manifest import load_manifest
from faasemu.project.ownership import ProjectLock, remove_server_marker, write_server_marker
from faasemu.project.paths import ProjectPaths
from faasemu.project.spec import Manifest
from faasemu.project.state import OpenState, ensure_project_state, open_project_state


@dataclass(frozen=True)
class UpOptions:
    manifest: str = "faasemu.yaml"
    host: str | None = None
    port: int | None = None
    warm: bool = False
    reload: bool = True
    log_format: LogFormat = "text"
    quiet: bool = False
    chaos: ChaosOptions = field(default_factory=ChaosOptions)
    seed: int | None = None
    retry_delay: float = 0.5
    allow_hosts: tuple[str, ...] = ()  # --allow-host, added to the manifest's allow_hosts (faasemu/project/hosts.py)
    debug: str | None = None  # --debug FN (docs/runtime-contract.md#debugging)
    debugpy: int | None = None  # --debugpy PORT: FN's worker waits there for an editor's debugger
    ui: bool = True  # the dashboard at /_faasemu/ (faasemu/server/dashboard.py); --no-ui turns it off


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


WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def local_url(host: str, port: int) -> str:
    """The URL that reaches this `up` from this machine. A wildcard bind (`0.0.0.0`, `::`) is not an
    address anyone can connect to: handlers, the startup table and `up.json` get loopback instead."""
    return f"http://{url_host(WILDCARDS.get(host, host))}:{port}"


def network_urls(host: str, port: int) -> list[str]:
    """Best-effort addresses other machines may use when `up` binds every interface. Found by the
    route to a non-routable address (a UDP connect sends nothing), so no DNS lookup can hang `up`."""
    if host not in WILDCARDS:
        return []
    family, probe = (socket.AF_INET6, "fd00::1") if host == "::" else (socket.AF_INET, "10.255.255.255")
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.connect((probe, 1))
            address = udp.getsockname()[0]
    except OSError:
        return []
    if is_loopback(address):
        return []
    return [f"http://{url_host(address)}:{port}"]


def project_env(manifest: Manifest, base_url: str, state: str | None = None) -> dict[str, str]:
    """The FAASEMU_* variables every handler gets in `up`, on top of the platform's and the manifest's
    (docs/runtime-contract.md#the-supervisor-side-half-runtime). `state`: where the state is, when the
    caller opened it (project/state.py `open_project_state`)."""
    location = state if state is not None else ensure_project_state(manifest)
    return faasemu_env(location, *effect_urls(f"{base_url}/_faasemu"), queues=bool(manifest.queues))


def events_db_path(manifest: Manifest) -> str:
    paths = ProjectPaths(manifest.root)
    paths.folder()
    return paths.events_db


def startup_rows(supervisor, base_url: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for pool in supervisor.pools.values():
        spec = pool.spec
        routes = pool.adapter_module.http_routes(spec)
        background = pool.adapter_module.async_routes(spec)
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
    if options.debug is not None and manifest.function(options.debug) is None:
        names = ", ".join(spec.name for spec in manifest.functions) or "none"
        raise UsageError(f"--debug {options.debug}: {options.manifest} has no such function (functions: {names})")
    lock = ProjectLock(manifest)  # before binding: a second `up` on the same port must name the first
    try:
        with open_project_state(manifest) as state:
            _run_up(options, manifest, lock, state)
    finally:
        lock.release()


def _run_up(options: UpOptions, manifest: Manifest, lock: ProjectLock, state: OpenState) -> None:
    host = options.host or manifest.host
    port = manifest.port if options.port is None else options.port
    sock = bind(host, port)
    base_url = local_url(host, sock.getsockname()[1])
    lock.write(base_url)
    console = Console(options.log_format, options.quiet)
    from faasemu.delivery.bus import Bus
    from faasemu.delivery.eventlog import EventLog
    from faasemu.server.gateway import Gateway
    from faasemu.server.supervisor import Supervisor

    env = project_env(manifest, base_url, state.location)
    supervisor = Supervisor(manifest, console, env, warm=options.warm, debug=options.debug, debugpy=options.debugpy)
    seed = options.seed if options.seed is not None else (new_seed() if options.chaos.active else 0)
    chaos = LiveChaos(options.chaos, seed) if options.chaos.active else None
    log_path = events_db_path(manifest)
    bus = Bus(EventLog(log_path), supervisor, seed=seed, chaos=chaos, retry_delay=options.retry_delay,
              triggers=lambda: supervisor.manifest.triggers)
    supervisor.on_functions_changed.append(bus.sync_functions)
    if state.capture is not None:
        from faasemu.delivery.relay import CaptureSource, TriggerRelay

        bus.relay = TriggerRelay(CaptureSource(state.capture, state.location), bus,
                                 lambda: supervisor.manifest.triggers)
    supervisor.on_functions_changed.append(lambda: triggers_changed(supervisor, state, manifest.triggers))
    from faasemu.project.hosts import HostGuard

    gateway = Gateway(supervisor, bus, HostGuard(host, (*manifest.allow_hosts, *options.allow_hosts)), ui=options.ui)
    shown = redacted(state.location) if "://" in state.location else relative(state.location, manifest.root)
    events = relative(log_path, manifest.root)
    console.startup(
        f"faasemu {__version__} · {manifest.name} · {base_url} · state {shown} · events {events}",
        startup_rows(supervisor, base_url),
        ("watching the project for changes · " if options.reload else "")
        + f"post events to {base_url}/_faasemu/events · "
        + (f"dashboard {base_url}/_faasemu/ · " if options.ui else "") + "Ctrl+C to stop",
    )
    if options.debugpy is not None:
        console.warning(f"debugging {options.debug}: its worker waits for an editor's debugger on 127.0.0.1:"
                        f"{options.debugpy} (debugpy) when it starts, and has no timeout")
    elif options.debug is not None:
        console.warning(f"debugging {options.debug}: one worker on this terminal; a breakpoint() stops in pdb here, "
                        "and its timeout does not run while it is paused")
    if chaos is not None:
        flags = " ".join(options.chaos.flags())
        console.warning(f"live chaos: {flags} --seed {seed} (every injected perturbation is logged)")
    if not is_loopback(host):
        reachable = ""
        if host in WILDCARDS:
            others = ", ".join(network_urls(host, sock.getsockname()[1])) or "this machine's addresses"
            reachable = f" (every interface; from other machines: {others})"
        console.warning(
            f"listening on {host}{reachable}: the event ingress, the Lambda Invoke API and every function are open "
            "to the network without authentication"
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


def triggers_changed(supervisor, state: OpenState, first: tuple) -> None:
    """After a live manifest edit: install the edited triggers (dropping stale ones); a table or column
    the database lacks is reported and the last good triggers keep capturing."""
    manifest = supervisor.manifest
    if state.capture is None:
        if manifest.triggers:
            supervisor.console.warning("triggers added while `up` runs without any start capturing at the next "
                                       "`faasemu up`")
        return
    try:
        state.capture.install(state.location, manifest.triggers, manifest.path)
    except FaasemuError as exc:
        supervisor.console.warning(f"{exc}\n         the triggers installed before keep capturing")


def redacted(url: str) -> str:
    """A database URL as `up` prints it: never its password."""
    scheme, _, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{place}"


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
        # The one shutdown (Gateway.shutdown, which the lifespan has usually run already): however
        # uvicorn ended, the bus stops delivering first, then the workers go.
        stop.set()
        if watcher is not None:
            watcher.cancel()
        await gateway.shutdown()


async def watch(supervisor, manifest: Manifest, given_path: str, stop: asyncio.Event) -> None:
    from faasemu.server.watch import source_changes

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
