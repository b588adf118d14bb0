"""One exception hierarchy; only `cli/main.py` turns these into exit codes."""

from __future__ import annotations

import os


class FaasemuError(Exception):
    """Base of every error faasemu reports to a user. `exit_code` is what the CLI exits with."""

    exit_code = 2


class LocatedError(FaasemuError):
    """An error in a file the user wrote: `file:line: message`, as compilers and linters print it."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.detail = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class ManifestError(LocatedError):
    """The manifest is invalid. The message names the file, the line, the key and what is allowed."""


class InputFileError(LocatedError):
    """An input file (events, data) is invalid; names the file, line and reason."""


class UsageError(FaasemuError):
    """A command-line option or argument is wrong."""


class CorruptDatabase(FaasemuError):
    """A SQLite file faasemu opens (the event log, the project's state) cannot be read.

    The message names the file, what SQLite said, what the file holds, what to do and what that loses,
    so that nobody deletes a database without knowing the cost.
    """

    def __init__(self, path: str, reason: str, holds: str, lost: str) -> None:
        self.path = path
        self.reason = reason
        shown = _shown(path)
        super().__init__(
            f"{shown} is not a usable SQLite database ({reason}). It holds {holds}. To go on, move it aside "
            f"(mv {shown} {shown}.broken) or delete it: {lost}."
        )


class PostgresMissing(FaasemuError):
    """No PostgreSQL server binaries were found for `state: {postgres: auto}`.

    The message says where faasemu looked, what it found instead (a client without a server, say),
    how to install PostgreSQL, and that the URL of a server one already runs works without any.
    """

    def __init__(self, looked: list[str], found: list[str] | None = None, *, client: bool = False) -> None:
        self.looked = looked
        self.found = found or []
        instead = "".join(f" Found {what}." for what in self.found)
        if client:  # a server of one's own (a URL) needs only the client
            needed = ("faasemu talks to your server through psql, PostgreSQL's client: install it with `sudo apt-get "
                      "install postgresql-client` on Debian/Ubuntu or `brew install postgresql@16` on macOS.")
        else:
            needed = ("`state: {postgres: auto}` needs its server programs (initdb, pg_ctl, postgres, psql): install "
                      "them with `sudo apt-get install postgresql` on Debian/Ubuntu or `brew install postgresql@16` on "
                      "macOS, or give the URL of a server you run: `state: {postgres: \"postgresql://user@host:5432/app\"}`.")
        super().__init__(f"PostgreSQL was not found (looked on {', '.join(looked)}).{instead} {needed}")


class PostgresError(FaasemuError):
    """PostgreSQL refused something faasemu asked of it (start the private server, create a database, ...).

    The message says what faasemu was doing, what PostgreSQL answered, and what to do about it.
    """


def _shown(path: str) -> str:
    """The path as the user would type it from here: relative when it is below the current folder."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
