"""`.faasemu/` is the user's alone: the folder 0700, every file faasemu writes in it 0600.

It holds every event posted (request bodies, user data), handlers' state, counterexamples and the
address of the running `up`: nothing another account on the machine should read. Modes are set
explicitly rather than through the umask, which the worker processes (user code) would inherit.
"""

from __future__ import annotations

import os

FOLDER = ".faasemu"
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def is_project_folder(path: str) -> bool:
    return os.path.basename(os.path.normpath(path)) == FOLDER


def private_folder(path: str) -> str:
    """Create `path` (and its parents) if needed; the folder itself ends up 0700 even if an older
    faasemu made it 0755."""
    os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)
    try:
        if os.stat(path).st_mode & 0o777 != FOLDER_MODE:
            os.chmod(path, FOLDER_MODE)
    except PermissionError:
        pass  # not ours (a shared checkout): use it as it is
    return path


def private_file(path: str) -> str:
    """Create `path` empty if absent, 0600 in any case (before SQLite opens it: SQLite gives its
    -wal and -shm files the mode of the database file)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def tighten(path: str) -> None:
    """Make an existing file 0600 (one written by code that does not know about modes)."""
    try:
        os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


def write_private_text(path: str, text: str) -> None:
    """Write a small text file that is 0600 from its first byte."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), FILE_MODE)
        file.write(text)
