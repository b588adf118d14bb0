"""The event log (faasemu/delivery/eventlog.py) on a file in tmp_path, without a bus or a server."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from faasemu.delivery.eventlog import DeliveryRow, EventLog


def event(event_id: str, kind: str = "order.created") -> dict[str, object]:
    return {"specversion": "1.0", "id": event_id, "source": "test", "type": kind, "data": {"n": event_id}}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    opened = EventLog(str(tmp_path / "events.db"))
    try:
        yield opened
    finally:
        opened.close()


def test_append_stores_events_with_their_deliveries_and_returns_their_seqs(log: EventLog) -> None:
    rows = [DeliveryRow(0, "a", next_at=1.0), DeliveryRow(0, "b", next_at=1.0),
            DeliveryRow(0, "b", 1, next_at=2.0, tags="duplicate")]
    seqs = log.append([(event("e1"), "test", rows), (event("e2"), "test", [])])
    assert seqs == [1, 2] and all(row.event_seq == 1 for row in rows)  # the rows learn their event's seq
    assert log.events() == [event("e1"), event("e2")]
    assert [(r.function, r.copy, r.status, r.tags) for _, r_list in log.recent() for r in r_list] == [
        ("a", 0, "pending", ""), ("b", 0, "pending", ""), ("b", 1, "pending", "duplicate")]


def test_open_deliveries_in_acceptance_order_then_copy_and_update_settles_them(log: EventLog) -> None:
    log.append([(event("e1"), "t", [DeliveryRow(0, "a", 1, tags="duplicate"), DeliveryRow(0, "a")]),
                (event("e2"), "t", [DeliveryRow(0, "a")])])
    opened = log.open_deliveries()
    assert [(row.event_seq, row.copy, body["id"]) for row, body in opened] == [(1, 0, "e1"), (1, 1, "e1"), (2, 0, "e2")]
    first, copy, second = (row for row, _ in opened)
    first.status, first.attempts = "done", 1
    second.status, second.attempts, second.budget_from, second.last_error = "dead", 3, 1, "Boom: no"
    copy.attempts, copy.next_at, copy.inject = 1, 99.0, "fail"
    log.update([first, second, copy])
    log.update([])  # nothing to do: no transaction
    still_open = [(r.key, r.attempts, r.next_at, r.inject) for r, _ in log.open_deliveries()]
    assert still_open == [((1, "a", 1), 1, 99.0, "fail")]
    dead = log.recent(dead_only=True)
    assert [(stored.event["id"], [(r.status, r.attempts, r.budget_from, r.last_error) for r in rows])
            for stored, rows in dead] == [("e2", [("dead", 3, 1, "Boom: no")])]


def test_attempts_of_open_count_every_copy_and_every_event_with_the_same_id(log: EventLog) -> None:
    log.append([(event("e1"), "t", [DeliveryRow(0, "a"), DeliveryRow(0, "b")]),
                (event("e1"), "t", [DeliveryRow(0, "a")]),  # the same id posted again
                (event("e2"), "t", [DeliveryRow(0, "a")])])
    rows = {row.key: row for row, _ in log.open_deliveries()}
    rows[(1, "a", 0)].status, rows[(1, "a", 0)].attempts = "done", 2
    rows[(2, "a", 0)].attempts = 1
    rows[(1, "b", 0)].status, rows[(1, "b", 0)].attempts = "done", 1
    rows[(3, "a", 0)].status, rows[(3, "a", 0)].attempts = "done", 1
    log.update(list(rows.values()))
    # only pairs with a pending delivery; (e1, a) sums over both events with id e1
    assert log.attempts_of_open() == {("e1", "a"): 3}


def test_redrive_makes_dead_letters_pending_with_a_fresh_budget(log: EventLog) -> None:
    log.append([(event("e1"), "t", [DeliveryRow(0, "a"), DeliveryRow(0, "b")]),
                (event("e2"), "t", [DeliveryRow(0, "a")])])
    rows = [row for row, _ in log.open_deliveries()]
    for row in rows:
        row.status, row.attempts, row.inject = "dead", 3, "lost-ack"
    log.update(rows)
    assert log.redrive("e1") == 2
    assert log.redrive("nope") == 0
    reopened = [row for row, _ in log.open_deliveries()]
    assert [(r.key, r.status, r.budget_from, r.inject) for r in reopened] == [
        ((1, "a", 0), "pending", 3, None), ((1, "b", 0), "pending", 3, None)]
    assert log.redrive(None) == 1 and len(log.open_deliveries()) == 3


def test_recent_gives_the_latest_events_oldest_first(log: EventLog) -> None:
    log.append([(event(f"e{i}"), "origin", [DeliveryRow(0, "a")]) for i in range(5)])
    latest = log.recent(limit=2)
    assert [stored.event["id"] for stored, _ in latest] == ["e3", "e4"]
    assert latest[0][0].origin == "origin" and latest[0][0].seq == 4


def test_a_failed_append_stores_nothing(log: EventLog) -> None:
    with pytest.raises(KeyError):
        log.append([(event("e1"), "t", [DeliveryRow(0, "a")]), ({"id": "no-type"}, "t", [])])
    assert log.events() == [] and log.open_deliveries() == []


def test_the_file_is_private_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = EventLog(str(path))
    first.append([(event("e1"), "t", [DeliveryRow(0, "a")])])
    first.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = EventLog(str(path))
    try:
        assert [row.key for row, _ in again.open_deliveries()] == [(1, "a", 0)]
    finally:
        again.close()
