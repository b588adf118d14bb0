"""Step tracing inside a worker: number a delivery's commits, and crash right after its k-th step.

A *step* is a commit that changed state, a call to the effect sink or an emitted event
(docs/verification.md#steps-crashes-and-the-overlap-gate). The worker sees the commits, the sink the
rest; both number them through one shared counter (faasemu/project/stepcounter.py).

How commits are seen, without touching the handler's code: while an item runs, a profile hook
watches the C methods of `sqlite3.Connection` and `sqlite3.Cursor` return (`execute`, `commit`,
`with conn:`'s `__exit__` ...; SQLAlchemy and other layers over sqlite3 call the same methods).
After each, a connection whose `total_changes` grew and which is no longer in a transaction has
committed a change: that is a step. A trace callback on each connection names the tables each
statement writes, and lets a call that runs several statements (`executemany`, `executescript` in
autocommit) count each commit as its own step. A rollback is not a step.

PostgreSQL through psycopg (3), when the handler has imported it: psycopg is Python, so the same
profile hook watches its methods return (`Cursor.execute`/`executemany`, `Connection.commit`/`rollback`,
the `with` blocks of a connection and of a transaction). A statement that writes a table and reports
rows (`rowcount` > 0) is pending on its connection; when the connection is idle again (committed, or
autocommit) its pending tables are one step, and a rollback drops them.

Standard library only (workers import this); no I/O but the counter and `os._exit`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faasemu.project.stepcounter import StepCounter

CRASH_STATUS = 137  # what a platform reports for an invocation it killed (128 + SIGKILL)
Step = list[Any]  # [n, "commit", [table, ...]]: n is the counter value this step got

_COUNTERS: dict[str, StepCounter] = {}


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Compiled on first use (~7 ms): a worker that never traces does not pay for them."""
    # The target of a statement that writes: INSERT [OR x] INTO t, REPLACE INTO t, UPDATE [OR x] t,
    # DELETE FROM t. A WITH clause may come first (SQLite's CTEs are SELECTs: the first write is the target).
    name = r"(?:\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|\w+)"
    write = re.compile(r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
                       rf"\s+(?:{name}\s*\.\s*)?({name})", re.IGNORECASE)
    first_word = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(\w+)", re.DOTALL)
    rollback = re.compile(r"\s*ROLLBACK\b(?!\s+(?:TRANSACTION\s+)?TO\b)", re.IGNORECASE)
    return write, first_word, rollback


def counter(path: str) -> StepCounter:
    """The counter at `path`, mapped once per worker (a campaign reuses one file per lane)."""
    from faasemu.project.stepcounter import StepCounter

    found = _COUNTERS.get(path)
    if found is None:
        found = _COUNTERS[path] = StepCounter(path)
    return found


def item_problem(item: dict[str, Any]) -> str | None:
    """Why a batch item's `steps` / `crash_after` / `gate` fields cannot be honoured, or None."""
    steps, crash_after, gate = item.get("steps"), item.get("crash_after"), item.get("gate")
    if steps is not None and (not isinstance(steps, str) or not steps):
        return f"`steps` must be the path of a step counter file, got {steps!r}"
    if crash_after is not None:
        if isinstance(crash_after, bool) or not isinstance(crash_after, int) or crash_after < 1:
            return f"`crash_after` must be an integer >= 1, got {crash_after!r}"
        if steps is None:
            return "`crash_after` needs `steps` (the counter file that numbers the steps)"
    if gate is not None and (not isinstance(gate, str) or not gate):
        return f"`gate` must be the path of a lock file, got {gate!r}"
    return None


def written_table(sql: str) -> str | None:
    """The table a statement writes (unquoted, without its schema), or None for one that does not."""
    write, first_word, _ = _patterns()
    first = first_word.match(sql)
    if first is None or first.group(1).upper() not in ("INSERT", "REPLACE", "UPDATE", "DELETE", "WITH"):
        return None
    found = write.search(sql)
    if found is None:
        return None
    name = found.group(1)
    return name[1:-1] if name[0] in "\"`[" else name


