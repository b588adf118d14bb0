"""The durable event log: events and their deliveries in SQLite (`.faasemu/events.db`).

WAL with `synchronous=NORMAL`: a commit is a write to the WAL file, which survives `kill -9` of
every faasemu process (not power loss), at a fraction of an fsync's cost. Callers batch: one
transaction carries every event accepted in the same event-loop tick, and every acknowledgement.

A delivery row is one (event, function, copy): copy 0 is the delivery routing made, copy 1 a
duplicate injected by live chaos. A row stays `pending` until its handler returned, so whatever
was in flight when faasemu died is delivered again by the next `up`: at least once.

The file (and its -wal and -shm) is 0600 in a 0700 `.faasemu/`: it holds every event posted. A
file SQLite cannot read raises CorruptDatabase, which names it and what moving it aside loses.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from faasemu.project.errors import CorruptDatabase
from faasemu.project.private import is_project_folder, private_file, private_folder, tighten

DeliveryStatus = Literal["pending", "done", "dead"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    origin TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_seq INTEGER NOT NULL REFERENCES events(seq),
    function TEXT NOT NULL,
    copy INTEGER NOT NULL DEFAULT 0,
    op TEXT NOT NULL DEFAULT 'event',
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    budget_from INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    inject TEXT,
    tags TEXT NOT NULL DEFAULT '',
    last_error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (event_seq, function, copy)
);
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries(status) WHERE status != 'done';
CREATE INDEX IF NOT EXISTS events_by_id ON events(id);
"""


SQLITE_HEADER = b"SQLite format 3\x00"
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
F = TypeVar("F", bound=Callable[..., Any])


def corrupt_log(path: str, reason: str) -> CorruptDatabase:
    return CorruptDatabase(
        path, reason, holds="the events `faasemu up` accepted and the state of their deliveries",
        lost="`faasemu up` then starts an empty log, and the recorded events, their pending deliveries "
             "and dead letters are lost",
    )


def corruption(path: str, exc: sqlite3.DatabaseError) -> CorruptDatabase | None:
    """The user-facing error when `exc` says the event log itself is damaged (not locked, not full)."""
    if getattr(exc, "sqlite_errorname", None) not in _CORRUPT:
        return None
    return corrupt_log(path, str(exc))


def _reports_corruption(method: F) -> F:
    """SQLite's `file is not a database` becomes a CorruptDatabase naming the file and what to do."""

    @functools.wraps(method)
    def wrapper(self: EventLog, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            error = corruption(self.path, exc)
            if error is None:
                raise
            raise error from None

    return cast(F, wrapper)


@dataclass(slots=True)
class DeliveryRow:
    """One delivery's state, as stored. `budget_from` is `attempts` at the last redrive or injected
    failure: the function's `retries` count only the failures after it."""

    event_seq: int
    function: str
    copy: int = 0
    op: str = "event"
    status: DeliveryStatus = "pending"
    attempts: int = 0
    budget_from: int = 0
    next_at: float = 0.0
    inject: str | None = None
    tags: str = ""
    last_error: str | None = None

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.event_seq, self.function, self.copy)


@dataclass(slots=True)
class StoredEvent:
    seq: int
    event: dict[str, Any]
    origin: str
    received_at: float


