"""EventBridge-triggered Lambda: credit an account once per event.

Idempotent: the event id goes into `processed_events` in the same transaction as the credit,
and a delivery whose id is already there changes nothing.
"""

import os
import sqlite3


def handler(event, context):
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO processed_events (event_id) VALUES (?)", (event["id"],)).rowcount
            if first:
                db.execute(
                    "INSERT INTO accounts (id, balance) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance",
                    (detail["account"], detail["amount"]),
                )
    finally:
        db.close()
