"""The fix for both: claim the id in the transaction that records the work, and send the event id as
the Idempotency-Key, so a retry after a crash is answered with the first charge, not a second one."""

import os
import sqlite3

from pay import charge


def handler(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        claimed = db.execute("INSERT OR IGNORE INTO once_processed (event_id) VALUES (?)", (event["id"],)).rowcount
        if claimed:
            charge("payment-once", event, key=event["id"])
        db.execute("COMMIT")
    finally:
        db.close()
