"""Kubeless: the payment id goes into a table in the same transaction as the credit."""

import os
import sqlite3


def handler(event, context):
    payment = event["data"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO table_payments (id) VALUES (?)", (payment["payment_id"],)).rowcount
            if first:
                db.execute("INSERT INTO table_balances (account, amount) VALUES (?, ?) "
                           "ON CONFLICT (account) DO UPDATE SET amount = amount + excluded.amount",
                           (payment["account"], payment["amount"]))
    finally:
        db.close()
    return "recorded" if first else "already recorded"
