"""Finding PostgreSQL's programs: the server's (initdb, pg_ctl, postgres) for `state: {postgres: auto}`,
and psql alone for a server of the user's own.

Its own module because both halves of the PostgreSQL support need it and neither owns it: the private
server (project/postgres.py) runs initdb, pg_ctl and postgres from one install, and the database helpers
(project/postgres_sql.py) drive psql. None found: `PostgresMissing`, which says where faasemu looked and
how to install PostgreSQL.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from faasemu.project.errors import PostgresMissing

# Where PostgreSQL's server programs usually are, after PATH and `pg_config --bindir`; highest version first.
SEARCH_FOLDERS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu (postgresql-NN)
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew on Apple silicon: keg-only, not on PATH
    "/usr/local/opt/postgresql@*/bin",  # Homebrew on Intel
    "/opt/homebrew/bin",
)
PROGRAMS = ("initdb", "pg_ctl", "postgres")


@dataclass(frozen=True)
class PgBinaries:
    """PostgreSQL's programs in one install: `version` as `postgres --version` prints it ("15.18")."""

    bindir: str
    version: str
    initdb: str
    pg_ctl: str
    postgres: str
    psql: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def find_binaries(environ: Mapping[str, str] | None = None, folders: Sequence[str] = SEARCH_FOLDERS) -> PgBinaries:
    """The first install holding initdb, pg_ctl and postgres: on PATH, then `pg_config --bindir`, then `folders`.

    A PATH entry is followed through symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb),
    so the programs come from one install. None found: `PostgresMissing`, saying how to install it.
    """
    path = (os.environ if environ is None else environ).get("PATH", "")
    found: list[str] = []
    seen: set[str] = set()
    for folder in _candidate_folders(path, folders, found):
        if folder in seen:
            continue
        seen.add(folder)
        binaries = _binaries_in(folder, path)
        if binaries:
            return binaries
    psql = shutil.which("psql", path=path)
    if psql and not found:
        found.append(f"{psql}, a client without a server")
    raise PostgresMissing(["PATH", "pg_config --bindir", *folders], found)


def _candidate_folders(path: str, folders: Sequence[str], found: list[str]) -> Iterator[str]:
    """In the order searched, lazily (pg_config runs only when PATH has no initdb); notes in `found` what is
    there but of no use, for the error."""
    initdb = shutil.which("initdb", path=path)
    if initdb:
        yield os.path.dirname(os.path.realpath(initdb))
        yield os.path.dirname(initdb)
    pg_config = shutil.which("pg_config", path=path)
    bindir = _output([pg_config, "--bindir"]) if pg_config else ""
    if bindir:
        yield bindir
        if not os.path.exists(os.path.join(bindir, "initdb")):
            found.append(f"{pg_config}, whose --bindir {bindir} has no initdb (only the client is installed?)")
    for pattern in folders:
        yield from sorted(glob.glob(pattern), key=_version_key, reverse=True)


def find_psql(environ: Mapping[str, str] | None = None, folders: Sequence[str] = SEARCH_FOLDERS) -> str:
    """psql alone, for a server of the user's own (`state: {postgres: URL}`): PATH first, then `folders`."""
    path = (os.environ if environ is None else environ).get("PATH", "")
    psql = shutil.which("psql", path=path)
    if psql:
        return psql
    for pattern in folders:
        for folder in sorted(glob.glob(pattern), key=_version_key, reverse=True):
            if _executable(os.path.join(folder, "psql")):
                return os.path.join(folder, "psql")
    raise PostgresMissing(["PATH", *folders], client=True)


def _binaries_in(folder: str, path: str) -> PgBinaries | None:
    programs = [os.path.join(folder, name) for name in PROGRAMS]
    if not all(_executable(program) for program in programs):
        return None
    psql = os.path.join(folder, "psql")
    if not _executable(psql):
        psql = shutil.which("psql", path=path) or ""
    if not psql:
        return None
    # `postgres --version` is allowed as root: it prints before the root check.
    match = re.search(r"\(PostgreSQL\) (\d+(?:\.\d+)*)", _output([programs[2], "--version"]))
    if not match:
        return None
    initdb, pg_ctl, postgres = programs
    return PgBinaries(folder, match.group(1), initdb=initdb, pg_ctl=pg_ctl, postgres=postgres, psql=psql)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _version_key(path: str) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,); /opt/homebrew/opt/postgresql@16/bin -> (16,); unversioned last."""
    return tuple(int(number) for number in re.findall(r"\d+", path))


def _output(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed PostgreSQL program said, for an error message (its exit status if nothing)."""
    return (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"

