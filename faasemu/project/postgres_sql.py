"""The project's databases, on the private server or on a server of the user's own, through psql.

`ensure_database`, `clone_database` and `drop_database` work on a `PgServer` (project/postgres.py) or on
the URL of a server the user runs (`state: {postgres: URL}`). They drive `psql`, so the core install
needs no PostgreSQL driver; `connect` is for faasemu's own reads and imports psycopg
(`faasemu[postgres]`) only when called. Its own module because this is what `up`, `invoke`, `replay`
and `chaos` do with a database whoever runs its server; starting and sharing the private server is
project/postgres.py's.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from faasemu.project.errors import FaasemuError, LocatedError, PostgresError
from faasemu.project.postgres import PgServer
from faasemu.project.postgres_binaries import find_psql, said

if TYPE_CHECKING:
    import psycopg

Target = PgServer | str  # a private server, or the URL of any database on a server of the user's own


def database_url(target: Target, name: str) -> str:
    """The URL of database `name` on `target`'s server (a URL keeps its user, host, port and options)."""
    if isinstance(target, PgServer):
        return target.url(name)
    parts = urlsplit(target)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name), parts.query, parts.fragment))


def database_exists(target: Target, name: str) -> bool:
    result = _admin(target, "SELECT 1 FROM pg_database WHERE datname = :'name'", f"looking for database {name}",
                    name=name)
    return result.stdout.strip() == "1"


def ensure_database(target: Target, name: str, schema_path: str | None = None) -> bool:
    """Create database `name` with `schema_path` applied, unless it exists; whether it was created.

    The schema is applied once, when the database is created, never again (`up` never resets state).
    It is built under a temporary name and renamed, so a schema that fails (a `LocatedError` at its
    file and line) or an interrupted build never leaves a database that would then count as created.
    """
    if database_exists(target, name):
        return False
    temporary = f"faasemu_new_{uuid.uuid4().hex[:16]}"
    _admin(target, 'CREATE DATABASE :"name"', f"creating database {name}", name=temporary)
    try:
        if schema_path:
            _apply_schema(target, database_url(target, temporary), schema_path)
        renamed = _psql(target, 'ALTER DATABASE :"temporary" RENAME TO :"name"', database_url(target, "postgres"),
                        temporary=temporary, name=name)
        if renamed.returncode != 0:
            if _sqlstate(renamed) == "42P04":  # duplicate_database: another process created it meanwhile
                drop_database(target, temporary)
                return False
            raise _failed(target, f"renaming the new database to {name}", renamed)
    except BaseException:
        try:
            drop_database(target, temporary)
        except FaasemuError:
            pass
        raise
    return True


def clone_database(target: Target, template: str, name: str) -> None:
    """`CREATE DATABASE name TEMPLATE template` (a chaos run's fresh copy); nobody may be connected to the template."""
    _admin(target, 'CREATE DATABASE :"name" TEMPLATE :"template"', f"copying database {template} to {name}",
           name=name, template=template)


def drop_database(target: Target, name: str, *, force: bool = True) -> None:
    """Drop `name` if it exists; `force` ends its sessions first (a chaos lane's handlers may still be connected)."""
    sql = 'DROP DATABASE IF EXISTS :"name"' + (" WITH (FORCE)" if force else "")
    _admin(target, sql, f"dropping database {name}", name=name)


def connect(url: str, **options: Any) -> psycopg.Connection[Any]:
    """A psycopg connection, for faasemu's own reads (captured events, snapshots); psycopg is imported only here."""
    try:
        import psycopg
    except ImportError:
        raise PostgresError(
            "faasemu reads PostgreSQL through psycopg, which is not installed: pip install 'faasemu[postgres]'"
        ) from None
    return psycopg.connect(url, **options)


def run_sql(target: Target, database: str, sql: str, doing: str) -> None:
    """One statement in `database` through psql (faasemu's own SQL, for which no driver need be imported)."""
    result = _psql(target, sql, database_url(target, database))
    if result.returncode != 0:
        raise _failed(target, doing, result)