class _Connection:
    """What the tracer knows of one connection: changes already accounted for, and tables written
    in its open transaction. Only the connection's trace callback holds this record (and the record
    the connection: sqlite3 has no weak refs), so a connection the handler drops is collected as
    without tracing: the tracer finds records through a weak map. (A plain class: a dataclass would
    cost every worker a millisecond at import.)"""

    __slots__ = ("__weakref__", "changes", "conn", "pending", "rolled_back", "statement", "statement_changes",
                 "traced")

    def __init__(self, conn: Any, changes: int) -> None:
        self.conn = conn
        self.changes = changes
        self.traced = True  # our trace callback is installed (the handler may replace it)
        self.statement: str | None = None  # the table the running statement writes
        self.statement_changes = 0
        self.pending: dict[str, None] = {}  # tables written in the open transaction, in order
        self.rolled_back = False


class StepTracer:
    """Numbers the commits of one item; with `crash_after`, ends the process right after step k.

    `on_crash(steps)` runs first (the worker writes its `crashed` item frame); then `os._exit`:
    no cleanup and no further handler code, the commit already durable.
    """

    def __init__(self, steps_counter: StepCounter, crash_after: int | None,
                 on_crash: Callable[[list[Step]], None]) -> None:
        import sqlite3  # here, not at the top: a worker that never traces does not pay for them
        import threading
        import weakref

        self._types = (sqlite3.Connection, sqlite3.Cursor)
        self._connection_type = sqlite3.Connection
        self._error = sqlite3.Error
        self.counter = steps_counter
        self.crash_after = crash_after
        self.on_crash = on_crash
        self.steps: list[Step] = []
        self._known: weakref.WeakValueDictionary[int, _Connection] = weakref.WeakValueDictionary()
        self._held: list[_Connection] = []  # records whose connection took the handler's own callback
        self._active = False
        self._threading = threading
        self._rollback = _patterns()[2]
        self._pg = _PsycopgHooks.find()
        self._pg_pending: dict[int, tuple[Any, dict[str, None]]] = {}  # id(connection) -> (it, tables)

    def start(self) -> None:
        """Reset the counter and watch this thread (and threads started from now until `stop`)."""
        self.counter.reset()
        self._active = True
        self._threading.setprofile(self._profile)
        sys.setprofile(self._profile)

    def stop(self) -> None:
        """Unhook everything, so later items run at full speed."""
        self._active = False
        sys.setprofile(None)
        self._threading.setprofile(None)
        for known in list(self._known.values()):
            self._untrace(known)
        self._known.clear()
        self._held.clear()

    # -- the hooks -------------------------------------------------------------------------------

    def _profile(self, _frame: Any, event: str, arg: Any) -> None:
        if event == "return" and self._pg is not None and _frame.f_code in self._pg.codes and self._active:
            self._pg_return(_frame)
            return
        if event == "call" or event == "return" or not self._active:  # Python frames: the common case
            return
        owner = getattr(arg, "__self__", None)
        if not isinstance(owner, self._types):
            return
        conn = owner if isinstance(owner, self._connection_type) else owner.connection
        try:
            if event == "c_call":
                self._before(conn, arg.__name__)
                return
            known = self._known.get(id(conn))
            if known is not None and known.conn is conn:
                if arg.__name__ == "rollback":
                    known.rolled_back = True
                self._settle(known)
        except self._error:  # closed, or used from another thread: the handler's own call says so
            if (known := self._known.get(id(conn))) is not None and known.conn is conn:
                self._known.pop(id(conn), None)

    def _before(self, conn: Any, method: str) -> None:
        known = self._known.get(id(conn))
        if known is None or known.conn is not conn:
            known = self._known[id(conn)] = _Connection(conn, conn.total_changes)
            self._trace(known)
        if method == "close":  # closing rolls back what is open: nothing of it is a step
            self._untrace(known)
            self._known.pop(id(conn), None)
        elif method == "set_trace_callback" and known.traced:  # the handler's own callback wins
            known.traced = False
            self._held.append(known)  # steps still count, tables are unknown from now on

    def _trace(self, known: _Connection) -> None:
        def statement(sql: str) -> None:
            if not self._active:
                return
            try:
                self._settle(known)  # the statement before this one is complete (executemany, scripts)
                known.statement = written_table(sql)
                known.statement_changes = known.conn.total_changes
                if self._rollback.match(sql):
                    known.rolled_back = True
            except self._error:
                pass

        known.conn.set_trace_callback(statement)

    def _untrace(self, known: _Connection) -> None:
        if known.traced:
            try:
                known.conn.set_trace_callback(None)
            except self._error:
                pass
            known.traced = False

    def _settle(self, known: _Connection) -> None:
        conn = known.conn
        total = conn.total_changes
        if known.statement is not None and total > known.statement_changes:
            known.pending[known.statement] = None
        known.statement = None
        known.statement_changes = total
        if conn.in_transaction:
            return
        if known.rolled_back or total <= known.changes:  # nothing committed (or undone): not a step
            known.rolled_back = False
            known.changes = total
            known.pending.clear()
            return
        known.changes = total
        tables = list(known.pending)
        known.pending.clear()
        self._step(tables)

    def _pg_return(self, frame: Any) -> None:
        """A psycopg method returned (normally or by raising): account for its connection."""
        assert self._pg is not None
        owner = frame.f_locals.get("self")
        conn = owner if isinstance(owner, self._pg.connection) else getattr(owner, "connection", None)
        if not isinstance(conn, self._pg.connection):
            return
        entry = self._pg_pending.setdefault(id(conn), (conn, {}))
        if entry[0] is not conn:
            entry = self._pg_pending[id(conn)] = (conn, {})
        pending = entry[1]
        name = frame.f_code.co_name
        try:
            if name in ("execute", "executemany") and isinstance(owner, self._pg.cursor):
                query = frame.f_locals.get("query")
                text = query if isinstance(query, str) else getattr(query, "_obj", None)
                table = written_table(text) if isinstance(text, str) else None
                if table is not None and (owner.rowcount or 0) > 0:
                    pending[table] = None
            elif name == "rollback":
                pending.clear()
            if conn.closed or conn.info.transaction_status != self._pg.idle:
                if conn.closed:
                    pending.clear()  # closed inside a transaction: rolled back
                return
        except Exception:  # a broken connection: the handler's own call says so
            pending.clear()
            return
        if pending:
            tables = list(pending)
            pending.clear()
            self._step(tables)

    def _step(self, tables: list[str]) -> None:
        n = self.counter.bump()
        self.steps.append([n, "commit", tables])
        if n == self.crash_after:
            self._active = False
            sys.setprofile(None)
            try:
                self.on_crash(self.steps)
            finally:  # the handler must not go on past the step, whatever reporting it did
                os._exit(CRASH_STATUS)


class _PsycopgHooks:
    """psycopg's classes and the code objects of the methods the tracer watches return, when the handler
    imported psycopg (never imported here: a worker without it pays nothing)."""

    __slots__ = ("codes", "connection", "cursor", "idle")

    def __init__(self, psycopg: Any) -> None:
        self.connection = psycopg.Connection
        self.cursor = psycopg.Cursor
        self.idle = psycopg.pq.TransactionStatus.IDLE
        methods = [(psycopg.Cursor, "execute"), (psycopg.Cursor, "executemany"), (psycopg.Connection, "commit"),
                   (psycopg.Connection, "rollback"), (psycopg.Connection, "__exit__"),
                   (psycopg.Transaction, "__exit__")]
        self.codes = frozenset(code for cls, name in methods
                               if (code := getattr(getattr(cls, name, None), "__code__", None)) is not None)

    @staticmethod
    def find() -> _PsycopgHooks | None:
        module = sys.modules.get("psycopg")
        if module is None:
            return None
        try:
            return _PsycopgHooks(module)
        except AttributeError:  # not psycopg 3
            return None
