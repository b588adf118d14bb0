"""One exception hierarchy; only `cli.py` turns these into exit codes."""

from __future__ import annotations


class FaasemuError(Exception):
    """Base of every error faasemu reports to a user. `exit_code` is what the CLI exits with."""

    exit_code = 2


class ManifestError(FaasemuError):
    """The manifest is invalid. The message names the file, the line, the key and what is allowed."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.detail = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class InputFileError(FaasemuError):
    """An input file (events, data) is invalid; names the file, line and reason."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.detail = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class UsageError(FaasemuError):
    """A command-line option or argument is wrong."""
