"""Check, then act: both copies of a duplicate pass the SELECT when they run at the same time."""

import os
import sqlite3
import time

from pay import charge


def handler(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
    try:
        if db.execute("SELECT 1 FROM racy_processed WHERE event_id = ?", (event["id"],)).fetchone():
            return
        charge("payment-racy", event)
        time.sleep(0.03)  # the rest of the work: a real API answers in tens of milliseconds
        db.execute("INSERT OR IGNORE INTO racy_processed (event_id) VALUES (?)", (event["id"],))
    finally:
        db.close()
