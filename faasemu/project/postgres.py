"""The private PostgreSQL server of `state: {postgres: auto}`: one per project, shared by leases.

`private_server(folder)` gives a running server on a Unix socket only (no TCP port, so nothing is
exposed). What is done with its databases (and with a server the user runs) is project/postgres_sql.py's;
finding initdb, pg_ctl and postgres is project/postgres_binaries.py's.

The folder (`.faasemu/postgres/`, `ProjectPaths.postgres`) holds:

    data/           the cluster (PGDATA); built under a temporary name and renamed into place
    .s.PGSQL.5432   the server's socket, when the path is short enough (else see `socket`)
    socket          the short private folder under /tmp that holds the socket instead
    server.log      the server's log (pg_ctl -l)
    lock            flock'ed by whoever creates, starts, joins, leaves or stops the server
    leases/         one file per user of the server: pid and process start time

`up`, `invoke`, `replay` and `chaos` may run at once on one project, so none of them owns the
server: each takes a lease, the first starts the server, the last to leave stops it, and a lease
whose process died (kill -9) is pruned by the next one to look, which then reuses the server or
stops it. PostgreSQL's own `postmaster.pid` says whether a server runs on the cluster (and the
postmaster refuses to start beside another one), so nothing here guesses.

Root: initdb, pg_ctl and postgres refuse to run as root. Run by root, faasemu runs them as `postgres`
(the account Debian's package makes) or else `nobody`, owner of the folder (0700); `.faasemu/` is then
made 0711 instead of 0700 (others may pass through to that folder, not list or read anything), since
the server could not reach its cluster otherwise. Root itself connects through the 0700 socket,
because root bypasses permissions.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from faasemu.project.errors import PostgresError
from faasemu.project.postgres_binaries import PgBinaries, find_binaries, said
from faasemu.project.private import FOLDER_MODE, is_project_folder, private_folder, write_private_text

SUPERUSER = "faasemu"
# The project's database. The cluster is the project's own, so a fixed name cannot clash, survives
# renaming the project in the manifest, and can be written in docs: `psql "$DATABASE_URL"` aside.
DATABASE = "app"
PORT = 5432  # only names the socket (.s.PGSQL.5432): listen_addresses = '' opens no TCP port
# sun_path is 108 bytes on Linux and 104 on macOS, the final NUL included.
SOCKET_PATH_MAX = 107 if sys.platform.startswith("linux") else 103
# Part of the pristine cluster's cache key: bump it when the initdb options or faasemu.conf's include change.
LAYOUT = 1
START_TIMEOUT = 60  # seconds; a cold start takes ~0.1 s, a crashed server's recovery longer


# -- Who runs the server ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """The unprivileged account the server runs as when faasemu runs as root."""

    name: str
    uid: int
    gid: int

    def as_user(self) -> dict[str, Any]:
        """subprocess arguments that switch to this account; extra_groups=[] drops root's own groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_account(folder: str) -> Account | None:
    """None when faasemu is not root (the server runs as the user). As root: whoever owns an existing
    cluster (made by an earlier run), else `postgres` if that account exists, else `nobody`."""
    if os.geteuid() != 0:
        return None
    for existing in (os.path.join(folder, "data"), folder):
        try:
            owner = os.stat(existing)
        except FileNotFoundError:
            continue
        if owner.st_uid != 0:
            try:
                return Account(pwd.getpwuid(owner.st_uid).pw_name, owner.st_uid, owner.st_gid)
            except KeyError:
                return Account(str(owner.st_uid), owner.st_uid, owner.st_gid)
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(name, entry.pw_uid, entry.pw_gid)
    raise PostgresError(
        "PostgreSQL refuses to run as root, and this machine has neither a `postgres` nor a `nobody` account to run "
        "it as: run faasemu as an ordinary user, or give the URL of a server you run in `state.postgres`."
    )


def _check_reachable(folder: str, account: Account) -> None:
    """Refuse, before initdb or pg_ctl fails obscurely, a folder the server's account cannot reach.

    Only the account's primary group counts: the server runs with no supplementary groups.
    """
    parent = os.path.dirname(os.path.abspath(folder))
    ancestors = []
    while True:
        ancestors.append(parent)
        if os.path.dirname(parent) == parent:
            break
        parent = os.path.dirname(parent)
    for ancestor in reversed(ancestors):
        info = os.stat(ancestor)
        mode = info.st_mode
        if ((info.st_uid == account.uid and mode & stat.S_IXUSR) or (info.st_gid == account.gid and mode & stat.S_IXGRP)
                or mode & stat.S_IXOTH):
            continue
        raise PostgresError(
            f"PostgreSQL refuses to run as root, so faasemu runs its server as the user '{account.name}', which cannot "
            f"enter {ancestor} ({stat.filemode(mode)}, owner uid {info.st_uid}) on the way to {folder}. Let it pass "
            f"through (`chmod o+x {ancestor}`: others may then traverse it, not list it), run faasemu as an ordinary "
            "user, or give the URL of a server you run in `state.postgres`."
        )


