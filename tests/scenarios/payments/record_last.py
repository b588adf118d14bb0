"""One transaction (BEGIN IMMEDIATE serialises the copies), but the charge is an outside call with
no Idempotency-Key: killed after the charge and before the commit, the retry charges again."""

import os
import sqlite3

from pay import charge


def handler(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        if db.execute("SELECT 1 FROM last_processed WHERE event_id = ?", (event["id"],)).fetchone():
            db.execute("ROLLBACK")
            return
        charge("payment-last", event)
        db.execute("INSERT INTO last_processed (event_id) VALUES (?)", (event["id"],))
        db.execute("COMMIT")
    finally:
        db.close()
