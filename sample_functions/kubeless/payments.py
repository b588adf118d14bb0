"""Records payments from a Kafka trigger. Kubeless gives every send a new `event-id`, so a
redelivered message cannot be recognised by it: the payment's own id, carried in the message,
is the deduplication key, stored in the same transaction as the balance change."""

import os
import sqlite3


def handler(event, context):
    payment = event["data"]
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "payments.db"))
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO payments (id) VALUES (?)", (payment["payment_id"],)).rowcount
            if first:
                db.execute("INSERT INTO balances (account, amount) VALUES (?, ?) "
                           "ON CONFLICT (account) DO UPDATE SET amount = amount + excluded.amount",
                           (payment["account"], payment["amount"]))
    finally:
        db.close()
    return "recorded" if first else "already recorded"
