"""`state.sqlite` in a campaign: a template database built once, copied fresh for every run.

Copying a prepared file costs ~0.13 ms; applying the schema from SQL costs far more, so the
schema runs once per campaign. A snapshot is, for every table not named `sqlite_%` (SQLite's) nor
`_faasemu_%` (the capture of triggers: project/capture_sqlite.py), the
multiset of rows `SELECT *` returns (no implicit rowid), with the primary-key columns named so
that diffs can say which row changed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

from faasemu.project.errors import ManifestError
from faasemu.verify.model import Snapshot, Table


def build_template(path: str, schema: str | None, manifest_path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    connection = sqlite3.connect(path)
    try:
        if schema:
            with open(schema, encoding="utf-8") as file:
                connection.executescript(file.read())
        connection.commit()
    except sqlite3.Error as exc:
        raise ManifestError(manifest_path, None, f"state.schema: {schema} failed to apply: {exc}") from None
    finally:
        connection.close()


def reset(template: str, path: str) -> None:
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    shutil.copyfile(template, path)


def _sort_key(row: tuple) -> tuple:
    # Rows can mix NULL, numbers, text and blobs; order by type name, then value, deterministically.
    return tuple((type(value).__name__, value if value is not None else 0) for value in row)


def sorted_rows(rows: list[tuple]) -> tuple[tuple, ...]:
    """Rows in `_sort_key` order. When every column holds one type and no NULL, that is the plain
    tuple order, which sorts in C (`_sort_key` builds a tuple per value: the snapshot's main cost)."""
    if rows and all(len(kinds) == 1 and type(None) not in kinds
                    for kinds in (set(map(type, column)) for column in zip(*rows))):
        return tuple(sorted(rows))
    return tuple(sorted(rows, key=_sort_key))


def snapshot(path: str) -> Snapshot:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                " AND name NOT LIKE '\\_faasemu\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        tables = []
        for name in names:
            quoted = '"' + name.replace('"', '""') + '"'
            info = connection.execute(f"PRAGMA table_info({quoted})").fetchall()
            columns = tuple(column[1] for column in info)
            key = tuple(column[1] for column in sorted(info, key=lambda c: c[5]) if column[5] > 0)
            rows = connection.execute(f"SELECT * FROM {quoted}").fetchall()
            tables.append(Table(name, columns, key, sorted_rows(rows)))
        return Snapshot(tuple(tables))
    finally:
        connection.close()