def _admin(target: Target, sql: str, doing: str, **variables: str) -> subprocess.CompletedProcess[str]:
    result = _psql(target, sql, database_url(target, "postgres"), **variables)
    if result.returncode != 0:
        raise _failed(target, doing, result)
    return result


def _psql(target: Target, sql: str, url: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """One statement through psql, the values bound as psql variables (`:'name'` a literal, `:"name"` an identifier)
    read from stdin (psql does not interpolate variables in -c)."""
    argv = [_psql_program(target), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
            "-d", url]
    for key, value in variables.items():
        argv += ["-v", f"{key}={value}"]
    return _run_psql(argv, sql + ";\n")


def _apply_schema(target: Target, url: str, schema_path: str) -> None:
    argv = [_psql_program(target), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", schema_path]
    result = _run_psql(argv, None)
    if result.returncode == 0:
        return
    located = list(re.finditer(rf"^psql:{re.escape(schema_path)}:(\d+): (.*)$", result.stderr, re.MULTILINE))
    if not located:
        raise LocatedError(schema_path, None, f"PostgreSQL could not apply it: {said(result)}")
    last = located[-1]  # ON_ERROR_STOP: the error is the last thing psql located
    context = result.stderr[last.end():].strip("\n").splitlines()
    message = re.sub(r"^(ERROR|FATAL):\s+", "", last.group(2))
    line = _statement_line(schema_path, int(last.group(1)), context)
    shown = "".join(f"\n    {text}" for text in context)
    raise LocatedError(schema_path, line, f"{message} (the database was not created){shown}")


def _statement_line(path: str, end: int, context: list[str]) -> int:
    """psql locates an error at the statement's last line, the server at a line of the statement ("LINE 3: ...");
    find that line's text, going up from the end. The end when it cannot be found.

    A `type "nosuchtype" does not exist` on `  x nosuchtype` three lines into a statement ending on line 6 is on line 5.
    """
    match = re.match(r"LINE (\d+): (.*)$", context[0]) if context else None
    if not match:
        return end
    offset, shown = int(match.group(1)), " ".join(match.group(2).removeprefix("...").removesuffix("...").split())
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return end
    for number in range(min(end, len(lines)), offset - 1, -1):
        if shown and shown in " ".join(lines[number - 1].split()):
            return number
    return end


def _run_psql(argv: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10"), "PGAPPNAME": "faasemu"}
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=600,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PostgresError(f"Could not run psql ({argv[0]}): {exc}") from None


def _psql_program(target: Target) -> str:
    return target.binaries.psql if isinstance(target, PgServer) else find_psql()


def _sqlstate(result: subprocess.CompletedProcess[str]) -> str | None:
    match = re.search(r"(?:ERROR|FATAL):\s+([0-9A-Z]{5}):", result.stderr)
    return match.group(1) if match else None


def _failed(target: Target, doing: str, result: subprocess.CompletedProcess[str]) -> PostgresError:
    where = "the private server" if isinstance(target, PgServer) else redacted(target)
    told = "\n".join(line for line in said(result).splitlines() if not line.startswith("LOCATION:"))
    told = re.sub(r"^(psql:<stdin>:\d+: )?(ERROR|FATAL):\s+([0-9A-Z]{5}: )?", "", told, flags=re.MULTILINE)
    state = _sqlstate(result)
    if state == "42501" and doing.startswith(("creating", "copying")):  # insufficient_privilege
        return PostgresError(
            f"{where} refuses {doing} ({told}). faasemu creates the project's database there, and `chaos` a fresh "
            "copy of it for every run (CREATE DATABASE ... TEMPLATE): grant that right (ALTER ROLE <user> CREATEDB) "
            "or use `state: {postgres: auto}`, faasemu's own private server."
        )
    if result.returncode == 2:  # psql: the connection failed
        return PostgresError(f"Could not connect to {where} while {doing}: {told}")
    return PostgresError(f"PostgreSQL failed {doing} on {where}: {told}")


def redacted(url: str) -> str:
    """The URL without its password, as messages show it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