# -- The server -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    """A running private server: connect with `url(database)` (libpq's URI, socket folder as `host`).

    >>> server.url("app")
    'postgresql://faasemu@/app?host=/work/shop/.faasemu/postgres'
    """

    socket_dir: str
    data_dir: str
    pid: int  # the postmaster's
    binaries: PgBinaries
    user: str = SUPERUSER

    def url(self, database: str = DATABASE) -> str:
        """psycopg, SQLAlchemy (`postgresql+psycopg://...`) and dj-database-url read this form."""
        return f"postgresql://{quote(self.user)}@/{quote(database)}?host={quote(self.socket_dir, safe='/')}"

    @property
    def admin_url(self) -> str:
        """The maintenance database, `postgres`, where databases are created and dropped."""
        return self.url("postgres")


@contextmanager
def private_server(folder: str, binaries: PgBinaries | None = None, *, cache_dir: str | None = None,
                   pristine: bool = True) -> Iterator[PgServer]:
    """A lease on the private server whose cluster lives in `folder` (created and started when needed).

    The server is shared: it is stopped when the last lease on it ends, whichever process holds it.
    `cache_dir` (default `$XDG_CACHE_HOME/faasemu` or `~/.cache/faasemu`) keeps a pristine cluster per
    PostgreSQL version, copied into a new `folder` instead of running initdb (0.05 s against 0.8 s);
    `pristine=False` always runs initdb.
    """
    cluster = PrivateCluster(folder, binaries or find_binaries(), cache_dir=cache_dir, pristine=pristine)
    lease = cluster.acquire()
    try:
        yield lease.server
    finally:
        lease.release()


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "faasemu")


@dataclass
class Lease:
    """One user's hold on the server; `release()` stops the server when it was the last one."""

    cluster: PrivateCluster
    server: PgServer
    path: str

    def release(self) -> None:
        self.cluster.release(self)


@dataclass(frozen=True)
class _Postmaster:
    """What postmaster.pid says of a live server (line 1 its pid, line 5 its socket folder, line 8 its status)."""

    pid: int
    socket_dir: str
    status: str


