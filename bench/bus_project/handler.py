"""A trivial event handler: record the event id in $FAASEMU_STATE, one INSERT and one commit.

The connection is opened once per worker (the usual Lambda pattern) in WAL mode with
synchronous=NORMAL, the durability faasemu's own event log has.
"""

import os
import sqlite3

_db = None


def _connect():
    global _db
    if _db is None:
        _db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
        _db.execute("PRAGMA journal_mode=WAL")
        _db.execute("PRAGMA synchronous=NORMAL")
    return _db


def handler(event, context):
    db = _connect()
    db.execute("INSERT INTO seen (event_id, function) VALUES (?, ?)", (event["id"], context.function_name))
    return {"ok": True}
