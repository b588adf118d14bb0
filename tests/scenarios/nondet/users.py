"""Two EventBridge-triggered Lambdas that use random ids and the clock."""

import os
import sqlite3
import time
import uuid


def _connect():
    return sqlite3.connect(os.environ["FAASEMU_STATE"])


def register(event, context):
    """Keyed by the user (a business key): a second delivery is ignored, whatever uuid and time it draws."""
    detail = event["detail"]
    db = _connect()
    try:
        with db:
            db.execute(
                "INSERT INTO users (user_id, name, request_uuid, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET name = excluded.name",
                (detail["user"], detail["name"], str(uuid.uuid4()), time.time()),
            )
    finally:
        db.close()


def audit(event, context):
    """A new row with a fresh random id on every delivery: a duplicate leaves one row too many."""
    detail = event["detail"]
    db = _connect()
    try:
        with db:
            db.execute(
                "INSERT INTO audit_log (id, user_id, action, logged_at) VALUES (?, ?, ?, ?)",
                (str(uuid.uuid4()), detail["user"], "registered", time.time()),
            )
    finally:
        db.close()
