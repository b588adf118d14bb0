"""`faasemu up`: bind, build the supervisor, serve with uvicorn, watch the project."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from dataclasses import dataclass

from faasemu import __version__
from faasemu.chaos.model import ChaosOptions, LiveChaos, new_seed
from faasemu.project.console import Console, LogFormat, relative
from faasemu.project.errors import FaasemuError, UsageError
from faasemu.project.manifest import load_manifest
from faasemu.project.spec import Manifest
from faasemu.project.state import ensure_project_state

try:
    import fcntl
except ImportError:  # Windows: no flock; `up` runs without the one-per-project lock there
    fcntl = None  # type: ignore[assignment]


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
    allow_hosts: tuple[str, ...] = ()  # --allow-host, added to the manifest's allow_hosts (faasemu/project/hosts.py)


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


class ProjectInUse(FaasemuError):
    """Another `faasemu up` owns this project's event log: two would both deliver every event."""

    def __init__(self, lock_path: str, holder: dict[str, object]) -> None:
        pid = holder.get("pid") or "unknown"
        url = holder.get("url") or "its URL not written yet"
        super().__init__(
            f"another faasemu up (pid {pid}, {url}) is already serving this project and owns its event log "
            f"(lock {lock_path}); two would both deliver every event. Stop it first (Ctrl+C in its terminal, "
            f"or kill {pid}), or send it events: faasemu replay EVENTS.jsonl --target {holder.get('url') or 'URL'}"
        )


class ProjectLock:
    """`.faasemu/up.lock`, held with `flock` for the life of one `up`.

    An OS lock rather than a pid file: the kernel drops it when the process dies, however it dies
    (`kill -9` included), so a stale lock is simply taken over, and a recycled pid cannot fake one.
    The descriptor is not inheritable (PEP 446) and workers get only their own socket, so no worker
    keeps the lock after `up` is gone. The file holds the owner's pid and URL, for the refusal.
    `faasemu events` and `replay` do not take it: they share the log through SQLite as they always did.
    """

    def __init__(self, manifest: Manifest) -> None:
        folder = os.path.join(manifest.root, ".faasemu")
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "up.lock")
        self.shown = relative(self.path, os.getcwd())
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read()
            os.close(self.fd)
            raise ProjectInUse(self.shown, holder) from None
        self.write(None)

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(os.pread(self.fd, 4096, 0) or b"{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def write(self, url: str | None) -> None:
        if fcntl is None:
            return
        data = json.dumps({"pid": os.getpid(), "url": url}).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        try:
            if fcntl is not None:
                os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # closing the descriptor drops the flock


def write_server_marker(manifest: Manifest, base_url: str) -> str:
    """`.faasemu/up.json`: where this `up` listens, so `faasemu events --redrive` can wake it."""
    from faasemu.project.private import write_private_text

    path = server_marker_path(manifest)
    write_private_text(path, json.dumps({"url": base_url, "pid": os.getpid()}))  # .faasemu/ is 0600 throughout
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
    lock = ProjectLock(manifest)  # before binding: a second `up` on the same port must name the first
    try:
        _run_up(options, manifest, lock)
    finally:
        lock.release()


def _run_up(options: UpOptions, manifest: Manifest, lock: ProjectLock) -> None:
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

    env = project_env(manifest, base_url)
    supervisor = Supervisor(manifest, console, env, warm=options.warm)
    seed = options.seed if options.seed is not None else (new_seed() if options.chaos.active else 0)
    chaos = LiveChaos(options.chaos, seed) if options.chaos.active else None
    log_path = events_db_path(manifest)
    bus = Bus(EventLog(log_path), supervisor, seed=seed, chaos=chaos, retry_delay=options.retry_delay)
    supervisor.on_functions_changed.append(bus.sync_functions)
    from faasemu.project.hosts import HostGuard

    gateway = Gateway(supervisor, bus, HostGuard(host, (*manifest.allow_hosts, *options.allow_hosts)))
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
