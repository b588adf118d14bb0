"""Kubeless twin of status.keyed."""

import os
import sqlite3


def handler(event, context):
    data = event["data"]
    if "order" not in data:
        return "ignored"
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute("INSERT INTO kubeless (id, status) VALUES (?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET status = excluded.status", (data["order"], data["status"]))
    finally:
        db.close()
    return "set"
