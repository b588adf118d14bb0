"""What the dashboard's JSON APIs read: pages of the event log, and the last campaign's report files.

Pages are cut by a `seq` cursor (newest first), so the page with 10,000 events in the log costs what
the page with 50 does: two indexed queries, never the whole log.
"""

from __future__ import annotations

import glob
import json
import os
import sqlite3
from typing import Any

from faasemu.project.paths import ProjectPaths

LAST_CAMPAIGN = "last-campaign.json"  # written by faasemu/verify/report.py: write_last_campaign


def events_page(db: sqlite3.Connection, before: int | None, limit: int, dead: bool) -> dict[str, Any]:
    """One page of events with their deliveries: {"events": [...newest first], "next": SEQ or None, "total": N}."""
    where, params = [], []
    if before is not None:
        where.append("seq < ?")
        params.append(before)
    if dead:
        where.append("seq IN (SELECT event_seq FROM deliveries WHERE status = 'dead')")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.execute(f"SELECT seq, body, origin, received_at FROM events{clause} ORDER BY seq DESC LIMIT ?",
                      (*params, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    deliveries: dict[int, list[dict[str, Any]]] = {seq: [] for seq, *_ in rows}
    if rows:
        marks = ",".join("?" * len(rows))
        for seq, function, copy, status, attempts, tags, last_error in db.execute(
                "SELECT event_seq, function, copy, status, attempts, tags, last_error FROM deliveries"
                f" WHERE event_seq IN ({marks}) ORDER BY rowid", [r[0] for r in rows]):
            deliveries[seq].append({"function": function, "copy": copy, "status": status, "attempts": attempts,
                                    "tags": _tags(tags), "last_error": last_error,
                                    "attempt_id": f"{seq}-{function}-{copy}-{attempts}"})
    total = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    dead_total = db.execute("SELECT COUNT(DISTINCT event_seq) FROM deliveries WHERE status = 'dead'").fetchone()[0]
    events = []
    for seq, body, origin, received in rows:
        event = json.loads(body)
        events.append({"seq": seq, "id": event.get("id"), "type": event.get("type"), "source": event.get("source"),
                       "origin": origin, "received_at": received, "data": event.get("data"),
                       "deliveries": deliveries[seq]})
    return {"events": events, "next": rows[-1][0] if more and rows else None, "total": total, "dead": dead_total}


def _tags(value: Any) -> list[str]:
    """The tags column as a list, whichever way it was stored (JSON text, comma list, or none)."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return [part for part in str(value).split(",") if part]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def campaign_json(root: str) -> dict[str, Any]:
    """The last `faasemu chaos` report (or null) and every counterexample file in `.faasemu/cex/`."""
    paths = ProjectPaths(root)
    report = _read(os.path.join(paths.base, LAST_CAMPAIGN))
    counterexamples = []
    for path in sorted(glob.glob(os.path.join(paths.cex, "*.json"))):
        data = _read(path)
        if isinstance(data, dict):
            counterexamples.append({"file": os.path.relpath(path, root), **data})
    return {"report": report, "counterexamples": counterexamples}


def _read(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None
