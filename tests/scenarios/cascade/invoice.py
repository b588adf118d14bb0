"""EventBridge-triggered consumers of `invoice.requested`.

`dedup` inserts the invoice keyed by the event's (source, id) in one statement, so a second delivery
of one event changes nothing; `naive` inserts a row on every delivery.
"""

import os
import sqlite3


def dedup(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=10)
    try:
        with db:
            db.execute("INSERT OR IGNORE INTO invoices_dedup (source, event_id, order_id, amount) VALUES (?, ?, ?, ?)",
                       (event["source"], event["id"], event["detail"]["order"], event["detail"]["amount"]))
    finally:
        db.close()


def naive(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=10)
    try:
        with db:
            db.execute("INSERT INTO invoices_naive (source, order_id, amount) VALUES (?, ?, ?)",
                       (event["source"], event["detail"]["order"], event["detail"]["amount"]))
    finally:
        db.close()
