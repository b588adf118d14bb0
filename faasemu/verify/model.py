"""PURE: what one run of a schedule produces, and what the campaign asks a runner to execute.

A run's outcome is its final state snapshot plus its effects; both are compared as multisets
(docs/verification.md#oracle). Everything here is hashable and JSON-able, so results can be cached and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faasemu.chaos.model import Perturbation

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table of a snapshot: the multiset of its rows (`SELECT *`, no implicit rowid), sorted.

    `key` names the primary-key columns (empty when the table has none). A `dir` state is one
    table `files(path, content)` keyed by path; a `hooks` snapshot is one table `hook(value)`.
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    tables: tuple[Table, ...] = ()

    def table(self, name: str) -> Table | None:
        for table in self.tables:
            if table.name == name:
                return table
        return None


@dataclass(frozen=True, slots=True, order=True)
class SinkEffect:
    """A call to the effect sink: (name, method, body as canonical JSON text). Headers are ignored."""

    name: str
    method: str
    body: str


@dataclass(frozen=True, slots=True, order=True)
class EmittedEffect:
    """An event a handler emitted: (type, source, data as canonical JSON text, id).

    Events are one effect per (source, id), the first copy's content winning
    (docs/verification.md#effects); `id` is "" only for an event without an id in a run that cannot
    tell which delivery emitted it (no cascades): those are counted per call.
    """

    type: str
    source: str
    data: str
    id: str = ""


@dataclass(frozen=True, slots=True)
class Effects:
    """Sorted tuples, so equal multisets compare equal."""

    sink: tuple[SinkEffect, ...] = ()
    emitted: tuple[EmittedEffect, ...] = ()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A schedule to run: the baseline deliveries kept (canonical indices; None = all) and the
    perturbations applied to them. Its comparison baseline is the same deliveries, once, in order."""

    deliveries: frozenset[int] | None = None
    perturbations: tuple[Perturbation, ...] = ()

    def baseline(self) -> Candidate:
        return Candidate(self.deliveries, ())


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a runner returns for one candidate. `outcomes` is one status per executed step
    (ok, error, timeout, crash, oom, fail*, lost*): reported, never compared (docs/verification.md#effects)."""

    snapshot: Snapshot
    effects: Effects
    outcomes: tuple[str, ...] = ()
    touched: tuple[frozenset[str], ...] = field(default=(), compare=False)
    # The traced baseline's steps per delivery, in order: "commit orders", "sink payment", "emit order.paid".
    steps: tuple[tuple[str, ...], ...] = field(default=(), compare=False)