class PrivateCluster:
    """The cluster in `folder` and the leases on its server (see the module's docstring)."""

    def __init__(self, folder: str, binaries: PgBinaries, *, cache_dir: str | None = None,
                 pristine: bool = True) -> None:
        self.folder = os.path.abspath(folder)
        self.binaries = binaries
        self.data = os.path.join(self.folder, "data")
        self.leases = os.path.join(self.folder, "leases")
        self.log = os.path.join(self.folder, "server.log")
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.pristine = pristine
        self.account = server_account(self.folder)

    # Leases

    def running(self) -> PgServer | None:
        """The server running on the cluster now, if any (whoever started it)."""
        postmaster = _read_postmaster(self.data)
        if postmaster is None or postmaster.status != "ready":
            return None
        return PgServer(postmaster.socket_dir, self.data, postmaster.pid, self.binaries)

    def stop(self) -> None:
        """Stop the server whatever leases remain (tests' clean-up; a command should release its lease instead)."""
        with self._locked():
            self._stop()

    def acquire(self) -> Lease:
        self._prepare_folder()
        with self._locked():
            self._ensure_cluster()
            self._live_leases()
            postmaster = self._settled()
            if postmaster is None:
                self._start()
                postmaster = self._settled()
            if postmaster is None or postmaster.status != "ready":
                raise PostgresError(f"PostgreSQL did not come up on {self.data}.{self._log_tail()}")
            path = os.path.join(self.leases, f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
            write_private_text(path, json.dumps({"pid": os.getpid(), "start": _process_start(os.getpid())}) + "\n")
        server = PgServer(postmaster.socket_dir, self.data, postmaster.pid, self.binaries)
        return Lease(self, server, path)

    def release(self, lease: Lease) -> None:
        with self._locked():
            try:
                os.unlink(lease.path)
            except FileNotFoundError:
                pass
            if not self._live_leases():
                self._stop()

    def _live_leases(self) -> int:
        """Prune the leases of dead processes; the number left."""
        live = 0
        for name in os.listdir(self.leases):
            path = os.path.join(self.leases, name)
            try:
                with open(path, encoding="utf-8") as file:
                    holder = json.load(file)
                alive = process_alive(int(holder["pid"]), holder.get("start"))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                alive = False  # a lease cut short by a crash while it was written
            if alive:
                live += 1
            else:
                os.unlink(path)
        return live

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(os.path.join(self.folder, "lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # The folder and the cluster

    def _prepare_folder(self) -> None:
        parent = os.path.dirname(self.folder)
        if is_project_folder(parent):
            private_folder(parent)
            if self.account:
                os.chmod(parent, 0o711)  # the server's account must pass through .faasemu/ (see the module)
        else:
            os.makedirs(parent, exist_ok=True)
        private_folder(self.folder)
        if self.account:
            if os.stat(self.folder).st_uid != self.account.uid:
                os.chown(self.folder, self.account.uid, self.account.gid)
            _check_reachable(self.folder, self.account)
        os.makedirs(self.leases, mode=FOLDER_MODE, exist_ok=True)

    def _ensure_cluster(self) -> None:
        """Create `data/` when absent: a copy of the pristine cluster, or initdb (and keep a pristine copy).

        Both build under a temporary name renamed into place, so an interrupted build is never used;
        we hold the lock, so any temporary left is one such build, removed here.
        """
        version_file = os.path.join(self.data, "PG_VERSION")
        if os.path.isdir(self.data):
            self._check_version(version_file)
            return
        for leftover in glob.glob(os.path.join(self.folder, "data.tmp-*")):
            shutil.rmtree(leftover, ignore_errors=True)
        temporary = os.path.join(self.folder, f"data.tmp-{uuid.uuid4().hex[:8]}")
        pristine = self._pristine_path()
        try:
            if not (pristine and os.path.isfile(os.path.join(pristine, "PG_VERSION"))
                    and _copy_tree(pristine, temporary)):
                shutil.rmtree(temporary, ignore_errors=True)
                self._initdb(temporary)
                if pristine:
                    _keep_pristine(temporary, pristine)
            os.rename(temporary, self.data)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise

    def _check_version(self, version_file: str) -> None:
        try:
            with open(version_file, encoding="ascii") as file:
                made_by = file.read().strip()
        except FileNotFoundError:
            raise PostgresError(
                f"{self.data} is not a PostgreSQL cluster (it has no PG_VERSION): move it aside for faasemu to make "
                "a new one (the databases in a new cluster start from the schema)."
            ) from None
        if made_by != str(self.binaries.major):
            raise PostgresError(
                f"The cluster in {self.data} was made by PostgreSQL {made_by}, and the server found is "
                f"{self.binaries.version} ({self.binaries.bindir}). Put PostgreSQL {made_by}'s programs first on PATH, "
                f"or delete {self.folder} to start again (its databases, the handlers' state, are lost)."
            )

    def _pristine_path(self) -> str | None:
        if not self.pristine or not self.cache_dir:
            return None
        uid = self.account.uid if self.account else os.geteuid()
        return os.path.join(self.cache_dir, "postgres", f"pristine-{self.binaries.version}-uid{uid}-v{LAYOUT}")

    def _initdb(self, target: str) -> None:
        # --no-sync: this is a development database; a crash of the whole machine in the second after
        # initdb is not worth its fsyncs (0.1 s to several seconds on a busy disk). The server keeps fsync on.
        # --auth=trust: there is no TCP listener, and the socket is in a 0700 folder.
        argv = [self.binaries.initdb, "-D", target, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
                "--no-sync"]
        result = self._run(argv)
        if result.returncode != 0:
            raise PostgresError(f"initdb failed on {target}: {said(result)}")
        with open(os.path.join(target, "postgresql.conf"), "a", encoding="utf-8") as conf:
            conf.write("\n# faasemu's settings, rewritten before each start (project/postgres.py).\n"
                       "include_if_exists = 'faasemu.conf'\n")

    # Starting and stopping

    def _settled(self) -> _Postmaster | None:
        """The live server on the cluster once it is ready, or None once there is none (waiting out a start or a
        stop another process began)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            postmaster = _read_postmaster(self.data)
            if postmaster is None or postmaster.status == "ready":
                return postmaster
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"The PostgreSQL server on {self.data} (pid {postmaster.pid}) has been '{postmaster.status}' for "
                    f"{START_TIMEOUT} s.{self._log_tail()}"
                )
            time.sleep(0.02)

    def _start(self) -> None:
        """pg_ctl rather than `postgres` as our child: the server must outlive whichever faasemu started it
        (the others hold leases), and pg_ctl detaches it (setsid, so the terminal's Ctrl-C does not reach it)
        and waits until postmaster.pid says ready."""
        socket_dir = self._socket_dir()
        self._write_settings(socket_dir)
        argv = [self.binaries.pg_ctl, "start", "-D", self.data, "-l", self.log, "-w", "-t", str(START_TIMEOUT),
                "-s"]
        result = self._run(argv)
        if result.returncode != 0:
            raise PostgresError(f"PostgreSQL did not start on {self.data}: {said(result)}{self._log_tail()}")

    def _stop(self) -> None:
        if _read_postmaster(self.data) is None:
            return
        if self.account and is_project_folder(os.path.dirname(self.folder)):
            os.chmod(os.path.dirname(self.folder), 0o711)  # in case another command made .faasemu/ 0700 again
        result = self._run([self.binaries.pg_ctl, "stop", "-D", self.data, "-m", "fast", "-w", "-t",
                            str(START_TIMEOUT), "-s"])
        if result.returncode != 0 and _read_postmaster(self.data) is not None:
            raise PostgresError(f"PostgreSQL did not stop on {self.data}: {said(result)}{self._log_tail()}")

    def _socket_dir(self) -> str:
        """The cluster's folder, or a short private folder under /tmp when the socket's path would be too long
        (recorded in `socket`, so the next start reuses it)."""
        if len(os.fsencode(os.path.join(self.folder, f".s.PGSQL.{PORT}"))) <= SOCKET_PATH_MAX:
            return self.folder
        record = os.path.join(self.folder, "socket")
        owner = self.account.uid if self.account else os.geteuid()
        try:
            with open(record, encoding="utf-8") as file:
                recorded = file.read().strip()
        except FileNotFoundError:
            recorded = ""
        if recorded and _private_folder_of(recorded, owner):
            return recorded
        short = tempfile.mkdtemp(prefix="faasemu-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)  # 0700
        if self.account:
            os.chown(short, self.account.uid, self.account.gid)
        write_private_text(record, short + "\n")
        return short

    def _write_settings(self, socket_dir: str) -> None:
        # shared_buffers small: a development box runs several projects; max_connections covers a chaos
        # campaign's lanes, each with its workers. fsync and synchronous_commit stay on (the defaults):
        # handlers' state must survive what the durability tests do.
        settings = (
            "# Written by faasemu before each start (project/postgres.py): a Unix socket only, no TCP port.\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{_conf_string(socket_dir)}'\n"
            "unix_socket_permissions = 0700\n"
            f"port = {PORT}\n"
            "max_connections = 100\n"
            "shared_buffers = 16MB\n"
        )
        path = os.path.join(self.data, "faasemu.conf")
        temporary = path + ".tmp"
        write_private_text(temporary, settings)
        if self.account:
            os.chown(temporary, self.account.uid, self.account.gid)
        os.replace(temporary, path)

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        extra = self.account.as_user() if self.account else {}
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=self.folder, timeout=START_TIMEOUT + 30,
                                  stdin=subprocess.DEVNULL, **extra)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresError(f"Could not run {os.path.basename(argv[0])} ({argv[0]}): {exc}") from None

    def _log_tail(self, lines: int = 8) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as file:
                tail = file.read().splitlines()[-lines:]
        except OSError:
            return ""
        return f" The end of {self.log}:\n" + "\n".join(tail) if tail else ""


def _read_postmaster(data: str) -> _Postmaster | None:
    """The live server postmaster.pid names (lines per PostgreSQL's pidfile.h), or None: no file, one being
    written, or one left by a server that died (its pid gone; postgres itself checks this again on start)."""
    try:
        with open(os.path.join(data, "postmaster.pid"), encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return None
    if not lines or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not process_alive(pid, None) or not _works_in(pid, data):
        return None
    socket_dir = lines[4].split(",")[0].strip() if len(lines) > 4 else ""
    status = lines[7].strip() if len(lines) > 7 else "starting"
    return _Postmaster(pid, socket_dir, status or "starting")


def _works_in(pid: int, data: str) -> bool:
    """Whether the process runs in `data` (a postmaster chdirs into its cluster): a postmaster.pid left by a crash
    may name a pid that another program has since been given. True when /proc cannot tell (macOS)."""
    try:
        return os.path.samefile(f"/proc/{pid}/cwd", data)
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")
    except OSError:
        return True


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22): with the pid it names
    one process, even once the pid is reused. None without /proc (macOS) or for a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def process_alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    if os.path.isdir("/proc/self"):
        now = _process_start(pid)
        return now is not None and (start is None or now == start)
    return True


def _private_folder_of(path: str, uid: int) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == uid and info.st_mode & 0o077 == 0


def _copy_tree(source: str, target: str) -> bool:
    """`cp -a` (owners and modes kept; 0.05 s for a fresh cluster where shutil.copytree takes 0.2 s)."""
    try:
        return subprocess.run(["cp", "-a", source, target], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _keep_pristine(cluster: str, pristine: str) -> None:
    """Copy a just-made cluster (never started) into the cache; another process's copy may win the rename.
    A cache that cannot be written only costs the next new cluster an initdb."""
    try:
        private_folder(os.path.dirname(pristine))
    except OSError:
        return
    temporary = f"{pristine}.tmp-{uuid.uuid4().hex[:8]}"
    if _copy_tree(cluster, temporary):
        try:
            os.rename(temporary, pristine)
            return
        except OSError:
            pass
    shutil.rmtree(temporary, ignore_errors=True)


def _conf_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")