class EventLog:
    """SQLite access for the bus. Used from one thread (the event loop's)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if is_project_folder(folder):
                private_folder(folder)
            private_file(path)  # 0600 before SQLite opens it: its -wal and -shm files take the same mode
            for suffix in ("-wal", "-shm"):
                if os.path.exists(path + suffix):
                    tighten(path + suffix)  # made by an older faasemu, with the umask's mode
            self._check_header()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.db.close()
            error = corruption(path, exc)
            if error is None:
                raise
            raise error from None

    def _check_header(self) -> None:
        """A file that is not SQLite at all is refused before SQLite is asked (it may say less)."""
        with open(self.path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:  # empty is fine: SQLite makes a new database of it
            raise corrupt_log(self.path, "it does not start with SQLite's header")

    def close(self) -> None:
        self.db.close()

    @_reports_corruption
    def append(self, batch: list[tuple[dict[str, Any], str, list[DeliveryRow]]]) -> list[int]:
        """Store events with their deliveries in one transaction; returns each event's seq."""
        now = time.time()
        seqs = []
        cursor = self.db.cursor()
        cursor.execute("BEGIN")
        try:
            for event, origin, rows in batch:
                cursor.execute(
                    "INSERT INTO events (id, source, type, body, origin, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (event["id"], event.get("source", ""), event["type"], json.dumps(event), origin, now),
                )
                seq = cursor.lastrowid
                assert seq is not None
                seqs.append(seq)
                for row in rows:
                    row.event_seq = seq
                cursor.executemany(
                    "INSERT INTO deliveries (event_seq, function, copy, op, status, attempts, budget_from, next_at,"
                    " inject, tags, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?, ?)",
                    [(seq, r.function, r.copy, r.op, r.next_at, r.inject, r.tags, now) for r in rows],
                )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return seqs

    @_reports_corruption
    def update(self, rows: list[DeliveryRow]) -> None:
        """Record the outcome of attempts (acknowledgements, retries, dead letters) in one transaction."""
        if not rows:
            return
        now = time.time()
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, budget_from = ?, next_at = ?, inject = ?,"
                " last_error = ?, updated_at = ? WHERE event_seq = ? AND function = ? AND copy = ?",
                [(r.status, r.attempts, r.budget_from, r.next_at, r.inject, r.last_error, now, *r.key) for r in rows],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @_reports_corruption
    def known_ids(self, ids: list[str], source_prefix: str = "faasemu/triggers/") -> set[str]:
        """Which of these event ids (from sources starting with `source_prefix`) the log already holds:
        the trigger relay stores a captured change once, though a crash made it read it twice."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(row[0] for row in self.db.execute(
                f"SELECT id FROM events WHERE id IN ({marks}) AND source LIKE ? || '%'",
                (*chunk, source_prefix)))
        return found

    @_reports_corruption
    def open_deliveries(self) -> list[tuple[DeliveryRow, dict[str, Any]]]:
        """Every pending delivery with its event, in acceptance order: what a restart must deliver."""
        found = self.db.execute(
            "SELECT d.event_seq, d.function, d.copy, d.op, d.status, d.attempts, d.budget_from, d.next_at, d.inject,"
            " d.tags, d.last_error, e.body FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE d.status = 'pending' ORDER BY d.event_seq, d.copy"
        ).fetchall()
        return [(DeliveryRow(*row[:11]), json.loads(row[11])) for row in found]

    @_reports_corruption
    def attempts_of_open(self) -> dict[tuple[str, str], int]:
        """Attempts already made per (event id, function), for every pair with a pending delivery: a
        restarted bus numbers the next attempt after them (attempts count per event id, delivery/policy.py)."""
        found = self.db.execute(
            "SELECT e.id, d.function, SUM(d.attempts) FROM deliveries d JOIN events e ON e.seq = d.event_seq"
            " WHERE (e.id, d.function) IN (SELECT e2.id, d2.function FROM deliveries d2"
            " JOIN events e2 ON e2.seq = d2.event_seq WHERE d2.status = 'pending')"
            " GROUP BY e.id, d.function"
        ).fetchall()
        return {(event_id, function): int(made) for event_id, function, made in found}

    @_reports_corruption
    def recent(self, limit: int = 50, dead_only: bool = False) -> list[tuple[StoredEvent, list[DeliveryRow]]]:
        """The latest events (oldest first) with their deliveries, for `faasemu events`."""
        if dead_only:
            seqs = [r[0] for r in self.db.execute(
                "SELECT DISTINCT event_seq FROM deliveries WHERE status = 'dead' ORDER BY event_seq DESC LIMIT ?",
                (limit,))]
        else:
            seqs = [r[0] for r in self.db.execute("SELECT seq FROM events ORDER BY seq DESC LIMIT ?", (limit,))]
        result = []
        for seq in sorted(seqs):
            body, origin, received = self.db.execute(
                "SELECT body, origin, received_at FROM events WHERE seq = ?", (seq,)).fetchone()
            rows = [
                DeliveryRow(*r)
                for r in self.db.execute(
                    "SELECT event_seq, function, copy, op, status, attempts, budget_from, next_at, inject, tags,"
                    " last_error FROM deliveries WHERE event_seq = ? ORDER BY rowid", (seq,))
            ]
            if dead_only:
                rows = [r for r in rows if r.status == "dead"]
            result.append((StoredEvent(seq, json.loads(body), origin, received), rows))
        return result

    @_reports_corruption
    def redrive(self, event_id: str | None) -> int:
        """Make dead letters pending again (all of them, or those of one event id); returns how many.

        Each gets its full `retries` again: the budget counts from its current attempts.
        """
        now = time.time()
        query = ("UPDATE deliveries SET status = 'pending', budget_from = attempts, next_at = ?, inject = NULL,"
                 " updated_at = ? WHERE status = 'dead'")
        params: tuple[Any, ...] = (now, now)
        if event_id is not None:
            query += " AND event_seq IN (SELECT seq FROM events WHERE id = ?)"
            params += (event_id,)
        self.db.execute("BEGIN")
        cursor = self.db.execute(query, params)
        self.db.execute("COMMIT")
        return cursor.rowcount

    @_reports_corruption
    def events(self) -> list[dict[str, Any]]:
        """Every event, in acceptance order (what `faasemu chaos` checks when given no file)."""
        return [json.loads(body) for (body,) in self.db.execute("SELECT body FROM events ORDER BY seq")]


def events_json(found: list[tuple[StoredEvent, list[DeliveryRow]]]) -> list[dict[str, Any]]:
    """`recent()` as JSON, one shape for `GET /_faasemu/events` and `faasemu events --json`."""
    return [
        {
            "seq": stored.seq, "id": stored.event["id"], "type": stored.event["type"],
            "source": stored.event.get("source"), "origin": stored.origin, "received_at": stored.received_at,
            "deliveries": [
                {"function": r.function, "copy": r.copy, "status": r.status, "attempts": r.attempts,
                 "last_error": r.last_error, "tags": r.tags}
                for r in rows
            ],
        }
        for stored, rows in found
    ]
